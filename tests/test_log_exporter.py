"""FlagEvaluationLogExporter: log-based feature_flag.evaluation events through the SDK."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from flagscope import (
    EvaluationReason,
    FlagEvaluationEvent,
    FlagEvaluationSpanExporter,
    InMemoryAnalyticsCollector,
)
from flagscope._telemetry import semconv
from flagscope._telemetry.log_exporter import FlagEvaluationLogExporter
from flagscope._telemetry.mapping import timestamp_from_ns
from producers import SERVICE_NAME, hex_ids, within_span

Way = Literal["span event", "log record"]
WAYS: tuple[Way, ...] = ("span event", "log record")


@dataclass
class Producers:
    """A tracer provider and a logger provider, each feeding flagscope, one collector."""

    collector: InMemoryAnalyticsCollector
    tracer_provider: TracerProvider
    logger_provider: LoggerProvider
    log_exporter: FlagEvaluationLogExporter
    mirror: InMemoryLogRecordExporter

    def evaluate(
        self, way: Way, attributes: dict[str, Any], body: Any = None
    ) -> tuple[FlagEvaluationEvent, Any]:
        """Send one evaluation inside a span, the chosen way; return the record and span."""
        tracer = self.tracer_provider.get_tracer("app")
        logger = self.logger_provider.get_logger("app")
        with tracer.start_as_current_span("GET /cart") as span:
            if way == "span event":
                span.add_event(semconv.EVENT_NAME, attributes)
            else:
                logger.emit(event_name=semconv.EVENT_NAME, attributes=attributes, body=body)
        self.logger_provider.force_flush()
        (record,) = self.collector.events()
        return record, span


def _producers(batch: bool = False, **exporter_options: Any) -> Producers:
    resource = Resource.create({"service.name": SERVICE_NAME})
    collector = InMemoryAnalyticsCollector()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(FlagEvaluationSpanExporter(collector)))
    logger_provider = LoggerProvider(resource=resource)
    log_exporter = FlagEvaluationLogExporter(collector, **exporter_options)
    processor = (
        BatchLogRecordProcessor(log_exporter, schedule_delay_millis=60_000)
        if batch
        else SimpleLogRecordProcessor(log_exporter)
    )
    logger_provider.add_log_record_processor(processor)
    mirror = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(mirror))
    return Producers(collector, tracer_provider, logger_provider, log_exporter, mirror)


@pytest.fixture
def producers() -> Iterator[Producers]:
    made = _producers()
    try:
        yield made
    finally:
        made.tracer_provider.shutdown()
        made.logger_provider.shutdown()


CURRENT = {
    semconv.KEY: "new-checkout",
    semconv.RESULT_VALUE: "true",
    semconv.RESULT_VARIANT: "on",
    semconv.RESULT_REASON: "targeting_match",
    semconv.PROVIDER_NAME: "flagd",
    semconv.CONTEXT_ID: "user-123",
    semconv.SET_ID: "env-1",
    semconv.VERSION: "7",
}
LEGACY = {
    semconv.KEY: "new-checkout",
    semconv.RESULT_VALUE: "true",
    semconv.VARIANT_LEGACY: "on",
    semconv.EVALUATION_REASON_LEGACY: "TARGETING_MATCH",
    semconv.PROVIDER_NAME_LEGACY: "flagd",
    semconv.CONTEXT_ID: "user-123",
    semconv.SET_ID: "env-1",
    semconv.VERSION: "7",
}
FAILED = {
    semconv.KEY: "ghost",
    semconv.RESULT_VALUE: "false",
    semconv.ERROR_TYPE: "flag_not_found",
    semconv.ERROR_MESSAGE: "Flag 'ghost' not found",
    semconv.PROVIDER_NAME: "flagd",
}


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("attributes", [CURRENT, LEGACY], ids=["current", "legacy"])
def test_both_ways_in_record_the_same_fields(
    producers: Producers, way: Way, attributes: dict[str, Any]
) -> None:
    record, span = producers.evaluate(way, attributes)
    assert record.flag_key == "new-checkout"
    assert record.value is True
    assert record.variant == "on"
    assert record.reason is EvaluationReason.TARGETING_MATCH
    assert record.provider_name == "flagd"
    assert record.targeting_key == "user-123"
    assert (record.flag_set_id, record.version) == ("env-1", "7")
    assert (record.trace_id, record.span_id) == hex_ids(span)
    assert record.service_name == SERVICE_NAME
    assert within_span(record.timestamp, span)
    assert record.attributes == {}


@pytest.mark.parametrize("way", WAYS)
def test_both_ways_in_record_a_failed_evaluation(producers: Producers, way: Way) -> None:
    record, _ = producers.evaluate(way, FAILED)
    assert record.is_error
    assert record.reason is EvaluationReason.ERROR
    assert (record.error_type, record.error_message) == ("flag_not_found", "Flag 'ghost' not found")
    assert record.value is False


def test_the_log_bodys_value_field_is_used_when_the_attribute_is_absent(
    producers: Producers,
) -> None:
    # semconv v1.29 to v1.33 put the value in the body.
    attributes = {semconv.KEY: "banner-color", semconv.RESULT_VARIANT: "red"}
    record, _ = producers.evaluate("log record", attributes, body={"value": "#c05543"})
    assert record.value == "#c05543"


def test_the_attribute_value_wins_over_the_body(producers: Producers) -> None:
    attributes = {semconv.KEY: "banner-color", semconv.RESULT_VALUE: '"#1f6feb"'}
    record, _ = producers.evaluate("log record", attributes, body={"value": "#c05543"})
    assert record.value == "#1f6feb"


def test_a_map_typed_value_becomes_the_plain_dict(producers: Producers) -> None:
    # Log attributes, unlike span attributes, may hold maps (arrays arrive as tuples).
    value = {"palette": {"accent": "#c05543"}, "sizes": [1, 2]}
    record, _ = producers.evaluate(
        "log record", {semconv.KEY: "theme", semconv.RESULT_VALUE: value}
    )
    assert type(record.value) is dict
    assert record.value == {"palette": {"accent": "#c05543"}, "sizes": [1, 2]}


def test_the_event_name_attribute_of_older_bridges_is_recognised_and_not_kept(
    producers: Producers,
) -> None:
    logger = producers.logger_provider.get_logger("bridge")
    logger.emit(
        attributes={semconv.LOG_EVENT_NAME_ATTRIBUTE: semconv.EVENT_NAME, **CURRENT, "x.y": 1},
        body="flag evaluated",
    )
    (record,) = producers.collector.events()
    assert record.flag_key == "new-checkout"
    assert record.attributes == {"x.y": 1}
    assert record.trace_id is None  # emitted outside any span


def test_the_records_own_timestamp_is_preferred_to_the_observed_one(
    producers: Producers,
) -> None:
    when = 1_700_000_000_123_456_789
    logger = producers.logger_provider.get_logger("app")
    logger.emit(event_name=semconv.EVENT_NAME, attributes=CURRENT, timestamp=when)
    logger.emit(event_name=semconv.EVENT_NAME, attributes=CURRENT, observed_timestamp=when)
    timed, observed = producers.collector.events()
    assert timed.timestamp == timestamp_from_ns(when)
    assert observed.timestamp == timestamp_from_ns(when)
    assert [r.log_record.timestamp for r in producers.mirror.get_finished_logs()] == [when, None]


def test_other_log_records_are_ignored_and_counted(producers: Producers) -> None:
    logger = producers.logger_provider.get_logger("app")
    logger.emit(body="hello")
    logger.emit(event_name="session.start", attributes={semconv.KEY: "not-an-evaluation"})
    logger.emit(attributes={semconv.KEY: "no-event-name"})
    logger.emit(body="an ordinary log line", severity_text="WARN")
    assert producers.collector.events() == []
    stats = producers.log_exporter.stats
    assert (stats.items_seen, stats.items_ignored, stats.events_mapped) == (4, 4, 0)
    assert stats.events_skipped == 0


def test_an_evaluation_event_without_a_key_is_skipped_and_counted(producers: Producers) -> None:
    logger = producers.logger_provider.get_logger("app")
    logger.emit(event_name=semconv.EVENT_NAME, attributes={semconv.RESULT_VARIANT: "on"})
    logger.emit(event_name=semconv.EVENT_NAME)
    logger.emit(event_name=semconv.EVENT_NAME, attributes={semconv.KEY: ""})
    assert producers.collector.events() == []
    stats = producers.log_exporter.stats
    assert stats.skipped_by_reason == {"missing_flag_key": 2, "invalid_flag_key": 1}
    assert stats.items_ignored == 0


def test_batch_processor_exports_on_flush() -> None:
    made = _producers(batch=True)
    try:
        logger = made.logger_provider.get_logger("app")
        for user in ("a", "b", "c"):
            logger.emit(
                event_name=semconv.EVENT_NAME, attributes={**CURRENT, semconv.CONTEXT_ID: user}
            )
        assert made.logger_provider.force_flush()
        assert [r.targeting_key for r in made.collector.events()] == ["a", "b", "c"]
    finally:
        made.logger_provider.shutdown()
        made.tracer_provider.shutdown()


def test_raw_decoding_keeps_the_value_as_sent() -> None:
    made = _producers(value_decoding="raw")
    try:
        record, _ = made.evaluate("log record", CURRENT)
        assert record.value == "true"
    finally:
        made.logger_provider.shutdown()
        made.tracer_provider.shutdown()


def test_after_shutdown_export_fails_and_the_records_stay(producers: Producers) -> None:
    producers.evaluate("log record", CURRENT)
    producers.logger_provider.shutdown()
    exporter = producers.log_exporter
    assert exporter.export(producers.mirror.get_finished_logs()) is LogRecordExportResult.FAILURE
    assert exporter.stats.failed_exports == 1
    assert len(producers.collector.events()) == 1
    exporter.shutdown()  # idempotent


def test_garbage_in_a_batch_never_raises(producers: Producers) -> None:
    producers.evaluate("log record", CURRENT)
    (good,) = producers.mirror.get_finished_logs()
    result = producers.log_exporter.export([object(), None, good])  # type: ignore[list-item]
    assert result is LogRecordExportResult.SUCCESS
    stats = producers.log_exporter.stats
    assert stats.skipped_by_reason == {"mapping_error": 2}
    assert len(producers.collector.events()) == 2


def test_a_batch_that_breaks_while_iterating_keeps_what_was_mapped(producers: Producers) -> None:
    producers.evaluate("log record", CURRENT)
    (good,) = producers.mirror.get_finished_logs()

    def broken() -> Iterator[Any]:
        yield good
        raise RuntimeError("boom")

    assert producers.log_exporter.export(broken()) is LogRecordExportResult.SUCCESS  # type: ignore[arg-type]
    assert len(producers.collector.events()) == 2


def test_a_collector_that_refuses_makes_export_fail_without_raising() -> None:
    class Refusing:
        def record_batch(self, events: Any) -> int:
            raise RuntimeError("full")

    exporter = FlagEvaluationLogExporter(Refusing())
    made = _producers()
    try:
        made.evaluate("log record", CURRENT)
        assert exporter.export(made.mirror.get_finished_logs()) is LogRecordExportResult.FAILURE
        assert exporter.stats.failed_exports == 1
    finally:
        made.logger_provider.shutdown()
        made.tracer_provider.shutdown()


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ((object(),), {}, TypeError),
        ((InMemoryAnalyticsCollector(),), {"value_decoding": "yaml"}, ValueError),
    ],
)
def test_configuration_mistakes_raise_at_construction(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        FlagEvaluationLogExporter(*args, **kwargs)


def test_force_flush_returns_true(producers: Producers) -> None:
    assert producers.log_exporter.force_flush() is True


def test_maps_inside_arrays_of_a_map_typed_value_are_plain_copies(
    producers: Producers,
) -> None:
    value = {"items": [{"x": 1}, {"x": 2}]}
    attributes = {semconv.KEY: "theme", semconv.RESULT_VALUE: value}
    record, _ = producers.evaluate("log record", attributes)
    read = record.value
    assert read == {"items": [{"x": 1}, {"x": 2}]}
    read["items"][0]["x"] = 9
    assert record.value == {"items": [{"x": 1}, {"x": 2}]}


def test_maps_in_an_array_value_and_in_leftover_attributes_are_read_only_copies(
    producers: Producers,
) -> None:
    value = [{"x": 1}]
    extra = {"a": {"b": 1}}
    attributes = {semconv.KEY: "theme", semconv.RESULT_VALUE: value, "app.extra": extra}
    record, _ = producers.evaluate("log record", attributes)
    value[0]["x"] = 2
    extra["a"]["b"] = 2
    assert record.value == [{"x": 1}]
    assert record.attributes == {"app.extra": {"a": {"b": 1}}}
    assert isinstance(record.attributes["app.extra"], MappingProxyType)
    assert isinstance(record.attributes["app.extra"]["a"], MappingProxyType)


def test_a_record_named_as_another_event_is_ignored_whatever_its_attributes_say(
    producers: Producers,
) -> None:
    # As the OTLP receiver does: the event_name field wins over an event.name attribute.
    logger = producers.logger_provider.get_logger("app")
    logger.emit(
        event_name="session.start",
        attributes={semconv.LOG_EVENT_NAME_ATTRIBUTE: semconv.EVENT_NAME, **CURRENT},
    )
    assert producers.collector.events() == []
    assert producers.log_exporter.stats.items_ignored == 1
