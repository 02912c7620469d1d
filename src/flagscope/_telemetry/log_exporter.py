"""A log record exporter for the spec's current form: log-based ``feature_flag.evaluation`` events.

The logs pipeline lives in the SDK's underscore modules (``opentelemetry.sdk._logs``),
an unstable API: this module follows SDK 1.39 and later, where ``export()`` receives
``ReadableLogRecord``s (the API ``LogRecord`` plus the resource).
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from flagscope._store.outcomes import NO_OUTCOME, OutcomeItem
from flagscope._store.records import SPAN_KEY, TRACE_KEY, FlagEvaluationEvent
from flagscope._telemetry.classify import classify_log
from flagscope._telemetry.exporter import BaseFlagExporter, EventSink
from flagscope._telemetry.mapping import ValueDecoding

__all__ = ["FlagEvaluationLogExporter"]


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
        value_decoding: ``"auto"`` (the default), ``"json"`` or ``"raw"``, as for
            ``FlagEvaluationSpanExporter``.

    Raises:
        TypeError: ``collector`` has no synchronous ``record_batch``.
        ValueError: ``value_decoding`` is not ``"auto"``, ``"json"`` or ``"raw"``.
    """

    _ITEMS = "log records"

    def __init__(self, collector: EventSink, *, value_decoding: ValueDecoding = "auto") -> None:
        super().__init__(
            collector,
            value_decoding,
            success=LogRecordExportResult.SUCCESS,
            failure=LogRecordExportResult.FAILURE,
        )

    def _map_item(
        self,
        item: ReadableLogRecord,
        records: list[FlagEvaluationEvent],
        skipped: dict[str, int],
        outcomes: list[OutcomeItem] | None,
    ) -> bool:
        record: Any = getattr(item, "log_record", item)
        resource = getattr(item, "resource", None) or getattr(record, "resource", None)
        source = self._source(resource)
        before = len(records)
        is_flag = classify_log(
            source,
            event_name=getattr(record, "event_name", None),
            attributes=record.attributes,
            body=record.body,
            time_ns=record.timestamp,
            observed_ns=record.observed_timestamp,
            trace_id=record.trace_id,
            span_id=record.span_id,
            records=records,
            skipped=skipped,
        )
        if outcomes is not None and len(records) > before:
            # The record was made inside a span: that span and its request explain it,
            # when the span exporter sees them (into the same collector).
            event = records[-1]
            outcomes.append(
                (
                    TRACE_KEY(event),
                    SPAN_KEY(event),
                    source.service_name,
                    None,
                    False,
                    3,
                    NO_OUTCOME,
                )
            )
        return is_flag
