"""Which stored evaluations a query looks at: the filter keyword arguments.

Every query method takes the same keyword arguments (``FilterArgs``); they are
checked once, up front, and combined with AND into an ``EventFilter``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypedDict

from flagscope.mapping import format_span_id, format_trace_id, normalize_reason
from flagscope.models import EvaluationReason, FlagEvaluationEvent

__all__ = ["EventFilter", "FilterArgs", "build_filter", "value_key"]


class FilterArgs(TypedDict, total=False):
    """The filter keyword arguments every query method accepts (all combine with AND).

    Attributes:
        flag_key: One flag key, or several (any of them).
        variant: The variant served.
        value: The value served, compared JSON-normalised (see ``value_key``).
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
_SCALARS: Final = (str, int, bool, type(None))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def value_key(value: Any) -> str:
    """Return the canonical JSON text of a flag value, for comparing and counting.

    Mappings compare by content whatever their key order or spacing (keys are
    sorted), tuples equal lists, and ``True`` differs from ``1``. Non-finite
    floats print as ``NaN``/``Infinity``; anything JSON cannot hold as its ``repr``.
    """
    if value is None:
        return "null"
    kind = type(value)
    if kind is str or kind is int or kind is bool:
        return json.dumps(value, ensure_ascii=False)
    if kind is float and math.isfinite(value):
        return repr(value)
    try:
        return json.dumps(
            _plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr
        )
    except (TypeError, ValueError, RecursionError):
        # Keys of mixed types cannot be sorted; the repr still tells values apart.
        return repr(value)


def _check_text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return value


def _check_time(name: str, value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} must be timezone-aware (records are in UTC), got naive {value.isoformat()}"
        )
    return value


def _check_flag_keys(value: object) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset((value,))
    if not isinstance(value, Collection):
        raise TypeError(
            f"flag_key must be a str or a collection of str, got {type(value).__name__}"
        )
    keys = frozenset(value)
    for key in keys:
        if not isinstance(key, str):
            raise TypeError(f"flag_key must hold only str, got {type(key).__name__}")
    return keys


def _check_id(name: str, value: object, formatter: Callable[[Any], str | None]) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"{name} must be hex text or an int, got {type(value).__name__}")
    formatted = formatter(value)
    if formatted is None:
        raise ValueError(f"{name} {value!r} is not a valid, non-zero id")
    return formatted


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Checked filter arguments, combined with AND.

    Build it with ``build_filter(**kwargs)``. ``flag_keys`` is kept apart from
    the other checks so a query can read only those flags' records.

    Attributes:
        flag_keys: The flags to read, or ``None`` for every flag.
        description: The arguments as ``name=value`` text, for error messages.
        checks: The other tests, each taking a record.
    """

    flag_keys: frozenset[str] | None
    description: str
    checks: tuple[Callable[[FlagEvaluationEvent], bool], ...]

    def matches(self, event: FlagEvaluationEvent) -> bool:
        """Whether ``event`` passes every filter, its flag key included."""
        if self.flag_keys is not None and event.flag_key not in self.flag_keys:
            return False
        return all(check(event) for check in self.checks)

    def apply(self, events: list[FlagEvaluationEvent]) -> list[FlagEvaluationEvent]:
        """Return the records that pass the checks other than the flag key."""
        checks = self.checks
        if not checks:
            return events
        if len(checks) == 1:
            check = checks[0]
            return [event for event in events if check(event)]
        return [event for event in events if all(check(event) for check in checks)]


def _equals(attribute: str, wanted: object) -> Callable[[FlagEvaluationEvent], bool]:
    def check(event: FlagEvaluationEvent) -> bool:
        return bool(getattr(event, attribute) == wanted)

    check.__name__ = f"{attribute}_equals"
    return check


def build_filter(**kwargs: Any) -> EventFilter:
    """Check the filter keyword arguments (``FilterArgs``) and combine them.

    Raises:
        TypeError: An unknown argument, or one of the wrong type.
        ValueError: A naive datetime, an invalid id, or ``since`` after ``until``.
    """
    unknown = sorted(set(kwargs) - FILTER_NAMES)
    if unknown:
        raise TypeError(
            f"unknown filter argument(s) {', '.join(unknown)}; "
            f"the filters are {', '.join(sorted(FILTER_NAMES))}"
        )
    checks: list[Callable[[FlagEvaluationEvent], bool]] = []
    flag_keys: frozenset[str] | None = None
    if "flag_key" in kwargs:
        flag_keys = _check_flag_keys(kwargs["flag_key"])
    for name in _TEXT_FIELDS:
        if name in kwargs:
            checks.append(_equals(name, _check_text(name, kwargs[name])))
    if "reason" in kwargs:
        reason = str(normalize_reason(_check_text("reason", kwargs["reason"])))
        checks.append(lambda event: event.reason == reason)
    if "value" in kwargs:
        checks.append(_value_check(kwargs["value"]))
    if "errors_only" in kwargs:
        errors_only = kwargs["errors_only"]
        if not isinstance(errors_only, bool):
            raise TypeError(f"errors_only must be a bool, got {type(errors_only).__name__}")
        if errors_only:
            checks.append(lambda event: event.is_error)
    if "trace_id" in kwargs:
        checks.append(
            _equals("trace_id", _check_id("trace_id", kwargs["trace_id"], format_trace_id))
        )
    if "span_id" in kwargs:
        checks.append(_equals("span_id", _check_id("span_id", kwargs["span_id"], format_span_id)))
    since = _check_time("since", kwargs["since"]) if "since" in kwargs else None
    until = _check_time("until", kwargs["until"]) if "until" in kwargs else None
    if since is not None and until is not None and since > until:
        raise ValueError(f"since ({since.isoformat()}) is after until ({until.isoformat()})")
    if since is not None:
        start = since
        checks.append(lambda event: event.timestamp >= start)
    if until is not None:
        end = until
        checks.append(lambda event: event.timestamp < end)
    if "predicate" in kwargs:
        predicate = kwargs["predicate"]
        if not callable(predicate):
            raise TypeError(f"predicate must be callable, got {type(predicate).__name__}")
        checks.append(lambda event: bool(predicate(event)))
    return EventFilter(
        flag_keys=flag_keys,
        description=describe(kwargs),
        checks=tuple(checks),
    )


def _value_check(wanted: Any) -> Callable[[FlagEvaluationEvent], bool]:
    key = value_key(wanted)
    kind = type(wanted)
    if kind in _SCALARS:
        # Fast path: a scalar of the same type compares directly; bool vs int stays apart.
        def check_scalar(event: FlagEvaluationEvent) -> bool:
            value = event.value
            if type(value) is kind:
                return bool(value == wanted)
            if type(value) in _SCALARS:
                return False
            return value_key(value) == key

        return check_scalar
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
