"""The span exporter fed by the real OpenFeature SDK and its OpenTelemetry ``TracingHook``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider.in_memory_provider import InMemoryFlag

from flagscope import EvaluationReason, FlagEvaluationEvent
from flagscope._telemetry import semconv
from flagscope._telemetry.mapping import timestamp_from_ns
from producers import SERVICE_NAME, Pipeline, hex_ids, make_pipeline, within_span
from traffic import PROVIDER_NAME, openfeature_client, vip_only

OBJECT_VALUE = {"color": "red", "size": [1, 2], "nested": {"a": None}}

FLAGS: dict[str, InMemoryFlag[Any]] = {
    "new-checkout": InMemoryFlag("on", {"on": True, "off": False}),
    "banner-color": InMemoryFlag("red", {"red": "#c05543", "blue": "#1f6feb"}),
    "max-items": InMemoryFlag("forty-two", {"forty-two": 42}),
    "discount": InMemoryFlag("half-more", {"half-more": 3.5}),
    "theme": InMemoryFlag("dark", {"dark": OBJECT_VALUE}),
    "beta-search": InMemoryFlag("off", {"on": True, "off": False}, context_evaluator=vip_only),
}


@pytest.fixture
def client() -> Iterator[OpenFeatureClient]:
    with openfeature_client(FLAGS) as client:
        yield client


def _evaluate_in_span(otel: Pipeline, evaluate: Any) -> FlagEvaluationEvent:
    """Run one evaluation inside a span, flush, and return the only record."""
    with otel.tracer().start_as_current_span("GET /cart"):
        evaluate()
    otel.flush()
    (record,) = otel.collector.events()
    span = otel.span_named("GET /cart")
    assert (record.trace_id, record.span_id) == hex_ids(span)
    assert record.service_name == SERVICE_NAME
    assert record.provider_name == PROVIDER_NAME
    assert within_span(record.timestamp, span)
    (flag_event,) = [e for e in span.events if e.name == semconv.EVENT_NAME]
    assert record.timestamp == timestamp_from_ns(flag_event.timestamp)
    return record


@pytest.mark.parametrize(
    ("flag_key", "method", "default", "expected", "variant"),
    [
        ("new-checkout", "get_boolean_value", False, True, "on"),
        ("banner-color", "get_string_value", "", "#c05543", "red"),
        ("max-items", "get_integer_value", 0, 42, "forty-two"),
        ("discount", "get_float_value", 0.0, 3.5, "half-more"),
    ],
)
def test_primitive_values_arrive_decoded_with_their_python_type(
    otel: Pipeline,
    client: OpenFeatureClient,
    flag_key: str,
    method: str,
    default: Any,
    expected: Any,
    variant: str,
) -> None:
    context = EvaluationContext("user-123")
    record = _evaluate_in_span(otel, lambda: getattr(client, method)(flag_key, default, context))

    assert record.flag_key == flag_key
    assert record.value == expected
    assert type(record.value) is type(expected)
    assert record.variant == variant
    assert record.reason is EvaluationReason.STATIC
    assert record.targeting_key == "user-123"
    assert record.error_type is None
    assert record.error_message is None
    assert not record.is_error
    assert dict(record.attributes) == {}


def test_object_value_is_the_plain_dict_the_provider_served_and_a_copy_per_read(
    otel: Pipeline, client: OpenFeatureClient
) -> None:
    record = _evaluate_in_span(otel, lambda: client.get_object_value("theme", {}))

    assert type(record.value) is dict
    assert record.value == {"color": "red", "size": [1, 2], "nested": {"a": None}}
    assert json.loads(json.dumps(record.value)) == record.value
    mine = record.value
    mine["color"] = "blue"
    mine["size"].append(3)
    assert record.value == {"color": "red", "size": [1, 2], "nested": {"a": None}}
    assert otel.collector.events()[0].value["color"] == "red"
    assert record.variant == "dark"
    assert record.targeting_key is None  # no targeting key, so the hook sent no context.id


def test_targeted_flag_records_targeting_match_for_the_matching_context(
    otel: Pipeline, client: OpenFeatureClient
) -> None:
    context = EvaluationContext("user-123", {"plan": "vip"})
    record = _evaluate_in_span(
        otel, lambda: client.get_boolean_value("beta-search", False, context)
    )

    assert record.value is True
    assert record.reason is EvaluationReason.TARGETING_MATCH
    assert record.variant == "on"
    assert record.targeting_key == "user-123"


def test_missing_flag_records_flag_not_found_with_the_default_value(
    otel: Pipeline, client: OpenFeatureClient
) -> None:
    record = _evaluate_in_span(otel, lambda: client.get_boolean_value("not-declared", False))

    assert record.flag_key == "not-declared"
    assert record.value is False
    assert record.reason is EvaluationReason.ERROR
    assert record.error_type == semconv.ERROR_FLAG_NOT_FOUND
    assert record.error_message == "Flag 'not-declared' not found"
    assert record.variant is None
    assert record.is_error


def test_type_mismatch_records_the_error_and_the_default_value(
    otel: Pipeline, client: OpenFeatureClient
) -> None:
    record = _evaluate_in_span(otel, lambda: client.get_integer_value("banner-color", 7))

    assert record.value == 7
    assert record.reason is EvaluationReason.ERROR
    assert record.error_type == semconv.ERROR_TYPE_MISMATCH
    assert record.error_message == "Expected type <class 'int'> but got <class 'str'>"


def test_exception_events_on_the_span_are_not_counted(
    otel: Pipeline, client: OpenFeatureClient
) -> None:
    with otel.tracer().start_as_current_span("GET /cart"):
        client.get_boolean_value("new-checkout", False)
        client.get_boolean_value("not-declared", False)
        client.get_integer_value("banner-color", 7)
    otel.flush()

    span = otel.span_named("GET /cart")
    exceptions = [e for e in span.events if e.name == semconv.EXCEPTION_EVENT_NAME]
    # The hook really puts flag keys on its exception events: a naive exporter would count them.
    assert [(e.attributes or {}).get(semconv.KEY) for e in exceptions] == [
        "not-declared",
        "banner-color",
    ]
    records = otel.collector.events()
    assert [r.flag_key for r in records] == ["new-checkout", "not-declared", "banner-color"]
    assert [r.error_type for r in records] == [None, "flag_not_found", "type_mismatch"]
    stats = otel.exporter.stats
    assert stats.events_mapped == 3
    assert stats.events_skipped == 0


def test_evaluations_in_separate_spans_keep_their_own_span_ids(
    otel: Pipeline, client: OpenFeatureClient
) -> None:
    tracer = otel.tracer()
    with tracer.start_as_current_span("parent"):
        client.get_boolean_value("new-checkout", False)
        with tracer.start_as_current_span("child"):
            client.get_string_value("banner-color", "")
    otel.flush()

    by_flag = {r.flag_key: r for r in otel.collector.events()}
    parent, child = otel.span_named("parent"), otel.span_named("child")
    assert (by_flag["new-checkout"].trace_id, by_flag["new-checkout"].span_id) == hex_ids(parent)
    assert (by_flag["banner-color"].trace_id, by_flag["banner-color"].span_id) == hex_ids(child)


def test_evaluation_outside_any_span_records_nothing(
    otel: Pipeline, client: OpenFeatureClient
) -> None:
    assert client.get_boolean_value("new-checkout", False) is True
    otel.flush()

    assert otel.collector.count() == 0
    assert otel.exporter.stats.events_skipped == 0


def test_raw_decoding_keeps_the_hooks_json_text(client: OpenFeatureClient) -> None:
    otel = make_pipeline("simple", value_decoding="raw")
    try:
        with otel.tracer().start_as_current_span("GET /cart"):
            client.get_string_value("banner-color", "")
            client.get_boolean_value("new-checkout", False)
    finally:
        otel.provider.shutdown()

    assert [r.value for r in otel.collector.events()] == ['"#c05543"', "true"]


@pytest.mark.asyncio
async def test_async_evaluations_in_a_running_loop_are_recorded_when_the_span_ends(
    client: OpenFeatureClient,
) -> None:
    otel = make_pipeline("simple")
    try:
        with otel.tracer().start_as_current_span("GET /cart"):
            assert await client.get_boolean_value_async("new-checkout", False) is True
            assert await client.get_string_value_async("banner-color", "") == "#c05543"
            assert otel.collector.count() == 0  # span events export when the span ends
        # No await since the span ended: the simple processor exported on the loop's thread.
        assert [r.value for r in otel.collector.events()] == [True, "#c05543"]
    finally:
        otel.provider.shutdown()
