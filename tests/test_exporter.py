"""``FlagEvaluationSpanExporter``: every way in, the SDK exporter contract, stats and logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar_flags.analytics.collectors.memory import (
    InMemoryAnalyticsCollector as LitestarCollector,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import INVALID_SPAN_CONTEXT

from flagscope import (
    EvaluationReason,
    FlagEvaluationEvent,
    FlagEvaluationSpanExporter,
    InMemoryAnalyticsCollector,
    SkipReason,
)
from flagscope._telemetry import semconv
from flagscope._telemetry.mapping import timestamp_from_ns
from producers import (
    END_NS,
    SERVICE_NAME,
    SPAN_HEX,
    START_NS,
    TRACE_HEX,
    Pipeline,
    flag_event,
    hex_ids,
    readable_span,
    span_context,
    within_span,
)

FULL_ATTRIBUTES: dict[str, Any] = {
    semconv.RESULT_VALUE: '"#c05543"',
    semconv.RESULT_REASON: "targeting_match",
    semconv.RESULT_VARIANT: "red",
    semconv.CONTEXT_ID: "user-123",
    semconv.PROVIDER_NAME: "In-Memory Provider",
    semconv.SET_ID: "env-abc",
    semconv.VERSION: "7",
    "app.cart.items": 3,
}


def _exporter(**kwargs: Any) -> tuple[FlagEvaluationSpanExporter, InMemoryAnalyticsCollector]:
    collector = InMemoryAnalyticsCollector()
    return FlagEvaluationSpanExporter(collector, **kwargs), collector


def _good_span() -> ReadableSpan:
    return readable_span(events=[flag_event("good-flag")])


class _ExplodingEventsSpan(ReadableSpan):
    """A span whose ``events`` raise, as a broken SDK subclass might."""

    @property
    def events(self) -> Any:
        raise RuntimeError("events are gone")


class _ExplodingContextSpan(ReadableSpan):
    @property
    def context(self) -> Any:
        raise RuntimeError("no context")


class _RaisingCollector(InMemoryAnalyticsCollector):
    def record_batch(self, events: Any) -> NoReturn:
        raise RuntimeError("disk full")


# -- every way in ---------------------------------------------------------------------


@pytest.mark.parametrize("event_name", [semconv.EVENT_NAME, semconv.EVENT_NAME_LEGACY])
def test_flag_event_under_either_name_is_recorded_with_every_field(event_name: str) -> None:
    exporter, collector = _exporter()
    event = flag_event("new-checkout", FULL_ATTRIBUTES, name=event_name)

    assert exporter.export([readable_span(events=[event])]) is SpanExportResult.SUCCESS

    (record,) = collector.events()
    assert record == FlagEvaluationEvent(
        timestamp=timestamp_from_ns(event.timestamp),
        flag_key="new-checkout",
        value="#c05543",
        reason=EvaluationReason.TARGETING_MATCH,
        variant="red",
        targeting_key="user-123",
        provider_name="In-Memory Provider",
        flag_set_id="env-abc",
        version="7",
        trace_id=TRACE_HEX,
        span_id=SPAN_HEX,
        service_name=SERVICE_NAME,
        attributes={"app.cart.items": 3},
    )


def test_span_named_feature_flag_evaluation_with_the_keys_as_attributes_is_recorded() -> None:
    exporter, collector = _exporter()
    # What the JS span hooks send: native values on the span itself, no events.
    span = readable_span(
        semconv.SPAN_NAME,
        attributes={
            semconv.KEY: "max-items",
            semconv.RESULT_VALUE: 42,
            semconv.RESULT_REASON: "STATIC",
            semconv.PROVIDER_NAME: "flagd",
        },
    )

    assert exporter.export([span]) is SpanExportResult.SUCCESS

    (record,) = collector.events()
    assert (record.flag_key, record.value, record.reason) == ("max-items", 42, "static")
    assert record.provider_name == "flagd"
    assert record.timestamp == timestamp_from_ns(END_NS)
    assert (record.trace_id, record.span_id) == (TRACE_HEX, SPAN_HEX)


def test_span_named_feature_flag_evaluation_without_a_key_is_counted_as_skipped() -> None:
    exporter, collector = _exporter()
    spans = [
        readable_span(semconv.SPAN_NAME, attributes=None),
        readable_span(semconv.SPAN_NAME, attributes={"http.route": "/cart"}),
    ]

    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert collector.count() == 0
    assert exporter.stats.skipped_by_reason == {SkipReason.MISSING_FLAG_KEY.value: 2}


def test_span_named_feature_flag_evaluation_holding_flag_events_is_not_a_skip() -> None:
    exporter, collector = _exporter()
    span = readable_span(semconv.SPAN_NAME, attributes=None, events=[flag_event()])

    assert exporter.export([span]) is SpanExportResult.SUCCESS
    assert collector.count() == 1
    assert exporter.stats.events_skipped == 0


def test_a_malformed_event_does_not_cost_the_spans_other_evaluations() -> None:
    exporter, collector = _exporter()
    good_a = Event(semconv.EVENT_NAME, {semconv.KEY: "a"}, timestamp=START_NS)
    bad = Event(semconv.EVENT_NAME, [1, 2], timestamp=START_NS)  # type: ignore[arg-type]
    good_b = Event(semconv.EVENT_NAME, {semconv.KEY: "b"}, timestamp=START_NS)

    assert (
        exporter.export([readable_span(events=[good_a, bad, good_b])]) is SpanExportResult.SUCCESS
    )

    assert [record.flag_key for record in collector.events()] == ["a", "b"]
    assert exporter.stats.skipped_by_reason == {SkipReason.INVALID_ATTRIBUTES.value: 1}


@pytest.mark.parametrize(
    "event",
    [
        Event("exception", {semconv.KEY: "new-checkout", "exception.type": "FlagNotFoundError"}),
        Event("log", {semconv.KEY: "new-checkout"}),
        Event("feature_flag.evaluation.started", {semconv.KEY: "new-checkout"}),
        Event("FEATURE_FLAG", {semconv.KEY: "new-checkout"}),
    ],
    ids=["exception", "log", "longer-name", "uppercase"],
)
def test_events_with_other_names_are_ignored_not_skipped(event: Event) -> None:
    exporter, collector = _exporter()

    assert exporter.export([readable_span(events=[event])]) is SpanExportResult.SUCCESS

    assert collector.count() == 0
    stats = exporter.stats
    assert (stats.items_seen, stats.events_mapped, stats.events_skipped) == (1, 0, 0)


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (object(), SkipReason.MAPPING_ERROR),
        (None, SkipReason.MAPPING_ERROR),
        ("GET /cart", SkipReason.MAPPING_ERROR),
        (_ExplodingEventsSpan("GET /cart"), SkipReason.MAPPING_ERROR),
        (_ExplodingContextSpan("x", events=[flag_event()]), SkipReason.MAPPING_ERROR),
        (readable_span(events=[None]), SkipReason.MAPPING_ERROR),
        (
            readable_span(events=[Event(semconv.EVENT_NAME, [1, 2])]),  # type: ignore[arg-type]
            SkipReason.INVALID_ATTRIBUTES,
        ),
        (readable_span(events=[Event(semconv.EVENT_NAME, None)]), SkipReason.MISSING_FLAG_KEY),
        (readable_span(events=[flag_event(None)]), SkipReason.MISSING_FLAG_KEY),
        (readable_span(events=[flag_event(42)]), SkipReason.INVALID_FLAG_KEY),
        (readable_span(events=[flag_event("")]), SkipReason.INVALID_FLAG_KEY),
        (readable_span(events=[flag_event(timestamp="soon")]), SkipReason.INVALID_TIMESTAMP),
        (readable_span(events=[flag_event(timestamp=10**30)]), SkipReason.INVALID_TIMESTAMP),
        (
            readable_span(semconv.SPAN_NAME, attributes={semconv.KEY: 7}),
            SkipReason.INVALID_FLAG_KEY,
        ),
    ],
    ids=[
        "object",
        "none",
        "string",
        "events-raise",
        "context-raises",
        "event-is-none",
        "attributes-list",
        "attributes-none",
        "no-key",
        "int-key",
        "empty-key",
        "text-timestamp",
        "overflowing-timestamp",
        "span-hook-int-key",
    ],
)
def test_garbage_is_counted_as_skipped_and_the_rest_of_the_batch_recorded(
    item: Any, reason: SkipReason
) -> None:
    exporter, collector = _exporter()

    assert exporter.export([item, _good_span()]) is SpanExportResult.SUCCESS

    assert [r.flag_key for r in collector.events()] == ["good-flag"]
    stats = exporter.stats
    assert stats.items_seen == 2
    assert stats.events_mapped == 1
    assert dict(stats.skipped_by_reason) == {reason.value: 1}
    assert stats.failed_exports == 0


def test_spans_iterable_that_raises_keeps_what_was_mapped_before() -> None:
    exporter, collector = _exporter()

    def spans() -> Iterator[ReadableSpan]:
        yield _good_span()
        raise RuntimeError("the batch broke")

    assert exporter.export(spans()) is SpanExportResult.SUCCESS  # type: ignore[arg-type]
    assert [r.flag_key for r in collector.events()] == ["good-flag"]


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (Resource({"service.name": "checkout"}), "checkout"),
        (Resource.get_empty(), None),
        (Resource({"service.name": 7}), None),
    ],
    ids=["named", "empty", "not-text"],
)
def test_service_name_comes_from_the_resource_when_it_is_text(
    resource: Resource, expected: str | None
) -> None:
    exporter, collector = _exporter()

    exporter.export([readable_span(events=[flag_event()], resource=resource)])

    (record,) = collector.events()
    assert record.service_name == expected


def test_each_span_gets_its_own_resources_service_name() -> None:
    # The exporter remembers the last resource's name: switching resources must not
    # carry a name over to spans of another provider.
    exporter, collector = _exporter()
    checkout = Resource({"service.name": "checkout"})
    billing = Resource({"service.name": "billing"})
    resources = [checkout, billing, Resource.get_empty(), checkout, checkout, billing]

    for resource in resources:
        exporter.export([readable_span(events=[flag_event()], resource=resource)])

    names = [record.service_name for record in collector.events()]
    assert names == ["checkout", "billing", None, "checkout", "checkout", "billing"]


def test_invalid_span_context_gives_no_ids_but_still_records() -> None:
    exporter, collector = _exporter()

    exporter.export([readable_span(events=[flag_event()], context=INVALID_SPAN_CONTEXT)])

    (record,) = collector.events()
    assert (record.trace_id, record.span_id) == (None, None)


@pytest.mark.parametrize(
    ("value_decoding", "expected"),
    [
        ("auto", ["#c05543", True, {"a": [1, 2]}]),
        ("json", ["#c05543", True, {"a": [1, 2]}]),
        ("raw", ['"#c05543"', "true", '{"a": [1, 2]}']),
    ],
)
def test_value_decoding_decodes_json_or_keeps_the_text(
    value_decoding: Any, expected: list[Any]
) -> None:
    exporter, collector = _exporter(value_decoding=value_decoding)
    values = ['"#c05543"', "true", '{"a": [1, 2]}']
    events = [flag_event("f", {semconv.RESULT_VALUE: value}) for value in values]

    exporter.export([readable_span(events=events)])

    assert [r.value for r in collector.events()] == expected


# -- construction ---------------------------------------------------------------------


class _NotCallable:
    record_batch = 5


class _AsyncRecordMany:
    async def record_batch(self, events: Any) -> int:
        return 0


@pytest.mark.parametrize(
    "collector",
    [object(), LitestarCollector(), _NotCallable(), _AsyncRecordMany(), None],
    ids=["object", "litestar-flags-collector", "not-callable", "async", "none"],
)
def test_collector_without_a_synchronous_record_batch_is_a_type_error(collector: Any) -> None:
    with pytest.raises(TypeError, match="record_batch"):
        FlagEvaluationSpanExporter(collector)


@pytest.mark.parametrize("value_decoding", ["yaml", "JSON", "", None])
def test_unknown_value_decoding_is_a_value_error(value_decoding: Any) -> None:
    with pytest.raises(ValueError, match="value_decoding"):
        FlagEvaluationSpanExporter(InMemoryAnalyticsCollector(), value_decoding=value_decoding)


def test_the_collector_is_the_one_given() -> None:
    collector = InMemoryAnalyticsCollector()
    assert FlagEvaluationSpanExporter(collector).collector is collector


# -- the SDK exporter contract --------------------------------------------------------


def test_export_with_skips_still_succeeds() -> None:
    exporter, collector = _exporter()
    result = exporter.export([readable_span(events=[flag_event(None), flag_event()])])
    assert result is SpanExportResult.SUCCESS
    assert [r.flag_key for r in collector.events()] == ["new-checkout"]
    stats = exporter.stats
    assert stats.skipped_by_reason == {SkipReason.MISSING_FLAG_KEY.value: 1}
    assert (stats.events_mapped, stats.failed_exports) == (1, 0)


def test_export_takes_its_spans_by_the_span_exporter_parameter_name() -> None:
    exporter, collector = _exporter()

    assert exporter.export(spans=[_good_span()]) is SpanExportResult.SUCCESS

    assert [r.flag_key for r in collector.events()] == ["good-flag"]


def test_export_after_shutdown_fails_and_records_nothing() -> None:
    exporter, collector = _exporter()
    exporter.shutdown()

    assert exporter.export([_good_span()]) is SpanExportResult.FAILURE

    assert collector.count() == 0
    assert exporter.stats.failed_exports == 1


def test_shutdown_twice_does_not_raise_and_stays_shut() -> None:
    exporter, _ = _exporter()
    exporter.shutdown()
    exporter.shutdown()
    assert exporter.export([_good_span()]) is SpanExportResult.FAILURE


def test_force_flush_returns_true_before_and_after_shutdown() -> None:
    exporter, _ = _exporter()
    assert exporter.force_flush() is True
    assert exporter.force_flush(timeout_millis=0) is True
    exporter.shutdown()
    assert exporter.force_flush() is True


def test_collector_that_raises_fails_the_export_and_logs_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter = FlagEvaluationSpanExporter(_RaisingCollector())

    with caplog.at_level(logging.ERROR, logger="flagscope"):
        result = exporter.export([_good_span(), _good_span()])

    assert result is SpanExportResult.FAILURE
    (log,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "refused 2 evaluation(s)" in log.getMessage()
    assert log.exc_info is not None
    assert str(log.exc_info[1]) == "disk full"
    stats = exporter.stats
    assert (stats.items_seen, stats.events_mapped, stats.failed_exports) == (2, 0, 1)


# -- stats and logs -------------------------------------------------------------------


def test_stats_count_every_span_mapping_and_skip_exactly() -> None:
    exporter, collector = _exporter()
    first = [
        readable_span(
            events=[
                flag_event("a"),
                Event("exception", {semconv.KEY: "a"}),
                flag_event("b", name=semconv.EVENT_NAME_LEGACY),
            ]
        ),
        readable_span(events=[flag_event(None), flag_event(3), flag_event(None)]),
        readable_span(),
    ]
    second: list[Any] = [readable_span(events=[flag_event("c"), flag_event("")]), object()]

    exporter.export(first)
    exporter.export(second)

    stats = exporter.stats
    assert stats.items_seen == 5
    assert stats.events_mapped == 3
    assert stats.events_skipped == 5
    assert dict(stats.skipped_by_reason) == {
        "missing_flag_key": 2,
        "invalid_flag_key": 2,
        "mapping_error": 1,
    }
    assert (stats.export_calls, stats.failed_exports, stats.items_ignored) == (2, 0, 0)
    assert collector.count() == stats.events_mapped
    assert stats.to_dict()["skipped_by_reason"] == dict(stats.skipped_by_reason)


def _hand_made(**fields: Any) -> ReadableSpan:
    """A span built by hand with fields no SDK span has."""
    base: dict[str, Any] = {"name": "GET /", "context": readable_span().context}
    return ReadableSpan(**{**base, **fields})


def _sdk_events() -> Any:
    """One usual flag event as the SDK keeps it (``BoundedAttributes``): the short path's."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("s") as span:
        span.add_event(
            semconv.EVENT_NAME,
            {
                semconv.KEY: "a",
                semconv.RESULT_VARIANT: "on",
                semconv.RESULT_REASON: "static",
                semconv.PROVIDER_NAME: "p",
            },
        )
    return memory.get_finished_spans()[0].events


@pytest.mark.parametrize(
    "fields",
    [
        {"events": None},
        {"events": [None]},
        {"events": ["not an event"]},
        {"events": "sdk", "status": None},
        {"events": "sdk", "status": object()},
        {"events": "sdk", "context": object()},
    ],
    ids=["no events", "a None event", "a text event", "no status", "odd status", "odd context"],
)
def test_one_hand_made_span_the_short_path_cannot_read_is_skipped_not_raised(
    fields: dict[str, Any],
) -> None:
    """What a SimpleSpanProcessor hands over, one span, never raises into the app either."""
    if fields["events"] == "sdk":
        fields = {**fields, "events": _sdk_events()}
    exporter, collector = _exporter()
    # A real span first: the short path then compares each span's status with its.
    assert exporter.export((_good_span(),)) is SpanExportResult.SUCCESS

    assert exporter.export((_hand_made(**fields),)) is SpanExportResult.SUCCESS

    assert exporter.export((_good_span(),)) is SpanExportResult.SUCCESS
    assert collector.count(flag_key="good-flag") == 2
    assert collector.count() == exporter.stats.events_mapped
    assert exporter.stats.failed_exports == 0


def test_a_local_root_without_a_status_while_its_request_is_wanted_is_skipped() -> None:
    """The root's outcome cannot be read: counted, the evaluation kept, nothing raised."""
    exporter, collector = _exporter()
    root_context = readable_span().context
    child = readable_span(
        events=[flag_event("a")],
        context=span_context(root_context.trace_id, 0x1234),
        parent=root_context,
    )
    assert exporter.export((child,)) is SpanExportResult.SUCCESS

    root = _hand_made(context=root_context, status=None)
    assert exporter.export((root,)) is SpanExportResult.SUCCESS

    assert collector.count() == 1
    assert dict(exporter.stats.skipped_by_reason) == {"mapping_error": 1}


def test_a_warning_is_logged_once_per_skip_reason(caplog: pytest.LogCaptureFixture) -> None:
    exporter, _ = _exporter()
    missing = readable_span(events=[flag_event(None)])
    invalid = readable_span(events=[flag_event(5)])

    with caplog.at_level(logging.DEBUG, logger="flagscope"):
        for batch in ([missing], [missing, missing], [invalid], [missing, invalid]):
            exporter.export(batch)

    logs = [r for r in caplog.records if r.name == "flagscope"]
    warnings = [r.getMessage() for r in logs if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "missing_flag_key" in warnings[0]
    assert "invalid_flag_key" in warnings[1]
    assert sum(1 for r in logs if r.levelno == logging.DEBUG) == 3


# -- a property: whatever the events, export() accounts for each one ------------------

_KEYS = st.one_of(st.none(), st.text(max_size=8), st.integers(), st.booleans())
_VALUES = st.one_of(
    st.text(max_size=12),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.tuples(st.integers()),
)
_EXTRA = st.dictionaries(
    st.sampled_from(
        [
            semconv.RESULT_VALUE,
            semconv.RESULT_REASON,
            semconv.VARIANT_LEGACY,
            semconv.ERROR_TYPE,
            semconv.CONTEXT_ID,
            "app.other",
        ]
    ),
    _VALUES,
    max_size=4,
)
_TIMESTAMPS = st.one_of(
    st.integers(0, 4 * 10**18), st.just("soon"), st.integers(10**22, 10**24), st.none()
)
_EVENTS = st.builds(
    lambda name, key, extra, ts: (name, key, extra, ts),
    st.sampled_from([semconv.EVENT_NAME, semconv.EVENT_NAME_LEGACY, "exception", "log"]),
    _KEYS,
    _EXTRA,
    _TIMESTAMPS,
)


def _is_valid(name: str, key: Any, timestamp: Any) -> bool:
    return (
        name in semconv.EVENT_NAMES
        and type(key) is str
        and key != ""
        and (timestamp is None or (type(timestamp) is int and timestamp < 10**22))
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_EVENTS, max_size=5), max_size=5))
def test_every_flag_event_is_either_recorded_or_counted_as_skipped(
    spans: list[list[tuple[str, Any, dict[str, Any], Any]]],
) -> None:
    exporter, collector = _exporter()
    batch = [
        readable_span(
            events=[
                Event(name, {**extra, **({semconv.KEY: key} if key is not None else {})}, ts)
                for name, key, extra, ts in events
            ]
        )
        for events in spans
    ]

    assert exporter.export(batch) is SpanExportResult.SUCCESS

    flat = [event for events in spans for event in events]
    flag_events = [e for e in flat if e[0] in semconv.EVENT_NAMES]
    expected = [key for name, key, _, ts in flat if _is_valid(name, key, ts)]
    assert [r.flag_key for r in collector.events()] == expected
    stats = exporter.stats
    assert stats.items_seen == len(spans)
    assert stats.events_mapped == len(expected)
    assert stats.events_skipped == len(flag_events) - len(expected)
    assert set(stats.skipped_by_reason) <= {reason.value for reason in SkipReason}
    assert SkipReason.MAPPING_ERROR.value not in stats.skipped_by_reason


# -- end to end through the SDK's processors ------------------------------------------


def test_span_events_added_by_application_code_are_recorded_with_span_ids(
    otel: Pipeline,
) -> None:
    with otel.tracer().start_as_current_span("GET /cart") as span:
        span.add_event(semconv.EVENT_NAME, {semconv.KEY: "new-checkout", **FULL_ATTRIBUTES})
        span.add_event("exception", {semconv.KEY: "new-checkout"})
        span.add_event(semconv.EVENT_NAME_LEGACY, {semconv.KEY: "banner-color"})
    otel.flush()

    finished = otel.span_named("GET /cart")
    records = otel.collector.events()
    assert [r.flag_key for r in records] == ["new-checkout", "banner-color"]
    for record in records:
        assert (record.trace_id, record.span_id) == hex_ids(finished)
        assert record.service_name == SERVICE_NAME
        assert within_span(record.timestamp, finished)
    assert records[0].value == "#c05543"


def test_records_stay_readable_after_the_provider_shuts_down(otel: Pipeline) -> None:
    with otel.tracer().start_as_current_span("GET /cart") as span:
        span.add_event(semconv.EVENT_NAME, {semconv.KEY: "new-checkout"})

    # Shutting the provider down flushes the batch processor and shuts the exporter down.
    otel.provider.shutdown()

    assert [r.flag_key for r in otel.collector.events()] == ["new-checkout"]
    assert otel.exporter.export([_good_span()]) is SpanExportResult.FAILURE
    assert otel.collector.count() == 1


def test_span_without_flag_events_records_nothing(otel: Pipeline) -> None:
    with otel.tracer().start_as_current_span("GET /cart") as span:
        span.set_attribute("http.route", "/cart")
    otel.flush()

    assert otel.collector.count() == 0
    stats = otel.exporter.stats
    assert (stats.items_seen, stats.events_mapped, stats.events_skipped) == (1, 0, 0)
    assert stats.items_ignored == 0  # that count is for log records that are not flag events


def test_hand_built_span_times_are_kept_to_the_microsecond() -> None:
    exporter, collector = _exporter()
    exporter.export([readable_span(events=[flag_event(timestamp=START_NS + 1_999)])])

    (record,) = collector.events()
    assert record.timestamp == timestamp_from_ns(START_NS + 1_000)
    assert record.timestamp.tzinfo is not None
