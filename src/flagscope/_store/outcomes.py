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
  evaluation itself), in a ring of rows, twice ``capacity``: an evaluation
  makes at most two rows, so the ring comes back to a row only after the
  evaluations it explains are evicted (a row a stored evaluation still needs
  is passed over);
* local roots that arrive before any evaluation wanted them (an OTLP sender
  whose batches reorder, a log-based evaluation exported after its request
  ended) wait in a small ring of recent roots, so the join works in either
  order.

This is the store layer: it imports nothing from the query layer. The ways in
hand over one plain tuple per span (a frozen dataclass costs a microsecond to
build); the store keeps outcomes as rows of compact columns (status, failure,
duration, HTTP status, names), found by span id or request key, so ``impact``
reads whole columns at once. Rows become ``SpanOutcome`` records only when
read one by one.

The tables that find rows by span id and request key are filled lazily: a
write only fills the ring's next row; the rows written since are entered in
one pass when something looks them up (a reader, an evaluation span's join).
Most outcomes are overwritten before anyone reads them and never cost a dict
insert and delete, each a likely cache miss in tables of ``capacity`` random
keys: that was most of what capture added to an exported span. Likewise a
span's write keeps the way in's outcome tuple as it is, and the pass copies the
pending rows' fields into the columns; a batch of local roots (the receiver's
usual batch) writes its columns at once, a slice each, so its tuples do not
outlive the request for the garbage collector to walk.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress, filterfalse, islice, repeat
from operator import eq, ge, is_not, itemgetter, lt, or_
from typing import Any, Final, Literal, NamedTuple, Protocol, cast

from flagscope._store.records import SPAN_KEY, TRACE_KEY, FlagEvaluationEvent, stored_id

__all__ = [
    "HTTP_LIMIT",
    "NO_OUTCOME",
    "OUTCOME_STATUSES",
    "IdKey",
    "LabelFigures",
    "OutcomeItem",
    "OutcomeStatus",
    "OutcomeStore",
    "RawOutcome",
    "SpanOutcome",
    "duration_ns",
    "http_status",
    "outcome_of",
    "raw_outcome",
]

OutcomeStatus = Literal["unset", "ok", "error"]
OUTCOME_STATUSES: Final[tuple[OutcomeStatus, ...]] = ("unset", "ok", "error")

# (name, status code 0 unset / 1 ok / 2 error, status description, duration ns,
#  http.response.status_code): what the ways in capture per span. An unknown duration
# is -1 and an unknown HTTP status 0, not None: the store keeps them in int arrays.
RawOutcome = tuple[str, int, str | None, int, int]

# An id as records store it (``flagscope._store.records.trace_id_key``): an int for
# every id a way in maps, text only for an id a user gave in another form. The store
# keys its tables by these, so neither the ways in nor ``impact`` format any id as hex.
IdKey = int | str

# A request is one service's part of a trace: (trace id, service name).
RequestKey = tuple[IdKey, str | None]

# What a way in hands the store per span (see ``OutcomeStore.add``): trace id, span
# id, service, the span an evaluation span was made in, whether the span is a local
# root, its kind (0 plain, 1 holds evaluations, 2 evaluation span, 3 log record), outcome.
OutcomeItem = tuple[IdKey | None, IdKey | None, str | None, IdKey | None, bool, int, RawOutcome]

# An evaluation span's or log record's own outcome is never kept: only the spans it wants.
NO_OUTCOME: Final[RawOutcome] = ("", 0, None, -1, 0)


def evaluation_span_item(
    trace_id: IdKey | None, span_id: IdKey | None, service_name: str | None, parent: IdKey | None
) -> OutcomeItem:
    """The item of an evaluation made as its own span (the JS ``SpanHook``'s).

    Such a span explains nothing itself: the span it was made in, its parent, does.
    """
    return (trace_id, span_id, service_name, parent, False, 2, NO_OUTCOME)


class _SeqSource(Protocol):
    """The collector an ``OutcomeStore`` serves: its ring of records and their seqs.

    The record with seq ``s`` sits at ``_ring[(s - _origin) % _max_size]``; the stored
    ones are ``_first_seq`` to ``_next_seq - 1``.
    """

    _first_seq: int
    _next_seq: int
    _origin: int
    _max_size: int
    _ring: list[FlagEvaluationEvent]
    # Its ``_next_seq`` at the last ``OutcomeStore._trim``.
    _trimmed_at: int


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
    http = http_status(http_status_code)
    return (name, code, description or None, duration_ns(start_ns, end_ns), http or 0)


def duration_ns(start_ns: int | None, end_ns: int | None) -> int:
    """Return ``end_ns - start_ns``, or -1 when either time is unknown or they are out of order.

    Times are Unix nanoseconds below ``TIME_LIMIT``; any other is unknown.
    """
    if type(start_ns) is int and type(end_ns) is int and 0 < start_ns <= end_ns < TIME_LIMIT:
        return end_ns - start_ns
    return -1


# Span times at or above this are no times: OTLP sends them as fixed64, and a duration
# a float cannot hold (an SDK span given a huge end time) would break every reading.
TIME_LIMIT: Final = 1 << 64


# HTTP status codes at or above this (or below 1) are no status: the store keeps
# them in a 32-bit column.
HTTP_LIMIT: Final = 1 << 31


def http_status(value: object) -> int | None:
    """Return an HTTP status code attribute as an int; text ("500") and whole floats too."""
    number: int | None = None
    if type(value) is int:
        number = value
    elif (isinstance(value, str) and value.isascii() and value.isdigit()) or (
        isinstance(value, float) and value.is_integer()
    ):
        number = int(value)
    return number if number is not None and 0 < number < HTTP_LIMIT else None


def outcome_of(raw: RawOutcome) -> SpanOutcome:
    """Return the ``SpanOutcome`` for a stored tuple."""
    name, code, description, duration, http = raw
    return SpanOutcome(
        name,
        OUTCOME_STATUSES[code],
        description,
        duration / 1e6 if 0 <= duration < TIME_LIMIT else None,
        http or None,
    )


# While the ring fills, rows are added this many at a time: each column grows once per
# block, not once per row.
_ROW_BLOCK: Final = 256
# How many rows still needed ``_reuse`` passes over before it takes the next one anyway.
_PASS_OVER: Final = 8


class OutcomeStore:
    """Bounded, thread-safe outcomes of the spans and requests evaluations happened in.

    Writers (the exporters, the OTLP receiver) call ``add``; readers call
    ``span_outcomes``, ``request_outcomes`` and ``figures``. ``seq`` arguments
    are the collector's sequence numbers: an outcome is kept while an
    evaluation it explains is stored (``seq`` at or above the collector's
    oldest), and its row is reused once the last one is evicted.

    Each outcome is one row of columns (name, status code, description, HTTP
    status, duration, and whether it failed, for ``figures``), shared by
    the span and, for a local root, its request; ``_spans`` and ``_requests``
    (per service, by trace id) find rows, once ``_index`` has entered the
    pending ones, and a row's ``seq`` is the newest evaluation it explains.
    Rows are taken in turn from a ring of ``limit``, so writing one is a few
    stores. The span exporter's one-span entries (``RecordStore.record_span``,
    ``add_request``) first hold an outcome in its evaluation's slot of the
    collector's ring, and ``_ingest`` writes it to a row when someone reads, or
    before any other write: most are overwritten with their evaluation, never read.
    A held outcome goes with its evaluation's record; a later evaluation of the same
    request finds it while that record is stored.

    Args:
        capacity: The collector's ``max_size``: the ring holds twice as many
            rows, and each trim leaves each wanted table at most this many entries.
        lock: The collector's lock, shared; else the store's own.
        records: The collector, whose oldest stored seq ``add_request`` reads.

    Raises:
        TypeError: ``capacity`` is not an int.
        ValueError: ``capacity`` is below 1.
    """

    def __init__(
        self,
        capacity: int,
        *,
        lock: threading.Lock | None = None,
        records: _SeqSource | None = None,
    ) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise TypeError(f"capacity must be an int, got {type(capacity).__name__}")
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        # The collector shares its own lock: its writes (records and outcomes) then take
        # one lock, not two, and call ``add_locked`` while holding it.
        self._lock = lock if lock is not None else threading.Lock()
        # The collector whose evaluations the rows explain: ``add_request`` reads its
        # oldest stored seq itself, under the lock.
        self._records = records
        # Read without the lock by the exporters' fast path: a membership test on a
        # dict is atomic, and a stale answer only means one more look under the lock.
        self.want_spans: dict[IdKey, int] = {}
        self.want_requests: dict[RequestKey, int] = {}
        self._spans: dict[IdKey, int] = {}
        self._requests: dict[str | None, dict[IdKey, int]] = {}
        self._recent_roots: dict[RequestKey, RawOutcome] = {}
        self._recent_order: deque[RequestKey] = deque()
        # An evaluation makes at most two rows (its span's and its request's), so a
        # ring of twice the capacity reaches a row again only after its evaluations
        # are evicted, unless a later one still needs it (``_reuse``).
        self._size = 2 * capacity + 2
        # The columns, one entry per row: the newest evaluation it explains, the
        # outcome as the way in gave it, and what ``figures`` reads in bulk.
        # Lists, not arrays, for seqs and durations: an array's item assignment parses
        # its argument (0.05 µs a store), and each int is already held by the outcome
        # tuple or the batch, so a list costs a pointer per row all the same.
        self._seqs: list[int] = []
        # The outcome as the way in handed it over, until ``_enter_pending`` copies it
        # field by field into the columns below: a write is one store, not five, and
        # most rows are overwritten before anyone reads them. ``None`` once copied.
        # A kept tuple of strs, ints and None is untracked by the garbage collector
        # the first time a collection sees it, so it is walked at most once.
        self._raws: list[RawOutcome | None] = []
        self._names: list[str] = []
        self._codes = bytearray()
        self._descriptions: list[str | None] = []
        self._https: list[int] = []
        # 1 for a failed outcome, else 0: a list, because ``figures`` sums it through
        # ``__getitem__``, a fast method call on a list and a wrapped one on a bytearray.
        # Set for a row when it is entered in the tables (``figures`` reads only those).
        self._failed: list[int] = []
        self._durations: list[int] = []
        # What finds each row, to forget it when the row is taken again.
        self._span_keys: list[IdKey | None] = []
        self._trace_keys: list[IdKey | None] = []
        self._services: list[str | None] = []
        # 1 for a row entered in the tables (its keys must go when it is reused).
        self._indexed = bytearray()
        # The ring's next row, how many rows were ever taken, and how many had been
        # when ``_index`` last ran: the rows taken since are the pending ones.
        self._next_row = 0
        self._taken = 0
        self._indexed_upto = 0
        # Outcomes the span exporter's one-span entry (``RecordStore.record_span``) handed
        # over, held by their evaluation's slot in the collector's ring until
        # ``_ingest`` writes them to rows: the span's, and its request's (the same
        # outcome for a local root; a wanted root's from ``add_request``). Most are
        # overwritten with their slot, never read. Every seq from ``_held_from`` on was
        # written by ``record_span`` (``_ingest`` and the collector's other writes move
        # it up to their ``_next_seq``), so outcomes are held while the collector's
        # ``_next_seq`` is past it: ``record_span`` itself keeps no flag.
        self._slot_spans: list[RawOutcome | None] = []
        self._slot_requests: list[RawOutcome | None] = []
        self._held_from = 0
        # Items written since the wanted tables were last trimmed.
        self._since_trim = 0
        self._trim_every = capacity // 2 + 1

    @property
    def capacity(self) -> int:
        """The collector's ``max_size``: a trim leaves each wanted table at most this many."""
        return self._capacity

    @property
    def limit(self) -> int:
        """The most rows kept, so the most entries in each table: about twice ``capacity``."""
        return self._size

    @property
    def waiting(self) -> bool:
        """Whether any span or request is wanted: the exporters' cheap first check."""
        return bool(self.want_spans) or bool(self.want_requests)

    def __len__(self) -> int:
        """How many outcomes are kept (spans and requests)."""
        with self._lock:
            self._index()
            return self._indexed_entries()

    def _indexed_entries(self) -> int:
        return len(self._spans) + sum(map(len, self._requests.values()))

    def add(self, items: Sequence[OutcomeItem], seq: int, first_seq: int) -> None:
        """``add_locked``, taking the store's lock."""
        with self._lock:
            self.add_locked(items, seq, first_seq)

    def add_locked(
        self,
        items: Sequence[OutcomeItem],
        seq: int,
        first_seq: int,
        span_seqs: Mapping[Any, int] | None = None,
    ) -> None:
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
            span_seqs: Each span's newest evaluation's sequence number, by span id
                (``RecordStore.record_with_outcomes``): a span's outcome is then kept
                as long as its own evaluations, where ``seq`` keeps every span of the
                batch as long as the newest.
        """
        if self._has_held():
            self._ingest()
        if not self._add_roots(items, seq, first_seq, span_seqs):
            self._add_each(items, seq, first_seq, span_seqs)
        self._count_written(len(items), first_seq)

    def _add_roots(
        self,
        items: Sequence[OutcomeItem],
        seq: int,
        first_seq: int,
        span_seqs: Mapping[Any, int] | None,
    ) -> bool:
        """``add_locked`` for local roots holding evaluations, a column at a time.

        What ``_add_each`` does for a batch of such spans (kind 1, local roots, as
        a service's requests with TracingHook events are) whose rows follow on from
        the next one without wrapping or reusing a row that is still wanted: each
        column written in one slice (the outcomes as handed over, as ``_row`` keeps
        them), the wants they answer dropped at C speed.
        Returns ``False``, with nothing changed, for any other batch.
        """
        count = len(items)
        start = self._next_row
        stop = start + count
        if count < 2 or stop > self._size:
            return False
        # The columns first: checking them is a C loop of comparisons each, where a set
        # of each item's (kind, root) or outcome length costs a call and a hash an item.
        traces, span_ids, services, _, roots, kinds, outcomes = zip(*items, strict=True)
        if kinds.count(1) != count or roots.count(True) != count or None in traces:
            return False
        seqs = self._seqs
        kept = min(stop, len(seqs))
        if start < kept and (
            max(seqs[start:kept]) >= first_seq
            or any(self._indexed[start:kept])
            or (self.want_requests and self._trace_keys[start:kept].count(None) != kept - start)
        ):
            return False  # a row to reuse (``_row``'s test): the loop does it
        while len(seqs) < stop:
            self._grow()
        seqs[start:stop] = (
            repeat(seq, count) if span_seqs is None else map(span_seqs.get, span_ids, repeat(seq))
        )
        self._span_keys[start:stop] = span_ids
        self._trace_keys[start:stop] = traces
        self._services[start:stop] = services
        # Into the columns now, not kept as tuples until read as ``_row`` keeps one: a
        # batch's tuples would each outlive the request, and the garbage collector
        # counts and walks every such survivor (the receiver's batches ran twice as
        # many young collections as without). A slice a column costs a batch little.
        self._write_columns(start, stop, outcomes)
        self._next_row = stop if stop < self._size else 0
        self._taken += count
        if self.want_spans:
            deque(map(self.want_spans.pop, span_ids, repeat(None)), maxlen=0)
        if self.want_requests:
            deque(
                map(self.want_requests.pop, zip(traces, services, strict=True), repeat(None)),
                maxlen=0,
            )
        return True

    def _add_each(
        self,
        items: Sequence[OutcomeItem],
        batch_seq: int,
        first_seq: int,
        span_seqs: Mapping[Any, int] | None,
    ) -> None:
        """``add_locked``'s items one by one.

        Items come in the order their spans ended, as their evaluations were stored,
        so each item's seq is at least that of every want an earlier one made.
        """
        want_spans = self.want_spans
        want_requests = self.want_requests
        spans = self._spans
        requests = self._requests
        seqs = self._seqs
        span_keys = self._span_keys
        seq = batch_seq
        for trace_id, span_id, service, wanted_span, is_root, kind, outcome in items:
            if trace_id is None:
                continue
            if span_seqs is not None:
                seq = span_seqs.get(span_id, batch_seq)
            if kind == 1:
                row = self._row(outcome, seq, first_seq)
                span_keys[row] = span_id
                if span_id is not None and want_spans:
                    want_spans.pop(span_id, None)
                if is_root:
                    if want_requests:
                        want_requests.pop((trace_id, service), None)
                    self._trace_keys[row] = trace_id
                    self._services[row] = service
                else:
                    # Wanted even if the request already ended (rare: it usually ends
                    # last); ``_index`` then finds it, with no table lookup here.
                    self._want_request(trace_id, service, seq, first_seq)
            elif kind == 2 or kind == 3:
                if self._taken != self._indexed_upto:
                    self._enter_pending()
                wanted = wanted_span if kind == 2 else span_id
                if wanted is not None:
                    row_of_span = spans.get(wanted)
                    if row_of_span is None:
                        want_spans[wanted] = seq
                    else:
                        # Already here (another evaluation in the same span): now
                        # explains this one too.
                        seqs[row_of_span] = seq
                by_trace = requests.get(service)
                known = by_trace.get(trace_id) if by_trace is not None else None
                if known is not None:
                    seqs[known] = seq
                else:
                    self._want_request(trace_id, service, seq, first_seq)
            else:
                if span_id is not None and want_spans:
                    wanted_seq = want_spans.pop(span_id, None)
                    if wanted_seq is not None:
                        span_keys[self._row(outcome, wanted_seq, first_seq)] = span_id
                if is_root:
                    self.add_request_locked(trace_id, service, outcome, first_seq)

    def add_request(self, trace_id: IdKey, service: str | None, outcome: RawOutcome) -> None:
        """``add_request_locked`` under the lock, counting a root nobody wants.

        The span exporter's entry (``RecordStore.record_request``) for every local
        root while evaluations wait for requests: one call that takes the lock, reads
        the collector's oldest seq and writes the row, where a call for each cost
        about 600 instructions a request (callgrind). Keep it in step with
        ``add_request_locked``.

        Raises:
            TypeError: The store was made without ``records``.
        """
        records = self._records
        if records is None:
            raise TypeError("add_request needs the store made with records")
        lock = self._lock
        lock.acquire()
        try:
            first_seq = records._first_seq
            key = (trace_id, service)
            wanted_seq = self.want_requests.pop(key, None)
            if wanted_seq is None:
                self._remember_root(key, outcome)
                self._count_written(1, first_seq)
                return
            held_from = self._held_from
            if wanted_seq >= held_from and wanted_seq >= first_seq:
                # The usual wait: an evaluation held in its slot wants this request, and
                # the outcome is held beside it. Only ``record_span`` wants from seq
                # ``_held_from`` on (other writes ``_ingest`` first), keyed by the
                # record's own ids and service, so that slot's record is the one.
                self._slot_requests[(wanted_seq - records._origin) % records._max_size] = outcome
                return
            if records._next_seq > held_from:
                self._ingest()
            seqs = self._seqs
            row = self._next_row
            if row == len(seqs):
                self._grow()
            elif (
                seqs[row] >= first_seq
                or self._indexed[row]
                or (self.want_requests and self._trace_keys[row] is not None)
            ):
                row = self._reuse(row, first_seq)
            self._next_row = row + 1 if row + 1 < self._size else 0
            self._taken += 1
            seqs[row] = wanted_seq
            self._span_keys[row] = None
            self._trace_keys[row] = trace_id
            self._services[row] = service
            self._raws[row] = outcome
        finally:
            lock.release()

    def add_request_locked(
        self,
        trace_id: IdKey,
        service: str | None,
        outcome: RawOutcome,
        first_seq: int,
    ) -> None:
        """``add_locked`` for one local root without evaluations (kind 0), without an item.

        The caller holds the lock, and counts the item towards ``_trim`` (``add_locked``
        counts every item). Kept if an evaluation wants its request, else remembered
        among the recent roots.
        """
        # A wanted root is not counted: it adds no want (it only takes one).
        key = (trace_id, service)
        wanted_seq = self.want_requests.pop(key, None)
        if wanted_seq is None:
            self._remember_root(key, outcome)
            return
        # A batch's root, once a request: ``_row``'s call is no cost worth an inline
        # copy here (``add_request``, the span exporter's per-root path, has one).
        self._row(outcome, wanted_seq, first_seq, trace_id, service)

    def _row(
        self,
        outcome: RawOutcome,
        seq: int,
        first_seq: int,
        trace_id: IdKey | None = None,
        service: str | None = None,
    ) -> int:
        """Write ``outcome`` into the ring's next row and return the row.

        The row is found by its request when ``trace_id`` is given (a local root's),
        and by no span id until the caller sets one.
        """
        seqs = self._seqs
        row = self._next_row
        if row == len(seqs):
            self._grow()
        elif (
            seqs[row] >= first_seq
            or self._indexed[row]
            or (self.want_requests and self._trace_keys[row] is not None)
        ):
            row = self._reuse(row, first_seq)
        self._next_row = row + 1 if row + 1 < self._size else 0
        self._taken += 1
        seqs[row] = seq
        self._span_keys[row] = None
        self._trace_keys[row] = trace_id
        self._services[row] = service
        self._raws[row] = outcome
        return row

    def _grow_slots(self, length: int) -> None:
        """Make the held slots at least ``length`` long (the ring fills), in blocks."""
        records = self._records
        limit = records._max_size if records is not None else length
        add = max(length, min(limit, len(self._slot_spans) + _ROW_BLOCK)) - len(self._slot_spans)
        self._slot_spans.extend(repeat(None, add))
        self._slot_requests.extend(repeat(None, add))

    def _keep_wanted(
        self,
        index: int,
        old: FlagEvaluationEvent,
        first_seq: int,
        trace_id: IdKey,
        service: str | None,
        is_root: bool,
    ) -> None:
        """Before the oldest record's slot is taken: ``_ingest`` if its held request is wanted.

        The request outcome held with the oldest evaluation (``old``, at ``first_seq``)
        may explain a later one (exported after its request ended): a stored one
        that wants it, or the one about to take the slot (``trace_id``, ``service``,
        unless ``is_root``). It then goes to a row, kept as long as that one. The
        caller holds the lock.
        """
        key = (TRACE_KEY(old), old.service_name)
        wanted_seq = self.want_requests.get(key)
        if (wanted_seq is not None and wanted_seq > first_seq) or (
            not is_root and key == (trace_id, service)
        ):
            self._ingest()

    def _has_held(self) -> bool:
        """Whether ``record_span`` wrote outcomes since the last ``_ingest`` (lock held)."""
        records = self._records
        return records is not None and records._next_seq > self._held_from

    def _ingest(self) -> None:
        """Write the held outcomes of stored evaluations to rows, oldest first; lock held.

        What ``RecordStore.record_span`` and ``add_request`` would have written at once:
        a row for each held span (found by its request too when it is a local root),
        and one for each held request, kept as long as the evaluation it is held with.
        """
        records = self._records
        if records is None:
            return
        ring = records._ring
        origin = records._origin
        max_size = records._max_size
        first_seq = records._first_seq
        slot_spans = self._slot_spans
        slot_requests = self._slot_requests
        span_keys = self._span_keys
        for seq in range(max(self._held_from, first_seq), records._next_seq):
            index = (seq - origin) % max_size
            span_outcome = slot_spans[index]
            request_outcome = slot_requests[index]
            if span_outcome is None and request_outcome is None:
                continue
            slot_spans[index] = slot_requests[index] = None
            record = ring[index]
            trace_id = TRACE_KEY(record)
            service = record.service_name
            if span_outcome is not None:
                if request_outcome is span_outcome:
                    row = self._row(span_outcome, seq, first_seq, trace_id, service)
                    request_outcome = None
                else:
                    row = self._row(span_outcome, seq, first_seq)
                span_keys[row] = SPAN_KEY(record)
            if request_outcome is not None:
                self._row(request_outcome, seq, first_seq, trace_id, service)
        self._held_from = records._next_seq

    def _grow(self) -> None:
        """Add up to ``_ROW_BLOCK`` rows to every column, while the ring fills."""
        block = min(_ROW_BLOCK, self._size - len(self._seqs))
        self._seqs.extend(repeat(-1, block))
        self._raws.extend(repeat(None, block))
        self._names.extend(repeat("", block))
        self._codes.extend(bytes(block))
        self._descriptions.extend(repeat(None, block))
        self._https.extend(repeat(0, block))
        self._failed.extend(repeat(0, block))
        self._durations.extend(repeat(-1, block))
        self._indexed.extend(bytes(block))
        for column in (self._span_keys, self._trace_keys, self._services):
            column.extend(repeat(None, block))

    def _reuse(self, row: int, first_seq: int) -> int:
        """Return the row to write next, from ``row`` on: its keys forgotten.

        A row an evaluation still stored needs (its ``seq``, or a request wanted
        after it was kept) is passed over, a few at most: past those, the oldest
        row goes even so, since memory stays bounded.
        """
        seqs = self._seqs
        wants = self.want_requests
        size = self._size
        for _ in range(_PASS_OVER):
            if wants:
                trace_id = self._trace_keys[row]
                if trace_id is not None:
                    wanted_seq = wants.get((trace_id, self._services[row]))
                    if wanted_seq is not None and wanted_seq > seqs[row]:
                        seqs[row] = wanted_seq
            if seqs[row] < first_seq:
                break
            # Passed over: it counts as taken again, so it stays within the pending
            # rows' reach if it was not yet indexed.
            self._taken += 1
            row = row + 1 if row + 1 < size else 0
            if row == len(seqs):
                self._grow()
                return row
        if self._indexed[row]:
            self._indexed[row] = 0
            self._forget(row)
        return row

    def _forget(self, row: int) -> None:
        """Remove ``row``'s keys from the tables, where they still find it."""
        span_id = self._span_keys[row]
        spans = self._spans
        if span_id is not None and spans.get(span_id) == row:
            del spans[span_id]
        trace_id = self._trace_keys[row]
        if trace_id is not None:
            service = self._services[row]
            by_trace = self._requests.get(service)
            if by_trace is not None and by_trace.get(trace_id) == row:
                del by_trace[trace_id]
                if not by_trace:
                    del self._requests[service]

    def _want_request(self, trace_id: IdKey, service: str | None, seq: int, first_seq: int) -> None:
        """An evaluation at ``seq`` wants its request's outcome.

        If the request is already kept, ``_index`` (or the row's reuse) finds the
        want and keeps that outcome for this evaluation too.
        """
        key = (trace_id, service)
        root = self._recent_roots.pop(key, None) if self._recent_roots else None
        if root is not None:
            if self._has_held():
                self._ingest()
            self._row(root, seq, first_seq, trace_id, service)
        else:
            self.want_requests[key] = seq

    def _remember_root(self, key: RequestKey, outcome: RawOutcome) -> None:
        """Keep a local root nobody wanted yet among the ``RECENT_ROOTS`` newest."""
        recent = self._recent_roots
        if key not in recent:
            self._recent_order.append(key)
        recent[key] = outcome
        while len(self._recent_order) > RECENT_ROOTS:
            recent.pop(self._recent_order.popleft(), None)

    def _pending_rows(self) -> list[int]:
        """The rows taken since the last ``_index`` and not yet in the tables, oldest first."""
        count = min(self._taken - self._indexed_upto, len(self._seqs))
        if count <= 0:
            return []
        end = self._next_row
        start = end - count
        rows = (
            list(range(start, end))
            if start >= 0
            else [*range(start + len(self._seqs), len(self._seqs)), *range(end)]
        )
        indexed = self._indexed
        return list(filterfalse(indexed.__getitem__, rows))

    def _index(self) -> None:
        """Enter the pending rows in the tables, then settle the requests still wanted.

        The caller holds the lock. In C-level passes; a later row takes a key from an
        earlier one, as a write straight into the table would.
        """
        if self._has_held():
            self._ingest()
        if self._taken != self._indexed_upto:
            self._enter_pending()
        wants = self.want_requests
        if wants:
            # A request wanted after it was kept (an evaluation exported after its
            # request ended): the outcome now explains that evaluation too.
            requests = self._requests
            seqs = self._seqs
            for key in [key for key in wants if key[0] in requests.get(key[1], ())]:
                row = requests[key[1]][key[0]]
                wanted_seq = wants.pop(key)
                if seqs[row] < wanted_seq:
                    seqs[row] = wanted_seq

    def _enter_pending(self) -> None:
        """Put the pending rows' keys in the tables, oldest first."""
        pending = self._pending_rows()
        self._indexed_upto = self._taken
        if not pending:
            return
        self._unpack(pending)
        deque(map(self._indexed.__setitem__, pending, repeat(1)), maxlen=0)
        # Failed: status error (2), or an HTTP status of 500 or more.
        failed = map(
            or_,
            map(eq, map(self._codes.__getitem__, pending), repeat(2)),
            map(ge, map(self._https.__getitem__, pending), repeat(500)),
        )
        deque(map(self._failed.__setitem__, pending, map(int, failed)), maxlen=0)
        # The keys of rows that have one: ``None`` keys are left out by the masks.
        span_keys = cast("list[IdKey]", list(map(self._span_keys.__getitem__, pending)))
        self._spans.update(
            compress(zip(span_keys, pending, strict=True), map(is_not, span_keys, repeat(None)))
        )
        all_trace_keys = list(map(self._trace_keys.__getitem__, pending))
        if all_trace_keys.count(None) == len(all_trace_keys):
            return
        has_trace = list(map(is_not, all_trace_keys, repeat(None)))
        rows = list(compress(pending, has_trace))
        trace_keys = cast("list[IdKey]", list(compress(all_trace_keys, has_trace)))
        services = list(map(self._services.__getitem__, rows))
        requests = self._requests
        if services.count(services[0]) == len(services):
            by_trace = requests.get(services[0])
            if by_trace is None:
                by_trace = requests[services[0]] = {}
            by_trace.update(zip(trace_keys, rows, strict=True))
            return
        for service in dict.fromkeys(services):
            by_trace = requests.get(service)
            if by_trace is None:
                by_trace = requests[service] = {}
            mine = list(map(eq, services, repeat(service)))
            by_trace.update(zip(compress(trace_keys, mine), compress(rows, mine), strict=True))

    def _unpack(self, rows: list[int]) -> None:
        """Copy the written outcomes of ``rows`` into the columns, in C-level passes."""
        raws = self._raws
        outcomes = list(map(raws.__getitem__, rows))
        if None in outcomes:
            # Only a row taken and not (yet) written: nothing to copy for it.
            written = list(map(is_not, outcomes, repeat(None)))
            rows = list(compress(rows, written))
            outcomes = list(compress(outcomes, written))
            if not rows:
                return
        # No None is left among them.
        names, codes, descriptions, durations, https = _fields(cast("list[RawOutcome]", outcomes))
        deque(map(self._codes.__setitem__, rows, codes), maxlen=0)
        deque(map(self._names.__setitem__, rows, names), maxlen=0)
        deque(map(self._descriptions.__setitem__, rows, descriptions), maxlen=0)
        deque(map(self._durations.__setitem__, rows, durations), maxlen=0)
        deque(map(self._https.__setitem__, rows, https), maxlen=0)
        # The tuples go: the columns hold what they held.
        deque(map(raws.__setitem__, rows, repeat(None)), maxlen=0)

    def _write_columns(self, start: int, stop: int, outcomes: Sequence[RawOutcome]) -> None:
        """Write ``outcomes`` into the columns of rows ``start`` to ``stop``, a slice each.

        The rows' kept tuples go, so ``_unpack`` never copies an older one over these.
        """
        names, code_bytes, descriptions, durations, https = _fields(outcomes)
        self._codes[start:stop] = code_bytes
        self._names[start:stop] = names
        self._descriptions[start:stop] = descriptions
        self._durations[start:stop] = durations
        self._https[start:stop] = https
        self._raws[start:stop] = repeat(None, stop - start)

    def _count_written(self, count: int, first_seq: int) -> None:
        """Count spans written towards the next ``_trim``, trimming when it is due.

        A trim is due every ``capacity // 2 + 1`` items counted here, or once the
        collector has taken a ring of seqs since the last one, whoever wrote them.
        ``RecordStore.record_span`` counts nothing: it trims once a ring of seqs, so
        the exporter's per-span path reads no counter.
        """
        written = self._since_trim + count
        records = self._records
        if written < self._trim_every and (
            records is None or records._next_seq - records._trimmed_at < records._max_size
        ):
            self._since_trim = written
        else:
            self._trim(first_seq)
            self._since_trim = 0

    def _trim(self, first_seq: int) -> None:
        """Drop what only evicted evaluations wanted, and the oldest wants past capacity."""
        _trim_wants(self.want_spans, first_seq, self._capacity)
        _trim_wants(self.want_requests, first_seq, self._capacity)
        if self._records is not None:
            self._records._trimmed_at = self._records._next_seq

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
        self._recent_order.clear()
        del self._slot_spans[:]
        del self._slot_requests[:]
        self._held_from = self._records._next_seq if self._records is not None else 0
        self._next_row = 0
        self._taken = 0
        self._indexed_upto = 0
        for column in (
            self._seqs,
            self._raws,
            self._names,
            self._codes,
            self._descriptions,
            self._https,
            self._failed,
            self._durations,
            self._span_keys,
            self._trace_keys,
            self._services,
            self._indexed,
        ):
            del column[:]

    def _outcome_at(self, row: int) -> SpanOutcome:
        return outcome_of(
            (
                self._names[row],
                self._codes[row],
                self._descriptions[row],
                self._durations[row],
                self._https[row],
            )
        )

    def span_outcomes(self, span_ids: Iterable[IdKey | None]) -> dict[IdKey, SpanOutcome]:
        """Return the known outcomes of these spans, by span id as given.

        A span id may be hex text (``event.span_id``) or its stored form (an int).
        """
        found: dict[IdKey, SpanOutcome] = {}
        with self._lock:
            self._index()
            for span_id in set(span_ids):
                if span_id is None:
                    continue
                row = self._span_row(span_id)
                if row is not None:
                    found[span_id] = self._outcome_at(row)
        return found

    def _span_row(self, span_id: IdKey) -> int | None:
        spans = self._spans
        row = spans.get(stored_id(span_id, 16)) if type(span_id) is str else None
        return spans.get(span_id) if row is None else row

    def request_outcomes(self, keys: Iterable[RequestKey]) -> dict[RequestKey, SpanOutcome]:
        """Return the known outcomes of these requests, by ``(trace_id, service)`` as given.

        A trace id may be hex text (``event.trace_id``) or its stored form (an int).
        """
        found: dict[RequestKey, SpanOutcome] = {}
        with self._lock:
            self._index()
            for key in set(keys):
                trace_id, service = key
                by_trace = self._requests.get(service)
                if by_trace is None:
                    continue
                row = by_trace.get(stored_id(trace_id, 32)) if type(trace_id) is str else None
                if row is None:
                    row = by_trace.get(trace_id)
                if row is not None:
                    found[key] = self._outcome_at(row)
        return found

    def figures(
        self,
        scope: Literal["span", "request"],
        events: Sequence[FlagEvaluationEvent],
        unnamed_label: Callable[[FlagEvaluationEvent], str],
    ) -> dict[str, LabelFigures]:
        """Per label, its evaluations and what their distinct spans or requests did.

        The query layer's bulk read (``impact``): the join of the evaluations to
        their outcomes, no object per outcome. Each evaluation is explained by its
        request, the trace's local root in its service (scope ``"request"``), or
        by the span it was made in (scope ``"span"``: for an evaluation made as
        its own span, its parent). It is labelled by its variant, or when it was
        sent without one by ``unnamed_label(event)``.
        """
        with self._lock:
            return self.figures_locked(scope, events, unnamed_label)

    def figures_locked(
        self,
        scope: Literal["span", "request"],
        events: Sequence[FlagEvaluationEvent],
        unnamed_label: Callable[[FlagEvaluationEvent], str],
    ) -> dict[str, LabelFigures]:
        """``figures``, the caller holding the lock (``RecordStore.flag_figures``).

        ``events`` may be the store's own sequence of a flag's records, read in
        place under the lock rather than copied.
        """
        self._index()
        groups: _Groups = {}
        if scope == "request":
            self._group_requests(groups, events)
        else:
            self._group(groups, scope, events, None)
        if any(
            None in by_label for _, by_reason in groups.values() for by_label in by_reason.values()
        ):
            # Evaluations sent without a variant: grouped again, by their label.
            for _, by_reason in groups.values():
                for by_label in by_reason.values():
                    by_label.pop(None, None)
            unnamed = [event for event in events if event.variant is None]
            self._group(groups, scope, unnamed, [unnamed_label(event) for event in unnamed])
        found: dict[str, tuple[list[int], dict[Any, int], set[int | None]]] = {}
        for _, by_reason in groups.values():
            for reason, by_label in by_reason.items():
                for label, rows in by_label.items():
                    entry = found.get(label)  # type: ignore[arg-type]
                    if entry is None:
                        entry = found[label] = ([0], {}, set())  # type: ignore[index]
                    entry[0][0] += len(rows)
                    entry[1][reason] = entry[1].get(reason, 0) + len(rows)
                    # A set: a request (or span) counts once per label, however
                    # often it evaluated the flag.
                    entry[2].update(rows)
        failed = self._failed_rows(sum(len(rows) for _, _, rows in found.values()))
        return {
            label: LabelFigures(evaluations[0], reasons, *self._rows_figures(rows, failed))
            for label, (evaluations, reasons, rows) in found.items()
        }

    def _group_requests(self, groups: _Groups, events: Sequence[FlagEvaluationEvent]) -> None:
        """Add each evaluation's request row, by service, reason and variant; lock held.

        One loop that reads each record once and looks its request up at once:
        the records, their trace ids and the table's slots are cache misses each,
        paid once, where a pass per field and a lookup pass after pay them again
        (it halves the join's time). Ids are read in their stored form, as the
        tables key them. While the evaluations share the first one's service and
        reason (the same objects, as records share them), an identity check
        stands for two levels of grouping.
        """
        if not events:
            return
        service = events[0].service_name
        reason = events[0].reason
        find: Callable[[Any], int | None] = self._requests.get(service, {}).get
        by_variant: dict[str | None, list[int | None]] = {}
        for event in events:
            if event.service_name is not service or event.reason is not reason:
                break
            try:
                by_variant[event.variant].append(find(event._stored_trace_id))  # type: ignore[attr-defined]
            except KeyError:
                by_variant[event.variant] = [find(event._stored_trace_id)]  # type: ignore[attr-defined]
        groups[service] = (find, {reason: by_variant})
        for event in islice(events, sum(map(len, by_variant.values())), None):
            try:
                find, by_reason = groups[event.service_name]
                by_reason[event.reason][event.variant].append(find(event._stored_trace_id))  # type: ignore[attr-defined]
            except KeyError:
                rows = self._rows_of(
                    groups, "request", event.service_name, event.reason, event.variant
                )
                rows.append(groups[event.service_name][0](event._stored_trace_id))  # type: ignore[attr-defined]

    def _group(
        self,
        groups: _Groups,
        scope: Literal["span", "request"],
        events: Sequence[FlagEvaluationEvent],
        labels: Sequence[str] | None,
    ) -> None:
        """``_group_requests`` for either scope, labelled by ``labels`` when given."""
        for index, event in enumerate(events):
            if scope == "request":
                service, key = event.service_name, event._stored_trace_id  # type: ignore[attr-defined]
            else:
                # An evaluation made as its own span (the JS SpanHook; only those carry
                # a duration) is explained by the span it was made in, its parent.
                service, key = None, event._stored_span_id  # type: ignore[attr-defined]
                parent = event._stored_parent_span_id  # type: ignore[attr-defined]
                if event.evaluation_duration_ms is not None and parent:
                    key = parent
            label = event.variant if labels is None else labels[index]
            rows = self._rows_of(groups, scope, service, event.reason, label)
            rows.append(groups[service][0](key))

    def _rows_of(
        self,
        groups: _Groups,
        scope: Literal["span", "request"],
        service: str | None,
        reason: Any,
        label: str | None,
    ) -> list[int | None]:
        """The rows found for a service, reason and label: made (empty) if new."""
        entry = groups.get(service)
        if entry is None:
            table = self._spans if scope == "span" else self._requests.get(service, {})
            entry = groups[service] = (table.get, {})
        return entry[1].setdefault(reason, {}).setdefault(label, [])

    def _rows_figures(
        self, rows: set[int | None], failed: set[int] | None
    ) -> tuple[int, int, Sequence[int]]:
        """How many ``rows`` are known, how many failed, their durations; lock held."""
        rows.discard(None)
        if len(rows) < 2:
            picked = [row for row in rows if row is not None]
            durations: Sequence[int] = [self._durations[row] for row in picked]
            return (len(picked), sum(self._failed[row] for row in picked), durations)
        # One getter over the rows reads a column in a single C call.
        pick = itemgetter(*rows)
        errors = len(rows & failed) if failed is not None else sum(pick(self._failed))
        return (len(rows), errors, pick(self._durations))

    def _failed_rows(self, rows: int) -> set[int] | None:
        """The failed rows, when finding them costs less than reading ``rows`` rows' flags.

        Failures are usually few: one C-level scan of the column finds them all, and
        a set intersection then counts each label's, where reading each row's flag
        costs a C call per row.
        """
        column = self._failed
        if len(column) > 4 * rows:
            return None
        flags = bytes(column)
        if 16 * flags.count(1) > rows:
            return None
        failed = set()
        at = flags.find(1)
        while at != -1:
            failed.add(at)
            at = flags.find(1, at + 1)
        return failed

    def __repr__(self) -> str:
        with self._lock:
            self._index()
            spans = len(self._spans)
            requests = self._indexed_entries() - spans
            waiting = len(self.want_spans) + len(self.want_requests)
        return f"OutcomeStore(spans={spans}, requests={requests}, waiting={waiting})"


def _fields(
    outcomes: Sequence[RawOutcome],
) -> tuple[tuple[str, ...], bytes, tuple[str | None, ...], tuple[int, ...], tuple[int, ...]]:
    """The outcomes' names, status codes (as bytes), descriptions, durations and HTTP statuses.

    Unpacked in C-level passes; an outcome the columns cannot hold (a way in's bug)
    has all of them read as ``raw_outcome`` would, so a reader never fails.
    """
    try:
        names, codes, descriptions, durations, https = zip(*outcomes, strict=True)
        if durations and (min(durations) < -1 or max(durations) >= TIME_LIMIT):
            raise ValueError("a duration out of range")  # read as raw_outcome would
        return names, bytes(codes), descriptions, durations, https
    except (TypeError, ValueError):
        names, codes, descriptions, durations, https = zip(*map(_checked, outcomes), strict=True)
        return names, bytes(codes), descriptions, durations, https


def _checked(outcome: Any) -> RawOutcome:
    """``outcome`` if the columns can hold it, else ``raw_outcome``'s reading of its fields."""
    try:
        name, code, description, duration, http = outcome
    except (TypeError, ValueError):
        return NO_OUTCOME
    if (
        type(code) is int
        and 0 <= code <= 2
        and type(duration) is int
        and -1 <= duration < TIME_LIMIT
        and type(http) is int
        and isinstance(name, str)
    ):
        return (name, code, description, duration, http)
    return (
        name if isinstance(name, str) else "",
        code if type(code) is int and 0 <= code <= 2 else 0,
        description if isinstance(description, str) else None,
        duration if type(duration) is int and -1 <= duration < TIME_LIMIT else -1,
        http_status(http) or 0,
    )


def _trim_wants(wants: dict[Any, int], first_seq: int, capacity: int) -> None:
    """Drop what only evicted evaluations wanted, then the oldest past ``capacity``."""
    if wants and min(wants.values()) < first_seq:
        old = list(compress(wants, map(lt, wants.values(), repeat(first_seq))))
        deque(map(wants.pop, old), maxlen=0)
    if len(wants) > capacity:
        # Past capacity (a store not fed by a collector's evictions): the oldest go.
        oldest = sorted(wants, key=wants.__getitem__)[: len(wants) - capacity]
        deque(map(wants.pop, oldest), maxlen=0)


class LabelFigures(NamedTuple):
    """What the evaluations with one label did (``OutcomeStore.figures``).

    Attributes:
        evaluations: How many evaluations have the label.
        reasons: Of those, how many by reason.
        requests: The distinct spans or requests they were made in whose outcome
            is known.
        errors: How many of those failed.
        durations: Their durations (ns), unsorted: -1 for each whose times are not
            known.
    """

    evaluations: int
    reasons: dict[Any, int]
    requests: int
    errors: int
    durations: Sequence[int]


# ``figures``' groups: per service, the table lookup that finds a row and, per reason
# and then label, the rows found (None: no known outcome).
_Groups = dict[
    str | None,
    tuple[Callable[[Any], int | None], dict[Any, dict[str | None, list[int | None]]]],
]
