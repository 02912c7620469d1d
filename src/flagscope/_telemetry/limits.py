"""Per-evaluation attribute limits, in the spirit of the OpenTelemetry SDK's.

The SDK bounds what one span may carry (``OTEL_ATTRIBUTE_COUNT_LIMIT``,
``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``); telemetry that reaches flagscope over OTLP
was bounded by nobody. The mapper calls ``limit_evaluation`` once per evaluation, for
every way in (span and log exporters, the OTLP receiver), so they all keep the same
record for the same input, and one evaluation cannot hold more than its share of a
collector's byte budget.

What is cut is never cut silently: the record gets an attribute saying how much
(``flagscope.dropped_attributes_count``, ``flagscope.truncated_values_count``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import islice
from types import MappingProxyType
from typing import Any, Final

from flagscope._telemetry import semconv
from flagscope._validate import check_int

__all__ = [
    "DEFAULT_LIMITS",
    "DROPPED_ATTRIBUTES_KEY",
    "TRUNCATED_VALUES_KEY",
    "AttributeLimits",
    "limit_evaluation",
]

DROPPED_ATTRIBUTES_KEY: Final = "flagscope.dropped_attributes_count"
TRUNCATED_VALUES_KEY: Final = "flagscope.truncated_values_count"

# Always kept, whatever their number: the fields of the record come from them.
_FLAG_KEYS: Final = frozenset(
    {
        semconv.KEY,
        semconv.RESULT_VALUE,
        *semconv.REASON_KEYS,
        *semconv.VARIANT_KEYS,
        *semconv.PROVIDER_KEYS,
        *semconv.ERROR_MESSAGE_KEYS,
        semconv.CONTEXT_ID,
        semconv.SET_ID,
        semconv.VERSION,
        semconv.ERROR_TYPE,
        semconv.LOG_EVENT_NAME_ATTRIBUTE,
    }
)
_SCALARS: Final = frozenset({bool, int, float, type(None)})


def _check_positive(name: str, value: object) -> None:
    check_int(name, value, minimum=1)


@dataclass(frozen=True, slots=True)
class AttributeLimits:
    """How much one evaluation may carry.

    Attributes:
        max_attributes: Attributes kept per evaluation; the flag keys
            (``feature_flag.*``, ``error.type`` ...) are always kept, the others in
            the order they came until this many are kept in all (the SDK's
            ``OTEL_ATTRIBUTE_COUNT_LIMIT`` defaults to 128 too).
        max_value_length: The longest string or bytes value (and attribute key) kept,
            in characters or bytes; arrays and maps keep this many items.
        max_depth: Arrays and maps nested deeper than this are dropped (``None``).

    Raises:
        TypeError: A limit is not an int.
        ValueError: A limit is below 1.
    """

    max_attributes: int = 128
    max_value_length: int = 8192
    max_depth: int = 8

    def __post_init__(self) -> None:
        _check_positive("max_attributes", self.max_attributes)
        _check_positive("max_value_length", self.max_value_length)
        _check_positive("max_depth", self.max_depth)


DEFAULT_LIMITS: Final = AttributeLimits()


class _Cuts:
    __slots__ = ("truncated",)

    def __init__(self) -> None:
        self.truncated = 0


def _limit(value: Any, limits: AttributeLimits, depth: int, cuts: _Cuts) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    length = limits.max_value_length
    if isinstance(value, (str, bytes, bytearray)):
        if len(value) > length:
            cuts.truncated += 1
            return value[:length]
        return value
    if isinstance(value, Mapping):
        if depth >= limits.max_depth:
            cuts.truncated += 1
            return None
        before = cuts.truncated
        if len(value) > length:
            cuts.truncated += 1
        items = {
            _limit(key, limits, depth + 1, cuts): _limit(item, limits, depth + 1, cuts)
            for key, item in islice(value.items(), length)
        }
        if cuts.truncated == before:
            return value
        return MappingProxyType(items)
    if isinstance(value, (list, tuple)):
        if depth >= limits.max_depth:
            cuts.truncated += 1
            return None
        before = cuts.truncated
        if len(value) > length:
            cuts.truncated += 1
        kept = tuple(_limit(item, limits, depth + 1, cuts) for item in islice(value, length))
        if cuts.truncated == before:
            return value
        return kept
    return value


def limit_evaluation(
    attributes: Mapping[str, Any],
    body_value: Any = None,
    limits: AttributeLimits = DEFAULT_LIMITS,
) -> tuple[Mapping[str, Any], Any]:
    """Apply ``limits`` to one evaluation's attributes and its log-body value.

    Returns the same objects when nothing is over a limit (the usual case costs a
    scan of the values); otherwise new ones, with the markers
    ``DROPPED_ATTRIBUTES_KEY`` (attributes left out) and ``TRUNCATED_VALUES_KEY``
    (strings, keys, arrays or maps cut) among the attributes, so a record shows
    what it lost.

    Args:
        attributes: The evaluation's attributes, as the mapper got them.
        body_value: The log body's ``value`` field, or ``None``.
        limits: The limits; ``DEFAULT_LIMITS`` unless given.
    """
    length = limits.max_value_length
    if len(attributes) <= limits.max_attributes and (
        body_value is None
        or type(body_value) in _SCALARS
        or (type(body_value) is str and len(body_value) <= length)
    ):
        # The usual case: a few scalars and short strings, nothing to cut.
        for value in attributes.values():
            if type(value) is str:
                if len(value) > length:
                    break
            elif type(value) not in _SCALARS:
                break
        else:
            return attributes, body_value
    cuts = _Cuts()
    if body_value is not None:
        body_value = _limit(body_value, limits, 0, cuts)
    kept: dict[str, Any] = {}
    others = 0
    dropped = 0
    room = limits.max_attributes
    for key, value in attributes.items():
        if key not in _FLAG_KEYS:
            if others >= room:
                dropped += 1
                continue
            others += 1
            if type(key) is str and len(key) > length:
                cuts.truncated += 1
                key = key[:length]
                if key in kept:
                    dropped += 1
                    continue
        kept[key] = _limit(value, limits, 0, cuts)
    # The flag keys count towards the limit too: drop others from the end to make room.
    over = len(kept) - room
    if over > 0:
        removable = [key for key in reversed(kept) if key not in _FLAG_KEYS][:over]
        for key in removable:
            del kept[key]
        dropped += len(removable)
    if dropped:
        kept[DROPPED_ATTRIBUTES_KEY] = dropped
    if cuts.truncated:
        kept[TRUNCATED_VALUES_KEY] = cuts.truncated
    return kept, body_value
