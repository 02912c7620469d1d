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
from typing import Any, Final, Literal, overload

from flagscope._store.records import (
    EMPTY_MAPPING,
    NORMALIZED_REASONS,
    EvaluationReason,
    FlagEvaluationEvent,
    JsonText,
    format_span_id,
    format_trace_id,
    new_event,
    normalize_reason,
    span_id_key,
    stored_value,
    trace_id_key,
)
from flagscope._store.values import clean_text
from flagscope._telemetry import semconv
from flagscope._telemetry.limits import DEFAULT_LIMITS, limit_evaluation

__all__ = [
    "VALUE_DECODINGS",
    "SkipReason",
    "ValueDecoding",
    "decode_value",
    "format_span_id",
    "format_trace_id",
    "freeze_value",
    "map_attributes",
    "map_evaluation",
    "map_known_ids",
    "map_typical",
    "normalize_reason",
    "stored_from",
    "string_rule",
    "timestamp_from_ns",
]

ValueDecoding = Literal["auto", "json", "raw"]
VALUE_DECODINGS: Final = ("auto", "json", "raw")


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


def freeze_value(value: Any) -> Any:
    """Return ``value`` read-only: dicts as ``MappingProxyType``, lists as tuples, deeply.

    For attributes the record keeps beside its fields (log attributes may hold
    maps, with arrays as tuples); strings in it get lone surrogates replaced.
    """
    if isinstance(value, Mapping):
        return MappingProxyType({clean_text(str(k)): freeze_value(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze_value(v) for v in value)
    if type(value) is str:
        return clean_text(value)
    return value


# How ``auto`` treats a string value, per producer (README, "What gets recorded"):
#
#   provider ``LaunchDarkly`` (Python ldotel, Node node-server-sdk-otel)  -> JSON
#       both hooks JSON-encode every value ('"42"' is the string "42")
#   resource ``telemetry.sdk.language`` = ``python`` (OpenFeature hook 0.3) -> JSON
#       the hook JSON-encodes every value; the in-process exporters assume
#       Python when the resource does not say (the hook runs in this process)
#   anything else (JS OpenFeature hooks 1.0, Go, Java, .NET, unknown)   -> CONTAINERS
#       strings are sent as they are; only objects and arrays, which span
#       attributes cannot hold, arrive as JSON text. So a string that is a JSON
#       object or array is decoded, every other string stays a string. The one
#       case the telemetry cannot tell apart: a *string* flag whose value is JSON
#       object or array text is stored as the object or array.
#
# Typed attributes (bool, int, float, arrays, log maps) are kept as sent, as
# plain JSON-model values, whatever the producer.
_JSON: Final = 0
_CONTAINERS: Final = 1
_RAW: Final = 2
_LAUNCHDARKLY: Final = semconv.PROVIDER_LAUNCHDARKLY
_PYTHON: Final = "python"


def string_rule(decoding: ValueDecoding, language: str | None, provider_name: str | None) -> int:
    """Return how string values are read for this producer (see the table above)."""
    if decoding == "auto":
        if provider_name == _LAUNCHDARKLY or language == _PYTHON:
            return _JSON
        return _CONTAINERS
    return _JSON if decoding == "json" else _RAW


def _stored_json_text(text: str, decoded: Any) -> Any:
    """The stored form of a container decoded from ``text``."""
    # The producer's own text is kept when it decodes to clean strings: no escape
    # in it can have made a lone surrogate (the text itself was cleaned before).
    if "\\u" not in text:
        return JsonText(text)
    return stored_value(decoded)


def stored_from(value: Any, rule: int) -> Any:
    """Decode one ``feature_flag.result.value`` attribute into its stored form.

    ``rule`` comes from ``string_rule``. Containers come back as ``JsonText``
    (``FlagEvaluationEvent.value`` decodes it per read), everything else plain.
    """
    kind = type(value)
    if kind is bool or kind is int or kind is float or value is None:
        return value
    if kind is not str:
        return stored_value(value)
    text = value if value.isascii() else clean_text(value)
    if rule == _RAW or not text:
        return text
    if rule == _JSON:
        literal = _JSON_LITERALS.get(text, text)
        if literal is not text:
            return literal
        if text[0] not in _JSON_START:
            return text
    elif text[0] not in "{[" and not text[0].isspace():
        return text
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        return text
    kind = type(decoded)
    if kind is dict or kind is list:
        return _stored_json_text(text, decoded)
    if rule == _CONTAINERS:
        return text
    return clean_text(decoded) if kind is str else decoded


def decode_value(
    value: Any,
    decoding: ValueDecoding = "auto",
    *,
    language: str | None = None,
    provider_name: str | None = None,
) -> Any:
    """Decode a ``feature_flag.result.value`` attribute as the mapper does.

    Args:
        value: The attribute as sent.
        decoding: ``"auto"`` decides from the producer (``language``, the
            resource's ``telemetry.sdk.language``, and ``provider_name``);
            ``"json"`` decodes every string that is JSON text; ``"raw"`` keeps
            strings as sent.
        language: The producer's ``telemetry.sdk.language``, if known.
        provider_name: The evaluation's provider name, if known.

    Returns:
        A plain JSON-model value: dicts, lists, str, int, float, bool or None.
    """
    stored = stored_from(value, string_rule(decoding, language, provider_name))
    return json.loads(stored) if type(stored) is JsonText else stored


def _text(value: Any) -> str | None:
    return value if type(value) is str else None


def _first_text(get: Callable[[str], Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = get(key)
        if type(value) is str:
            return value
    return None


def _taken_keys(get: Callable[[str], Any], attributes: Mapping[str, Any]) -> set[str]:
    """Return the keys a field takes: the first string of each alias group, and the value."""
    taken = {semconv.KEY}
    for keys in _TEXT_FIELD_KEYS:
        for key in keys:
            if type(get(key)) is str:
                taken.add(key)
                break
    if semconv.RESULT_VALUE in attributes:
        taken.add(semconv.RESULT_VALUE)
    return taken


@overload
def _clean(text: str) -> str: ...
@overload
def _clean(text: str | None) -> str | None: ...
def _clean(text: str | None) -> str | None:
    return text if text is None or text.isascii() else clean_text(text)


def map_evaluation(
    attributes: Mapping[str, Any],
    *,
    timestamp_ns: int | None = None,
    trace_id: Any = None,
    span_id: Any = None,
    parent_span_id: Any = None,
    service_name: str | None = None,
    language: str | None = None,
    value_decoding: ValueDecoding = "auto",
    body_value: Any = None,
    evaluation_duration_ms: float | None = None,
) -> FlagEvaluationEvent | SkipReason:
    """Map one evaluation's attributes to a record, or say why it was skipped.

    Args:
        attributes: The event's (or span's, or log record's) attributes.
        timestamp_ns: When it happened, Unix nanoseconds; ``None`` means now.
        trace_id: The trace id (int, bytes or hex); invalid ids give ``None``.
        span_id: The span id (int, bytes or hex).
        parent_span_id: The parent of ``span_id``, where known.
        service_name: The resource's ``service.name``.
        language: The resource's ``telemetry.sdk.language``: with ``"auto"``
            decoding it says how the producer encodes values.
        value_decoding: ``"auto"`` (per producer), ``"json"`` or ``"raw"``.
        body_value: The log body's ``value`` field (semconv v1.29 to v1.33), used
            when ``feature_flag.result.value`` is absent.
        evaluation_duration_ms: How long the evaluation took, where known.

    Returns:
        The record, or the ``SkipReason`` when the input is not a valid evaluation.
    """
    if not isinstance(attributes, Mapping):
        return SkipReason.INVALID_ATTRIBUTES
    return map_attributes(
        attributes,
        timestamp_ns,
        trace_id_key(trace_id),
        span_id_key(span_id),
        span_id_key(parent_span_id) if parent_span_id is not None else None,
        clean_text(service_name) if type(service_name) is str else None,
        language if type(language) is str else None,
        value_decoding,
        body_value,
        evaluation_duration_ms,
    )


def map_known_ids(
    attributes: Mapping[str, Any],
    *,
    timestamp_ns: int | None,
    trace_id: str | None,
    span_id: str | None,
    service_name: str | None,
    value_decoding: ValueDecoding,
    language: str | None = None,
    parent_span_id: str | None = None,
    body_value: Any = None,
    evaluation_duration_ms: float | None = None,
) -> FlagEvaluationEvent | SkipReason:
    """``map_evaluation`` for callers that already hold hex ids and a checked mapping.

    The exporters and the OTLP decoders format a span's ids once and map many
    events with them; ``service_name`` must already be clean text (``clean_text``).
    """
    return map_attributes(
        attributes,
        timestamp_ns,
        trace_id,
        span_id,
        parent_span_id,
        service_name,
        language,
        value_decoding,
        body_value,
        evaluation_duration_ms,
    )


def map_attributes(
    attributes: Mapping[str, Any],
    timestamp_ns: int | None,
    trace_id: int | str | None,
    span_id: int | str | None,
    parent_span_id: int | str | None,
    service_name: str | None,
    language: str | None,
    value_decoding: ValueDecoding,
    body_value: Any,
    evaluation_duration_ms: float | None,
    limited: bool = False,
    /,
) -> FlagEvaluationEvent | SkipReason:
    """``map_known_ids`` with every argument positional, for the hot paths.

    ``limited`` says the attributes already went through ``limit_evaluation``.
    Ids may also be in their stored form (``trace_id_key``): the ways in pass
    ints, which the record keeps as they are.

    The classifier maps every evaluation through here: a call with ten keywords
    costs measurably more than one with ten positions.
    """
    get = attributes.get
    flag_key = get(semconv.KEY)
    if type(flag_key) is not str:
        return SkipReason.MISSING_FLAG_KEY if flag_key is None else SkipReason.INVALID_FLAG_KEY
    if not flag_key:
        return SkipReason.INVALID_FLAG_KEY

    if timestamp_ns is None:
        timestamp_ns = time.time_ns()
    # timestamp_from_ns, inline: one Python call less for every evaluation.
    if type(timestamp_ns) is not int:
        return SkipReason.INVALID_TIMESTAMP
    try:
        timestamp = _EPOCH + timedelta(0, 0, timestamp_ns // 1000)
    except (OverflowError, ValueError):
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
        error_type = _clean(_text(get(semconv.ERROR_TYPE)))
        flag_set_id = _clean(_text(get(semconv.SET_ID)))
        version = _clean(_text(get(semconv.VERSION)))
        error_message = _clean(_first_text(get, semconv.ERROR_MESSAGE_KEYS))
    size_limit = _VALUE_LENGTH_LIMIT
    if not limited and (
        present < size
        or (body_value is not None and type(body_value) not in _PLAIN_SCALARS)
        or (type(raw_value) is not str and type(raw_value) not in _PLAIN_SCALARS)
        or len(flag_key) > size_limit
        or (raw_value is not None and type(raw_value) is str and len(raw_value) > size_limit)
        or (variant is not None and len(variant) > size_limit)
        or (context_id is not None and len(context_id) > size_limit)
        or (provider_name is not None and len(provider_name) > size_limit)
        or (raw_reason is not None and len(raw_reason) > size_limit)
    ):
        # Something beyond the few short fields of a usual evaluation: apply the
        # attribute limits (flagscope._telemetry.limits), and map what they keep instead.
        kept, kept_body = limit_evaluation(attributes, body_value)
        if kept is not attributes or kept_body is not body_value:
            return map_attributes(
                kept,
                timestamp_ns,
                trace_id,
                span_id,
                parent_span_id,
                service_name,
                language,
                value_decoding,
                kept_body,
                evaluation_duration_ms,
                True,
            )
    # Lone surrogates never reach a record (no view could print it): one check of the
    # common fields, inline, since almost every string is ASCII.
    if not (
        flag_key.isascii()
        and (variant is None or variant.isascii())
        and (context_id is None or context_id.isascii())
        and (provider_name is None or provider_name.isascii())
        and (raw_reason is None or raw_reason.isascii())
    ):
        flag_key = clean_text(flag_key)
        variant = _clean(variant)
        context_id = _clean(context_id)
        provider_name = _clean(provider_name)
        raw_reason = _clean(raw_reason)

    # Every key no field took stays on the record. Each field took at most one key;
    # a value sent as an empty OTLP value (JS NaN) is taken too: it is the value None.
    has_value = raw_value is not None or (present < size and semconv.RESULT_VALUE in attributes)
    taken = (
        1
        + has_value
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
        taken_keys = _taken_keys(get, attributes)
        extra = MappingProxyType(
            {clean_text(k): freeze_value(v) for k, v in attributes.items() if k not in taken_keys}
        )

    reason: EvaluationReason | str
    if raw_reason:
        reason = _NORMALIZED_REASONS.get(raw_reason) or normalize_reason(raw_reason)
    elif error_type is not None:
        reason = EvaluationReason.ERROR
    else:
        reason = EvaluationReason.UNKNOWN

    if raw_value is None:
        raw_value = body_value
    value = None
    if raw_value is not None:
        kind = type(raw_value)
        if kind is bool or kind is int or kind is float:
            value = raw_value
        else:
            # string_rule, inline: this runs for nearly every evaluation.
            if value_decoding == "auto":
                json_text = provider_name == _LAUNCHDARKLY or language == _PYTHON
                rule = _JSON if json_text else _CONTAINERS
            else:
                rule = _JSON if value_decoding == "json" else _RAW
            if kind is str and rule == _JSON and raw_value in _JSON_LITERALS:
                value = _JSON_LITERALS[raw_value]  # "true"/"false"/"null": no call
            else:
                value = stored_from(raw_value, rule)

    return new_event(
        timestamp,
        sys.intern(flag_key),
        value,
        reason,
        sys.intern(variant) if variant is not None else None,
        context_id or None,
        sys.intern(provider_name) if provider_name is not None else None,
        flag_set_id,
        version,
        error_type,
        error_message,
        trace_id,
        span_id,
        parent_span_id,
        service_name,
        evaluation_duration_ms,
        extra,
    )


def map_typical(
    attributes: Mapping[str, Any],
    timestamp_ns: Any,
    trace_id: str | int | None,
    span_id: str | int | None,
    parent_span_id: str | int | None,
    service_name: str | None,
    language: str | None,
    value_decoding: ValueDecoding,
    /,
) -> FlagEvaluationEvent | None:
    """``map_attributes`` for the usual evaluation only; ``None`` for anything else.

    The usual evaluation is what OpenFeature's and LaunchDarkly's hooks send: the
    current spellings of key, reason, variant and provider as short ASCII text, a
    scalar value and maybe a context id, nothing more, with a timestamp. Its keys are
    read directly and its record built at once: no alias lookups, no limits (nothing
    can exceed them), no extra attributes. ``None`` sends the caller to
    ``map_attributes``, which decides everything else, so both give the same record.

    The ids may be the SDK's ints (``new_event`` keeps them as they are) or canonical
    hex text. A plain dict reads fastest (the SDK's ``BoundedAttributes`` is two
    Python calls a read: copy it first).
    """
    get = attributes.get
    flag_key = get(semconv.KEY)
    raw_reason = get(_REASON_KEY)
    variant = get(_VARIANT_KEY)
    provider_name = get(_PROVIDER_KEY)
    if (
        type(flag_key) is not str
        or type(raw_reason) is not str
        or type(variant) is not str
        or type(provider_name) is not str
        or type(timestamp_ns) is not int
    ):
        return None
    context_id = get(semconv.CONTEXT_ID)
    raw_value: Any = get(semconv.RESULT_VALUE)
    # One length and one ASCII check for all the text: the sum within the limit keeps
    # each part within it (a longer sum is left to the general path, which is exact).
    text = flag_key + raw_reason + variant + provider_name
    if context_id is not None:
        if type(context_id) is not str:
            return None
        text += context_id
    if (
        len(attributes) != 4 + (context_id is not None) + (raw_value is not None)
        or len(text) > _VALUE_LENGTH_LIMIT
        or not text.isascii()
        or not flag_key
        or not raw_reason
    ):
        return None
    kind: type = type(raw_value)
    if kind is str:
        if len(raw_value) > _VALUE_LENGTH_LIMIT:
            return None
        # string_rule, inline.
        if value_decoding == "auto":
            json_text = provider_name == _LAUNCHDARKLY or language == _PYTHON
            rule = _JSON if json_text else _CONTAINERS
        else:
            rule = _JSON if value_decoding == "json" else _RAW
        value = _JSON_LITERALS.get(raw_value, _NOT_LITERAL) if rule == _JSON else _NOT_LITERAL
        if value is _NOT_LITERAL:
            value = stored_from(raw_value, rule)
    elif kind is bool or kind is int or kind is float or raw_value is None:
        value = raw_value
    else:
        return None
    try:
        timestamp = _EPOCH + timedelta(0, 0, timestamp_ns // 1000)
    except (OverflowError, ValueError):
        return None
    return new_event(
        timestamp,
        sys.intern(flag_key),
        value,
        _NORMALIZED_REASONS.get(raw_reason) or normalize_reason(raw_reason),
        sys.intern(variant),
        context_id or None,
        sys.intern(provider_name),
        None,
        None,
        None,
        None,
        trace_id,
        span_id,
        parent_span_id,
        service_name,
        None,
        EMPTY_MAPPING,
    )


_NOT_LITERAL: Final = object()
_VALUE_LENGTH_LIMIT: Final = DEFAULT_LIMITS.max_value_length
_NORMALIZED_REASONS: Final = NORMALIZED_REASONS
_PLAIN_SCALARS: Final = frozenset({bool, int, float, type(None)})
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
