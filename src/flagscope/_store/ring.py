"""The store: bounded, thread-safe storage for flag evaluation records.

A ring of records in recording order plus, per flag key, that flag's records in
a deque evicted from the left in step with the ring; eviction by count and by an
estimated byte budget; change notification (``subscribe``); and store hooks,
the observers through which the query layer keeps its rollups current. Nothing
here imports the query layer.
"""

from __future__ import annotations

import logging
import sys
import threading
from array import array
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import count
from operator import attrgetter
from types import MappingProxyType
from typing import Any, Final, Literal, NoReturn, Protocol, runtime_checkable

from flagscope._store.outcomes import LabelFigures, OutcomeItem, OutcomeStore, RawOutcome
from flagscope._store.records import (
    EMPTY_MAPPING,
    SPAN_KEY,
    TRACE_KEY,
    EvaluationReason,
    FlagEvaluationEvent,
    _get_value_slot,
    build_event,
)
from flagscope._validate import check_int, check_optional_int

__all__ = ["AnalyticsCollector", "Done", "RecordStore", "StoreHook", "estimate_size"]

_logger = logging.getLogger("flagscope")

# What ``estimate_size`` counts for a record before its variable parts: the slotted
# record, its timestamp and ids, the ring slot, the per-flag index slot and the size
# entry. Measured with tracemalloc at about 330 bytes for a TracingHook record.
_RECORD_BYTES: Final = 384
_SCALAR_BYTES: Final = 32
_ITEM_BYTES: Final = 72  # a dict or tuple entry: its slot, hash and share of the table
_CONTAINER_BYTES: Final = 64
_MAX_DEPTH: Final = 32
_CONTAINERS: Final = (dict, list, tuple, MappingProxyType)
_getsizeof: Final = sys.getsizeof
# What sys.getsizeof gives for a str of ASCII characters, less its length: the same
# for every such str (compact ASCII), checked at import.
_ASCII_TEXT_BYTES: Final = _getsizeof("")
if _getsizeof("x" * 100) != _ASCII_TEXT_BYTES + 100:  # pragma: no cover - a layout guard
    raise RuntimeError("sys.getsizeof of ASCII text is not a fixed size plus its length")
_flag_key: Final = attrgetter("flag_key")
# What estimate_size counts for a record by its value's type, when its value needs no
# walk: the fixed share plus the value's (booleans and None are in the fixed share).
_FIXED_VALUES: Final = {
    bool: _RECORD_BYTES,
    type(None): _RECORD_BYTES,
    int: _RECORD_BYTES + _SCALAR_BYTES,
    float: _RECORD_BYTES + _SCALAR_BYTES,
}
# The value's stored form, read from its slot: ``models.raw_value`` without its call.
_stored_value_of: Final = _get_value_slot

# Fills the slot of a record evicted before the ring wrapped onto it, so its memory
# goes at once (byte-budget evictions run ahead of the ring).
_HOLE: Final = build_event(
    timestamp=datetime(1970, 1, 1, tzinfo=UTC),
    flag_key="",
    value=None,
    reason=EvaluationReason.UNKNOWN,
)


def _value_size(value: Any, depth: int) -> int:
    kind = type(value)
    if kind is str or kind is bytes:
        return _getsizeof(value)
    if kind not in _CONTAINERS:
        if isinstance(value, (str, bytes)):
            return _getsizeof(value)
        if isinstance(value, (dict, list, tuple, MappingProxyType)):
            return _container_size(value, depth)
        return _SCALAR_BYTES
    return _container_size(value, depth)


def _container_size(value: Any, depth: int) -> int:
    if depth >= _MAX_DEPTH:
        return _CONTAINER_BYTES
    size = _CONTAINER_BYTES
    if isinstance(value, (dict, MappingProxyType)):
        for key, item in value.items():
            size += _ITEM_BYTES + _value_size(key, depth + 1) + _value_size(item, depth + 1)
    else:
        for item in value:
            size += 8 + _value_size(item, depth + 1)
    return size


def estimate_size(event: FlagEvaluationEvent) -> int:
    """Estimate the bytes a stored record holds, cheaply; what ``max_bytes`` counts.

    A fixed share for the record itself plus the sizes of its variable parts (the
    value, the targeting key, the error message, the attributes), walked to a
    bounded depth. Strings count as ``sys.getsizeof`` gives them, so text in wide
    characters counts for what it takes. Interned strings shared by many records
    (flag keys, variants, providers) are in the fixed share.
    """
    # The stored form: a container value is kept as its JSON text (reading
    # ``event.value`` would decode a copy), and the text is what it holds.
    value = _stored_value_of(event, FlagEvaluationEvent)
    text = event.targeting_key
    if (
        event.attributes is EMPTY_MAPPING
        and event.context_attributes is EMPTY_MAPPING
        and event.error_message is None
        and type(value) in _FIXED_VALUES
    ):
        # The common record, what the mapper makes from a TracingHook event: the fixed
        # share, the value's and the targeting key's; the same sum as below.
        return _FIXED_VALUES[type(value)] + (_getsizeof(text) if text is not None else 0)
    size = _RECORD_BYTES
    if value is not None and value is not True and value is not False:
        size += _value_size(value, 0)
    if text is not None:
        size += _getsizeof(text)
    text = event.error_message
    if text is not None:
        size += _getsizeof(text)
    mapping = event.attributes
    if mapping is not EMPTY_MAPPING and mapping:
        size += _container_size(mapping, 0)
    mapping = event.context_attributes
    if mapping is not EMPTY_MAPPING and mapping:
        size += _container_size(mapping, 0)
    return size


# ``await`` calls ``__await__`` on every write the seed API awaits. An exhausted
# iterator's own ``__iter__`` as that type attribute (C, called with no arguments, since it
# is not a descriptor) finishes the ``await`` at once without a Python frame or a new
# generator.
_EXHAUSTED: Final = iter(())


class Done(Coroutine[Any, Any, None]):
    """An awaitable that has already finished: what the seed's write methods return.

    ``record``, ``record_batch``, ``clear``, ``flush`` and ``close`` act when called,
    from sync or async code alike; ``await`` on their result returns ``None`` at
    once. It is a ``collections.abc.Coroutine`` (``asyncio.iscoroutine`` is true,
    so ``asyncio.run`` and ``create_task`` take it), and never warns that it was
    not awaited: there is nothing left to run.
    """

    __slots__ = ()

    __await__ = _EXHAUSTED.__iter__  # type: ignore[assignment]

    def send(self, value: Any, /) -> NoReturn:
        """Finish at once, as a coroutine with nothing left to run does."""
        raise StopIteration

    def throw(self, typ: Any, val: Any = None, tb: Any = None, /) -> NoReturn:
        """Raise what is thrown in: there is no frame left to catch it."""
        if val is None:
            raise typ
        raise val.with_traceback(tb) if tb is not None else val

    def close(self) -> None:
        """Nothing to close."""

    def __repr__(self) -> str:
        return "<flagscope._store.ring.Done>"


_DONE: Final = Done()


@runtime_checkable
class AnalyticsCollector(Protocol):
    """What litestar-flags' analytics collectors offer: async record, flush, close."""

    async def record(self, event: FlagEvaluationEvent) -> None:
        """Store one evaluation."""
        ...

    async def flush(self) -> None:
        """Push out anything buffered."""
        ...

    async def close(self) -> None:
        """Release resources."""
        ...


class StoreHook(Protocol):
    """An observer of what a ``RecordStore`` holds (``RecordStore.add_hook``).

    Both methods are called under the store's lock, after the store changed and
    before any other change, on the thread that made it: they must be quick, and
    must not call back into the store. An exception is logged and the hook is
    detached, so the store stays consistent.
    """

    def records_changed(
        self, added: Sequence[FlagEvaluationEvent], evicted: Sequence[FlagEvaluationEvent]
    ) -> None:
        """Hear of records stored, then of records evicted, each oldest first.

        Records are evicted oldest first, so ``evicted`` holds records stored
        before (or just before, in ``added``), in the order they were stored.
        Both are the hook's to keep: the store makes them for this call only.
        """
        ...

    def records_cleared(self) -> None:
        """Hear that every stored record was dropped (``clear``, ``close``)."""
        ...


def _check_max_size(max_size: object) -> int:
    return check_int("max_size", max_size, minimum=1)


def _check_max_bytes(max_bytes: object) -> int | None:
    return check_optional_int("max_bytes", max_bytes, minimum=1)


class RecordStore:
    """Keeps the newest evaluations in memory, within a count and a byte budget.

    A synchronous core that the exporters call from any thread, with the seed's
    API on top (``await record``, ``await get_events`` ...). Recording is O(1)
    whatever ``max_size`` is: a ring of records plus, per flag key, that flag's
    records in a deque, so reading one flag copies that deque and nothing else.

    When either bound is reached the oldest records are dropped first, and counted
    in ``evicted_count``: ``max_size`` caps the number of records, ``max_bytes``
    what they hold as ``estimate_size`` counts it (so a few huge records cannot
    take the memory of millions of small ones). The newest record is always kept.

    Names: plain methods are synchronous; ``events_async`` and ``count_async`` are
    coroutines. The seed's write methods (``record``, ``record_batch``, ``clear``,
    ``flush``, ``close``) act when called and return a finished awaitable
    (``Done``), so ``await collector.clear()`` and a plain ``collector.clear()``
    both clear.

    Args:
        max_size: How many records to keep; a positive int.
        max_bytes: The most bytes the stored records may hold, as
            ``estimate_size`` estimates them; ``None`` (the default) bounds the
            store by ``max_size`` only.

    Raises:
        TypeError: ``max_size`` is not an int, or ``max_bytes`` not an int or None.
        ValueError: ``max_size`` or ``max_bytes`` is below 1.
    """

    def __init__(self, max_size: int = 10000, *, max_bytes: int | None = None) -> None:
        self._max_size = _check_max_size(max_size)
        self._max_bytes = _check_max_bytes(max_bytes)
        self._lock = threading.Lock()
        # Record with sequence number ``seq`` sits at ``(seq - _origin) % max_size``;
        # the live ones are ``_first_seq`` to ``_next_seq - 1``. ``_sizes`` holds each
        # slot's ``estimate_size`` (only under a byte budget).
        self._ring: list[FlagEvaluationEvent] = []
        self._sizes = array("q")
        self._bytes = 0
        self._origin = 0
        self._first_seq = 0
        self._next_seq = 0
        # Each flag's records, oldest first: a flag's oldest record is always the first
        # of its lane to be evicted, so the lane pops from the left in step with the ring.
        self._by_flag: dict[str, deque[FlagEvaluationEvent]] = {}
        self._evicted = 0
        self._listeners: list[Callable[[], None]] = []
        self._hooks: tuple[StoreHook, ...] = ()
        # Sizes are kept only under a byte budget, evicted records collected only for
        # hooks: with neither, ``_store`` takes the lean path the exporters use.
        self._lean = self._max_bytes is None
        # ``_next_seq`` at the last trim of the wanted tables (``OutcomeStore._trim``).
        self._trimmed_at = 0
        # What happened to the spans and requests the evaluations were made in, kept
        # beside them, their rows reused once those evaluations are evicted.
        self._outcomes = OutcomeStore(self._max_size, lock=self._lock, records=self)

    # -- configuration and counters -------------------------------------------------

    @property
    def max_size(self) -> int:
        """How many records the store keeps."""
        return self._max_size

    @property
    def max_bytes(self) -> int | None:
        """The byte budget of the stored records (``None``: bounded by count only)."""
        return self._max_bytes

    @property
    def stored_bytes(self) -> int:
        """What the stored records hold, as ``estimate_size`` estimates it.

        Estimated only under a byte budget (``max_bytes`` set); 0 otherwise.
        """
        return self._bytes

    @property
    def evicted_count(self) -> int:
        """How many records were dropped to make room, since creation."""
        return self._evicted

    @property
    def total_recorded(self) -> int:
        """How many records were ever recorded (stored or since evicted)."""
        return self._next_seq

    def __len__(self) -> int:
        return self._next_seq - self._first_seq

    # -- outcomes -------------------------------------------------------------------

    @property
    def outcomes(self) -> OutcomeStore:
        """The outcomes of the spans and requests the stored evaluations were made in."""
        return self._outcomes

    def flag_figures(
        self,
        flag_key: str,
        scope: Literal["span", "request"],
        unnamed_label: Callable[[FlagEvaluationEvent], str],
    ) -> dict[str, LabelFigures]:
        """``OutcomeStore.figures`` over every stored record of one flag.

        The flag's records are read in place under the lock: a copy of them, made
        and dropped, would touch every record twice more than the join does.
        """
        with self._lock:
            lane = self._by_flag.get(flag_key)
            return self._outcomes.figures_locked(scope, lane or (), unnamed_label)

    def record_outcomes(self, items: Sequence[OutcomeItem]) -> None:
        """Store spans' outcomes beside the evaluations just recorded (``OutcomeStore.add``).

        Call it after ``record_batch`` with the same batch's spans: their
        evaluations are the newest records, and the outcomes go when they do.
        """
        with self._lock:
            self._outcomes.add_locked(items, self._next_seq - 1, self._first_seq)

    def record_with_outcomes(
        self, events: list[FlagEvaluationEvent], items: Sequence[OutcomeItem]
    ) -> int:
        """Store records and the outcomes of their spans under one hold of the lock.

        What the exporters call: ``record_batch`` then ``record_outcomes``, for one
        lock and one call less per span. Returns how many records were stored.
        """
        if type(self).record_batch is not _RECORD_BATCH:
            # A subclass's record_batch has the say over records (and may refuse them).
            if events:
                self.record_batch(events)
            self.record_outcomes(items)
            return len(events)
        try:
            with self._lock:
                span_seqs = None
                if events:
                    self._store(events)
                    if len(events) > 1 and items:
                        # Records go oldest first, one batch's too. Each span's outcome
                        # stays as long as its own newest record, not the batch's
                        # newest: else the rows of a batch's older records would
                        # outlive them and take the ring's room from rows still needed.
                        span_seqs = dict(
                            zip(map(SPAN_KEY, events), count(self._next_seq - len(events)))
                        )
                self._outcomes.add_locked(items, self._next_seq - 1, self._first_seq, span_seqs)
        finally:
            if events and self._listeners:
                self._notify()
        return len(events)

    @property
    def record_request(self) -> Callable[[Any, str | None, RawOutcome], None]:
        """Keep the outcome of a request's local root that ended with no evaluation of its own.

        ``record_request(trace_id, service, outcome)``, the span exporter's entry for
        every local root while evaluations wait for requests, is the outcome store's
        ``add_request``: it takes the lock itself, so the exporter's call is the only
        one. The root is kept if its own are among them, else remembered among the
        recent roots (and counted towards the wanted tables' trim, as
        ``record_outcomes`` counts it).
        """
        return self._outcomes.add_request

    def record_span(
        self,
        event: FlagEvaluationEvent,
        trace_id: Any,
        span_id: Any,
        service: str | None,
        is_root: bool,
        outcome: RawOutcome,
    ) -> None:
        """Store one span's one record and the span's outcome, under one hold of the lock.

        ``trace_id``, ``span_id`` and ``service`` are the record's own: its ids in their
        stored form (``TRACE_KEY``, ``SPAN_KEY``), what the outcome tables are keyed by,
        and its ``service_name``. The wants use them at once; a held outcome is keyed
        later by the record's, so other values would file it under the record's.

        ``record_with_outcomes`` for the span exporter's usual call (a
        ``SimpleSpanProcessor`` exports each span on its own): the span holds the
        record's evaluation, so no item tuple or lists are built for it, and the
        outcome is held in the record's slot until read (``OutcomeStore._ingest``).
        """
        if type(self).record_batch is not _RECORD_BATCH or not self._lean:
            # A subclass's record_batch has the say; hooks and byte budgets take the
            # general path.
            self.record_with_outcomes(
                [event], [(trace_id, span_id, service, None, is_root, 1, outcome)]
            )
            return
        # The lock taken with ``acquire``/``release``, not ``with``: ``with`` looks up and
        # binds ``__enter__`` and ``__exit__`` and calls the latter with three Nones, about
        # 2k instructions on 3.11 against 1k, on a path taken once per exported span.
        lock = self._lock
        try:
            lock.acquire()
            try:
                # ``_store``'s lean path for one record.
                key = event.flag_key
                by_flag = self._by_flag
                lane = by_flag.get(key)
                seq = self._next_seq
                first = self._first_seq
                max_size = self._max_size
                index = (seq - self._origin) % max_size
                ring = self._ring
                if seq - first >= max_size:
                    old = ring[index]
                    outcomes = self._outcomes
                    if (
                        index < len(outcomes._slot_requests)
                        and outcomes._slot_requests[index] is not None
                        and (outcomes.want_requests or (not is_root and TRACE_KEY(old) == trace_id))
                    ):
                        # The request outcome held in the slot may explain a later
                        # evaluation (this one, too): to a row before the slot is taken.
                        outcomes._keep_wanted(index, old, first, trace_id, service, is_root)
                    old_key = old.flag_key
                    old_lane = by_flag[old_key]
                    old_lane.popleft()
                    if not old_lane and old_lane is not lane:
                        del by_flag[old_key]
                    first += 1
                    self._first_seq = first
                    self._evicted += 1
                    ring[index] = event
                elif index == len(ring):
                    ring.append(event)
                else:
                    ring[index] = event
                if lane is None:
                    by_flag[key] = deque((event,))
                else:
                    lane.append(event)
                self._next_seq = seq + 1
                # The outcome is held in the record's own slot (``OutcomeStore._ingest``
                # writes it to a row when someone reads, or before a later write of
                # another kind): no row's seq, ids and service to write and, a ring
                # later, to free, which cost about 1 µs a span in cache misses between an
                # application's own work. Keep it in step with ``OutcomeStore._ingest``.
                outcomes = self._outcomes
                slot_spans = outcomes._slot_spans
                if index >= len(slot_spans):
                    outcomes._grow_slots(index + 1)
                slot_spans[index] = outcome
                if span_id is not None and outcomes.want_spans:
                    outcomes.want_spans.pop(span_id, None)
                if is_root:
                    # The span is its own request: the same outcome, in the request slot.
                    outcomes._slot_requests[index] = outcome
                    want_requests = outcomes.want_requests
                    if want_requests:
                        want_requests.pop((trace_id, service), None)
                else:
                    outcomes._slot_requests[index] = None
                    if outcomes._recent_roots:
                        outcomes._want_request(trace_id, service, seq, first)
                    else:
                        outcomes.want_requests[(trace_id, service)] = seq
                if seq - self._trimmed_at >= max_size:
                    # A ring of seqs since the last trim, whoever wrote them: what only
                    # evicted evaluations wanted goes (``OutcomeStore._count_written``
                    # checks the same for the other ways in).
                    outcomes._trim(first)
            finally:
                lock.release()
        finally:
            if self._listeners:
                self._notify()

    # -- writing ----------------------------------------------------------------------

    def record(self, event: FlagEvaluationEvent) -> Done:
        """Store one record now; safe from any thread, never touches an event loop.

        Returns a finished awaitable, so the seed's ``await collector.record(e)``
        works as well as a plain call.
        """
        with self._lock:
            self._store((event,))
        if self._listeners:
            self._notify()
        return _DONE

    def record_batch(self, events: Iterable[FlagEvaluationEvent]) -> Done:
        """Store several records now, under one hold of the lock.

        Returns a finished awaitable (see ``record``). An item that is no record
        raises; the records before it are stored, those after it are not.
        """
        batch = events if isinstance(events, list) else list(events)
        if not batch:
            return _DONE
        try:
            with self._lock:
                self._store(batch)
        finally:
            # Waiters hear of what was stored even when a bad item stopped the batch.
            if self._listeners:
                self._notify()
        return _DONE

    def clear(self) -> Done:
        """Drop every stored record now; counters and sequence numbers go on.

        Returns a finished awaitable (see ``record``).
        """
        with self._lock:
            self._ring = []
            self._sizes = array("q")
            self._bytes = 0
            self._by_flag = {}
            self._origin = self._first_seq = self._next_seq
            self._outcomes.clear_locked()
            for hook in self._hooks:
                try:
                    hook.records_cleared()
                except Exception:
                    _logger.debug("flagscope: detached a store hook", exc_info=True)
                    self._remove_hook(hook)
        if self._listeners:
            self._notify()
        return _DONE

    def flush(self) -> Done:
        """Nothing to flush: records are stored as they arrive. A finished awaitable."""
        return _DONE

    def close(self) -> Done:
        """Release the stored records (``clear``; the store stays usable)."""
        return self.clear()

    def _store(self, batch: Iterable[FlagEvaluationEvent]) -> None:
        """Append records, dropping the oldest past either bound; the caller holds the lock.

        Each record is stored completely or not at all: a bad item (an unhashable
        flag key, no record) raises before anything changes, and the counters say
        exactly what was stored.
        """
        outcomes = self._outcomes
        if self._next_seq > outcomes._held_from:
            # Outcomes held in the slots about to be taken go to rows first.
            outcomes._ingest()
        if not self._lean:
            try:
                self._store_watched(batch)
            finally:
                outcomes._held_from = self._next_seq
            return
        # The exporters' path: bounded by count only, nobody watching. Once full, the
        # oldest record's slot is the new record's.
        ring = self._ring
        by_flag = self._by_flag
        max_size = self._max_size
        origin = self._origin
        seq = self._next_seq
        first = self._first_seq
        evicted = 0
        try:
            for event in batch:
                key = event.flag_key
                # Looked up before anything changes: a key that cannot be hashed (or an
                # item that is no record) raises here and leaves the store consistent.
                lane = by_flag.get(key)
                index = (seq - origin) % max_size
                if seq - first >= max_size:
                    old_key = ring[index].flag_key
                    old_lane = by_flag[old_key]
                    old_lane.popleft()
                    if not old_lane and old_lane is not lane:
                        del by_flag[old_key]
                    first += 1
                    evicted += 1
                    ring[index] = event
                elif index == len(ring):
                    ring.append(event)
                else:
                    ring[index] = event
                if lane is None:
                    by_flag[key] = deque((event,))
                else:
                    lane.append(event)
                seq += 1
        finally:
            # Count exactly what was stored, even if a bad item stopped the batch; what
            # was stored here holds no outcome (``OutcomeStore._held_from``).
            self._next_seq = outcomes._held_from = seq
            self._first_seq = first
            self._evicted += evicted

    def _store_watched(self, batch: Iterable[FlagEvaluationEvent]) -> None:
        """``_store`` under a byte budget or with hooks to tell."""
        ring = self._ring
        sizes = self._sizes
        by_flag = self._by_flag
        max_size = self._max_size
        max_bytes = self._max_bytes
        origin = self._origin
        hooks = self._hooks
        added: list[FlagEvaluationEvent] = []
        evicted: list[FlagEvaluationEvent] = []
        evict_oldest = self._evict_oldest
        try:
            if max_bytes is None:
                for event in batch:
                    key = event.flag_key
                    # Looked up before anything changes: a key that cannot be hashed (or
                    # an item that is no record) raises here and leaves the store consistent.
                    lane = by_flag.get(key)
                    seq = self._next_seq
                    if seq - self._first_seq >= max_size:
                        evicted.append(evict_oldest())
                        lane = by_flag.get(key)
                    index = (seq - origin) % max_size
                    if index == len(ring):
                        ring.append(event)
                    else:
                        ring[index] = event
                    if lane is None:
                        by_flag[key] = deque((event,))
                    else:
                        lane.append(event)
                    self._next_seq = seq + 1
                    added.append(event)
                return
            fixed_sizes = _FIXED_VALUES
            # The counters live in locals while records go in (an attribute store per
            # record costs more), written back before each eviction reads them and
            # at the end, so they say exactly what was stored even if an item raises.
            seq = self._next_seq
            first = self._first_seq
            stored = self._bytes
            try:
                for event in batch:
                    key = event.flag_key
                    lane = by_flag.get(key)
                    # estimate_size's common case inline: a call per record costs more.
                    # The value's stored form read through the slot's alias (an
                    # attribute read; the descriptor's __get__ is a wrapped call).
                    size = fixed_sizes.get(type(event._stored_value))
                    if (
                        size is not None
                        and event.attributes is EMPTY_MAPPING
                        and event.context_attributes is EMPTY_MAPPING
                        and event.error_message is None
                    ):
                        text = event.targeting_key
                        if text is not None:
                            # sys.getsizeof's figure for ASCII text, without its call.
                            if type(text) is str and text.isascii():
                                size += _ASCII_TEXT_BYTES + len(text)
                            else:
                                size += _getsizeof(text)
                    else:
                        size = estimate_size(event)
                    if seq - first >= max_size:
                        self._bytes = stored
                        evicted.append(evict_oldest())
                        first = self._first_seq
                        stored = self._bytes
                        lane = by_flag.get(key)
                    index = (seq - origin) % max_size
                    if index == len(ring):
                        ring.append(event)
                        sizes.append(size)
                    else:
                        ring[index] = event
                        sizes[index] = size
                    if lane is None:
                        by_flag[key] = deque((event,))
                    else:
                        lane.append(event)
                    seq += 1
                    added.append(event)
                    stored += size
                    while stored > max_bytes and seq - first > 1:
                        self._next_seq = seq
                        self._bytes = stored
                        evicted.append(evict_oldest())
                        first = self._first_seq
                        stored = self._bytes
            finally:
                self._next_seq = seq
                self._bytes = stored
        finally:
            # Hooks hear of exactly what was stored, even if a bad item stopped the batch.
            if hooks and (added or evicted):
                for hook in hooks:
                    try:
                        hook.records_changed(added, evicted)
                    except Exception:
                        # Its state may be half-updated: it hears no more; the store goes on.
                        _logger.debug("flagscope: detached a store hook", exc_info=True)
                        self._remove_hook(hook)

    def _evict_oldest(self) -> FlagEvaluationEvent:
        """Drop the oldest stored record, count it and return it; the caller holds the lock."""
        first = self._first_seq
        index = (first - self._origin) % self._max_size
        old = self._ring[index]
        self._ring[index] = _HOLE
        if self._max_bytes is not None:
            self._bytes -= self._sizes[index]
        old_key = old.flag_key
        lane = self._by_flag[old_key]
        lane.popleft()
        if not lane:
            del self._by_flag[old_key]
        self._first_seq = first + 1
        self._evicted += 1
        return old

    # -- reading ----------------------------------------------------------------------

    def _ordered(self) -> list[FlagEvaluationEvent]:
        """Every stored record, oldest first; the caller holds the lock."""
        count = self._next_seq - self._first_seq
        if not count:
            return []
        ring = self._ring
        start = (self._first_seq - self._origin) % self._max_size
        stop = start + count
        if stop <= len(ring):
            return ring[start:stop]
        return ring[start:] + ring[: stop - len(ring)]

    def events(
        self,
        flag_key: str | None = None,
        limit: int | None = None,
    ) -> list[FlagEvaluationEvent]:
        """Return stored records, oldest first; ``limit`` keeps the newest N.

        Args:
            flag_key: Only this flag's records (read without touching the others').
            limit: At most this many, the newest; ``None`` or below 1 means all.
        """
        if flag_key is not None:
            with self._lock:
                lane = self._by_flag.get(flag_key)
                records = list(lane) if lane is not None else []
        else:
            with self._lock:
                records = self._ordered()
        if limit is not None and 0 < limit < len(records):
            return records[-limit:]
        return records

    def count(self, flag_key: str | None = None) -> int:
        """Return how many records are stored, for one flag or in all."""
        if flag_key is None:
            return len(self)
        with self._lock:
            lane = self._by_flag.get(flag_key)
            return len(lane) if lane is not None else 0

    def flag_keys(self) -> list[str]:
        """Return the keys of the flags with stored records, oldest first record first."""
        with self._lock:
            if len(self._by_flag) < 2:
                return list(self._by_flag)
            ordered = self._ordered()
        # Not a hot path (reports, reprs): one pass over the records, in order.
        return list(dict.fromkeys(map(_flag_key, ordered)))

    def counts_by_flag(self) -> dict[str, int]:
        """Return how many records each flag has stored."""
        with self._lock:
            return {key: len(lane) for key, lane in self._by_flag.items()}

    async def events_async(
        self,
        flag_key: str | None = None,
        limit: int | None = None,
    ) -> list[FlagEvaluationEvent]:
        """``events`` for async code (the seed's ``get_events``)."""
        return self.events(flag_key, limit)

    async def count_async(self, flag_key: str | None = None) -> int:
        """``count`` for async code (the seed's ``get_event_count``)."""
        return self.count(flag_key)

    async def get_events(
        self,
        flag_key: str | None = None,
        limit: int | None = None,
    ) -> list[FlagEvaluationEvent]:
        """Return stored records, oldest first; ``limit`` keeps the newest N (the seed's name)."""
        if flag_key is not None:
            # The seed's hot read, inlined: one lock, one copy of the flag's lane.
            with self._lock:
                lane = self._by_flag.get(flag_key)
                records = list(lane) if lane is not None else []
            if limit is not None and 0 < limit < len(records):
                return records[-limit:]
            return records
        return self.events(None, limit)

    async def get_event_count(self, flag_key: str | None = None) -> int:
        """Return how many records are stored, for one flag or in all (the seed's name)."""
        return self.count(flag_key)

    def __iter__(self) -> Iterator[FlagEvaluationEvent]:
        return iter(self.events())

    # -- observers: change notification and hooks ------------------------------------

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` after every change, on the thread that made it.

        Listeners must be quick and must not raise; ``asyncio`` waiters hand over
        with ``loop.call_soon_threadsafe``. Returns a function that unsubscribes.
        """
        with self._lock:
            self._listeners = [*self._listeners, listener]

        def unsubscribe() -> None:
            with self._lock:
                self._listeners = [item for item in self._listeners if item is not listener]

        return unsubscribe

    def _notify(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                # A broken waiter must not fail recording (or the exporter's export()).
                _logger.debug("flagscope: a store listener raised", exc_info=True)

    @property
    def lock(self) -> threading.Lock:
        """The lock that guards every change, held while hooks hear of it.

        For a hook's reads (``flagscope._query.rollup.Rollups``): holding it, what the hook
        has heard is what the store holds. Never record while holding it.
        """
        return self._lock

    @property
    def hooks(self) -> tuple[StoreHook, ...]:
        """The attached store hooks, first attached first."""
        return self._hooks

    def add_hook(self, hook: StoreHook) -> Callable[[], None]:
        """Attach ``hook``: it hears of every record stored, evicted or cleared from now on.

        Under the lock, it first hears of the records already stored (as
        ``records_changed(stored, ())``), so it starts from what the store holds.
        Returns a function that detaches it.

        Raises:
            Exception: Whatever the hook raised on the records already stored (it is
                not attached then).
        """
        with self._lock:
            hook.records_changed(self._ordered(), ())
            self._hooks = (*self._hooks, hook)
            self._lean = False

        def remove() -> None:
            with self._lock:
                self._remove_hook(hook)

        return remove

    def _remove_hook(self, hook: StoreHook) -> None:
        self._hooks = tuple(item for item in self._hooks if item is not hook)
        self._lean = self._max_bytes is None and not self._hooks

    def __repr__(self) -> str:
        budget = "" if self._max_bytes is None else f"max_bytes={self._max_bytes}, "
        return (
            f"{type(self).__name__}(max_size={self._max_size}, {budget}"
            f"stored={len(self)}, evicted={self._evicted})"
        )


_RECORD_BATCH: Final = RecordStore.record_batch
