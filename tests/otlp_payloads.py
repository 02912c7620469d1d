"""OTLP payloads for the receiver tests, built the way real senders build them.

Protobuf bodies come from the OTel SDK's own OTLP encoders (the code behind
``OTLPSpanExporter`` / ``OTLPLogExporter``); JSON bodies follow the OTLP/JSON rules
(lowerCamelCase keys, hex ids, 64-bit ints as strings), as the JS and Collector
exporters send them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from google.protobuf import json_format
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.hook.opentelemetry import TracingHook
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan

FLAGS: dict[str, InMemoryFlag[Any]] = {
    "new-checkout": InMemoryFlag("on", {"on": True, "off": False}),
    "banner-color": InMemoryFlag("red", {"red": "#c05543", "blue": "#1f6feb"}),
    "theme": InMemoryFlag("dark", {"dark": {"color": "red", "size": [1, 2]}}),
}


@contextmanager
def openfeature_client(
    flags: dict[str, InMemoryFlag[Any]] | None = None,
) -> Iterator[OpenFeatureClient]:
    """An OpenFeature client on the in-memory provider with the tracing hook (global state)."""
    api.shutdown()
    api.set_provider_and_wait(InMemoryProvider(flags if flags is not None else FLAGS))
    api.add_hooks([TracingHook()])
    try:
        yield api.get_client()
    finally:
        api.shutdown()


def traces_protobuf(spans: Sequence[ReadableSpan]) -> bytes:
    """Encode spans exactly as ``OTLPSpanExporter`` puts them on the wire."""
    return encode_spans(spans).SerializeToString()


def logs_protobuf(records: Sequence[ReadableLogRecord]) -> bytes:
    """Encode log records exactly as ``OTLPLogExporter`` puts them on the wire."""
    return encode_logs(records).SerializeToString()


def _ids_to_hex(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"traceId", "spanId", "parentSpanId"} and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _ids_to_hex(value)
    elif isinstance(node, list):
        for item in node:
            _ids_to_hex(item)


def traces_json(spans: Sequence[ReadableSpan]) -> bytes:
    """Encode spans as OTLP/JSON (hex ids, not protobuf JSON's base64)."""
    document = json_format.MessageToDict(encode_spans(spans))
    _ids_to_hex(document)
    return json.dumps(document).encode()


def logs_json(records: Sequence[ReadableLogRecord]) -> bytes:
    """Encode log records as OTLP/JSON."""
    document = json_format.MessageToDict(encode_logs(records))
    _ids_to_hex(document)
    return json.dumps(document).encode()


def emit_logs(records: Sequence[LogRecord], service_name: str = "checkout") -> list[Any]:
    """Emit log records through a real SDK ``LoggerProvider`` and return what it exported."""
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("flagscope-tests")
    for record in records:
        logger.emit(record)
    provider.shutdown()
    return list(exporter.get_finished_logs())


def json_body(document: dict[str, Any]) -> bytes:
    """Serialise a hand-written OTLP/JSON document."""
    return json.dumps(document).encode()


def string_attr(key: str, value: str) -> dict[str, Any]:
    """An OTLP/JSON ``KeyValue`` with a string value."""
    return {"key": key, "value": {"stringValue": value}}
