"""A flag's summary kept up to date as its records are stored and evicted.

``aggregates.summarize`` reads every record of a flag: about ten fields of each,
scattered over the collector's ring. A ``FlagRollup`` holds what that summary
adds up to instead (counts per variant, value, reason ..., the distinct
targeting keys and traces, the earliest and latest times), so answering costs
time in the number of distinct values, not of records. ``Rollups`` keeps one per
flag and one over every record, attached to a ``RecordStore`` as a store hook:
the store tells it of each record stored (``add``) and evicted (``remove``).

A rollup relies on what the store guarantees: a flag's records are evicted
in the order they were stored, and records do not change once stored.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain, compress
from operator import attrgetter, not_, sub
from typing import Any, Final

from flagscope._query.aggregates import FlagSummary, _ordered
from flagscope._store.records import (
    EvaluationReason,
    FlagEvaluationEvent,
    JsonText,
    raw_value,
    trace_keys,
)
from flagscope._store.ring import RecordStore
from flagscope._store.values import value_key

__all__ = ["CATCH_UP_AT", "MAX_ROLLUPS", "FlagRollup", "RollupSnapshot", "Rollups"]

_logger = logging.getLogger("flagscope")

# At most this many flags get a rollup; others are summarised from their records.
# Bounds the memory and the recording cost rollups add.
MAX_ROLLUPS: Final = 10_000

# Queued records (stored plus evicted) past which the store hook counts its queue: a
# batch this size is counted at C speed, and a read never has more to count first.
CATCH_UP_AT: Final = 8192
# Record times per block: a part-evicted block is scanned again, a read takes the
# extremes of every block.
_BLOCK: Final = 64

_ERROR: Final = EvaluationReason.ERROR.value
_variant = attrgetter("variant")
_reason = attrgetter("reason")
_provider = attrgetter("provider_name")
_error_type = attrgetter("error_type")
_targeting_key = attrgetter("targeting_key")
_timestamp = attrgetter("timestamp")
# A record's profile fields, the value in its stored form (``raw_value`` without a
# call), and last the value's type, so that one C call a record gives the tuple counted.
_profile_fields: Final = attrgetter(
    "variant", "_stored_value", "reason", "provider_name", "error_type", "_stored_value.__class__"
)

# value_key costs a json.dumps; the hashable scalars flags mostly serve are converted
# once. Keyed by (type, value): True, 1 and 1.0 are equal in Python but not as values.
# -0.0 shares 0.0's entry, which is right: value_key gives both "0.0". NaN is never
# stored (it equals nothing, not even itself).
_CACHEABLE: Final = frozenset({str, int, bool, float})
_KEY_CACHE_LIMIT: Final = 4096
_KEY_CACHE_MAX_TEXT: Final = 256
_key_cache: dict[tuple[type, Any], str] = {}
_TRUE: Final = "true"
_FALSE: Final = "false"


def cached_value_key(value: Any) -> str:
    """Return ``value_key(value)``, remembering it for small hashable scalars."""
    if value is None:
        return "null"
    kind = type(value)
    if kind not in _CACHEABLE:
        return value_key(value)
    ident = (kind, value)
    key = _key_cache.get(ident)
    if key is None:
        key = value_key(value)
        if (
            len(_key_cache) < _KEY_CACHE_LIMIT
            and value == value
            and (kind is not str or len(value) <= _KEY_CACHE_MAX_TEXT)
        ):
            _key_cache[ident] = key
    return key


# What a record is counted under, apart from its targeting key, trace and time:
# (variant, value_key(value), reason, provider_name, error_type). A flag's records
# mostly share a few such profiles, so a batch is counted by profile at C speed and
# only each distinct profile is added to five counts (``RollupSnapshot.summary``).
Profile = tuple[Any, str, Any, Any, Any]
# Records' targeting keys and trace keys (``trace_key``), in the records' order.
Keys = tuple[Iterable[Any], Iterable[Any]]


def _count_into(counts: dict[Any, int], key: Any, count: int) -> None:
    if key is not None:
        counts[key] = counts.get(key, 0) + count


@dataclass(frozen=True, slots=True)
class RollupSnapshot:
    """A rollup's figures at one instant, copied under the collector's lock.

    Turning them into a ``FlagSummary`` (adding up the profiles, ordering the
    counts) happens outside the lock, so recording waits only for the copy.
    """

    count: int
    profiles: Mapping[Profile, int]
    distinct_targeting_keys: int
    distinct_traces: int
    max_per_trace: int
    first_seen: datetime | None
    last_seen: datetime | None

    def summary(self, flag_key: str | None, evicted: int) -> FlagSummary:
        """Return the ``FlagSummary`` that ``summarize`` gives for the same records."""
        variants: dict[Any, int] = {}
        values: dict[str, int] = {}
        reasons: dict[Any, int] = {}
        providers: dict[Any, int] = {}
        error_types: dict[Any, int] = {}
        error_count = 0
        for (variant, value, reason, provider, error_type), n in self.profiles.items():
            _count_into(variants, variant, n)
            values[value] = values.get(value, 0) + n
            _count_into(reasons, reason, n)
            _count_into(providers, provider, n)
            if error_type is not None:
                error_types[error_type] = error_types.get(error_type, 0) + n
                error_count += n
            elif reason == _ERROR:
                error_count += n
        count = self.count
        return FlagSummary(
            flag_key=flag_key,
            count=count,
            by_variant=_ordered(variants),
            by_value=_ordered(values),
            by_reason=_ordered(reasons),
            by_provider=_ordered(providers),
            by_error_type=_ordered(error_types),
            error_count=error_count,
            error_rate=error_count / count if count else 0.0,
            distinct_targeting_keys=self.distinct_targeting_keys,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            evicted=evicted,
            distinct_traces=self.distinct_traces,
            max_per_trace=self.max_per_trace,
        )


class FlagRollup:
    """What ``aggregates.summarize`` needs of one flag's stored records, kept current.

    ``extend`` it with records as they are stored and ``evict`` records as they
    are evicted, oldest first (the order the store evicts a flag's records in).
    Both take a batch and count it in a few passes at C speed, so a record costs
    a small share of what counting it alone in Python would. Not thread-safe by
    itself: ``Rollups`` calls it under the store's lock. Either may raise on a
    record ``summarize`` would also fail on (an unhashable variant, naive and
    aware timestamps mixed ...); the caller then drops the rollup.

    The earliest and latest times are kept per block of up to ``_BLOCK`` records,
    oldest block first, each with the earliest and latest of its live records; a
    block part-evicted is scanned again. ``min`` over the blocks' earliest gives
    the oldest of equal times, as ``min`` over the records does.
    """

    __slots__ = ("_blocks", "_profiles", "_targeting_keys", "_traces", "count")

    def __init__(self) -> None:
        self.count = 0
        self._profiles: dict[Profile, int] = {}
        self._targeting_keys: Counter[Any] = Counter()
        self._traces: Counter[Any] = Counter()
        self._blocks: deque[_Times] = deque()

    @classmethod
    def of(cls, events: Sequence[FlagEvaluationEvent]) -> FlagRollup:
        """Build a rollup of ``events``, one flag's stored records, oldest first."""
        rollup = cls()
        rollup.extend(events)
        return rollup

    def add(self, event: FlagEvaluationEvent) -> None:
        """Count a newly stored record."""
        self.extend((event,))

    def remove(self, event: FlagEvaluationEvent) -> None:
        """Forget an evicted record: the oldest one this rollup holds."""
        self.evict((event,))

    def extend(
        self,
        events: Sequence[FlagEvaluationEvent],
        profiles: Mapping[Profile, int] | None = None,
        keys: Keys | None = None,
        times: list[datetime] | None = None,
    ) -> None:
        """Count newly stored records, oldest first.

        Args:
            events: The records.
            profiles: Their counts by profile, when the caller has them already.
            keys: Their targeting keys and trace keys, when the caller read them already.
            times: Their timestamps, when the caller read them already.
        """
        size = len(events)
        if not size:
            return
        counts = self._profiles
        for profile, count in (profiles or _profile_counts(events)).items():
            counts[profile] = counts.get(profile, 0) + count
        # Counted with the None of records without one, then that entry dropped: a
        # filter would cost a call per record.
        targeting_keys = self._targeting_keys
        traces = self._traces
        if keys is None:
            targeting_keys.update(map(_targeting_key, events))
            traces.update(trace_keys(events))
        else:
            targeting_keys.update(keys[0])
            traces.update(keys[1])
        targeting_keys.pop(None, None)
        traces.pop(None, None)
        if times is None:
            times = list(map(_timestamp, events))
        blocks = self._blocks
        start = 0
        if blocks:
            last = blocks[-1]
            room = _BLOCK - len(last.times)
            if room > 0:
                part = times[:room]
                last.times += part
                # Ties keep the older time; comparing raises on naive and aware mixed.
                last.low = min(last.low, min(part))
                last.high = max(last.high, max(part))
                start = room
            else:
                last.low < times[0]  # noqa: B015 - raises, as min would, on naive and aware mixed
        for index in range(start, size, _BLOCK):
            blocks.append(_Times(times[index : index + _BLOCK]))
        self.count += size

    def evict(
        self,
        events: Sequence[FlagEvaluationEvent],
        profiles: Mapping[Profile, int] | None = None,
        keys: Keys | None = None,
    ) -> None:
        """Forget evicted records: the oldest ones this rollup holds, oldest first.

        Args:
            events: The records.
            profiles: Their counts by profile, when the caller has them already.
            keys: Their targeting keys and trace keys, when the caller read them already.
        """
        size = len(events)
        if not size:
            return
        counts = self._profiles
        # A profile that is missing raises KeyError: the rollup no longer matches its
        # records, so the caller drops it.
        for profile, count in (profiles or _profile_counts(events)).items():
            left = counts[profile] - count
            if left > 0:
                counts[profile] = left
            elif left:
                raise KeyError(profile)
            else:
                del counts[profile]
        gone = Counter(map(_targeting_key, events) if keys is None else keys[0])
        gone.pop(None, None)
        _subtract(self._targeting_keys, gone)
        gone = Counter(trace_keys(events) if keys is None else keys[1])
        gone.pop(None, None)
        _subtract(self._traces, gone)
        self.count -= size
        blocks = self._blocks
        while size:
            block = blocks[0]
            live = len(block.times) - block.head
            if size < live:
                block.head += size
                rest = block.times[block.head :]
                block.low = min(rest)
                block.high = max(rest)
                break
            blocks.popleft()
            size -= live

    def snapshot(self) -> RollupSnapshot:
        """Copy the current figures (call under the lock that guards changes)."""
        traces, blocks = self._traces, self._blocks
        return RollupSnapshot(
            count=self.count,
            profiles=self._profiles.copy(),
            distinct_targeting_keys=len(self._targeting_keys),
            distinct_traces=len(traces),
            max_per_trace=max(traces.values()) if traces else 0,
            first_seen=min(map(_low, blocks)) if blocks else None,
            last_seen=max(map(_high, blocks)) if blocks else None,
        )

    def summary(self, flag_key: str | None, evicted: int) -> FlagSummary:
        """Return what ``summarize(records, flag_key=..., evicted=...)`` returns."""
        return self.snapshot().summary(flag_key, evicted)

    def __repr__(self) -> str:
        return f"FlagRollup(count={self.count}, profiles={len(self._profiles)})"


class _Times:
    """A block of a rollup's record times: the live ones from ``head``, and their extremes."""

    __slots__ = ("head", "high", "low", "times")

    def __init__(self, times: list[datetime]) -> None:
        self.head = 0
        self.times = times
        self.low = min(times)
        self.high = max(times)


_low: Final = attrgetter("low")
_high: Final = attrgetter("high")


def _profile_counts(events: Sequence[FlagEvaluationEvent]) -> dict[Profile, int]:
    """Count ``events`` by profile: by stored value at C speed, then by value key.

    Values are counted in their stored form, told apart by type (``True``, ``1``
    and ``1.0`` are equal in Python, not as values); only each distinct one is
    turned into its value key.
    """
    try:
        # One C call reads a record's five fields (the value in its stored form, from
        # the slot's alias) and the value's type, counted as one flat tuple.
        raw = Counter(map(_profile_fields, events))
    except TypeError:
        # An unhashable field: each record on its own, so a value that cannot be
        # hashed still counts by its key and an unhashable variant raises as before.
        counts: dict[Profile, int] = {}
        for event in events:
            profile = (
                event.variant,
                _stored_key(raw_value(event)),
                event.reason,
                event.provider_name,
                event.error_type,
            )
            counts[profile] = counts.get(profile, 0) + 1
        return counts
    return _profiles_of(raw)


def _profiles_of(raw: dict[tuple[Any, ...], int]) -> dict[Profile, int]:
    """Counts by profile from counts by ``_profile_fields`` (the value in its stored form)."""
    if len(raw) == 1:
        ((variant, value, reason, provider, error_type, _), count) = raw.popitem()
        return {(variant, _stored_key(value), reason, provider, error_type): count}
    profiles: dict[Profile, int] = {}
    for (variant, value, reason, provider, error_type, _), count in raw.items():
        profile = (variant, _stored_key(value), reason, provider, error_type)
        profiles[profile] = profiles.get(profile, 0) + count
    return profiles


# One flag's share of a batch, as ``_read`` gives it: its records, their counts by
# ``_profile_fields`` (``None`` if one could not be hashed), targeting keys, trace keys
# and timestamps, each in the records' order.
_Part = tuple[
    list[FlagEvaluationEvent],
    dict[tuple[Any, ...], int] | None,
    list[Any],
    list[Any],
    list[datetime],
]


def _read(
    events: Sequence[FlagEvaluationEvent], *, with_times: bool
) -> tuple[dict[str, _Part], list[datetime]]:
    """Each flag's share of ``events`` (flags by first appearance), and every timestamp.

    ``with_times``: whether to read the timestamps at all; evicted records are
    forgotten by count, so their times are left unread (the lists stay empty).

    One loop in Python: on 3.11 its specialised reads of the records' slots cost less
    than the same fields read by ``attrgetter`` maps over the batch once per use
    (about a third less for the whole catch-up's reading). Profiles are counted
    with the value's type, as ``_profile_counts`` does.
    """
    parts: dict[str, _Part] = {}
    times: list[datetime] = []
    add_time = times.append
    get_part = parts.get
    for event in events:
        key = event.flag_key
        part = get_part(key)
        if part is None:
            part = parts[key] = ([], {}, [], [], [])
        records, raw, targeting_keys, traces, flag_times = part
        records.append(event)
        if raw is not None:
            value = event._stored_value
            profile = (
                event.variant,
                value,
                event.reason,
                event.provider_name,
                event.error_type,
                type(value),
            )
            try:
                raw[profile] = raw.get(profile, 0) + 1
            except Exception:  # noqa: BLE001 - as _profile_counts' callers see it
                # An unhashable field: the caller counts this flag's records afresh.
                parts[key] = part = (records, None, targeting_keys, traces, flag_times)
        targeting_keys.append(event.targeting_key)
        traces.append(event._stored_trace_id)  # type: ignore[attr-defined]
        if with_times:
            time = event.timestamp
            flag_times.append(time)
            add_time(time)
    return parts, times


def _part_profiles(part: _Part) -> dict[Profile, int] | None:
    """A part's counts by profile, or ``None`` when a record cannot be counted."""
    raw = part[1]
    if raw is None:
        return _try_profile_counts(part[0])
    try:
        return _profiles_of(raw)
    except Exception:  # noqa: BLE001 - the caller counts afresh, and drops the rollup
        return None


def _try_profile_counts(events: Sequence[FlagEvaluationEvent]) -> dict[Profile, int] | None:
    """``_profile_counts``, or ``None`` when a record cannot be counted."""
    try:
        return _profile_counts(events)
    except Exception:  # noqa: BLE001 - the caller counts afresh, and drops the rollup
        return None


def _sum_counts(parts: Iterable[Mapping[Profile, int] | None]) -> dict[Profile, int] | None:
    """Add up counts by profile; ``None`` if any part is (the caller counts afresh)."""
    total: dict[Profile, int] = {}
    for part in parts:
        if part is None:
            return None
        for profile, count in part.items():
            total[profile] = total.get(profile, 0) + count
    return total


def _all_keys(parts: Iterable[Keys]) -> Keys:
    """The targeting keys and trace keys of several parts, one after another.

    Read again (not kept) by ``extend``/``evict``: every part is a pair of lists.
    """
    listed = list(parts)
    return (
        chain.from_iterable(part[0] for part in listed),
        chain.from_iterable(part[1] for part in listed),
    )


def _stored_key(value: Any) -> str:
    """``value_key`` of the value a record stores as ``value``."""
    if type(value) is bool:
        return _TRUE if value else _FALSE
    if type(value) is JsonText:
        return value_key(json.loads(value))
    return cached_value_key(value)


def _subtract(counts: Counter[Any], gone: Counter[Any]) -> None:
    """Take ``gone``'s counts off ``counts``, dropping keys at zero, at C speed."""
    if not gone:
        return
    keys = list(gone)
    left = list(map(sub, map(counts.__getitem__, keys), gone.values()))
    # dict.update, not Counter.update (which adds).
    dict.update(counts, zip(keys, left, strict=True))
    for key in compress(keys, map(not_, left)):
        del counts[key]


class Rollups:
    """Every flag's summary and the overall one, kept current through a store hook.

    Attached to ``store`` when made (``RecordStore.add_hook``). As a hook it only
    queues what the store tells it (records stored and evicted, a batch at a
    time); once ``CATCH_UP_AT`` records are queued, and before every read, it
    counts the queue in one go (``FlagRollup.extend``/``evict``), so recording
    costs a record a few C-speed passes, and a read never counts more than
    ``CATCH_UP_AT`` records. Reads take the store's lock, so a summary is of what
    the store holds at that instant.

    A flag beyond ``max_flags``, or with a record a rollup cannot count (an
    unhashable variant, naive and aware timestamps mixed), has no rollup until its
    records are all gone: ``summary`` answers ``None`` for it and the caller
    summarises its records instead. Likewise the overall rollup.

    Args:
        store: The store to follow.
        max_flags: The most flags with a rollup at once.
    """

    def __init__(self, store: RecordStore, *, max_flags: int = MAX_ROLLUPS) -> None:
        self._store = store
        self._max_flags = max_flags
        self._flags: dict[str, FlagRollup] = {}
        # Flags without a rollup, and how many records each has stored: one gets a
        # rollup again once its count is back to zero.
        self._unrolled: dict[str, int] = {}
        self._overall: FlagRollup | None = FlagRollup()
        self._evicted = 0
        # What the store told of and is not counted yet: its lists of records, which
        # it makes for each call and does not touch again.
        self._added: list[Sequence[FlagEvaluationEvent]] = []
        self._gone: list[Sequence[FlagEvaluationEvent]] = []
        self._queued = 0
        self.detach: Callable[[], None] = store.add_hook(self)

    # -- the store hook ------------------------------------------------------------------

    def records_changed(
        self, added: Sequence[FlagEvaluationEvent], evicted: Sequence[FlagEvaluationEvent]
    ) -> None:
        """Queue records stored and evicted (the store hook); count them past a bound."""
        if added:
            self._added.append(added)
        if evicted:
            self._gone.append(evicted)
        self._queued += len(added) + len(evicted)
        if self._queued >= CATCH_UP_AT:
            self._catch_up()

    def records_cleared(self) -> None:
        """Forget every record (the store hook)."""
        self._flags = {}
        self._unrolled = {}
        self._overall = FlagRollup()
        self._added = []
        self._gone = []
        self._queued = 0

    def _catch_up(self) -> None:
        """Count the queued records; the caller holds the store's lock.

        Every queued record stored, then every one evicted: evictions take each
        flag's oldest records, so the order between batches does not matter.
        """
        if not self._queued:
            return
        added = list(chain.from_iterable(self._added)) if len(self._added) != 1 else self._added[0]
        gone = list(chain.from_iterable(self._gone)) if len(self._gone) != 1 else self._gone[0]
        self._added = []
        self._gone = []
        self._queued = 0
        flags = self._flags
        unrolled = self._unrolled
        overall = self._overall
        # Each flag's records counted by profile, and their targeting keys, trace keys
        # and times read, once: for its rollup and the overall one.
        added_parts, added_times = _read(added, with_times=True)
        gone_parts, _ = _read(gone, with_times=False)
        added_by_flag: dict[str, Sequence[FlagEvaluationEvent]] = {
            key: part[0] for key, part in added_parts.items()
        }
        gone_by_flag: dict[str, Sequence[FlagEvaluationEvent]] = {
            key: part[0] for key, part in gone_parts.items()
        }
        added_profiles = {key: _part_profiles(part) for key, part in added_parts.items()}
        gone_profiles = {key: _part_profiles(part) for key, part in gone_parts.items()}
        added_keys = {key: (part[2], part[3]) for key, part in added_parts.items()}
        gone_keys = {key: (part[2], part[3]) for key, part in gone_parts.items()}
        if overall is not None:
            try:
                overall.extend(
                    added,
                    _sum_counts(added_profiles.values()),
                    _all_keys(added_keys.values()),
                    added_times,
                )
                overall.evict(
                    gone, _sum_counts(gone_profiles.values()), _all_keys(gone_keys.values())
                )
            except Exception:
                _logger.debug("flagscope: dropped the overall rollup", exc_info=True)
                self._overall = None
        for key, records in added_by_flag.items():
            rollup = flags.get(key)
            if rollup is None:
                if key in unrolled:
                    continue
                if len(flags) >= self._max_flags:
                    unrolled[key] = 0  # its records are counted below
                    continue
                rollup = flags[key] = FlagRollup()
            stored = rollup.count
            try:
                rollup.extend(records, added_profiles[key], added_keys[key], added_parts[key][4])
            except Exception:
                _logger.debug("flagscope: dropped the rollup of %r", key, exc_info=True)
                del flags[key]
                unrolled[key] = stored
        # Flags without a rollup: how many records are left, and a rollup of them once
        # those stored before this batch are all gone (then they are the batch's last).
        rolled: set[str] = set()
        for key in [key for key in (*added_by_flag, *gone_by_flag) if key in unrolled]:
            if key in rolled:
                continue
            before = unrolled[key]
            records = added_by_flag.get(key, ())
            gone_count = len(gone_by_flag.get(key, ()))
            left = before + len(records) - gone_count
            if not left:
                del unrolled[key]
                continue
            unrolled[key] = left
            if gone_count >= before and len(flags) < self._max_flags:
                try:
                    flags[key] = FlagRollup.of(records[len(records) - left :])
                except Exception:
                    _logger.debug("flagscope: no rollup of %r yet", key, exc_info=True)
                    continue
                del unrolled[key]
                rolled.add(key)
        for key, records in gone_by_flag.items():
            rollup = flags.get(key)
            if rollup is None or key in rolled:
                continue
            stored = rollup.count
            try:
                rollup.evict(records, gone_profiles[key], gone_keys[key])
            except Exception:
                _logger.debug("flagscope: dropped the rollup of %r", key, exc_info=True)
                del flags[key]
                if stored > len(records):
                    unrolled[key] = stored - len(records)
                continue
            if not rollup.count:
                # The flag's last record went: stop tracking it.
                del flags[key]
        if self._overall is None and not len(self._store):
            self._overall = FlagRollup()
        self._evicted = self._store.evicted_count

    # -- reading ---------------------------------------------------------------------------

    def summary(self, flag_key: str | None, *, label: str | None) -> FlagSummary | None:
        """Return what ``summarize`` gives for a flag's stored records, or for all.

        Args:
            flag_key: The flag; ``None`` summarises every stored record.
            label: The summary's ``flag_key``.

        Returns:
            The summary, or ``None`` when that flag (or the whole) has no rollup.
        """
        with self._store.lock:
            self._catch_up()
            if flag_key is None:
                rollup = self._overall
            else:
                rollup = self._flags.get(flag_key)
                if rollup is None and flag_key not in self._unrolled:
                    rollup = _EMPTY
            if rollup is None:
                return None
            snapshot = rollup.snapshot()
            evicted = self._evicted
        return snapshot.summary(label, evicted)

    def summaries(self) -> tuple[list[FlagSummary], list[str]]:
        """Return the summaries of the flags with a rollup, and the keys of the others.

        The summaries come from one snapshot, sorted by flag key.
        """
        with self._store.lock:
            self._catch_up()
            snapshots = [(key, rollup.snapshot()) for key, rollup in self._flags.items()]
            unrolled = list(self._unrolled)
            evicted = self._evicted
        snapshots.sort(key=_first)
        return [snapshot.summary(key, evicted) for key, snapshot in snapshots], unrolled

    def __repr__(self) -> str:
        return f"Rollups(flags={len(self._flags)}, unrolled={len(self._unrolled)})"


_EMPTY: Final = FlagRollup()


def _first(pair: tuple[str, RollupSnapshot]) -> str:
    return pair[0]
