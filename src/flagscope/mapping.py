"""Pure functions that turn ``feature_flag`` telemetry into ``FlagEvaluationEvent``s.

Nothing here needs the OpenTelemetry SDK: every way in (span events, spans,
log records, OTLP payloads) hands plain attributes, a timestamp and ids to
``map_evaluation``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, Literal

from flagscope import semconv
from flagscope.limits import limit_evaluation
from flagscope.models import (
    EMPTY_MAPPING,
    EvaluationReason,
    FlagEvaluationEvent,
    build_event,
    normalize_reason,
)

__all__ = [
    "SkipReason",
    "ValueDecoding",
    "decode_value",
    "format_span_id",
    "format_trace_id",
    "freeze_value",
    "map_evaluation",
    "map_known_ids",
    "normalize_reason",
    "timestamp_from_ns",
]

ValueDecoding = Literal["json", "raw"]
VALUE_DECODINGS: Final = ("json", "raw")


class SkipReason(StrEnum):
    """Why a piece of flag telemetry was not recorded."""

    MISSING_FLAG_KEY = "missing_flag_key"
    INVALID_FLAG_KEY = "invalid_flag_key"
    INVALID_ATTRIBUTES = "invalid_attributes"
    INVALID_TIMESTAMP = "invalid_timestamp"
    MAPPING_ERROR = "mapping_error"


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# json.dumps (every Python producer) writes non-finite floats as NaN/Infinity/-Infinity;
# json.loads reads them back, so decode all three alike.
_JSON_LITERALS: Final[Mapping[str, Any]] = {
    "true": True,
    "false": False,
    "null": None,
    "NaN": float("nan"),
    "Infinity": float("inf"),
    "-Infinity": float("-inf"),
}
_HEX_DIGITS: Final = frozenset("0123456789abcdef")
_TRACE_ID_LIMIT: Final = 1 << 128
_SPAN_ID_LIMIT: Final = 1 << 64
_JSON_START: Final = frozenset('{["-0123456789tfn')


def timestamp_from_ns(ns: int) -> datetime:
    """Return the aware UTC datetime of a Unix time in nanoseconds (to the µs).

    Raises:
        TypeError: ``ns`` is not an int.
        OverflowError: ``ns`` is outside what ``datetime`` holds.
    """
    if type(ns) is not int:
        raise TypeError(f"timestamp must be int nanoseconds, got {type(ns).__name__}")
    # Positional: timedelta's keyword form costs a third more on the hot path.
    return _EPOCH + timedelta(0, 0, ns // 1000)


def _format_id(value: Any, width: int) -> str | None:
    if type(value) is int:
        if value <= 0 or value >= 1 << (width * 4):
            return None
        return format(value, f"0{width}x")
    if isinstance(value, (bytes, bytearray)):
        if len(value) * 2 != width or not any(value):
            return None
        return value.hex()
    if isinstance(value, str):
        text = value.lower()
        # Not int(text, 16): it also takes "0x", "+", "_" and spaces, which are not ids.
        if len(text) != width or text.strip("0") == "" or not _HEX_DIGITS.issuperset(text):
            return None
        return text
    return None


def format_trace_id(value: Any) -> str | None:
    """Return a trace id (SDK int, OTLP bytes or hex text) as 32 lowercase hex chars.

    The invalid all-zero id, and anything that is not an id, gives ``None``.
    """
    # The SDK's valid int ids first: every span the exporter sees has them. ``%`` is
    # markedly faster than ``format()`` for this.
    if type(value) is int and 0 < value < _TRACE_ID_LIMIT:
        return "%032x" % value  # noqa: UP031
    return _format_id(value, 32)


def format_span_id(value: Any) -> str | None:
    """Return a span id (SDK int, OTLP bytes or hex text) as 16 lowercase hex chars."""
    if type(value) is int and 0 < value < _SPAN_ID_LIMIT:
        return "%016x" % value  # noqa: UP031
    return _format_id(value, 16)


_CONTAINERS: Final = (dict, list, tuple)


def freeze_value(value: Any) -> Any:
    """Return ``value`` read-only: dicts as ``MappingProxyType``, lists as tuples, deeply.

    Log attributes may hold maps, with arrays as tuples, so maps inside tuples are
    frozen too; a tuple holding no container is already read-only and is returned
    as it is.
    """
    if isinstance(value, dict):
        return MappingProxyType({k: freeze_value(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        if type(value) is tuple and not any(isinstance(item, _CONTAINERS) for item in value):
            return value
        return tuple(freeze_value(v) for v in value)
    return value


def decode_value(value: Any, decoding: ValueDecoding = "json") -> Any:
    """Decode a ``feature_flag.result.value`` attribute.

    Python producers JSON-encode every value, so a string that parses as JSON is
    decoded (objects become read-only mappings, arrays tuples). Anything else,
    including a string that is not valid JSON, is kept as it came, except that
    maps and lists in it (log attributes may hold them) are frozen the same way.
    ``"raw"`` keeps the attribute as sent, frozen alike.
    """
    if decoding == "raw" or type(value) is not str:
        if isinstance(value, _CONTAINERS):
            return freeze_value(value)
        return value
    literal = _JSON_LITERALS.get(value, value)
    if literal is not value:
        return literal
    if not value or value[0] not in _JSON_START:
        return value
    try:
        decoded = json.loads(value)
    except (ValueError, RecursionError):
        return value
    return freeze_value(decoded)


def _text(value: Any) -> str | None:
    return value if type(value) is str else None


def _first_text(get: Callable[[str], Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = get(key)
        if type(value) is str:
            return value
    return None


def _taken_keys(get: Callable[[str], Any]) -> set[str]:
    """Return the keys a field takes: the first string of each alias group, and the value."""
    taken = {semconv.KEY}
    for keys in _TEXT_FIELD_KEYS:
        for key in keys:
            if type(get(key)) is str:
                taken.add(key)
                break
    if get(semconv.RESULT_VALUE) is not None:
        taken.add(semconv.RESULT_VALUE)
    return taken


def map_evaluation(
    attributes: Mapping[str, Any],
    *,
    timestamp_ns: int | None = None,
    trace_id: Any = None,
    span_id: Any = None,
    service_name: str | None = None,
    value_decoding: ValueDecoding = "json",
    body_value: Any = None,
) -> FlagEvaluationEvent | SkipReason:
    """Map one evaluation's attributes to a record, or say why it was skipped.

    Args:
        attributes: The event's (or span's, or log record's) attributes.
        timestamp_ns: When it happened, Unix nanoseconds; ``None`` means now.
        trace_id: The trace id (int, bytes or hex); invalid ids give ``None``.
        span_id: The span id (int, bytes or hex).
        service_name: The resource's ``service.name``.
        value_decoding: ``"json"`` decodes JSON-encoded values, ``"raw"`` keeps them.
        body_value: The log body's ``value`` field (semconv v1.29 to v1.33), used
            when ``feature_flag.result.value`` is absent.

    Returns:
        The record, or the ``SkipReason`` when the input is not a valid evaluation.
    """
    if not isinstance(attributes, Mapping):
        return SkipReason.INVALID_ATTRIBUTES
    return map_known_ids(
        attributes,
        timestamp_ns=timestamp_ns,
        trace_id=format_trace_id(trace_id),
        span_id=format_span_id(span_id),
        service_name=service_name if type(service_name) is str else None,
        value_decoding=value_decoding,
        body_value=body_value,
    )


def map_known_ids(
    attributes: Mapping[str, Any],
    *,
    timestamp_ns: int | None,
    trace_id: str | None,
    span_id: str | None,
    service_name: str | None,
    value_decoding: ValueDecoding,
    body_value: Any = None,
) -> FlagEvaluationEvent | SkipReason:
    """``map_evaluation`` for callers that already hold hex ids and a checked mapping.

    The exporters format a span's ids once and map many events with them.
    """
    attributes, body_value = limit_evaluation(attributes, body_value)
    get = attributes.get
    flag_key = get(semconv.KEY)
    if type(flag_key) is not str:
        return SkipReason.MISSING_FLAG_KEY if flag_key is None else SkipReason.INVALID_FLAG_KEY
    if not flag_key:
        return SkipReason.INVALID_FLAG_KEY

    if timestamp_ns is None:
        timestamp_ns = time.time_ns()
    try:
        timestamp = timestamp_from_ns(timestamp_ns)
    except (TypeError, OverflowError, ValueError):
        return SkipReason.INVALID_TIMESTAMP

    # The newest spellings first: all that recent producers send. ``present`` counts
    # the keys found, so older spellings and rarer keys are only looked up when the
    # mapping holds more keys than that (SDK attributes make a missed lookup costly).
    raw_value = get(semconv.RESULT_VALUE)
    raw_reason = get(_REASON_KEY)
    variant = get(_VARIANT_KEY)
    context_id = get(semconv.CONTEXT_ID)
    provider_name = get(_PROVIDER_KEY)
    present = (
        1
        + (raw_value is not None)
        + (raw_reason is not None)
        + (variant is not None)
        + (context_id is not None)
        + (provider_name is not None)
    )
    size = len(attributes)
    error_type = flag_set_id = version = error_message = None
    if type(raw_reason) is not str:
        raw_reason = _first_text(get, _OLDER_REASON_KEYS) if present < size else None
    if type(variant) is not str:
        variant = _first_text(get, _OLDER_VARIANT_KEYS) if present < size else None
    if type(provider_name) is not str:
        provider_name = _first_text(get, _OLDER_PROVIDER_KEYS) if present < size else None
    if type(context_id) is not str:
        context_id = None
    if present < size:
        error_type = _text(get(semconv.ERROR_TYPE))
        flag_set_id = _text(get(semconv.SET_ID))
        version = _text(get(semconv.VERSION))
        error_message = _first_text(get, semconv.ERROR_MESSAGE_KEYS)

    # Every key no field took stays on the record. Each field took at most one key.
    taken = (
        1
        + (raw_value is not None)
        + (raw_reason is not None)
        + (variant is not None)
        + (context_id is not None)
        + (provider_name is not None)
        + (error_type is not None)
        + (flag_set_id is not None)
        + (version is not None)
        + (error_message is not None)
    )
    extra = EMPTY_MAPPING
    if size > taken:
        taken_keys = _taken_keys(get)
        extra = MappingProxyType({k: v for k, v in attributes.items() if k not in taken_keys})

    reason: EvaluationReason | str
    if raw_reason:
        reason = normalize_reason(raw_reason)
    elif error_type is not None:
        reason = EvaluationReason.ERROR
    else:
        reason = EvaluationReason.UNKNOWN

    if raw_value is None:
        raw_value = body_value
    value = decode_value(raw_value, value_decoding) if raw_value is not None else None

    return build_event(
        timestamp=timestamp,
        flag_key=sys.intern(flag_key),
        value=value,
        reason=reason,
        variant=sys.intern(variant) if variant is not None else None,
        targeting_key=context_id or None,
        provider_name=sys.intern(provider_name) if provider_name is not None else None,
        flag_set_id=flag_set_id,
        version=version,
        error_type=error_type,
        error_message=error_message,
        trace_id=trace_id,
        span_id=span_id,
        service_name=service_name,
        attributes=extra,
    )


_REASON_KEY, *_older_reasons = semconv.REASON_KEYS
_VARIANT_KEY, *_older_variants = semconv.VARIANT_KEYS
_PROVIDER_KEY, *_older_providers = semconv.PROVIDER_KEYS
_OLDER_REASON_KEYS: Final = tuple(_older_reasons)
_OLDER_VARIANT_KEYS: Final = tuple(_older_variants)
_OLDER_PROVIDER_KEYS: Final = tuple(_older_providers)
# The text fields' alias groups, newest spelling first (``_taken_keys`` walks them).
_TEXT_FIELD_KEYS: Final = (
    (semconv.ERROR_TYPE,),
    semconv.REASON_KEYS,
    (semconv.CONTEXT_ID,),
    semconv.VARIANT_KEYS,
    semconv.PROVIDER_KEYS,
    (semconv.SET_ID,),
    (semconv.VERSION,),
    semconv.ERROR_MESSAGE_KEYS,
)
