"""OTLP payloads (traces and logs, protobuf or JSON) to ``FlagEvaluationEvent``s.

Pure functions, no server: ``flagscope serve`` calls them on request bodies, and
tests call them on bytes. Decoding is done by ``opentelemetry-proto``; mapping
follows the exporters' rules (DESIGN.md section 5) through the same mapper:

* span events named ``feature_flag.evaluation`` or ``feature_flag``;
* spans named ``feature_flag.evaluation`` that carry ``feature_flag.key``;
* log records whose event name (the ``event_name`` field, or an ``event.name``
  attribute) is one of those names.

A payload is decoded completely before anything is mapped, so a malformed one
raises ``OtlpDecodeError`` and a caller records nothing.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from types import MappingProxyType
from typing import Any, Final, Literal

from flagscope._extras import missing_extra
from flagscope._store.outcomes import OutcomeItem
from flagscope._store.records import FlagEvaluationEvent
from flagscope._telemetry import semconv
from flagscope._telemetry.classify import Source, http_status_attribute, source_of
from flagscope._telemetry.mapping import ValueDecoding
from flagscope._telemetry.otlp_batch import (
    OtlpBatch,
    OtlpDecodeError,
    SpanEvent,
    Tally,
    is_local_root,
    typical_item,
)
from flagscope._telemetry.otlp_json import (
    load_json,
    read_document,
    read_json_logs,
    read_json_traces,
)

try:
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsServiceRequest,
        ExportLogsServiceResponse,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise missing_extra(error, "flagscope._telemetry.otlp", "server") from error

__all__ = [
    "Encoding",
    "OtlpBatch",
    "OtlpDecodeError",
    "any_value",
    "decode_logs",
    "decode_traces",
    "encoding_for",
    "language_from_user_agent",
    "logs_response",
    "map_logs",
    "map_traces",
    "media_type",
    "parse_in_slices",
    "read_logs",
    "read_traces",
    "traces_response",
]

Encoding = Literal["protobuf", "json"]

_MEDIA_TYPES: Final[Mapping[str, Encoding]] = {
    "application/x-protobuf": "protobuf",
    "application/protobuf": "protobuf",
    "application/json": "json",
}
_logger = logging.getLogger("flagscope")
# (word in a lowercased User-Agent, telemetry.sdk.language); "java" after "javascript".
_USER_AGENT_LANGUAGES: Final = (
    ("python", "python"),
    ("javascript", "nodejs"),
    ("java", "java"),
    ("dotnet", "dotnet"),
    (" go", "go"),
)
_EVENT_NAMES: Final = semconv.EVENT_NAMES
_SPAN_NAME: Final = semconv.SPAN_NAME


# -- encodings -------------------------------------------------------------------------


def encoding_for(content_type: str | None) -> Encoding | None:
    """Return the OTLP encoding a ``Content-Type`` header names, or ``None``."""
    if not content_type:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    return _MEDIA_TYPES.get(media)


def media_type(encoding: Encoding) -> str:
    """Return the ``Content-Type`` to answer a request of ``encoding`` with."""
    return "application/x-protobuf" if encoding == "protobuf" else "application/json"


# -- decoding ----------------------------------------------------------------------------


def decode_traces(body: bytes, encoding: Encoding) -> ExportTraceServiceRequest:
    """Decode an ``ExportTraceServiceRequest``.

    Raises:
        OtlpDecodeError: The body is not a valid request in that encoding.
    """
    request = ExportTraceServiceRequest()
    if encoding == "protobuf":
        _parse_protobuf(request, body)
    else:
        document = load_json(body)
        for resource in _items(document, "resourceSpans", "resource_spans"):
            for scope in _items(resource, "scopeSpans", "scope_spans"):
                for span in _items(scope, "spans"):
                    _hex_ids_to_base64(span, ("traceId", "trace_id"), ("spanId", "span_id"))
                    _hex_ids_to_base64(span, ("parentSpanId", "parent_span_id"))
                    for link in _items(span, "links"):
                        _hex_ids_to_base64(link, ("traceId", "trace_id"), ("spanId", "span_id"))
        _parse_json(request, document)
    return request


def decode_logs(body: bytes, encoding: Encoding) -> ExportLogsServiceRequest:
    """Decode an ``ExportLogsServiceRequest``.

    Raises:
        OtlpDecodeError: The body is not a valid request in that encoding.
    """
    request = ExportLogsServiceRequest()
    if encoding == "protobuf":
        _parse_protobuf(request, body)
    else:
        document = load_json(body)
        for resource in _items(document, "resourceLogs", "resource_logs"):
            for scope in _items(resource, "scopeLogs", "scope_logs"):
                for record in _items(scope, "logRecords", "log_records"):
                    _hex_ids_to_base64(record, ("traceId", "trace_id"), ("spanId", "span_id"))
        _parse_json(request, document)
    return request


def _parse_protobuf(message: Any, body: bytes) -> None:
    try:
        if len(body) > _PARSE_WHOLE_BYTES:
            parse_in_slices(message, body)
        else:
            message.ParseFromString(body)
    except (DecodeError, RecursionError, ValueError) as error:
        raise OtlpDecodeError(f"invalid OTLP protobuf payload: {error}") from None


# Protobuf parses a message in one C call that holds the GIL: 15 ms for 40,000 spans,
# during which the server's event loop cannot answer anyone. Bodies above this size
# are parsed a slice at a time instead (the same message, see ``parse_in_slices``).
_PARSE_WHOLE_BYTES: Final = 1 << 20
_SLICE_BYTES: Final = 1 << 17
# Which length-delimited fields to descend into when one is larger than a slice: the
# request's resource_spans/resource_logs (1), then their scope_spans/scope_logs (2).
_DESCEND: Final[Mapping[str, Mapping[int, str]]] = {
    "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest": {1: "resource_spans"},
    "opentelemetry.proto.trace.v1.ResourceSpans": {2: "scope_spans"},
    "opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest": {1: "resource_logs"},
    "opentelemetry.proto.logs.v1.ResourceLogs": {2: "scope_logs"},
}


def _varint(body: bytes, position: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= end or shift > 63:
            raise DecodeError("truncated or overlong varint")
        byte = body[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7


def parse_in_slices(message: Any, body: bytes, slice_bytes: int = _SLICE_BYTES) -> None:
    """Parse ``body`` into ``message`` a slice of whole fields at a time.

    Merging the serialised fields of a message one run at a time gives the
    message one parse would (repeated fields append, sub-messages merge); a
    field larger than a slice that holds many spans or log records (a
    ``ResourceSpans``, a ``ScopeSpans``) is itself parsed in slices. So no single
    C call, holding the GIL, parses more than about ``slice_bytes``.

    Raises:
        DecodeError: The body is not valid protobuf.
    """
    _merge_slices(message, body, 0, len(body), slice_bytes)


def _merge_slices(message: Any, body: bytes, start: int, end: int, slice_bytes: int) -> None:
    descend = _DESCEND.get(message.DESCRIPTOR.full_name, {})
    run = position = start
    while position < end:
        field_start = position
        tag, position = _varint(body, position, end)
        wire = tag & 7
        value_start = position
        if wire == 2:
            length, value_start = _varint(body, position, end)
            position = value_start + length
        elif wire == 0:
            _, position = _varint(body, position, end)
        elif wire == 1:
            position += 8
        elif wire == 5:
            position += 4
        else:
            # Groups (wire types 3 and 4) are not in OTLP: let protobuf judge the rest.
            message.MergeFromString(body[run:end])
            return
        if position > end:
            raise DecodeError("truncated field")
        name = descend.get(tag >> 3)
        if name is not None and wire == 2 and length > slice_bytes:
            if run < field_start:
                message.MergeFromString(body[run:field_start])
            _merge_slices(getattr(message, name).add(), body, value_start, position, slice_bytes)
            run = position
        elif position - run >= slice_bytes:
            message.MergeFromString(body[run:position])
            run = position
    if run < end:
        message.MergeFromString(body[run:end])


def _parse_json(message: Any, document: dict[str, Any]) -> None:
    try:
        # Unknown fields are ignored, as OTLP asks of receivers.
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError, OverflowError, RecursionError) as error:
        # OverflowError: a number too large for a float (``1e400``) in an enum field.
        raise OtlpDecodeError(f"invalid OTLP JSON payload: {error}") from None


def _items(container: Any, *names: str) -> Iterable[Any]:
    # Wrong shapes are left in place for ``ParseDict`` to reject with its message.
    if not isinstance(container, dict):
        return ()
    for name in names:
        value = container.get(name)
        if isinstance(value, list):
            return value
    return ()


def _hex_ids_to_base64(item: Any, *spellings: tuple[str, ...]) -> None:
    # OTLP/JSON writes ids as hex, but protobuf's JSON mapping reads bytes as base64.
    if not isinstance(item, dict):
        return
    for names in spellings:
        for name in names:
            value = item.get(name)
            if not isinstance(value, str):
                continue
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                raise OtlpDecodeError(f"{name} must be hex, got {value[:40]!r}") from None
            item[name] = base64.b64encode(raw).decode("ascii")


# -- values -----------------------------------------------------------------------------


def any_value(value: AnyValue) -> Any:
    """Unwrap an OTLP ``AnyValue`` as the SDK holds attributes.

    Strings, bools, ints, floats and bytes come out as themselves, arrays as
    tuples, key-value lists as read-only mappings; an empty value is ``None``.
    """
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        return value.double_value
    if kind == "array_value":
        return tuple(any_value(item) for item in value.array_value.values[:])
    if kind == "kvlist_value":
        return MappingProxyType(_attributes(value.kvlist_value.values))
    if kind == "bytes_value":
        return value.bytes_value
    return None


def _attributes(pairs: Sequence[KeyValue]) -> dict[str, Any]:
    attributes = {}
    for pair in pairs[:]:
        value = pair.value
        # A non-empty ``string_value`` can only be the one-of's string: most attributes
        # are text, and this skips ``WhichOneof`` and a Python call for each of them.
        text = value.string_value
        attributes[pair.key] = text if text else any_value(value)
    return attributes


class _SpanAttributes:
    """A span's attributes, unwrapped only when asked for, and at most once.

    The mapper needs all of them only for an evaluation made as a span of its own;
    outcome capture needs one HTTP status from every span with flag events, which a
    scan of the keys finds without unwrapping every value.
    """

    __slots__ = ("_mapping", "_pairs")

    def __init__(self, pairs: Sequence[KeyValue]) -> None:
        self._pairs = pairs
        self._mapping: dict[str, Any] | None = None

    def __call__(self) -> dict[str, Any]:
        mapping = self._mapping
        if mapping is None:
            mapping = self._mapping = _attributes(self._pairs)
        return mapping

    def http_status(self) -> Any:
        """The span's ``http.response.status_code`` (or the older key), as sent."""
        if self._mapping is not None:
            return http_status_attribute(self._mapping)
        older = None
        for pair in self._pairs[:]:
            key = pair.key
            if key == semconv.HTTP_RESPONSE_STATUS_CODE:
                return any_value(pair.value)
            if key == semconv.HTTP_STATUS_CODE_OLD:
                older = any_value(pair.value)
        return older


def language_from_user_agent(user_agent: str | None) -> str | None:
    """Return the SDK language an OTLP exporter's ``User-Agent`` names, if any.

    The fallback for resources without ``telemetry.sdk.language`` (a hand-made
    ``Resource({...})`` in Python, the JS SDK's ``resourceFromAttributes``):
    ``OTel-OTLP-Exporter-Python/1.39.0`` is Python, ``...-JavaScript/0.223.1``
    JavaScript.
    """
    if not user_agent:
        return None
    text = user_agent.lower()
    if "otlp" not in text:
        return None
    for word, language in _USER_AGENT_LANGUAGES:
        if word in text:
            return language
    return None


def _pb_source(
    resource_attributes: Sequence[KeyValue], decoding: ValueDecoding, language: str | None
) -> Source:
    wanted = (semconv.SERVICE_NAME, semconv.TELEMETRY_SDK_LANGUAGE)
    return source_of(
        {pair.key: any_value(pair.value) for pair in resource_attributes[:] if pair.key in wanted},
        decoding,
        language,
    )


def _typical_span(
    span: Any,
    attributes: dict[str, Any],
    event_time: int,
    service: str | None,
    language: str | None,
    decoding: ValueDecoding,
) -> tuple[FlagEvaluationEvent, OutcomeItem] | None:
    """The record and outcome item ``Tally.add_span`` makes of a usual span, or ``None``.

    The usual span holds one flag event that ``map_typical`` maps (``attributes``,
    already unwrapped), has valid ids and is no evaluation span: its record and its
    outcome are built here, without the tally's, the classifier's and the lazy
    attributes' frames (seven Python calls a span). ``None`` leaves the span, unchanged,
    to ``Tally.add_span``, which decides everything else the same way.
    """
    name = span.name
    if name == _SPAN_NAME:
        return None
    # The ids as ``classify._id_keys`` reads protobuf's bytes: big-endian ints, and an
    # all-zero or odd-sized id left to the general path.
    trace_bytes = span.trace_id
    span_bytes = span.span_id
    if len(trace_bytes) != 16 or len(span_bytes) != 8:
        return None
    trace_id = int.from_bytes(trace_bytes)
    span_id = int.from_bytes(span_bytes)
    if not trace_id or not span_id:
        return None
    parent_bytes = span.parent_span_id
    if parent_bytes:
        parent_id = int.from_bytes(parent_bytes) if len(parent_bytes) == 8 else 0
        if not parent_id:
            return None
        is_root = is_local_root(parent_bytes, span.flags, span.kind)
    else:
        parent_id = None
        is_root = True
    status = span.status
    code = status.code
    if not 0 <= code <= 2:
        code = 0  # a status code this OTLP does not know: unset, as ``_outcome`` reads it
    pairs = span.attributes[:]
    start = span.start_time_unix_nano
    end = span.end_time_unix_nano
    return typical_item(
        attributes,
        event_time or end or start or None,
        trace_id,
        span_id,
        parent_id,
        is_root,
        service,
        language,
        decoding,
        name,
        code,
        status.message,
        start,
        end,
        _SpanAttributes(pairs).http_status() if pairs else None,
    )


def map_traces(
    request: ExportTraceServiceRequest,
    *,
    value_decoding: ValueDecoding = "auto",
    default_language: str | None = None,
) -> OtlpBatch:
    """Map the flag evaluations in a decoded trace request; never raises for content.

    Args:
        request: A decoded ``ExportTraceServiceRequest``.
        value_decoding: ``"auto"``, ``"json"`` or ``"raw"``, as for the exporters.
        default_language: The producer's language where a resource does not say
            (``language_from_user_agent``).
    """
    tally = Tally()
    add_span = tally.add_span
    add_record = tally.events.append
    add_outcome = tally.outcomes.append
    typical = 0  # spans taken by the short path below, counted as received at the end
    event_names = _EVENT_NAMES
    # ``tuple.__new__`` bound to the named tuple: a C call, where ``SpanEvent._make`` is
    # a Python frame on 3.11.
    make_event = partial(tuple.__new__, SpanEvent)
    # Each field read from a parsed message is a C call that looks the field up by
    # name and wraps the value: each is read once, and only where it counts. Repeated
    # fields are walked as slices (lists): upb's containers have no ``__iter__``, so a
    # for loop over one ends on an IndexError, its message formatted, about 1,800
    # instructions a loop.
    for resource_spans in request.resource_spans[:]:
        source = _pb_source(resource_spans.resource.attributes, value_decoding, default_language)
        service = source.service_name
        language = source.language
        decoding = source.value_decoding
        for scope_spans in resource_spans.scope_spans[:]:
            for span in scope_spans.spans[:]:
                span_events = span.events[:]
                if len(span_events) == 1:
                    event = span_events[0]
                    name = event.name
                    if name not in event_names:
                        flag_events = []
                    else:
                        attributes = _attributes(event.attributes)
                        try:
                            made = _typical_span(
                                span, attributes, event.time_unix_nano, service, language, decoding
                            )
                        except Exception:  # noqa: BLE001 - add_span maps it again, and counts it
                            made = None
                        if made is not None:
                            # ``Tally.add_span``'s work for the usual span, done: its record
                            # and its outcome, with no classifier or tally frames.
                            add_record(made[0])
                            add_outcome(made[1])
                            typical += 1
                            continue
                        flag_events = [make_event((name, attributes, event.time_unix_nano))]
                else:
                    flag_events = []
                    for event in span_events:
                        name = event.name
                        if name in event_names:
                            flag_events.append(
                                make_event(
                                    (name, _attributes(event.attributes), event.time_unix_nano)
                                )
                            )
                parent_span_id = span.parent_span_id
                status = span.status
                add_span(
                    source,
                    span.name,
                    flag_events,
                    _SpanAttributes(span.attributes),
                    span.trace_id,
                    span.span_id,
                    parent_span_id,
                    span.start_time_unix_nano,
                    span.end_time_unix_nano,
                    status.code,
                    status.message,
                    # Flags and kind only tell whether a span with a parent is a local
                    # root (``otlp_batch.is_local_root``): a span without one is.
                    span.flags if parent_span_id else 0,
                    span.kind if parent_span_id else 0,
                )
    tally.received += typical
    return tally.batch()


def map_logs(
    request: ExportLogsServiceRequest,
    *,
    value_decoding: ValueDecoding = "auto",
    default_language: str | None = None,
) -> OtlpBatch:
    """Map the flag evaluations in a decoded logs request; never raises for content.

    Args:
        request: A decoded ``ExportLogsServiceRequest``.
        value_decoding: ``"auto"``, ``"json"`` or ``"raw"``, as for the exporters.
        default_language: The producer's language where a resource does not say.
    """
    tally = Tally()
    for resource_logs in request.resource_logs[:]:
        source = _pb_source(resource_logs.resource.attributes, value_decoding, default_language)
        for scope_logs in resource_logs.scope_logs[:]:
            for record in scope_logs.log_records[:]:
                tally.add_log(
                    source,
                    event_name=record.event_name,
                    attributes=_attributes(record.attributes),
                    body=any_value(record.body),
                    time_ns=record.time_unix_nano,
                    observed_ns=record.observed_time_unix_nano,
                    trace_id=record.trace_id,
                    span_id=record.span_id,
                )
    return tally.batch()


def read_traces(
    body: bytes,
    encoding: Encoding,
    *,
    value_decoding: ValueDecoding = "auto",
    default_language: str | None = None,
) -> OtlpBatch:
    """Decode and map an OTLP trace request body (what ``POST /v1/traces`` receives).

    Protobuf goes through ``opentelemetry-proto``; JSON is read straight from the
    parsed document (``flagscope._telemetry.otlp_json``), with OTLP/JSON's rules.

    Raises:
        OtlpDecodeError: The body is not a valid request; nothing of it is kept.
    """
    if encoding == "protobuf":
        return map_traces(
            decode_traces(body, "protobuf"),
            value_decoding=value_decoding,
            default_language=default_language,
        )

    def read(document: dict[str, Any]) -> OtlpBatch:
        tally = Tally()
        read_json_traces(document, value_decoding, tally, default_language)
        return tally.batch()

    return read_document(body, read)


def read_logs(
    body: bytes,
    encoding: Encoding,
    *,
    value_decoding: ValueDecoding = "auto",
    default_language: str | None = None,
) -> OtlpBatch:
    """Decode and map an OTLP logs request body (what ``POST /v1/logs`` receives).

    Raises:
        OtlpDecodeError: The body is not a valid request; nothing of it is kept.
    """
    if encoding == "protobuf":
        return map_logs(
            decode_logs(body, "protobuf"),
            value_decoding=value_decoding,
            default_language=default_language,
        )

    def read(document: dict[str, Any]) -> OtlpBatch:
        tally = Tally()
        read_json_logs(document, value_decoding, tally, default_language)
        return tally.batch()

    return read_document(body, read)


# -- responses ----------------------------------------------------------------------------


def traces_response(batch: OtlpBatch, encoding: Encoding) -> bytes:
    """Encode the ``ExportTraceServiceResponse`` for ``batch``.

    ``partial_success`` is set only when spans were rejected, as OTLP asks.
    """
    response = ExportTraceServiceResponse()
    if batch.rejected:
        response.partial_success.rejected_spans = batch.rejected
        response.partial_success.error_message = batch.error_message
    return _encode(response, encoding)


def logs_response(batch: OtlpBatch, encoding: Encoding) -> bytes:
    """Encode the ``ExportLogsServiceResponse`` for ``batch``."""
    response = ExportLogsServiceResponse()
    if batch.rejected:
        response.partial_success.rejected_log_records = batch.rejected
        response.partial_success.error_message = batch.error_message
    return _encode(response, encoding)


def _encode(message: Any, encoding: Encoding) -> bytes:
    if encoding == "protobuf":
        data: bytes = message.SerializeToString()
        return data
    return json.dumps(json_format.MessageToDict(message), separators=(",", ":")).encode()
