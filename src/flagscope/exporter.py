"""OpenTelemetry exporters that record feature-flag evaluations into a collector."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable, Sequence
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from flagscope import semconv
from flagscope.mapping import (
    VALUE_DECODINGS,
    SkipReason,
    ValueDecoding,
    format_span_id,
    format_trace_id,
    map_known_ids,
)
from flagscope.models import FlagEvaluationEvent
from flagscope.stats import ExporterStats, StatsCounter

__all__ = ["EventSink", "FlagEvaluationSpanExporter"]

_logger = logging.getLogger("flagscope")
_EVENT_NAMES = semconv.EVENT_NAMES
_SERVICE_NAME = semconv.SERVICE_NAME
# A span's hex trace id, hex span id and service name.
_SpanIds = tuple[str | None, str | None, str | None]
_Item = TypeVar("_Item")  # what the SDK hands to export(): spans, log records
_Result = TypeVar("_Result")  # what export() answers: the SDK's result enum


@runtime_checkable
class EventSink(Protocol):
    """Where exporters put records: anything with a thread-safe ``record_many``."""

    def record_many(self, events: Iterable[FlagEvaluationEvent]) -> int:
        """Store the records; called from the SDK's threads, must not block long."""
        ...


def check_sink(collector: object) -> EventSink:
    """Return ``collector`` if exporters can record into it.

    Raises:
        TypeError: It has no synchronous, callable ``record_many``.
    """
    # ``isinstance`` on a Protocol only checks that the name exists; an async
    # ``record_many`` would return coroutines nobody awaits and lose every record.
    record_many = getattr(collector, "record_many", None)
    if (
        not isinstance(collector, EventSink)
        or not callable(record_many)
        or inspect.iscoroutinefunction(record_many)
    ):
        raise TypeError(
            "collector must have a synchronous record_many(events) method, such as "
            f"flagscope.InMemoryAnalyticsCollector; got {type(collector).__name__}"
        )
    return collector


def check_value_decoding(value_decoding: object) -> ValueDecoding:
    """Return ``value_decoding`` if it is ``"json"`` or ``"raw"``.

    Raises:
        ValueError: It is anything else.
    """
    if value_decoding == "json":
        return "json"
    if value_decoding == "raw":
        return "raw"
    raise ValueError(f"value_decoding must be one of {VALUE_DECODINGS}, got {value_decoding!r}")


class BaseFlagExporter(Generic[_Item, _Result]):
    """What the span and log exporters share: sink, decoding, stats, ``export()``.

    A subclass maps one item with ``_map_item`` and passes its SDK's success
    and failure results to ``__init__``.
    """

    _ITEMS = "items"  # what the SDK hands to export(), for log messages

    def __init__(
        self,
        collector: EventSink,
        value_decoding: ValueDecoding,
        *,
        success: _Result,
        failure: _Result,
    ) -> None:
        self._collector = check_sink(collector)
        self._value_decoding = check_value_decoding(value_decoding)
        self._stats = StatsCounter(type(self).__name__)
        self._shutdown = False
        self._success = success
        self._failure = failure

    @property
    def collector(self) -> EventSink:
        """The collector records go to."""
        return self._collector

    @property
    def stats(self) -> ExporterStats:
        """A snapshot of what this exporter has seen, mapped, skipped and ignored."""
        return self._stats.snapshot()

    def _map_item(
        self, item: _Item, records: list[FlagEvaluationEvent], skipped: dict[str, int]
    ) -> bool:
        """Append ``item``'s records, count its skips; False when it is no flag telemetry."""
        raise NotImplementedError

    def export(self, batch: Sequence[_Item]) -> _Result:
        """Map and record the flag evaluations in ``batch``; never raises.

        Succeeds even when some telemetry was skipped (``stats`` counts it); fails
        after ``shutdown()`` and when the collector raises. An item that cannot
        be mapped is a ``mapping_error`` skip; a batch that breaks while being
        iterated keeps what was mapped before.
        """
        if self._shutdown:
            self._stats.add(items=0, mapped=0, failed=True)
            return self._failure
        records: list[FlagEvaluationEvent] = []
        skipped: dict[str, int] = {}
        count = 0
        ignored = 0
        map_item = self._map_item
        try:
            for item in batch:
                count += 1
                try:
                    if not map_item(item, records, skipped):
                        ignored += 1
                except Exception:
                    _logger.debug("flagscope: could not map %r", item, exc_info=True)
                    reason = SkipReason.MAPPING_ERROR.value
                    skipped[reason] = skipped.get(reason, 0) + 1
        except Exception:
            # The batch itself misbehaved; keep what was mapped so far.
            _logger.warning(
                "flagscope: could not iterate the %s to export", self._ITEMS, exc_info=True
            )
        try:
            if records:
                self._collector.record_many(records)
        except Exception:
            _logger.exception("flagscope: the collector refused %d evaluation(s)", len(records))
            self._stats.add(items=count, mapped=0, ignored=ignored, skipped=skipped, failed=True)
            return self._failure
        self._stats.add(items=count, mapped=len(records), ignored=ignored, skipped=skipped)
        return self._success

    def shutdown(self) -> None:
        """Stop accepting telemetry; the collector and its records are left as they are."""
        self._shutdown = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here; always True."""
        return True


class FlagEvaluationSpanExporter(BaseFlagExporter[ReadableSpan, SpanExportResult], SpanExporter):
    """A ``SpanExporter`` that records every feature-flag evaluation span event.

    Attach it with a ``SimpleSpanProcessor`` or a ``BatchSpanProcessor``. It maps
    ``feature_flag.evaluation`` and ``feature_flag`` span events (and spans named
    ``feature_flag.evaluation`` that carry the keys themselves) and ignores the
    rest, such as ``exception`` events and LaunchDarkly's ``variation`` spans.
    ``export()`` never raises: what cannot be mapped is counted in ``stats``.

    Args:
        collector: Where records go, usually an ``InMemoryAnalyticsCollector``.
        value_decoding: ``"json"`` decodes JSON-encoded values (what Python
            producers send); ``"raw"`` keeps attributes exactly as sent.

    Raises:
        TypeError: ``collector`` has no ``record_many``.
        ValueError: ``value_decoding`` is not ``"json"`` or ``"raw"``.
    """

    _ITEMS = "spans"

    def __init__(self, collector: EventSink, *, value_decoding: ValueDecoding = "json") -> None:
        super().__init__(
            collector,
            value_decoding,
            success=SpanExportResult.SUCCESS,
            failure=SpanExportResult.FAILURE,
        )
        self._service_cache: tuple[Any, str | None] = (None, None)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Map and record the flag evaluations in ``spans``; never raises.

        Keeps ``SpanExporter.export``'s parameter name, so keyword callers work.
        """
        return BaseFlagExporter.export(self, spans)

    def _map_item(
        self,
        span: ReadableSpan,
        records: list[FlagEvaluationEvent],
        skipped: dict[str, int],
    ) -> bool:
        # ``span.events`` builds a new tuple on every access: read it once.
        events = span.events
        ids: _SpanIds | None = None
        for event in events:
            if event.name in _EVENT_NAMES:
                if ids is None:
                    ids = self._span_ids(span)
                self._map_one(event.attributes, event.timestamp, ids, records, skipped)
        if span.name == semconv.SPAN_NAME:
            attributes = span.attributes
            if attributes is not None and semconv.KEY in attributes:
                timestamp = span.end_time or span.start_time
                self._map_one(attributes, timestamp, ids or self._span_ids(span), records, skipped)
            elif ids is None:
                # Named as an evaluation, with no key on it nor any flag event in it:
                # malformed flag telemetry, so it is counted like a keyless event.
                reason = SkipReason.MISSING_FLAG_KEY.value
                skipped[reason] = skipped.get(reason, 0) + 1
        # A span without flag telemetry is not counted as ignored: that count is for
        # log records, where it tells flag events from ordinary logs.
        return True

    def _map_one(
        self,
        attributes: Any,
        timestamp: int | None,
        ids: _SpanIds,
        records: list[FlagEvaluationEvent],
        skipped: dict[str, int],
    ) -> None:
        result: FlagEvaluationEvent | SkipReason
        if attributes is None:
            result = SkipReason.MISSING_FLAG_KEY
        else:
            try:
                result = map_known_ids(
                    attributes,
                    timestamp_ns=timestamp,
                    trace_id=ids[0],
                    span_id=ids[1],
                    service_name=ids[2],
                    value_decoding=self._value_decoding,
                )
            except Exception:
                # One malformed event must not cost the span's other evaluations.
                _logger.debug("flagscope: could not map event %r", attributes, exc_info=True)
                result = SkipReason.MAPPING_ERROR
        if isinstance(result, FlagEvaluationEvent):
            records.append(result)
        else:
            skipped[result.value] = skipped.get(result.value, 0) + 1

    def _span_ids(self, span: ReadableSpan) -> _SpanIds:
        """Return the span's hex trace and span ids and its service name."""
        trace_hex = span_hex = None
        context = span.context
        if context is not None:
            trace_hex = format_trace_id(context.trace_id)
            span_hex = format_span_id(context.span_id)
        # A provider gives every span the same resource: look its name up once.
        resource = span.resource
        cached_resource, service_name = self._service_cache
        if resource is not cached_resource:
            service_name = None
            if resource is not None:
                name = resource.attributes.get(_SERVICE_NAME)
                service_name = name if type(name) is str else None
            # One tuple, so threads exporting at once never pair a name with another resource.
            self._service_cache = (resource, service_name)
        return trace_hex, span_hex, service_name
