"""Bounded, thread-safe storage for flag evaluation records."""

from __future__ import annotations

import heapq
import logging
import sys
import threading
from array import array
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from flagscope.aggregates import FlagSummary, summarize
from flagscope.models import (
    EMPTY_MAPPING,
    EvaluationReason,
    FlagEvaluationEvent,
    build_event,
    raw_value,
)
from flagscope.outcomes import OutcomeItem, OutcomeStore
from flagscope.rollup import FlagRollup, RollupSnapshot

if TYPE_CHECKING:
    from flagscope.query import CollectorQuery

__all__ = ["AnalyticsCollector", "InMemoryAnalyticsCollector", "estimate_size"]

_logger = logging.getLogger("flagscope")

# At most this many flags get a rollup (a per-flag summary kept current); others are
# summarised from their records. Bounds the memory and the recording cost rollups add.
MAX_ROLLUPS = 10_000

# What ``estimate_size`` counts for a record before its variable parts: the slotted
# record, its datetime, trace and span ids, the ring slot, the per-flag index entry and
# the size entry. Measured with tracemalloc at about 450 bytes for a TracingHook record.
_RECORD_BYTES: Final = 512
_SCALAR_BYTES: Final = 32
_ITEM_BYTES: Final = 72  # a dict or tuple entry: its slot, hash and share of the table
_CONTAINER_BYTES: Final = 64
_MAX_DEPTH: Final = 32
_CONTAINERS: Final = (dict, list, tuple, MappingProxyType)
_getsizeof: Final = sys.getsizeof

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
        return sys.getsizeof(value)
    if kind not in _CONTAINERS:
        if isinstance(value, (str, bytes)):
            return sys.getsizeof(value)
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
    size = _RECORD_BYTES
    # The stored form: a container value is kept as its JSON text (reading
    # ``event.value`` would decode a copy), and the text is what it holds.
    value = raw_value(event)
    if value is not None and value is not True and value is not False:
        size += _value_size(value, 0)
    text = event.targeting_key
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


def _check_max_size(max_size: object) -> int:
    if isinstance(max_size, bool) or not isinstance(max_size, int):
        raise TypeError(f"max_size must be an int, got {type(max_size).__name__}")
    if max_size < 1:
        raise ValueError(f"max_size must be at least 1, got {max_size}")
    return max_size


def _check_max_bytes(max_bytes: object) -> int | None:
    if max_bytes is None:
        return None
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
        raise TypeError(f"max_bytes must be an int or None, got {type(max_bytes).__name__}")
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
    return max_bytes


# Rollups are kept current under the collector's lock, after the store itself changed.
# A rollup that raises is dropped, never left half-updated: the store stays consistent
# and that flag is summarised from its records again.


def _rollup_add(rollups: dict[str, FlagRollup], event: FlagEvaluationEvent) -> None:
    key = event.flag_key
    rollup = rollups.get(key)
    if rollup is not None:
        try:
            rollup.add(event)
        except Exception:
            _logger.debug("flagscope: dropped the rollup of %r", key, exc_info=True)
            del rollups[key]


def _rollup_remove(
    rollups: dict[str, FlagRollup], old: FlagEvaluationEvent, still_stored: bool
) -> None:
    old_key = old.flag_key
    rollup = rollups.get(old_key)
    if rollup is not None:
        try:
            rollup.remove(old)
        except Exception:
            _logger.debug("flagscope: dropped the rollup of %r", old_key, exc_info=True)
            del rollups[old_key]
        else:
            if not rollup.count and not still_stored:
                # The flag's last record went: stop tracking it.
                del rollups[old_key]


class InMemoryAnalyticsCollector:
    """Keeps the newest evaluations in memory, within a count and a byte budget.

    A drop-in for litestar-flags' collector of the same name (``await record``,
    ``await get_events`` ...), with a synchronous core that the exporters call
    from any thread. Recording is O(1) whatever ``max_size`` is: a ring of
    records plus, per flag key, the sequence numbers of that flag's records, so
    reading one flag never walks the others.

    When either bound is reached the oldest records are dropped first, and counted
    in ``evicted_count``: ``max_size`` caps the number of records, ``max_bytes``
    what they hold as ``estimate_size`` counts it (so a few huge records cannot
    take the memory of millions of small ones). The newest record is always kept.

    Args:
        max_size: How many records to keep; a positive int.
        max_bytes: The most bytes the stored records may hold, as
            ``estimate_size`` estimates them; ``None`` (the default) bounds the
            store by ``max_size`` only.
        summary_rollups: Keep each summarised flag's summary current as records
            arrive and leave, so repeated summaries (a dashboard polling) cost time
            in distinct values, not records. It costs recording about 2 µs instead
            of 0.5 µs, and about 150 bytes per record, for every flag once
            summarised; off by default, so the exporters' path stays lean.

    Raises:
        TypeError: ``max_size`` is not an int, ``max_bytes`` not an int or None, or
            ``summary_rollups`` not a bool.
        ValueError: ``max_size`` or ``max_bytes`` is below 1.
    """

    def __init__(
        self,
        max_size: int = 10000,
        *,
        max_bytes: int | None = None,
        summary_rollups: bool = False,
    ) -> None:
        if not isinstance(summary_rollups, bool):
            raise TypeError(f"summary_rollups must be a bool, got {type(summary_rollups).__name__}")
        self._summary_rollups = summary_rollups
        self._max_size = _check_max_size(max_size)
        self._max_bytes = _check_max_bytes(max_bytes)
        self._lock = threading.Lock()
        # Record with sequence number ``seq`` sits at ``(seq - _origin) % max_size``;
        # the live ones are ``_first_seq`` to ``_next_seq - 1``. ``_sizes`` holds each
        # slot's ``estimate_size``.
        self._ring: list[FlagEvaluationEvent] = []
        self._sizes = array("q")
        self._bytes = 0
        self._origin = 0
        self._first_seq = 0
        self._next_seq = 0
        self._by_flag: dict[str, deque[int]] = {}
        self._evicted = 0
        self._listeners: list[Callable[[], None]] = []
        self._query: CollectorQuery | None = None
        # Per-flag summaries kept current, only for flags someone summarised, and only
        # with ``summary_rollups``: empty otherwise, so ``_store`` skips them.
        self._rollups: dict[str, FlagRollup] = {}
        # The summary of every stored record, kept current once asked for.
        self._overall: FlagRollup | None = None
        # Set once every flag was summarised (summaries_of_all): a reader polls them all,
        # so a flag first seen later gets its rollup from its first record.
        self._roll_up_new_flags = False
        self._max_rollups = MAX_ROLLUPS
        # Rollups exist only with summary_rollups, sizes only with max_bytes: both are
        # fixed here, so one flag tells _store which path every record takes.
        self._kept_current = self._max_bytes is not None or summary_rollups
        # What happened to the spans and requests the evaluations were made in, kept
        # beside them within the same count and pruned as they are evicted.
        self._outcomes = OutcomeStore(self._max_size, lock=self._lock)

    # -- configuration and counters -------------------------------------------------

    @property
    def max_size(self) -> int:
        """How many records the collector keeps."""
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
    def summary_rollups(self) -> bool:
        """Whether summaries are kept current per flag (see the class docstring)."""
        return self._summary_rollups

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

    @property
    def outcomes(self) -> OutcomeStore:
        """The outcomes of the spans and requests the stored evaluations were made in."""
        return self._outcomes

    def record_outcomes(self, items: Sequence[OutcomeItem]) -> None:
        """Store spans' outcomes beside the evaluations just recorded (``OutcomeStore.add``).

        Call it after ``record_many`` with the same batch's spans: their
        evaluations are the newest records, and the outcomes go when they do.
        """
        with self._lock:
            self._outcomes.add_locked(items, self._next_seq - 1, self._first_seq)

    def record_with_outcomes(
        self, events: list[FlagEvaluationEvent], items: Sequence[OutcomeItem]
    ) -> int:
        """Store records and the outcomes of their spans under one hold of the lock.

        What the exporters call: ``record_many`` then ``record_outcomes``, for one
        lock and one call less per span. Returns how many records were stored.
        """
        if type(self).record_many is not _RECORD_MANY:
            # A subclass's record_many has the say over records (and may refuse them).
            stored = self.record_many(events) if events else 0
            self.record_outcomes(items)
            return stored
        try:
            with self._lock:
                if events:
                    self._store(events)
                self._outcomes.add_locked(items, self._next_seq - 1, self._first_seq)
        finally:
            if events and self._listeners:
                self._notify()
        return len(events)

    @property
    def query(self) -> CollectorQuery:
        """Filters, waits and aggregates over this collector (``flagscope.query``)."""
        query = self._query
        if query is None:
            # Imported here: the query module builds on this one.
            from flagscope.query import CollectorQuery

            query = self._query = CollectorQuery(self)
        return query

    # -- synchronous core -----------------------------------------------------------

    def record_sync(self, event: FlagEvaluationEvent) -> None:
        """Store one record; safe from any thread, never touches an event loop."""
        with self._lock:
            self._store((event,))
        if self._listeners:
            self._notify()

    def record_many(self, events: Iterable[FlagEvaluationEvent]) -> int:
        """Store several records under one lock; returns how many were stored."""
        batch = events if isinstance(events, list) else list(events)
        if not batch:
            return 0
        try:
            with self._lock:
                self._store(batch)
        finally:
            # Waiters hear of what was stored even when a bad item stopped the batch.
            if self._listeners:
                self._notify()
        return len(batch)

    def _store(self, batch: Iterable[FlagEvaluationEvent]) -> None:
        """Append records, dropping the oldest past either bound; the caller holds the lock.

        Each record is stored completely or not at all: a bad item (an unhashable
        flag key, no record) raises before anything changes, and the counters say
        exactly what was stored.
        """
        if self._kept_current:
            self._store_kept_current(batch)
            return
        # The exporters' path: bounded by count only, nothing kept current beside the
        # per-flag index. Once full, the oldest record's slot is the new record's.
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
                seqs = by_flag.get(key)
                index = (seq - origin) % max_size
                if seq - first >= max_size:
                    old_key = ring[index].flag_key
                    old_seqs = by_flag[old_key]
                    old_seqs.popleft()
                    if not old_seqs and old_seqs is not seqs:
                        del by_flag[old_key]
                    first += 1
                    evicted += 1
                    ring[index] = event
                elif index == len(ring):
                    ring.append(event)
                else:
                    ring[index] = event
                if seqs is None:
                    by_flag[key] = deque((seq,))
                else:
                    seqs.append(seq)
                seq += 1
        finally:
            # Count exactly what was stored, even if a bad item stopped the batch.
            self._next_seq = seq
            self._first_seq = first
            self._evicted += evicted

    def _store_kept_current(self, batch: Iterable[FlagEvaluationEvent]) -> None:
        """``_store`` under a byte budget or with rollups to keep current."""
        ring = self._ring
        sizes = self._sizes
        by_flag = self._by_flag
        max_size = self._max_size
        max_bytes = self._max_bytes
        origin = self._origin
        for event in batch:
            key = event.flag_key
            # Looked up before anything changes: a key that cannot be hashed (or an
            # item that is no record) raises here and leaves the store consistent.
            seqs = by_flag.get(key)
            # Estimated only under a byte budget, and only then are sizes kept.
            size = estimate_size(event) if max_bytes is not None else 0
            seq = self._next_seq
            if seq - self._first_seq >= max_size:
                self._evict_oldest()
                seqs = by_flag.get(key)
            index = (seq - origin) % max_size
            if index == len(ring):
                ring.append(event)
                if max_bytes is not None:
                    sizes.append(size)
            else:
                ring[index] = event
                if max_bytes is not None:
                    sizes[index] = size
            if seqs is None:
                by_flag[key] = deque((seq,))
                if self._roll_up_new_flags and len(self._rollups) < self._max_rollups:
                    self._rollups[key] = FlagRollup()
            else:
                seqs.append(seq)
            self._next_seq = seq + 1
            if self._rollups:
                _rollup_add(self._rollups, event)
            if self._overall is not None:
                self._overall_add(event)
            if max_bytes is not None:
                self._bytes += size
                while self._bytes > max_bytes and self._next_seq - self._first_seq > 1:
                    self._evict_oldest()

    def _evict_oldest(self) -> None:
        """Drop the oldest stored record and count it; the caller holds the lock."""
        first = self._first_seq
        index = (first - self._origin) % self._max_size
        old = self._ring[index]
        self._ring[index] = _HOLE
        if self._max_bytes is not None:
            self._bytes -= self._sizes[index]
        old_key = old.flag_key
        seqs = self._by_flag[old_key]
        seqs.popleft()
        if not seqs:
            del self._by_flag[old_key]
        self._first_seq = first + 1
        self._evicted += 1
        if self._rollups:
            _rollup_remove(self._rollups, old, bool(seqs))
        if self._overall is not None:
            try:
                self._overall.remove(old)
            except Exception:
                _logger.debug("flagscope: dropped the overall rollup", exc_info=True)
                self._overall = None

    def _overall_add(self, event: FlagEvaluationEvent) -> None:
        try:
            self._overall.add(event)  # type: ignore[union-attr]
        except Exception:
            _logger.debug("flagscope: dropped the overall rollup", exc_info=True)
            self._overall = None

    # -- rollups: per-flag summaries kept current ----------------------------------

    def summary_of(self, flag_key: str, *, keyed: bool = True) -> FlagSummary | None:
        """Summarise one flag's stored records from its rollup; ``None`` if it has none.

        Equals ``summarize(self.events(flag_key), flag_key=flag_key,
        evicted=self.evicted_count)`` (``flag_key=None`` with ``keyed=False``, as
        ``query.summary(flag_key=...)`` labels it). The first call for a flag builds
        its rollup from the flag's stored records; from then on recording keeps it
        current, and a call costs time in the number of distinct values, not of
        records. ``None`` when the collector keeps no rollups (``summary_rollups``
        is off), when no more flags can be tracked (``MAX_ROLLUPS``) or the
        flag's records cannot be rolled up: summarise its records instead.
        """
        with self._lock:
            snapshot = self._rollup_snapshot(flag_key)
            evicted = self._evicted
        if snapshot is None:
            return None
        return snapshot.summary(flag_key if keyed else None, evicted)

    def overall_summary(self) -> FlagSummary | None:
        """Summarise every stored record from a rollup; ``None`` if none can be kept.

        Equals ``summarize(self.events(), flag_key=None, evicted=self.evicted_count)``.
        The first call rolls up the stored records; from then on recording keeps the
        rollup current, so a dashboard asking every second pays for distinct values,
        not records. ``None`` without ``summary_rollups``, or when the records cannot
        be rolled up: summarise them instead.
        """
        if not self._summary_rollups:
            return None
        with self._lock:
            if self._overall is None:
                try:
                    seqs = range(self._first_seq, self._next_seq)
                    self._overall = FlagRollup.of(self._events_at(seqs))
                except Exception:
                    _logger.debug("flagscope: cannot roll up the records", exc_info=True)
                    return None
            snapshot = self._overall.snapshot()
            evicted = self._evicted
        return snapshot.summary(None, evicted)

    def summaries_of_all(self) -> list[FlagSummary]:
        """Return ``summarize_by_flag(self.events(), evicted=...)``, from rollups.

        Flags without a rollup get one, each built under its own short hold of the
        lock; the answer is then read from one snapshot. From then on, a flag first
        recorded later gets its rollup from its first record, so a dashboard polling
        every flag never pays for reading a new flag's records. Flags beyond
        ``MAX_ROLLUPS``, or whose records cannot be rolled up, are summarised from
        their records, taken in the same snapshot.
        """
        with self._lock:
            self._roll_up_new_flags = self._summary_rollups
            missing = [key for key in self._by_flag if key not in self._rollups]
        for key in missing:
            with self._lock:
                if key in self._by_flag and key not in self._rollups:
                    self._build_rollup(key)
        parts: dict[str, RollupSnapshot | list[FlagEvaluationEvent]] = {}
        with self._lock:
            for key, seqs in self._by_flag.items():
                snapshot = self._rollup_snapshot(key)
                parts[key] = snapshot if snapshot is not None else self._events_at(seqs)
            evicted = self._evicted
        summaries = []
        for key in sorted(parts):
            part = parts[key]
            if isinstance(part, RollupSnapshot):
                summaries.append(part.summary(key, evicted))
            else:
                summaries.append(summarize(part, flag_key=key, evicted=evicted))
        return summaries

    def _rollup_snapshot(self, flag_key: str) -> RollupSnapshot | None:
        """Copy the flag's rollup figures, building it first; the caller holds the lock."""
        rollup = self._rollups.get(flag_key)
        if rollup is None:
            if flag_key not in self._by_flag:
                # Nothing stored: the empty summary, without tracking the flag.
                return FlagRollup().snapshot()
            rollup = self._build_rollup(flag_key)
            if rollup is None:
                return None
        return rollup.snapshot()

    def _build_rollup(self, flag_key: str) -> FlagRollup | None:
        """Roll up a flag's stored records and track it; the caller holds the lock."""
        if not self._summary_rollups or len(self._rollups) >= self._max_rollups:
            return None
        try:
            rollup = FlagRollup.of(self._events_at(self._by_flag[flag_key]))
        except Exception:
            # A record summarize would also fail on (an unhashable variant, a naive
            # timestamp ...): leave the flag to the ordinary path, which says why.
            _logger.debug("flagscope: cannot roll up flag %r", flag_key, exc_info=True)
            return None
        self._rollups[flag_key] = rollup
        return rollup

    def _events_at(self, seqs: Iterable[int]) -> list[FlagEvaluationEvent]:
        """Return the records with these sequence numbers; the caller holds the lock."""
        ring = self._ring
        origin = self._origin
        max_size = self._max_size
        return [ring[(seq - origin) % max_size] for seq in seqs]

    def _pairs_at(self, seqs: Iterable[int]) -> list[tuple[int, FlagEvaluationEvent]]:
        """Return ``(sequence, record)`` pairs; the caller holds the lock."""
        ring = self._ring
        origin = self._origin
        max_size = self._max_size
        return [(seq, ring[(seq - origin) % max_size]) for seq in seqs]

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
        with self._lock:
            if flag_key is None:
                seqs: Iterable[int] = range(self._first_seq, self._next_seq)
            else:
                seqs = self._by_flag.get(flag_key, ())
            if limit is not None and limit > 0:
                newest = list(islice(reversed(seqs), limit))  # type: ignore[call-overload]
                newest.reverse()
                seqs = newest
            return self._events_at(seqs)

    def select(
        self, flag_keys: Collection[str] | None = None
    ) -> list[tuple[int, FlagEvaluationEvent]]:
        """Return ``(sequence, record)`` pairs in recording order, one snapshot.

        Sequence numbers grow by one per record ever recorded, so they order
        records across flags and mark what a reader has already seen.

        Args:
            flag_keys: Only these flags' records; ``None`` means every record. A
                bare string is one flag key.
        """
        if isinstance(flag_keys, str):
            # A str is a Collection[str] too: without this, "alpha" would select flags
            # "a", "l", "p" and "h".
            flag_keys = (flag_keys,)
        with self._lock:
            if flag_keys is None:
                return self._pairs_at(range(self._first_seq, self._next_seq))
            lanes = [self._by_flag[key] for key in set(flag_keys) if key in self._by_flag]
            if len(lanes) == 1:
                return self._pairs_at(lanes[0])
            return self._pairs_at(heapq.merge(*lanes))

    def count(self, flag_key: str | None = None) -> int:
        """Return how many records are stored, for one flag or in all."""
        if flag_key is None:
            return len(self)
        with self._lock:
            seqs = self._by_flag.get(flag_key)
            return len(seqs) if seqs is not None else 0

    def flag_keys(self) -> list[str]:
        """Return the keys of the flags with stored records, first recorded first."""
        with self._lock:
            return sorted(self._by_flag, key=lambda key: self._by_flag[key][0])

    def counts_by_flag(self) -> dict[str, int]:
        """Return how many records each flag has stored."""
        with self._lock:
            return {key: len(seqs) for key, seqs in self._by_flag.items()}

    def clear_sync(self) -> None:
        """Drop every stored record; counters and sequence numbers go on."""
        with self._lock:
            self._ring = []
            self._sizes = array("q")
            self._bytes = 0
            self._by_flag = {}
            self._rollups = {}
            self._overall = None
            self._origin = self._first_seq = self._next_seq
            self._outcomes.clear_locked()
        if self._listeners:
            self._notify()

    # -- change notification --------------------------------------------------------

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
                _logger.debug("flagscope: a collector listener raised", exc_info=True)

    # -- the seed's async API -------------------------------------------------------

    async def record(self, event: FlagEvaluationEvent) -> None:
        """Store one record."""
        self.record_sync(event)

    async def record_batch(self, events: list[FlagEvaluationEvent]) -> None:
        """Store several records."""
        self.record_many(events)

    async def flush(self) -> None:
        """Nothing to flush: records are stored as they arrive."""

    async def close(self) -> None:
        """Release the stored records (the collector stays usable)."""
        self.clear_sync()

    async def get_events(
        self,
        flag_key: str | None = None,
        limit: int | None = None,
    ) -> list[FlagEvaluationEvent]:
        """Return stored records, oldest first; ``limit`` keeps the newest N."""
        return self.events(flag_key, limit)

    async def get_event_count(self, flag_key: str | None = None) -> int:
        """Return how many records are stored, for one flag or in all."""
        return self.count(flag_key)

    async def clear(self) -> None:
        """Drop every stored record."""
        self.clear_sync()

    def __iter__(self) -> Iterator[FlagEvaluationEvent]:
        return iter(self.events())

    def __repr__(self) -> str:
        budget = "" if self._max_bytes is None else f"max_bytes={self._max_bytes}, "
        return (
            f"InMemoryAnalyticsCollector(max_size={self._max_size}, {budget}"
            f"stored={len(self)}, evicted={self._evicted})"
        )


_RECORD_MANY: Final = InMemoryAnalyticsCollector.record_many
