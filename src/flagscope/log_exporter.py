"""A log record exporter for the spec's current form: log-based ``feature_flag.evaluation`` events.

The logs pipeline lives in the SDK's underscore modules (``opentelemetry.sdk._logs``),
an unstable API: this module follows SDK 1.39 and later, where ``export()`` receives
``ReadableLogRecord``s (the API ``LogRecord`` plus the resource).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from flagscope import semconv
from flagscope.exporter import BaseFlagExporter, EventSink
from flagscope.mapping import (
    SkipReason,
    ValueDecoding,
    format_span_id,
    format_trace_id,
    freeze_value,
    map_known_ids,
)
from flagscope.models import FlagEvaluationEvent

__all__ = ["FlagEvaluationLogExporter"]

_EVENT_NAMES: Final = semconv.EVENT_NAMES
_EVENT_NAME_ATTRIBUTE: Final = semconv.LOG_EVENT_NAME_ATTRIBUTE
_CONTAINERS: Final = (dict, list, tuple)


class FlagEvaluationLogExporter(
    BaseFlagExporter[ReadableLogRecord, LogRecordExportResult], LogRecordExporter
):
    """A ``LogRecordExporter`` that records every ``feature_flag.evaluation`` log record.

    Attach it to a ``LoggerProvider`` with a ``SimpleLogRecordProcessor`` or a
    ``BatchLogRecordProcessor``. A record is an evaluation when its
    ``event_name`` is ``feature_flag.evaluation`` (or the legacy ``feature_flag``),
    or, from older bridges that set no ``event_name``, when its ``event.name``
    attribute is; it is mapped like a span event: attributes,
    the body's ``value`` field (semconv v1.29 to v1.33), the record's trace and
    span ids, its timestamp (or the observed timestamp) and the resource's
    ``service.name``. Other log records are ignored and counted in ``stats``.
    ``export()`` never raises.

    Args:
        collector: Where records go, usually an ``InMemoryAnalyticsCollector``.
        value_decoding: ``"json"`` decodes JSON-encoded values; ``"raw"`` keeps
            attributes exactly as sent.

    Raises:
        TypeError: ``collector`` has no ``record_many``.
        ValueError: ``value_decoding`` is not ``"json"`` or ``"raw"``.
    """

    _ITEMS = "log records"

    def __init__(self, collector: EventSink, *, value_decoding: ValueDecoding = "json") -> None:
        super().__init__(
            collector,
            value_decoding,
            success=LogRecordExportResult.SUCCESS,
            failure=LogRecordExportResult.FAILURE,
        )

    def _map_item(
        self, item: ReadableLogRecord, records: list[FlagEvaluationEvent], skipped: dict[str, int]
    ) -> bool:
        result = self._map(item)
        if result is None:
            return False
        if isinstance(result, SkipReason):
            skipped[result.value] = skipped.get(result.value, 0) + 1
        else:
            records.append(result)
        return True

    def _map(self, item: Any) -> FlagEvaluationEvent | SkipReason | None:
        """Map one exported item; ``None`` when it is not a flag evaluation at all."""
        record = getattr(item, "log_record", item)
        attributes = record.attributes
        event_name = getattr(record, "event_name", None)
        if event_name:
            # A record that names itself is that event, whatever its attributes say.
            if event_name not in _EVENT_NAMES:
                return None
            if attributes is None:
                return SkipReason.MISSING_FLAG_KEY
        elif attributes is not None and attributes.get(_EVENT_NAME_ATTRIBUTE) in _EVENT_NAMES:
            # The name is the event's, not flag data: keep it out of the record's attributes.
            attributes = {k: v for k, v in attributes.items() if k != _EVENT_NAME_ATTRIBUTE}
        else:
            return None
        if not isinstance(attributes, Mapping):
            return SkipReason.INVALID_ATTRIBUTES
        if any(isinstance(value, _CONTAINERS) for value in attributes.values()):
            # Log attributes may hold maps and arrays: the record keeps read-only copies,
            # as the OTLP receiver's do.
            attributes = {key: freeze_value(value) for key, value in attributes.items()}
        body = record.body
        body_value = body.get(semconv.LOG_BODY_VALUE) if isinstance(body, Mapping) else None
        timestamp = record.timestamp
        if timestamp is None:
            timestamp = record.observed_timestamp
        resource = getattr(item, "resource", None) or getattr(record, "resource", None)
        service_name = resource.attributes.get(semconv.SERVICE_NAME) if resource else None
        return map_known_ids(
            attributes,
            timestamp_ns=timestamp,
            trace_id=format_trace_id(record.trace_id),
            span_id=format_span_id(record.span_id),
            service_name=service_name if type(service_name) is str else None,
            value_decoding=self._value_decoding,
            body_value=body_value,
        )
