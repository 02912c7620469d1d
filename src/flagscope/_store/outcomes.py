"""The outcomes beside the evaluations: what happened to the span and request of each.

An evaluation is judged by two spans: the span it happened in, and the request
it belongs to, which is the trace's *local root* for the service that made it
(a span with no parent, or whose parent came from another service). Both end
after the evaluation, and over OTLP a trace's spans may arrive in several
requests, so outcomes join the evaluations later. This module keeps that join
bounded (DESIGN.md section 9):

* an evaluation makes its enclosing span and its request *wanted*; a wanted
  entry waits for its span in a first-in, first-out table of at most
  ``capacity`` entries, and goes when the evaluations that wanted it are
  evicted from the collector, so a span that never comes costs a slot for a
  while and nothing more;
* an outcome is kept only when an evaluation wanted it (or the span held the
  evaluation itself), in tables of at most ``capacity`` entries, pruned with
  the evaluations it explains;
* local roots that arrive before any evaluation wanted them (an OTLP sender
  whose batches reorder, a log-based evaluation exported after its request
  ended) wait in a small ring of recent roots, so the join works in either
  order.

This is the store layer: it imports nothing from the query layer. Outcomes are
kept as plain tuples on the exporters' path (a frozen dataclass costs a
microsecond to build) and become ``SpanOutcome`` records when read.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final, Literal, TypeVar

__all__ = [
    "NO_OUTCOME",
    "OUTCOME_STATUSES",
    "OutcomeItem",
    "OutcomeStatus",
    "OutcomeStore",
    "RawOutcome",
    "SpanOutcome",
    "http_status",
    "outcome_of",
    "raw_outcome",
]

OutcomeStatus = Literal["unset", "ok", "error"]
OUTCOME_STATUSES: Final[tuple[OutcomeStatus, ...]] = ("unset", "ok", "error")

# (name, status code 0 unset / 1 ok / 2 error, status description, start ns, end ns,
#  http.response.status_code): what the ways in capture per span. Unknown numbers are
# 0, not None, so the query layer can compare whole columns at C speed.
RawOutcome = tuple[str, int, str | None, int, int, int]

# A request is one service's part of a trace: (trace id, service name).
RequestKey = tuple[str, str | None]

# What a way in hands the store per span (see ``OutcomeStore.add``): trace id, span
# id, service, the span an evaluation span was made in, whether the span is a local
# root, its kind (0 plain, 1 holds evaluations, 2 evaluation span, 3 log record), outcome.
OutcomeItem = tuple[str | None, str | None, str | None, str | None, bool, int, RawOutcome]

# An evaluation span's or log record's own outcome is never kept: only the spans it wants.
NO_OUTCOME: Final[RawOutcome] = ("", 0, None, 0, 0, 0)


def evaluation_span_item(
    trace_id: str | None, span_id: str | None, service_name: str | None, parent: str | None
) -> OutcomeItem:
    """The item of an evaluation made as its own span (the JS ``SpanHook``'s).

    Such a span explains nothing itself: the span it was made in, its parent, does.
    """
    return (trace_id, span_id, service_name, parent, False, 2, NO_OUTCOME)


# How many local roots nobody has wanted yet are kept, at most, while their
# evaluations may still arrive.
RECENT_ROOTS: Final = 4096


@dataclass(frozen=True, slots=True)
class SpanOutcome:
    """What happened to a span that explains an evaluation.

    Attributes:
        name: The span's name.
        status: ``"unset"``, ``"ok"`` or ``"error"`` (the span's status code).
        description: The status description (set with errors), if any.
        duration_ms: How long the span took, where its times are known.
        http_status_code: Its ``http.response.status_code`` (or the older
            ``http.status_code``), where present.
    """

    name: str
    status: OutcomeStatus
    description: str | None
    duration_ms: float | None
    http_status_code: int | None

    @property
    def failed(self) -> bool:
        """Whether the span failed: status error, or an HTTP status of 500 or more."""
        return self.status == "error" or (
            self.http_status_code is not None and self.http_status_code >= 500
        )


def raw_outcome(
    name: str,
    status_code: int,
    description: str | None,
    start_ns: int | None,
    end_ns: int | None,
    http_status_code: object,
) -> RawOutcome:
    """Return the tuple the store keeps, with the status code and HTTP status checked.

    Args:
        name: The span's name.
        status_code: 0 unset, 1 ok, 2 error (OTLP and SDK values alike).
        description: The status description.
        start_ns: Start time, Unix nanoseconds.
        end_ns: End time.
        http_status_code: The span's HTTP response status code attribute, any type.
    """
    code = status_code if type(status_code) is int and 0 <= status_code <= 2 else 0
    http = http_status_code if type(http_status_code) is int else http_status(http_status_code)
    return (
        name,
        code,
        description or None,
        start_ns if type(start_ns) is int and start_ns > 0 else 0,
        end_ns if type(end_ns) is int and end_ns > 0 else 0,
        http or 0,
    )


def http_status(value: object) -> int | None:
    """Return an HTTP status code attribute as an int; text ("500") and whole floats too."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def outcome_of(raw: RawOutcome) -> SpanOutcome:
    """Return the ``SpanOutcome`` for a stored tuple."""
    name, code, description, start, end, http = raw
    duration = (end - start) / 1e6 if start and end and end >= start else None
    return SpanOutcome(name, OUTCOME_STATUSES[code], description, duration, http or None)


class OutcomeStore:
    """Bounded, thread-safe outcomes of the spans and requests evaluations happened in.

    Writers (the exporters, the OTLP receiver) call ``add``; readers call
    ``span_outcomes`` and ``request_outcomes``. ``seq`` arguments are the
    collector's sequence numbers: an entry whose evaluations have all been
    evicted (``seq`` below the collector's oldest) is dropped.

    Args:
        capacity: The most entries each table holds (spans, requests, and the
            wanted ones of each).

    Raises:
        TypeError: ``capacity`` is not an int.
        ValueError: ``capacity`` is below 1.
    """

    def __init__(self, capacity: int, *, lock: threading.Lock | None = None) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise TypeError(f"capacity must be an int, got {type(capacity).__name__}")
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        # The collector shares its own lock: its writes (records and outcomes) then take
        # one lock, not two, and call ``add_locked`` while holding it.
        self._lock = lock if lock is not None else threading.Lock()
        # Read without the lock by the exporters' fast path: a membership test on a
        # dict is atomic, and a stale answer only means one more look under the lock.
        self.want_spans: dict[str, int] = {}
        self.want_requests: dict[RequestKey, int] = {}
        self._spans: dict[str, tuple[RawOutcome, int]] = {}
        self._requests: dict[RequestKey, tuple[RawOutcome, int]] = {}
        self._recent_roots: dict[RequestKey, RawOutcome] = {}
        # Per table, its keys in the order written, with the sequence number written:
        # the oldest go first (capacity) and those whose evaluations are evicted. A
        # dict emptied from the front would make ``next(iter())`` walk every deleted
        # slot (30 us per span, measured); a deque of (key, seq) stays O(1), and an
        # entry rewritten since is recognised by its seq and left alone.
        self._orders: tuple[deque[tuple[Any, int]], ...] = tuple(deque() for _ in range(4))
        self._recent_order: deque[RequestKey] = deque()
        # Items written since the last trim: each adds at most one entry to a table, so
        # trimming after a quarter of capacity keeps every table within ``limit``.
        self._since_trim = 0
        self._trim_every = capacity // 4 + 1
        self._limit = capacity + self._trim_every

    @property
    def capacity(self) -> int:
        """The most entries each table holds."""
        return self._capacity

    @property
    def limit(self) -> int:
        """The most entries a table holds between trims: a quarter past ``capacity``."""
        return self._limit

    @property
    def waiting(self) -> bool:
        """Whether any span or request is wanted: the exporters' cheap first check."""
        return bool(self.want_spans) or bool(self.want_requests)

    def __len__(self) -> int:
        """How many outcomes are kept (spans and requests)."""
        return len(self._spans) + len(self._requests)

    def add(self, items: Sequence[OutcomeItem], seq: int, first_seq: int) -> None:
        """``add_locked``, taking the store's lock."""
        with self._lock:
            self.add_locked(items, seq, first_seq)

    def add_locked(self, items: Sequence[OutcomeItem], seq: int, first_seq: int) -> None:
        """Record a batch of spans' outcomes and what their evaluations want.

        The caller holds the store's lock (the collector's, when it shares it).

        Each item is ``(trace_id, span_id, service, wanted_span, is_local_root,
        kind, outcome)``: ``kind`` 1 for a span holding evaluations as events
        (its own outcome is kept; its request is wanted), 2 for an evaluation
        span (``wanted_span``, the span it was made in, and its request are
        wanted), 3 for an evaluation without a span of its own (a log record:
        ``span_id`` and the request are wanted), 0 for any other span (kept
        only if wanted, or as a recent local root).

        Args:
            items: The spans.
            seq: The newest evaluation's sequence number when these were recorded.
            first_seq: The oldest stored evaluation's sequence number.
        """
        want_spans = self.want_spans
        want_requests = self.want_requests
        spans = self._spans
        requests = self._requests
        want_span_order, want_request_order, span_order, request_order = self._orders
        for trace_id, span_id, service, wanted_span, is_root, kind, outcome in items:
            if trace_id is None:
                continue
            request_key = (trace_id, service)
            if kind == 1:
                # The common case, inline: a span holding evaluations.
                entry = (outcome, seq)
                if span_id is not None:
                    if want_spans:
                        want_spans.pop(span_id, None)
                    spans[span_id] = entry
                    span_order.append((span_id, seq))
                if is_root:
                    if want_requests:
                        want_requests.pop(request_key, None)
                    requests[request_key] = entry
                    request_order.append((request_key, seq))
                    continue
            elif kind == 2 and wanted_span is not None:
                _want(want_spans, want_span_order, spans, span_order, wanted_span, seq)
            elif kind == 3 and span_id is not None:
                _want(want_spans, want_span_order, spans, span_order, span_id, seq)
            if kind:
                root = self._recent_roots.pop(request_key, None)
                if root is not None:
                    requests[request_key] = (root, seq)
                    request_order.append((request_key, seq))
                    continue
                known = requests.get(request_key)
                if known is None:
                    # The common case, inline: the request has not ended yet.
                    want_requests[request_key] = seq
                    want_request_order.append((request_key, seq))
                else:
                    # Another evaluation of an ended request: it explains this one too.
                    requests[request_key] = (known[0], seq)
                    request_order.append((request_key, seq))
                continue
            if span_id is not None:
                wanted = want_spans.pop(span_id, None)
                if wanted is not None:
                    spans[span_id] = (outcome, wanted)
                    span_order.append((span_id, wanted))
            if is_root:
                wanted = want_requests.pop(request_key, None)
                if wanted is not None:
                    requests[request_key] = (outcome, wanted)
                    request_order.append((request_key, wanted))
                else:
                    self._remember_root(request_key, outcome)
        # Trimmed back to capacity in bulk, and of entries whose evaluations were
        # evicted, every quarter of capacity: reads only ever look up live
        # evaluations' outcomes, so a late trim costs memory for a moment, never
        # an answer.
        written = self._since_trim + len(items)
        if written >= self._trim_every:
            self._trim(first_seq)
            written = 0
        self._since_trim = written

    def _remember_root(self, key: RequestKey, outcome: RawOutcome) -> None:
        """Keep a local root nobody wanted yet among the ``RECENT_ROOTS`` newest."""
        recent = self._recent_roots
        if key not in recent:
            self._recent_order.append(key)
        recent[key] = outcome
        while len(self._recent_order) > RECENT_ROOTS:
            recent.pop(self._recent_order.popleft(), None)

    def _trim(self, first_seq: int) -> None:
        """Drop the oldest entries past capacity, and those whose evaluations are gone."""
        capacity = self._capacity
        tables: tuple[dict[Any, Any], ...] = (
            self.want_spans,
            self.want_requests,
            self._spans,
            self._requests,
        )
        for table, order in zip(tables, self._orders, strict=True):
            while order and (
                len(table) > capacity or len(order) > capacity or order[0][1] < first_seq
            ):
                key, written = order.popleft()
                entry = table.get(key)
                if entry is not None and (entry if type(entry) is int else entry[1]) == written:
                    del table[key]

    def prune(self, first_seq: int) -> None:
        """Drop entries whose evaluations have all been evicted."""
        with self._lock:
            self._trim(first_seq)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self.clear_locked()

    def clear_locked(self) -> None:
        """``clear``, with the lock held by the caller."""
        # Emptied in place: the exporters hold the wanted tables.
        self.want_spans.clear()
        self.want_requests.clear()
        self._spans.clear()
        self._requests.clear()
        self._recent_roots.clear()
        for order in self._orders:
            order.clear()
        self._recent_order.clear()

    def span_outcomes(self, span_ids: Iterable[str | None]) -> dict[str, SpanOutcome]:
        """Return the known outcomes of these spans, by span id."""
        with self._lock:
            spans = self._spans
            found = {
                span_id: entry[0]
                for span_id in set(span_ids)
                if span_id is not None and (entry := spans.get(span_id)) is not None
            }
        return _built(found)

    def request_outcomes(self, keys: Iterable[RequestKey]) -> dict[RequestKey, SpanOutcome]:
        """Return the known outcomes of these requests, by ``(trace_id, service)``."""
        with self._lock:
            requests = self._requests
            found = {
                key: entry[0]
                for key in set(keys)
                if key[0] is not None and (entry := requests.get(key)) is not None
            }
        return _built(found)

    def raw_outcomes(
        self, scope: Literal["span", "request"], keys: Iterable[Any]
    ) -> dict[Any, RawOutcome]:
        """Return the stored tuples (``RawOutcome``) for span ids or request keys.

        The query layer's bulk read: ``impact`` reads tens of thousands at once,
        and a ``SpanOutcome`` per outcome would cost more than the rest.
        """
        with self._lock:
            table: dict[Any, tuple[RawOutcome, int]] = (
                self._spans if scope == "span" else self._requests
            )
            get = table.get
            return {key: entry[0] for key in keys if (entry := get(key)) is not None}

    def raw_outcomes_by_group(
        self, scope: Literal["span", "request"], groups: Mapping[Any, Iterable[Any]]
    ) -> dict[Any, list[RawOutcome]]:
        """For each group of span ids or request keys, the stored tuples of those known."""
        with self._lock:
            table: dict[Any, tuple[RawOutcome, int]] = (
                self._spans if scope == "span" else self._requests
            )
            get = table.get
            found = {group: list(filter(None, map(get, keys))) for group, keys in groups.items()}
        first = itemgetter(0)
        return {group: list(map(first, entries)) for group, entries in found.items()}

    def __repr__(self) -> str:
        return (
            f"OutcomeStore(spans={len(self._spans)}, requests={len(self._requests)}, "
            f"waiting={len(self.want_spans) + len(self.want_requests)})"
        )


_K = TypeVar("_K")


def _built(found: dict[_K, RawOutcome]) -> dict[_K, SpanOutcome]:
    return {key: outcome_of(raw) for key, raw in found.items()}


def _want(
    wants: dict[_K, int],
    want_order: deque[tuple[Any, int]],
    outcomes: dict[_K, tuple[RawOutcome, int]],
    outcome_order: deque[tuple[Any, int]],
    key: _K,
    seq: int,
) -> None:
    known = outcomes.get(key)
    if known is not None:
        # Already here (another evaluation in the same span): now explains this one too.
        outcomes[key] = (known[0], seq)
        outcome_order.append((key, seq))
        return
    wants[key] = seq
    want_order.append((key, seq))
