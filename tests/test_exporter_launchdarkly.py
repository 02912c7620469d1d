"""The span exporter fed by the real LaunchDarkly SDK (offline, ``TestData``) and ``ldotel``."""

from __future__ import annotations

import pytest
from ldclient import Context
from ldclient.integrations.test_data import TestData
from ldotel.tracing import HookOptions

from flagscope import EvaluationReason, FlagEvaluationEvent
from flagscope._telemetry import semconv
from producers import (
    SERVICE_NAME,
    Pipeline,
    hex_ids,
    launchdarkly_client,
    launchdarkly_hook,
    make_pipeline,
    within_span,
)

VARIATION_INDEX = "feature_flag.result.variationIndex"
USER = Context.create("user-123")
ORG_AND_USER = Context.create_multi(USER, Context.create("org-9", "org"))


@pytest.fixture
def td() -> TestData:
    data = TestData.data_source()
    data.update(data.flag("new-checkout").variation_for_all(True))
    data.update(data.flag("banner-color").variations("#c05543", "#1f6feb").variation_for_all(1))
    return data


def _evaluate(
    otel: Pipeline,
    td: TestData,
    options: HookOptions | None = None,
    context: Context = USER,
) -> list[FlagEvaluationEvent]:
    """Evaluate new-checkout, banner-color and a missing flag in one span; return the records."""
    hook = launchdarkly_hook(otel.provider, options)
    with launchdarkly_client(td, hook) as ld, otel.tracer().start_as_current_span("GET /cart"):
        assert ld.variation("new-checkout", context, False) is True
        ld.variation_detail("banner-color", context, "#000000")
        ld.variation("not-declared", context, "fallback")
    otel.flush()
    records = otel.collector.events()
    span = otel.span_named("GET /cart")
    assert [e.name for e in span.events] == [semconv.EVENT_NAME_LEGACY] * 3
    for record in records:
        assert (record.trace_id, record.span_id) == hex_ids(span)
        assert record.service_name == SERVICE_NAME
        assert within_span(record.timestamp, span)
    return records


def test_default_options_record_key_context_and_variation_index_but_no_value(
    otel: Pipeline, td: TestData
) -> None:
    records = _evaluate(otel, td)

    assert [r.flag_key for r in records] == ["new-checkout", "banner-color", "not-declared"]
    for record in records:
        assert record.value is None
        assert record.provider_name == "LaunchDarkly"
        assert record.targeting_key == "user-123"
        # LaunchDarkly's hook never sends a reason, variant or error keys.
        assert record.reason is EvaluationReason.UNKNOWN
        assert record.variant is None
        assert record.error_type is None
        assert record.flag_set_id is None
    assert [dict(r.attributes) for r in records] == [
        {VARIATION_INDEX: 0},
        {VARIATION_INDEX: 1},
        {},  # a missing flag has no variation
    ]


def test_include_value_records_the_decoded_value(otel: Pipeline, td: TestData) -> None:
    records = _evaluate(otel, td, HookOptions(include_value=True))

    assert [r.value for r in records] == [True, "#1f6feb", "fallback"]
    assert [r.attributes.get(VARIATION_INDEX) for r in records] == [0, 1, None]
    assert {r.reason for r in records} == {EvaluationReason.UNKNOWN}


def test_environment_id_becomes_the_flag_set_id(otel: Pipeline, td: TestData) -> None:
    records = _evaluate(otel, td, HookOptions(environment_id="env-abc"))

    assert [r.flag_set_id for r in records] == ["env-abc"] * 3
    assert all(semconv.SET_ID not in r.attributes for r in records)


def test_multi_context_keeps_the_fully_qualified_key(otel: Pipeline, td: TestData) -> None:
    records = _evaluate(otel, td, context=ORG_AND_USER)

    assert [r.targeting_key for r in records] == ["org:org-9:user:user-123"] * 3


def test_invalid_context_records_no_targeting_key(otel: Pipeline, td: TestData) -> None:
    hook = launchdarkly_hook(otel.provider)
    with launchdarkly_client(td, hook) as ld, otel.tracer().start_as_current_span("GET /cart"):
        assert ld.variation("new-checkout", Context.create(""), False) is False
    otel.flush()

    (event,) = otel.span_named("GET /cart").events
    assert (event.attributes or {})[semconv.CONTEXT_ID] == ""  # what the hook sends
    (record,) = otel.collector.events()
    assert record.targeting_key is None


def test_variation_child_spans_are_not_counted_as_evaluations(otel: Pipeline, td: TestData) -> None:
    records = _evaluate(otel, td, HookOptions(add_spans=True, include_value=True))

    children = [s for s in otel.finished_spans() if s.name != "GET /cart"]
    # The hook really made them, with the flag key as a span attribute, under the request span.
    assert sorted(s.name for s in children) == ["variation", "variation", "variation_detail"]
    assert all(semconv.KEY in (s.attributes or {}) for s in children)
    parent = otel.span_named("GET /cart").context
    assert parent is not None
    assert [s.parent.span_id if s.parent else None for s in children] == [parent.span_id] * 3

    assert [r.flag_key for r in records] == ["new-checkout", "banner-color", "not-declared"]
    stats = otel.exporter.stats
    assert stats.items_seen == 4
    assert stats.events_mapped == 3
    assert stats.events_skipped == 0


def test_raw_decoding_keeps_the_json_text(td: TestData) -> None:
    otel = make_pipeline("simple", value_decoding="raw")
    try:
        records = _evaluate(otel, td, HookOptions(include_value=True))
    finally:
        otel.provider.shutdown()

    assert [r.value for r in records] == ["true", '"#1f6feb"', '"fallback"']
