"""Aggregates over flag evaluation records: summaries, time buckets, inventory checks.

Pure functions over a list of records, returning frozen records with
``to_dict()``. Count mappings are read-only and ordered by count (highest
first), then key, so output is deterministic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import compress, repeat
from operator import attrgetter, eq, is_
from types import MappingProxyType
from typing import Any, Final

from flagscope._store.records import EMPTY_MAPPING, EvaluationReason, FlagEvaluationEvent, trace_key
from flagscope._store.values import value_key
from flagscope._validate import check_keys, check_positive_duration

__all__ = [
    "FlagSummary",
    "InventoryReport",
    "TimeBucket",
    "check_inventory",
    "evaluations_per_trace",
    "summarize",
    "summarize_by_flag",
    "time_buckets",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ERROR: Final = EvaluationReason.ERROR.value
_variant = attrgetter("variant")
_reason = attrgetter("reason")
_provider = attrgetter("provider_name")
_error_type = attrgetter("error_type")
_targeting_key = attrgetter("targeting_key")
_trace_id = attrgetter("trace_id")
_timestamp = attrgetter("timestamp")
_value = attrgetter("value")
_HASHABLE_SCALARS: Final = frozenset({str, int, bool, float, type(None)})
_NUMBERS: Final = frozenset({int, bool, float})


def _ordered(counter: Mapping[Any, int]) -> Mapping[str, int]:
    """Freeze counts keyed by text, highest count first, then by key; ``None`` dropped."""
    items = [(str(key), count) for key, count in counter.items() if key is not None]
    if not items:
        return EMPTY_MAPPING
    items.sort(key=lambda item: (-item[1], item[0]))
    return MappingProxyType(dict(items))


def _count_values(events: Collection[FlagEvaluationEvent]) -> Counter[str]:
    values = list(map(_value, events))
    kinds = set(map(type, values))
    keys: Counter[str] = Counter()
    # value_key costs a json.dumps: count distinct values first, convert each once
    # (adding up, since distinct NaN objects share a key). True == 1 == 1.0 in
    # Python, so values are counted as they are only when at most one of bool, int
    # and float is present; otherwise each is paired with its type.
    if kinds <= _HASHABLE_SCALARS and len(kinds & _NUMBERS) <= 1:
        for value, count in Counter(values).items():
            keys[value_key(value)] += count
        return keys
    typed: Counter[tuple[type, Any]] = Counter()
    for value in values:
        kind = type(value)
        if kind in _HASHABLE_SCALARS:
            typed[kind, value] += 1
        else:  # mappings and sequences: not hashable, or not worth hashing
            keys[value_key(value)] += 1
    for (_, value), count in typed.items():
        keys[value_key(value)] += count
    return keys


@dataclass(frozen=True, slots=True)
class FlagSummary:
    """What the stored records of one flag (or of all flags) add up to.

    Attributes:
        flag_key: The flag, or ``None`` for a summary over every flag.
        count: How many records.
        by_variant: Records per variant (records without a variant are not counted).
        by_value: Records per value, keyed by its canonical JSON text (``value_key``).
        by_reason: Records per reason.
        by_provider: Records per provider name.
        by_error_type: Failed records per ``error.type``.
        error_count: Failed records (an error type, or reason ``error``).
        error_rate: ``error_count / count``, 0.0 when there are none.
        distinct_targeting_keys: How many different targeting keys.
        first_seen: The earliest record's time, or ``None``.
        last_seen: The latest record's time, or ``None``.
        evicted: How many records the collector had evicted (from every flag) by then:
            the summary describes what is stored, not everything ever recorded.
        distinct_traces: How many different traces the records belong to.
        max_per_trace: The most records in any one trace (0 without trace ids).
    """

    flag_key: str | None
    count: int
    by_variant: Mapping[str, int]
    by_value: Mapping[str, int]
    by_reason: Mapping[str, int]
    by_provider: Mapping[str, int]
    by_error_type: Mapping[str, int]
    error_count: int
    error_rate: float
    distinct_targeting_keys: int
    first_seen: datetime | None
    last_seen: datetime | None
    evicted: int
    distinct_traces: int
    max_per_trace: int

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as JSON-safe data."""
        return {
            "flag_key": self.flag_key,
            "count": self.count,
            "by_variant": dict(self.by_variant),
            "by_value": dict(self.by_value),
            "by_reason": dict(self.by_reason),
            "by_provider": dict(self.by_provider),
            "by_error_type": dict(self.by_error_type),
            "error_count": self.error_count,
            "error_rate": self.error_rate,
            "distinct_targeting_keys": self.distinct_targeting_keys,
            "first_seen": self.first_seen.isoformat() if self.first_seen else None,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "evicted": self.evicted,
            "distinct_traces": self.distinct_traces,
            "max_per_trace": self.max_per_trace,
        }


def summarize(
    events: Collection[FlagEvaluationEvent], *, flag_key: str | None, evicted: int
) -> FlagSummary:
    """Summarise ``events`` (records of ``flag_key``, or of every flag for ``None``)."""
    count = len(events)
    error_type_list = list(map(_error_type, events))
    reason_list = list(map(_reason, events))
    error_types = Counter(error_type_list)
    reasons: Counter[Hashable] = Counter(reason_list)
    # An error has an error type or reason "error": add those with the reason only.
    error_count = count - error_types.get(None, 0)
    if error_count != count and reasons.get(_ERROR):
        errors_by_reason = compress(error_type_list, map(eq, reason_list, repeat(_ERROR)))
        error_count += sum(map(is_, errors_by_reason, repeat(None)))
    # Counted by the ids' stored form: one per id, without formatting each as text.
    traces = Counter(map(trace_key, events))
    traces.pop(None, None)
    timestamps = list(map(_timestamp, events))
    targeting_keys = set(map(_targeting_key, events))
    targeting_keys.discard(None)
    return FlagSummary(
        flag_key=flag_key,
        count=count,
        by_variant=_ordered(Counter(map(_variant, events))),
        by_value=_ordered(_count_values(events)),
        by_reason=_ordered(reasons),
        by_provider=_ordered(Counter(map(_provider, events))),
        by_error_type=_ordered(error_types),
        error_count=error_count,
        error_rate=error_count / count if count else 0.0,
        distinct_targeting_keys=len(targeting_keys),
        first_seen=min(timestamps) if timestamps else None,
        last_seen=max(timestamps) if timestamps else None,
        evicted=evicted,
        distinct_traces=len(traces),
        max_per_trace=max(traces.values()) if traces else 0,
    )


def group_by_flag(events: Iterable[FlagEvaluationEvent]) -> dict[str, list[FlagEvaluationEvent]]:
    """Split records by flag key, keeping recording order within each flag."""
    groups: dict[str, list[FlagEvaluationEvent]] = {}
    for event in events:
        group = groups.get(event.flag_key)
        if group is None:
            groups[event.flag_key] = [event]
        else:
            group.append(event)
    return groups


def summarize_by_flag(events: Iterable[FlagEvaluationEvent], *, evicted: int) -> list[FlagSummary]:
    """Return one ``FlagSummary`` per flag in ``events``, sorted by flag key."""
    groups = group_by_flag(events)
    return [summarize(groups[key], flag_key=key, evicted=evicted) for key in sorted(groups)]


def evaluations_per_trace(events: Iterable[FlagEvaluationEvent]) -> dict[str, int]:
    """Return records per trace id, most first, then by trace id; no-trace records left out."""
    traces = Counter(map(_trace_id, events))
    traces.pop(None, None)
    return dict(sorted(traces.items(), key=lambda item: (-item[1], item[0])))


@dataclass(frozen=True, slots=True)
class TimeBucket:
    """The records whose time falls in ``[start, end)``.

    Attributes:
        start: The bucket's first instant (inclusive), aware UTC.
        end: Its end (exclusive).
        count: How many records.
        by_flag: Records per flag key.
        by_variant: Records per variant.
        by_reason: Records per reason.
        error_count: Failed records.
    """

    start: datetime
    end: datetime
    count: int
    by_flag: Mapping[str, int]
    by_variant: Mapping[str, int]
    by_reason: Mapping[str, int]
    error_count: int

    def to_dict(self) -> dict[str, Any]:
        """Return the bucket as JSON-safe data."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "count": self.count,
            "by_flag": dict(self.by_flag),
            "by_variant": dict(self.by_variant),
            "by_reason": dict(self.by_reason),
            "error_count": self.error_count,
        }


def _check_width(width: object) -> timedelta:
    return check_positive_duration("width", width)


def _bucket(start: datetime, width: timedelta, events: list[FlagEvaluationEvent]) -> TimeBucket:
    return TimeBucket(
        start=start,
        end=start + width,
        count=len(events),
        by_flag=_ordered(Counter(event.flag_key for event in events)),
        by_variant=_ordered(Counter(map(_variant, events))),
        by_reason=_ordered(Counter(map(_reason, events))),
        error_count=sum(1 for event in events if event.is_error),
    )


def time_buckets(
    events: Iterable[FlagEvaluationEvent],
    width: timedelta,
    *,
    fill_empty: bool = True,
    max_buckets: int = 10_000,
) -> list[TimeBucket]:
    """Count ``events`` in buckets of ``width`` aligned to the Unix epoch, oldest first.

    Raises:
        TypeError: ``width`` is not a ``timedelta``.
        ValueError: ``width`` is not positive, more than ``max_buckets`` buckets, or a
            bucket would end past the year 9999.
    """
    width = _check_width(width)
    groups: dict[int, list[FlagEvaluationEvent]] = {}
    for event in events:
        index = (event.timestamp - _EPOCH) // width
        group = groups.get(index)
        if group is None:
            groups[index] = [event]
        else:
            group.append(event)
    if not groups:
        return []
    indexes: Iterable[int]
    if fill_empty:
        first, last = min(groups), max(groups)
        indexes = range(first, last + 1)
    else:
        indexes = sorted(groups)
    total = len(indexes) if isinstance(indexes, range) else len(groups)
    if total > max_buckets:
        advice = "choose a wider width, narrow the time range"
        advice += " or pass fill_empty=False" if fill_empty else " or raise max_buckets"
        raise ValueError(
            f"{total} buckets of {width} would be built (max_buckets={max_buckets}); {advice}"
        )
    try:
        return [_bucket(_EPOCH + index * width, width, groups.get(index, [])) for index in indexes]
    except OverflowError:
        raise ValueError(
            f"buckets of {width} would end past {datetime.max.year}: choose a narrower width"
        ) from None


@dataclass(frozen=True, slots=True)
class InventoryReport:
    """Declared flag keys checked against the evaluations stored.

    Attributes:
        declared: The declared flag keys, sorted.
        never_evaluated: Declared flags with no stored evaluation.
        undeclared: Evaluated flags that were not declared.
        single_variant: Flags whose successful evaluations all served the same
            variant (or, without variants, the same value), mapped to what they served.
        erroring: Flags with failed evaluations, mapped to how many failed.
    """

    declared: tuple[str, ...]
    never_evaluated: tuple[str, ...]
    undeclared: tuple[str, ...]
    single_variant: Mapping[str, str]
    erroring: Mapping[str, int]

    @property
    def is_clean(self) -> bool:
        """Whether no declared flag went unevaluated, none was undeclared and none failed."""
        return not (self.never_evaluated or self.undeclared or self.erroring)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-safe data."""
        return {
            "declared": list(self.declared),
            "never_evaluated": list(self.never_evaluated),
            "undeclared": list(self.undeclared),
            "single_variant": dict(self.single_variant),
            "erroring": dict(self.erroring),
        }


def _check_declared(declared: object) -> frozenset[str]:
    return check_keys("declared", declared)


def check_inventory(declared: object, events: Iterable[FlagEvaluationEvent]) -> InventoryReport:
    """Check ``events`` against the ``declared`` flag keys.

    Raises:
        TypeError: ``declared`` is a str or holds non-str items.
    """
    keys = _check_declared(declared)
    groups = group_by_flag(events)
    single: dict[str, str] = {}
    erroring: dict[str, int] = {}
    for flag_key in sorted(groups):
        served: set[str] = set()
        errors = 0
        for event in groups[flag_key]:
            if event.is_error:
                errors += 1
            elif event.variant is not None:
                served.add(event.variant)
            else:
                served.add(value_key(event.value))
        if errors:
            erroring[flag_key] = errors
        if len(served) == 1:
            single[flag_key] = next(iter(served))
    return InventoryReport(
        declared=tuple(sorted(keys)),
        never_evaluated=tuple(sorted(keys - groups.keys())),
        undeclared=tuple(sorted(groups.keys() - keys)),
        single_variant=MappingProxyType(single),
        erroring=MappingProxyType(erroring),
    )
