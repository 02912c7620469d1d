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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

from flagscope import semconv
from flagscope._extras import missing_extra
from flagscope.mapping import (
    SkipReason,
    ValueDecoding,
    format_span_id,
    format_trace_id,
    map_known_ids,
)
from flagscope.models import EMPTY_MAPPING, FlagEvaluationEvent

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
    raise missing_extra(error, "flagscope.otlp", "server") from error

__all__ = [
    "Encoding",
    "OtlpBatch",
    "OtlpDecodeError",
    "any_value",
    "decode_logs",
    "decode_traces",
    "encoding_for",
    "logs_response",
    "map_logs",
    "map_traces",
    "media_type",
    "traces_response",
]

Encoding = Literal["protobuf", "json"]

_MEDIA_TYPES: Final[Mapping[str, Encoding]] = {
    "application/x-protobuf": "protobuf",
    "application/protobuf": "protobuf",
    "application/json": "json",
}
_logger = logging.getLogger("flagscope")
_EVENT_NAMES: Final = semconv.EVENT_NAMES
_MAX_SKIP_DETAIL: Final = 5


class OtlpDecodeError(ValueError):
    """The payload is not a valid OTLP request of the expected signal."""


@dataclass(frozen=True, slots=True)
class OtlpBatch:
    """What one OTLP request held.

    Attributes:
        events: The evaluations mapped from it, in payload order.
        received: Spans (or log records) in the request.
        rejected: Of those, how many carried flag telemetry that could not be
            mapped (OTLP's ``rejected_spans`` / ``rejected_log_records``).
        skipped_by_reason: Unmapped evaluations, by ``SkipReason`` value.
    """

    events: tuple[FlagEvaluationEvent, ...]
    received: int
    rejected: int = 0
    skipped_by_reason: Mapping[str, int] = field(default_factory=lambda: EMPTY_MAPPING)

    @property
    def error_message(self) -> str:
        """A short account of what was skipped; empty when nothing was."""
        if not self.skipped_by_reason:
            return ""
        parts = sorted(self.skipped_by_reason.items(), key=lambda item: (-item[1], item[0]))
        detail = ", ".join(f"{count} {reason}" for reason, count in parts[:_MAX_SKIP_DETAIL])
        return f"flagscope skipped flag evaluations it could not map: {detail}"


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
        document = _load_json(body)
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
        document = _load_json(body)
        for resource in _items(document, "resourceLogs", "resource_logs"):
            for scope in _items(resource, "scopeLogs", "scope_logs"):
                for record in _items(scope, "logRecords", "log_records"):
                    _hex_ids_to_base64(record, ("traceId", "trace_id"), ("spanId", "span_id"))
        _parse_json(request, document)
    return request


def _parse_protobuf(message: Any, body: bytes) -> None:
    try:
        message.ParseFromString(body)
    except (DecodeError, RecursionError, ValueError) as error:
        raise OtlpDecodeError(f"invalid OTLP protobuf payload: {error}") from None


def _load_json(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise OtlpDecodeError(f"invalid JSON: {error}") from None
    if not isinstance(document, dict):
        raise OtlpDecodeError("an OTLP JSON payload must be an object")
    return document


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
        return tuple(any_value(item) for item in value.array_value.values)
    if kind == "kvlist_value":
        return MappingProxyType(_attributes(value.kvlist_value.values))
    if kind == "bytes_value":
        return value.bytes_value
    return None


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {pair.key: any_value(pair.value) for pair in pairs}


def _service_name(resource_attributes: Iterable[KeyValue]) -> str | None:
    for pair in resource_attributes:
        if pair.key == semconv.SERVICE_NAME and pair.value.WhichOneof("value") == "string_value":
            return pair.value.string_value
    return None


# -- mapping ----------------------------------------------------------------------------


class _Tally:
    __slots__ = ("events", "received", "rejected", "skipped", "skipped_total")

    def __init__(self) -> None:
        self.events: list[FlagEvaluationEvent] = []
        self.received = 0
        self.rejected = 0
        self.skipped: dict[str, int] = {}
        self.skipped_total = 0

    def skip(self, reason: SkipReason) -> None:
        self.skipped[reason.value] = self.skipped.get(reason.value, 0) + 1
        self.skipped_total += 1

    def add(
        self,
        item: Any,
        map_item: Callable[[Any, str | None, ValueDecoding, _Tally], None],
        service_name: str | None,
        decoding: ValueDecoding,
    ) -> None:
        """Map one span or log record; it is rejected when any of its evaluations was skipped."""
        self.received += 1
        before = self.skipped_total
        try:
            map_item(item, service_name, decoding, self)
        except Exception:
            # One odd item must not lose the rest of the request.
            _logger.debug("could not map an OTLP span or log record", exc_info=True)
            self.skip(SkipReason.MAPPING_ERROR)
        if self.skipped_total != before:
            self.rejected += 1

    def batch(self) -> OtlpBatch:
        skipped = MappingProxyType(self.skipped) if self.skipped else EMPTY_MAPPING
        return OtlpBatch(tuple(self.events), self.received, self.rejected, skipped)


def map_traces(
    request: ExportTraceServiceRequest, *, value_decoding: ValueDecoding = "json"
) -> OtlpBatch:
    """Map the flag evaluations in a decoded trace request; never raises for content.

    Args:
        request: A decoded ``ExportTraceServiceRequest``.
        value_decoding: ``"json"`` decodes JSON-encoded values, ``"raw"`` keeps them.
    """
    tally = _Tally()
    for resource_spans in request.resource_spans:
        service_name = _service_name(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                tally.add(span, _map_span, service_name, value_decoding)
    return tally.batch()


def _map_span(span: Any, service_name: str | None, decoding: ValueDecoding, tally: _Tally) -> None:
    from_span = span.name == semconv.SPAN_NAME
    flag_events = [event for event in span.events if event.name in _EVENT_NAMES]
    if not from_span and not flag_events:
        return
    trace_hex = format_trace_id(span.trace_id)
    span_hex = format_span_id(span.span_id)
    sources: list[tuple[dict[str, Any], int | None]] = []
    if from_span:
        attributes = _attributes(span.attributes)
        if semconv.KEY in attributes:
            sources.append((attributes, span.end_time_unix_nano or span.start_time_unix_nano))
    for event in flag_events:
        sources.append(
            (_attributes(event.attributes), event.time_unix_nano or span.end_time_unix_nano)
        )
    for attributes, timestamp in sources:
        _record(
            tally,
            map_known_ids(
                attributes,
                timestamp_ns=timestamp or None,
                trace_id=trace_hex,
                span_id=span_hex,
                service_name=service_name,
                value_decoding=decoding,
            ),
        )


def map_logs(
    request: ExportLogsServiceRequest, *, value_decoding: ValueDecoding = "json"
) -> OtlpBatch:
    """Map the flag evaluations in a decoded logs request; never raises for content.

    Args:
        request: A decoded ``ExportLogsServiceRequest``.
        value_decoding: ``"json"`` decodes JSON-encoded values, ``"raw"`` keeps them.
    """
    tally = _Tally()
    for resource_logs in request.resource_logs:
        service_name = _service_name(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                tally.add(record, _map_log_record, service_name, value_decoding)
    return tally.batch()


def _map_log_record(
    record: Any, service_name: str | None, decoding: ValueDecoding, tally: _Tally
) -> None:
    attributes = _attributes(record.attributes)
    event_name = record.event_name
    if not event_name:
        named = attributes.get(semconv.LOG_EVENT_NAME_ATTRIBUTE)
        if named not in _EVENT_NAMES:
            return
        # The name said what the record is; it is not flag data to keep.
        del attributes[semconv.LOG_EVENT_NAME_ATTRIBUTE]
    elif event_name not in _EVENT_NAMES:
        return
    body_value = None
    body = any_value(record.body)
    if isinstance(body, Mapping):
        body_value = body.get(semconv.LOG_BODY_VALUE)
    _record(
        tally,
        map_known_ids(
            attributes,
            timestamp_ns=(record.time_unix_nano or record.observed_time_unix_nano) or None,
            trace_id=format_trace_id(record.trace_id),
            span_id=format_span_id(record.span_id),
            service_name=service_name,
            value_decoding=decoding,
            body_value=body_value,
        ),
    )


def _record(tally: _Tally, result: FlagEvaluationEvent | SkipReason) -> None:
    if isinstance(result, SkipReason):
        tally.skip(result)
    else:
        tally.events.append(result)


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
