"""Which stored evaluations a query looks at: the filter keyword arguments.

Every query method takes the same keyword arguments (``FilterArgs``); they are
checked once, up front, and combined with AND into an ``EventFilter``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import compress, repeat
from operator import attrgetter, eq, ge, lt
from types import MappingProxyType
from typing import Any, Final, TypedDict

from flagscope._store.records import (
    EvaluationReason,
    FlagEvaluationEvent,
    format_span_id,
    format_trace_id,
    normalize_reason,
    raw_value,
)
from flagscope._store.values import value_key
from flagscope._validate import check_aware_datetime, check_bool, check_keys, check_str

__all__ = ["EventFilter", "FilterArgs", "build_filter", "describe", "value_key"]


class FilterArgs(TypedDict, total=False):
    """The filter keyword arguments every query method accepts (all combine with AND).

    Attributes:
        flag_key: One flag key, or several (any of them).
        variant: The variant served.
        value: The value served, compared by flagscope's one rule (``flagscope._store.values``:
            ``1`` equals ``1.0``, ``True`` is not ``1``, NaN matches NaN).
        reason: The reason, case-insensitive (``"STATIC"`` matches ``static``).
        provider_name: The provider's name.
        error_type: The ``error.type`` of failed evaluations.
        errors_only: ``True`` keeps only failed evaluations; ``False`` filters nothing.
        targeting_key: ``feature_flag.context.id``.
        trace_id: The trace id, hex text or the SDK's int.
        span_id: The span id, hex text or the SDK's int.
        service_name: The resource's ``service.name``.
        since: Evaluations at or after this aware datetime.
        until: Evaluations strictly before this aware datetime.
        predicate: Any further test; called with each candidate record.
    """

    flag_key: str | Collection[str]
    variant: str
    value: Any
    reason: str | EvaluationReason
    provider_name: str
    error_type: str
    errors_only: bool
    targeting_key: str
    trace_id: str | int
    span_id: str | int
    service_name: str
    since: datetime
    until: datetime
    predicate: Callable[[FlagEvaluationEvent], bool]


FILTER_NAMES: Final = frozenset(FilterArgs.__annotations__)
_TEXT_FIELDS: Final = ("variant", "provider_name", "error_type", "targeting_key", "service_name")
_REASON: Final = attrgetter("reason")
_TRACE_ID: Final = attrgetter("trace_id")
_SPAN_ID: Final = attrgetter("span_id")
_TIMESTAMP: Final = attrgetter("timestamp")


def _check_flag_keys(value: object) -> frozenset[str]:
    return check_keys("flag_key", value, one_str=True)


def _check_id(name: str, value: object, formatter: Callable[[Any], str | None]) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"{name} must be hex text or an int, got {type(value).__name__}")
    formatted = formatter(value)
    if formatted is None:
        raise ValueError(f"{name} {value!r} is not a valid, non-zero id")
    return formatted


# One comparison: ``op(getter(event), operand)``; run over many records at C speed.
Comparison = tuple[Callable[[FlagEvaluationEvent], Any], Callable[[Any, Any], bool], Any]


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Checked filter arguments, combined with AND.

    Build it with ``build_filter(**kwargs)``. ``flag_keys`` is kept apart so a
    query can read only those flags' records; field comparisons are kept apart
    from other checks so ``apply`` can run them without a Python call per record.

    Attributes:
        flag_keys: The flags to read, or ``None`` for every flag.
        comparisons: ``(getter, operator, operand)`` triples, e.g. variant == "on".
        checks: The other tests (value, errors only, predicate), each taking a record.
        arguments: The keyword arguments as given, for ``description``.
    """

    flag_keys: frozenset[str] | None
    comparisons: tuple[Comparison, ...]
    checks: tuple[Callable[[FlagEvaluationEvent], bool], ...]
    arguments: Mapping[str, Any]

    @property
    def description(self) -> str:
        """The arguments as ``name=value`` text, for messages."""
        return describe(self.arguments)

    @property
    def selects_all_of_its_flags(self) -> bool:
        """Whether every record of ``flag_keys`` (or every record) passes."""
        return not self.comparisons and not self.checks

    def matches(self, event: FlagEvaluationEvent) -> bool:
        """Whether ``event`` passes every filter, its flag key included."""
        if self.flag_keys is not None and event.flag_key not in self.flag_keys:
            return False
        for getter, op, operand in self.comparisons:
            if not op(getter(event), operand):
                return False
        return all(check(event) for check in self.checks)

    def apply(self, events: list[FlagEvaluationEvent]) -> list[FlagEvaluationEvent]:
        """Return the records that pass the filters other than the flag key, in order."""
        for getter, op, operand in self.comparisons:
            if not events:
                return events
            # Each pass narrows the list: map/compress keep the loop in C.
            events = list(compress(events, map(op, map(getter, events), repeat(operand))))
        for check in self.checks:
            if not events:
                return events
            events = [event for event in events if check(event)]
        return events


def build_filter(**kwargs: Any) -> EventFilter:
    """Check the filter keyword arguments (``FilterArgs``) and combine them.

    Raises:
        TypeError: An unknown argument, or one of the wrong type.
        ValueError: A naive datetime, an invalid id, or ``since`` after ``until``.
    """
    if not kwargs.keys() <= FILTER_NAMES:
        unknown = sorted(set(kwargs) - FILTER_NAMES)
        raise TypeError(
            f"unknown filter argument(s) {', '.join(unknown)}; "
            f"the filters are {', '.join(sorted(FILTER_NAMES))}"
        )
    flag_keys: frozenset[str] | None = None
    if "flag_key" in kwargs:
        flag_keys = _check_flag_keys(kwargs["flag_key"])
        if len(kwargs) == 1:
            return EventFilter(flag_keys, (), (), MappingProxyType(kwargs))
    comparisons: list[Comparison] = []
    checks: list[Callable[[FlagEvaluationEvent], bool]] = []
    for name in _TEXT_FIELDS:
        if name in kwargs:
            comparisons.append((attrgetter(name), eq, check_str(name, kwargs[name])))
    if "reason" in kwargs:
        reason = str(normalize_reason(check_str("reason", kwargs["reason"])))
        comparisons.append((_REASON, eq, reason))
    if "trace_id" in kwargs:
        trace_id = _check_id("trace_id", kwargs["trace_id"], format_trace_id)
        comparisons.append((_TRACE_ID, eq, trace_id))
    if "span_id" in kwargs:
        span_id = _check_id("span_id", kwargs["span_id"], format_span_id)
        comparisons.append((_SPAN_ID, eq, span_id))
    since = check_aware_datetime("since", kwargs["since"]) if "since" in kwargs else None
    until = check_aware_datetime("until", kwargs["until"]) if "until" in kwargs else None
    if since is not None and until is not None and since > until:
        raise ValueError(f"since ({since.isoformat()}) is after until ({until.isoformat()})")
    if since is not None:
        comparisons.append((_TIMESTAMP, ge, since))
    if until is not None:
        comparisons.append((_TIMESTAMP, lt, until))
    if "value" in kwargs:
        checks.append(_value_check(kwargs["value"]))
    if "errors_only" in kwargs:
        errors_only = kwargs["errors_only"]
        check_bool("errors_only", errors_only)
        if errors_only:
            checks.append(_is_error)
    if "predicate" in kwargs:
        predicate = kwargs["predicate"]
        if not callable(predicate):
            raise TypeError(f"predicate must be callable, got {type(predicate).__name__}")
        checks.append(lambda event: bool(predicate(event)))
    return EventFilter(flag_keys, tuple(comparisons), tuple(checks), MappingProxyType(kwargs))


def _is_error(event: FlagEvaluationEvent) -> bool:
    return event.is_error


def _value_check(wanted: Any) -> Callable[[FlagEvaluationEvent], bool]:
    """The ``value`` filter: flagscope's one equality rule (``flagscope._store.values``)."""
    key = value_key(wanted)
    kind = type(wanted)
    # Fast paths for scalars, on the stored form (no copy of container values):
    # each gives what comparing value_key would, without a json.dumps per record.
    if kind is str:
        return lambda event: (value := raw_value(event)) == wanted and type(value) is str
    if kind is bool:
        return lambda event: raw_value(event) is wanted
    if wanted is None:
        return lambda event: raw_value(event) is None
    if (kind is int or kind is float) and wanted == wanted:

        def check_number(event: FlagEvaluationEvent) -> bool:
            value = raw_value(event)
            number = type(value)
            return (number is int or number is float) and bool(value == wanted)

        return check_number
    return lambda event: value_key(event.value) == key


def describe(kwargs: Mapping[str, Any]) -> str:
    """Return filter arguments as ``name=value`` text, or ``"any evaluation"``."""
    parts = []
    for name in sorted(kwargs):
        value = kwargs[name]
        if name == "flag_key" and not isinstance(value, str):
            value = sorted(str(item) for item in value)
        elif name == "predicate":
            value = getattr(value, "__qualname__", None) or repr(value)
            parts.append(f"predicate={value}")
            continue
        elif isinstance(value, datetime):
            parts.append(f"{name}={value.isoformat()}")
            continue
        elif isinstance(value, EvaluationReason):
            value = value.value
        parts.append(f"{name}={value!r}")
    return ", ".join(parts) if parts else "any evaluation"
