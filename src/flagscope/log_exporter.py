"""A log record exporter for the spec's current form: log-based ``feature_flag.evaluation`` events.

The logs pipeline lives in the SDK's underscore modules (``opentelemetry.sdk._logs``),
an unstable API: this module follows SDK 1.39 and later, where ``export()`` receives
``ReadableLogRecord``s (the API ``LogRecord`` plus the resource).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from flagscope import semconv
from flagscope.exporter import EventSink, check_sink, check_value_decoding
from flagscope.mapping import (
    SkipReason,
    ValueDecoding,
    format_span_id,
    format_trace_id,
    freeze_value,
    map_known_ids,
)
from flagscope.models import FlagEvaluationEvent
from flagscope.stats import ExporterStats, StatsCounter

__all__ = ["FlagEvaluationLogExporter"]

_logger = logging.getLogger("flagscope")
_EVENT_NAMES: Final = semconv.EVENT_NAMES
_EVENT_NAME_ATTRIBUTE: Final = semconv.LOG_EVENT_NAME_ATTRIBUTE
_CONTAINERS: Final = (dict, list, tuple)


class FlagEvaluationLogExporter(LogRecordExporter):
    """A ``LogRecordExporter`` that records every ``feature_flag.evaluation`` log record.

    Attach it to a ``LoggerProvider`` with a ``SimpleLogRecordProcessor`` or a
    ``BatchLogRecordProcessor``. A record is an evaluation when its
    ``event_name`` (or, from older bridges, its ``event.name`` attribute) is
    ``feature_flag.evaluation``; it is mapped like a span event: attributes,
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

    def __init__(self, collector: EventSink, *, value_decoding: ValueDecoding = "json") -> None:
        self._collector = check_sink(collector)
        self._value_decoding = check_value_decoding(value_decoding)
        self._stats = StatsCounter(type(self).__name__)
        self._shutdown = False
        self._shutdown_lock = threading.Lock()

    @property
    def collector(self) -> EventSink:
        """The collector records go to."""
        return self._collector

    @property
    def stats(self) -> ExporterStats:
        """A snapshot of what this exporter has seen, mapped, skipped and ignored."""
        return self._stats.snapshot()

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """Map and record the flag evaluations in ``batch``; never raises."""
        if self._shutdown:
            self._stats.add(items=0, mapped=0, failed=True)
            return LogRecordExportResult.FAILURE
        records: list[FlagEvaluationEvent] = []
        skipped: dict[str, int] = {}
        count = 0
        ignored = 0
        try:
            for item in batch:
                count += 1
                try:
                    result = self._map(item)
                except Exception:
                    _logger.debug("could not map log record %r", item, exc_info=True)
                    result = SkipReason.MAPPING_ERROR
                if result is None:
                    ignored += 1
                elif isinstance(result, SkipReason):
                    skipped[result.value] = skipped.get(result.value, 0) + 1
                else:
                    records.append(result)
        except Exception:
            # ``batch`` itself misbehaved; keep what was mapped so far.
            _logger.warning("flagscope: could not iterate the log records to export", exc_info=True)
        try:
            if records:
                self._collector.record_many(records)
        except Exception:
            _logger.exception("flagscope: the collector refused %d evaluation(s)", len(records))
            self._stats.add(items=count, mapped=0, ignored=ignored, skipped=skipped, failed=True)
            return LogRecordExportResult.FAILURE
        self._stats.add(items=count, mapped=len(records), ignored=ignored, skipped=skipped)
        return LogRecordExportResult.SUCCESS

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

    def shutdown(self) -> None:
        """Stop accepting records; the collector and its records are left as they are."""
        with self._shutdown_lock:
            self._shutdown = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here; always True."""
        return True
