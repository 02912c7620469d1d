"""The one classifier for flag telemetry: which spans, span events and log records are evaluations.

Every way in hands its items here: the span exporter (SDK spans), the log
exporter (SDK log records) and the OTLP receiver (protobuf and JSON, traces and
logs). So the same span or log record, good or malformed, gives the same
records and the same skip counts whichever way it came. The rules
(DESIGN.md section 5):

* a span event named ``feature_flag.evaluation`` or ``feature_flag`` is one
  evaluation; ``exception`` events and every other name are not;
* a span named ``feature_flag.evaluation`` (the JS ``SpanHook``) that carries
  ``feature_flag.key`` is one evaluation: its duration is the evaluation's, its
  parent the span it was made in; so named with no key and no flag event in
  it, it is malformed flag telemetry (``missing_flag_key``);
* a log record is an evaluation when its event name (``event_name``, or an
  ``event.name`` attribute from older bridges) is one of the two names;
* an evaluation without attributes is ``missing_flag_key``, one whose
  attributes are not a mapping ``invalid_attributes``, one whose mapping fails
  ``mapping_error``; the mapper decides the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Protocol

from flagscope._store.records import FlagEvaluationEvent, span_id_key, trace_id_key
from flagscope._store.values import clean_text
from flagscope._telemetry import semconv
from flagscope._telemetry.mapping import (
    SkipReason,
    ValueDecoding,
    map_attributes,
    map_typical,
)

__all__ = [
    "EventLike",
    "Source",
    "classify_log",
    "classify_span",
    "http_status_attribute",
    "is_flag_event_name",
    "source_of",
]

_logger = logging.getLogger("flagscope")
_HTTP_STATUS: Final = semconv.HTTP_RESPONSE_STATUS_CODE
_HTTP_STATUS_OLD: Final = semconv.HTTP_STATUS_CODE_OLD


def http_status_attribute(attributes: Mapping[str, Any]) -> Any:
    """A span's HTTP response status attribute as sent: the current key, else the older."""
    http = attributes.get(_HTTP_STATUS)
    return attributes.get(_HTTP_STATUS_OLD) if http is None else http


_EVENT_NAMES: Final = semconv.EVENT_NAMES
_SPAN_NAME: Final = semconv.SPAN_NAME
_KEY: Final = semconv.KEY
_EVENT_NAME_ATTRIBUTE: Final = semconv.LOG_EVENT_NAME_ATTRIBUTE
_BODY_VALUE: Final = semconv.LOG_BODY_VALUE
_SERVICE_NAME: Final = semconv.SERVICE_NAME
_LANGUAGE: Final = semconv.TELEMETRY_SDK_LANGUAGE
_TRACE_ID_LIMIT: Final = 1 << 128
_SPAN_ID_LIMIT: Final = 1 << 64


@dataclass(frozen=True, slots=True)
class Source:
    """What the telemetry says about who sent it: one per resource (and scope).

    Attributes:
        service_name: The resource's ``service.name``.
        language: The resource's ``telemetry.sdk.language``: with ``"auto"``
            decoding it tells how the producer encodes values.
        value_decoding: ``"auto"``, ``"json"`` or ``"raw"``.
    """

    service_name: str | None
    language: str | None
    value_decoding: ValueDecoding


def source_of(
    resource_attributes: Mapping[str, Any],
    value_decoding: ValueDecoding,
    default_language: str | None = None,
) -> Source:
    """Return the ``Source`` for a resource's attributes.

    ``default_language`` stands in where the resource has no string
    ``telemetry.sdk.language``.
    """
    name = resource_attributes.get(_SERVICE_NAME)
    language = resource_attributes.get(_LANGUAGE)
    return Source(
        clean_text(name) if type(name) is str else None,
        language if type(language) is str and language else default_language,
        value_decoding,
    )


class EventLike(Protocol):
    """A span event: the SDK's ``Event``, or what an OTLP decoder builds."""

    @property
    def name(self) -> str:
        """The event's name."""
        ...

    @property
    def attributes(self) -> Any:
        """Its attributes, a mapping (or ``None``)."""
        ...

    @property
    def timestamp(self) -> int | None:
        """When it happened, Unix nanoseconds (0 or ``None``: unknown)."""
        ...


def is_flag_event_name(name: object) -> bool:
    """Whether a span event or log record of this name is a flag evaluation."""
    return name in _EVENT_NAMES


def _skip(skipped: dict[str, int], reason: SkipReason) -> None:
    skipped[reason.value] = skipped.get(reason.value, 0) + 1


# Types seen to be mappings: ``isinstance(x, Mapping)`` is an ABC check that costs
# the hot path more than the rest of the classifier; each type is checked once.
_MAPPING_TYPES: set[type] = {dict, MappingProxyType}


# Mapping types read through a plain-dict copy: the SDK's ``BoundedAttributes``, whose
# every lookup is three Python calls (``Mapping.get``, ``__getitem__``, and the
# ``KeyError`` of a missing key) while its public ``copy()`` is one call and a C-level
# dict copy. The mapper looks up six keys or more per evaluation.
_DICT_COPY_TYPES: set[type] = set()


def _is_mapping(attributes: Any) -> bool:
    kind = type(attributes)
    if kind in _MAPPING_TYPES or kind in _DICT_COPY_TYPES:
        return True
    if isinstance(attributes, Mapping):
        if (
            kind.__name__ == "BoundedAttributes"
            and kind.__module__ == "opentelemetry.attributes"
            and "copy" in vars(kind)
        ):
            _DICT_COPY_TYPES.add(kind)
        else:
            _MAPPING_TYPES.add(kind)
        return True
    return False


def _map(
    source: Source,
    attributes: Any,
    timestamp: int | None,
    ids: tuple[int | None, ...],
    records: list[FlagEvaluationEvent],
    skipped: dict[str, int],
    body_value: Any = None,
    duration_ms: float | None = None,
) -> None:
    result: FlagEvaluationEvent | SkipReason
    if attributes is None:
        result = SkipReason.MISSING_FLAG_KEY
    elif type(attributes) not in _MAPPING_TYPES and not _is_mapping(attributes):
        result = SkipReason.INVALID_ATTRIBUTES
    else:
        try:
            result = map_attributes(
                attributes,
                timestamp or None,
                ids[0],
                ids[1],
                ids[2],
                source.service_name,
                source.language,
                source.value_decoding,
                body_value,
                duration_ms,
            )
        except Exception:
            # One malformed evaluation must not cost the others beside it.
            _logger.debug("flagscope: could not map evaluation %r", attributes, exc_info=True)
            result = SkipReason.MAPPING_ERROR
    if type(result) is FlagEvaluationEvent:
        records.append(result)
    else:
        _skip(skipped, result)  # type: ignore[arg-type]


_NO_IDS: Final[tuple[int | None, ...]] = ()


def _id_keys(trace_id: Any, span_id: Any, parent_span_id: Any) -> tuple[int | None, ...]:
    # The ids as records store them, ints: the SDK's pass straight through, so no id
    # is formatted as hex text here and parsed back by the record.
    if (
        type(trace_id) is int
        and type(span_id) is int
        and 0 < trace_id < _TRACE_ID_LIMIT
        and 0 < span_id < _SPAN_ID_LIMIT
        and (
            parent_span_id is None
            or (type(parent_span_id) is int and 0 < parent_span_id < _SPAN_ID_LIMIT)
        )
    ):
        # An SDK span's valid ids (every span the span exporter sees): no call at all.
        return (trace_id, span_id, parent_span_id)
    if type(trace_id) is bytes and type(span_id) is bytes:
        # OTLP protobuf's ids, read as ``trace_id_key`` reads them, without its calls:
        # big-endian ints, and an all-zero id (int 0) is no id (the general path's).
        trace = int.from_bytes(trace_id) if len(trace_id) == 16 else 0
        span = int.from_bytes(span_id) if len(span_id) == 8 else 0
        if trace and span:
            if not parent_span_id:
                return (trace, span, None)
            if type(parent_span_id) is bytes and len(parent_span_id) == 8:
                parent = int.from_bytes(parent_span_id)
                if parent:
                    return (trace, span, parent)
    return (
        trace_id_key(trace_id),
        span_id_key(span_id),
        # Most spans are roots (None) or, from OTLP, have an empty parent (b"").
        span_id_key(parent_span_id) if parent_span_id else None,
    )


def classify_span(
    source: Source,
    name: str,
    events: Iterable[EventLike],
    span_attributes: Callable[[], Any],
    trace_id: Any,
    span_id: Any,
    parent_span_id: Any,
    start_ns: int | None,
    end_ns: int | None,
    records: list[FlagEvaluationEvent],
    skipped: dict[str, int],
) -> None:
    """Append a span's evaluations to ``records``; count what is skipped in ``skipped``.

    Args:
        source: Who sent the span.
        name: The span's name.
        events: Its events (only flag events are read).
        span_attributes: Returns the span's attributes; called only for a span
            named ``feature_flag.evaluation``.
        trace_id: The trace id (SDK int, OTLP bytes or hex).
        span_id: The span id.
        parent_span_id: Its parent's span id, or ``None`` for a root span.
        start_ns: Start time, Unix nanoseconds (0 or ``None``: unknown).
        end_ns: End time.
        records: Where records go.
        skipped: Skip counts by ``SkipReason`` value.
    """
    ids: tuple[int | None, ...] = _NO_IDS
    result: FlagEvaluationEvent | SkipReason | None
    for event in events:
        if event.name in _EVENT_NAMES:
            if ids is _NO_IDS:
                ids = _id_keys(trace_id, span_id, parent_span_id)
            timestamp = event.timestamp or end_ns or start_ns
            attributes = event.attributes
            if type(attributes) not in _MAPPING_TYPES:
                if type(attributes) not in _DICT_COPY_TYPES:
                    _map(source, attributes, timestamp, ids, records, skipped)
                    continue
                attributes = attributes.copy()
            # ``_map``'s work, inline for the common case: one Python call less per event.
            # The usual evaluation (``map_typical``'s) first: it is built without the
            # general mapper's alias lookups, limits and extra attributes.
            try:
                result = map_typical(
                    attributes,
                    timestamp or None,
                    ids[0],
                    ids[1],
                    ids[2],
                    source.service_name,
                    source.language,
                    source.value_decoding,
                )
                if result is None:
                    result = map_attributes(
                        attributes,
                        timestamp or None,
                        ids[0],
                        ids[1],
                        ids[2],
                        source.service_name,
                        source.language,
                        source.value_decoding,
                        None,
                        None,
                    )
            except Exception:
                _logger.debug("flagscope: could not map evaluation %r", attributes, exc_info=True)
                result = SkipReason.MAPPING_ERROR
            if type(result) is FlagEvaluationEvent:
                records.append(result)
            else:
                _skip(skipped, result)  # type: ignore[arg-type]
    is_evaluation_span = name == _SPAN_NAME
    if not is_evaluation_span:
        return
    attributes = span_attributes()
    if _KEY in attributes if _is_mapping(attributes) else False:
        duration_ms = None
        if start_ns and end_ns and end_ns >= start_ns:
            duration_ms = (end_ns - start_ns) / 1e6
        if ids is _NO_IDS:
            ids = _id_keys(trace_id, span_id, parent_span_id)
        _map(source, attributes, end_ns or start_ns, ids, records, skipped, None, duration_ms)
    elif ids is _NO_IDS:
        # Named as an evaluation, with no key on it nor any flag event in it:
        # malformed flag telemetry, so it is counted like a keyless event.
        _skip(skipped, SkipReason.MISSING_FLAG_KEY)


def classify_log(
    source: Source,
    *,
    event_name: str | None,
    attributes: Any,
    body: Any,
    time_ns: int | None,
    observed_ns: int | None,
    trace_id: Any,
    span_id: Any,
    records: list[FlagEvaluationEvent],
    skipped: dict[str, int],
) -> bool:
    """Append a log record's evaluation to ``records``, or count why it was skipped.

    Args:
        source: Who sent the record.
        event_name: The record's ``event_name`` (empty or ``None``: not set).
        attributes: Its attributes.
        body: Its body (a mapping's ``value`` is the semconv v1.29-v1.33 value).
        time_ns: Its timestamp, Unix nanoseconds (0 or ``None``: unknown).
        observed_ns: Its observed timestamp, used when ``time_ns`` is unknown.
        trace_id: The trace id (SDK int, OTLP bytes or hex).
        span_id: The span id.
        records: Where records go.
        skipped: Skip counts by ``SkipReason`` value.

    Returns:
        False when the record is no flag telemetry at all (an ordinary log).
    """
    if event_name:
        # A record that names itself is that event, whatever its attributes say.
        if event_name not in _EVENT_NAMES:
            return False
    elif isinstance(attributes, Mapping) and attributes.get(_EVENT_NAME_ATTRIBUTE) in _EVENT_NAMES:
        # The name is the event's, not flag data: keep it out of the record's attributes.
        attributes = {k: v for k, v in attributes.items() if k != _EVENT_NAME_ATTRIBUTE}
    else:
        return False
    body_value = body.get(_BODY_VALUE) if isinstance(body, Mapping) else None
    ids = (trace_id_key(trace_id), span_id_key(span_id), None)
    _map(source, attributes, time_ns or observed_ns, ids, records, skipped, body_value)
    return True
