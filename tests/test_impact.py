"""query.impact on traffic with a known answer, sent through a real TracerProvider."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from flagscope import FlagEvaluationSpanExporter, InMemoryAnalyticsCollector
from flagscope._query.impact import MIN_REQUESTS, VERDICTS, BaselineNotServedError, FlagImpact
from flagscope._telemetry import semconv
from impact_traffic import FLAG, Behaviour, drive

CONTROL = Behaviour(error_rate=0.02, median_ms=100.0)


def impact_of(
    variants: dict[str, Behaviour], requests: int, seed: int, **kwargs: Any
) -> FlagImpact:
    collector = InMemoryAnalyticsCollector(max_size=50_000)
    drive(collector, variants, requests, seed)
    return collector.query.impact(FLAG, **kwargs)


# -- seeded effects -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_variant_failing_three_times_as_often_is_worse(seed: int) -> None:
    impact = impact_of(
        {"control": CONTROL, "treatment": Behaviour(0.06, 100.0)},
        3000,
        seed,
        baseline="control",
    )
    treatment = impact.variant("treatment")
    assert treatment.verdict == "worse"
    assert treatment.error_rate_ratio is not None
    assert 2.0 < treatment.error_rate_ratio < 4.5
    assert treatment.error_p_value is not None
    assert treatment.error_p_value < 1e-4
    assert impact.variant("control").verdict == "baseline"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_variant_forty_percent_slower_at_the_median_is_worse(seed: int) -> None:
    impact = impact_of(
        {"control": CONTROL, "treatment": Behaviour(0.02, 140.0)},
        3000,
        seed,
        baseline="control",
    )
    treatment = impact.variant("treatment")
    assert treatment.verdict == "worse"
    assert treatment.duration_ratio_p50 is not None
    assert 1.25 < treatment.duration_ratio_p50 < 1.55
    assert treatment.duration_p_value is not None
    assert treatment.duration_p_value < 1e-6


def test_a_variant_that_fails_less_is_better() -> None:
    impact = impact_of(
        {"control": Behaviour(0.06, 100.0), "treatment": CONTROL}, 3000, 4, baseline="control"
    )
    assert impact.variant("treatment").verdict == "better"


def test_identical_variants_show_no_difference_in_at_least_95_of_100_seeded_runs() -> None:
    """500 requests a run (about 250 a variant): the familywise 1% keeps false alarms rare."""
    verdicts = [
        impact_of({"control": CONTROL, "treatment": CONTROL}, 500, 1000 + seed, baseline="control")
        .variant("treatment")
        .verdict
        for seed in range(100)
    ]
    assert verdicts.count("no_difference") >= 95, verdicts


def test_several_variants_are_corrected_together_and_the_bad_one_found() -> None:
    impact = impact_of(
        {
            "control": CONTROL,
            "blue": CONTROL,
            "green": CONTROL,
            "red": Behaviour(0.08, 100.0),
        },
        6000,
        5,
        baseline="control",
    )
    verdicts = {item.variant: item.verdict for item in impact.variants}
    assert verdicts == {
        "control": "baseline",
        "blue": "no_difference",
        "green": "no_difference",
        "red": "worse",
    }


def test_below_the_minimum_sample_every_verdict_is_insufficient_data() -> None:
    impact = impact_of(
        {"control": CONTROL, "treatment": Behaviour(0.9, 500.0)},
        MIN_REQUESTS,
        6,
        baseline="control",
    )
    treatment = impact.variant("treatment")
    assert treatment.requests < MIN_REQUESTS
    assert treatment.verdict == "insufficient_data"
    assert treatment.error_rate is not None  # the figures are still reported


def test_span_scope_judges_the_span_the_evaluation_was_made_in() -> None:
    """The seeded failures are on the request; the evaluating child span is fine."""
    impact = impact_of(
        {"control": CONTROL, "treatment": Behaviour(0.3, 100.0)},
        2000,
        7,
        baseline="control",
        scope="span",
    )
    assert impact.scope == "span"
    treatment = impact.variant("treatment")
    assert treatment.errors == 0
    assert treatment.verdict == "no_difference"


# -- counting and baselines ------------------------------------------------------------------


def _provider(collector: InMemoryAnalyticsCollector) -> Any:
    provider = TracerProvider(resource=Resource.create({semconv.SERVICE_NAME: "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(FlagEvaluationSpanExporter(collector)))
    return provider.get_tracer("app")


def _evaluate(span: Any, variant: str | None, reason: str = "split", value: Any = True) -> None:
    attributes: dict[str, Any] = {
        "feature_flag.key": FLAG,
        "feature_flag.result.reason": reason,
        "feature_flag.result.value": value,
    }
    if variant is not None:
        attributes["feature_flag.result.variant"] = variant
    span.add_event(semconv.EVENT_NAME, attributes)


def test_a_request_evaluating_the_flag_several_times_counts_once_per_variant_it_saw() -> None:
    collector = InMemoryAnalyticsCollector()
    tracer = _provider(collector)
    with tracer.start_as_current_span("GET /", kind=SpanKind.SERVER) as root:
        for variant in ("on", "on", "on", "off"):
            with tracer.start_as_current_span("step") as step:
                _evaluate(step, variant)
        root.set_status(Status(StatusCode.ERROR, "boom"))
    impact = collector.query.impact(FLAG)
    on, off = impact.variant("on"), impact.variant("off")
    assert (on.evaluations, on.requests, on.errors) == (3, 1, 1)
    assert (off.evaluations, off.requests, off.errors) == (1, 1, 1)


def test_the_baseline_is_the_variant_served_by_default_when_none_is_given() -> None:
    collector = InMemoryAnalyticsCollector()
    tracer = _provider(collector)
    for variant, reason in [("new", "split")] * 3 + [("old", "default")]:
        with tracer.start_as_current_span("GET /") as root:
            _evaluate(root, variant, reason)
    impact = collector.query.impact(FLAG)
    assert impact.baseline == "old"
    assert impact.variants[0].variant == "old"
    assert impact.variants[0].verdict == "baseline"


def test_without_a_default_the_baseline_is_the_most_evaluated_ties_by_name() -> None:
    collector = InMemoryAnalyticsCollector()
    tracer = _provider(collector)
    for variant in ("b", "a", "c", "c"):
        with tracer.start_as_current_span("GET /") as root:
            _evaluate(root, variant)
    assert collector.query.impact(FLAG).baseline == "c"
    collector.clear()
    for variant in ("b", "a"):
        with tracer.start_as_current_span("GET /") as root:
            _evaluate(root, variant)
    assert collector.query.impact(FLAG).baseline == "a"
    assert collector.query.impact(FLAG, baseline="b").baseline == "b"


@pytest.mark.parametrize(("baseline", "filters"), [("of", {}), ("", {}), ("a", {"variant": "b"})])
def test_a_baseline_the_flag_never_served_is_refused_naming_what_was_served(
    baseline: str, filters: dict[str, Any]
) -> None:
    # Compared with nothing, every real variant would be "insufficient_data": a
    # misspelt baseline would hide a regression.
    collector = InMemoryAnalyticsCollector()
    tracer = _provider(collector)
    for variant in ("b", "a", "b"):
        with tracer.start_as_current_span("GET /") as root:
            _evaluate(root, variant)
    with pytest.raises(BaselineNotServedError, match=rf"baseline {baseline!r} of flag") as error:
        collector.query.impact(FLAG, baseline=baseline, **filters)
    assert isinstance(error.value, ValueError)
    assert str(error.value).endswith("served: 'b'" if filters else "served: 'b', 'a'")
    with pytest.raises(BaselineNotServedError):
        asyncio.run(collector.query.impact_async(FLAG, baseline=baseline, **filters))


def test_a_flag_never_evaluated_has_no_variants_whatever_the_baseline() -> None:
    impact = InMemoryAnalyticsCollector().query.impact(FLAG, baseline="control")
    assert (impact.baseline, impact.variants) == (None, ())


def test_flags_sent_without_variants_are_grouped_by_value() -> None:
    collector = InMemoryAnalyticsCollector()
    tracer = _provider(collector)
    for value in (True, True, False):
        with tracer.start_as_current_span("GET /") as root:
            _evaluate(root, None, value=value)
    impact = collector.query.impact(FLAG)
    assert {item.variant: item.evaluations for item in impact.variants} == {"true": 2, "false": 1}


def test_evaluations_without_a_known_outcome_count_as_evaluations_only() -> None:
    collector = InMemoryAnalyticsCollector()
    tracer = _provider(collector)
    root = tracer.start_span("GET /never-ends")  # never ends: its outcome never comes
    with trace.use_span(root, end_on_exit=False), tracer.start_as_current_span("step") as step:
        _evaluate(step, "on")
    impact = collector.query.impact(FLAG)
    assert (impact.variant("on").evaluations, impact.variant("on").requests) == (1, 0)
    assert impact.variant("on").error_rate is None


def test_a_flag_never_seen_has_no_variants() -> None:
    impact = InMemoryAnalyticsCollector().query.impact("unknown")
    assert (impact.baseline, impact.variants) == (None, ())


def test_filters_narrow_the_evaluations_judged() -> None:
    collector = InMemoryAnalyticsCollector()
    tracer = _provider(collector)
    for variant in ("on", "off"):
        with tracer.start_as_current_span("GET /") as root:
            _evaluate(root, variant)
    impact = collector.query.impact(FLAG, variant="on")
    assert [item.variant for item in impact.variants] == ["on"]


@pytest.mark.parametrize("scope", ["request", "span"])
def test_without_filters_the_flags_records_read_in_place_answer_as_a_filtered_copy(
    scope: str,
) -> None:
    # Two services, several reasons, a flag sent without variants beside variants,
    # requests evaluating several times, an outcome never known, a ring that wrapped:
    # the unfiltered path (the store's own records) and a filter keeping every record
    # (the copied path) must judge alike.
    collector = InMemoryAnalyticsCollector(max_size=150)
    tracers = []
    for service in ("shop", "mailer"):
        provider = TracerProvider(resource=Resource.create({semconv.SERVICE_NAME: service}))
        provider.add_span_processor(SimpleSpanProcessor(FlagEvaluationSpanExporter(collector)))
        tracers.append(provider.get_tracer("app"))
    for number in range(120):
        tracer = tracers[number % 2]
        with tracer.start_as_current_span("GET /", kind=SpanKind.SERVER) as root:
            for step_number in range(number % 3 + 1):
                with tracer.start_as_current_span("step") as step:
                    variant = None if number % 7 == 0 else ("on", "off", "beta")[number % 3]
                    reason = ("split", "default", "targeting_match")[(number + step_number) % 3]
                    _evaluate(step, variant, reason, value=number % 2 == 0)
                    if number % 5 == 0:
                        step.set_status(Status(StatusCode.ERROR, "step failed"))
            if number % 4 == 0:
                root.set_status(Status(StatusCode.ERROR, "boom"))
    root = tracers[0].start_span("GET /never-ends")
    with trace.use_span(root, end_on_exit=False), tracers[0].start_as_current_span("step") as step:
        _evaluate(step, "on")
    assert collector.total_recorded > len(collector)  # the ring wrapped
    in_place = collector.query.impact(FLAG, scope=scope)
    copied = collector.query.impact(FLAG, scope=scope, predicate=lambda event: True)
    assert in_place.to_dict() == copied.to_dict()
    assert sum(item.evaluations for item in in_place.variants) == collector.count(FLAG)
    assert {item.variant for item in in_place.variants} >= {"on", "off", "beta", "true"}


# -- results and arguments ------------------------------------------------------------------


def test_to_dict_is_plain_json_with_every_field_and_the_thresholds() -> None:
    impact = impact_of({"control": CONTROL, "treatment": Behaviour(0.06, 100.0)}, 800, 8)
    document = json.loads(json.dumps(impact.to_dict()))
    assert document["flag_key"] == FLAG
    assert document["scope"] == "request"
    assert document["min_requests"] == MIN_REQUESTS
    first = document["variants"][0]
    assert set(first) >= {
        "variant",
        "evaluations",
        "requests",
        "errors",
        "error_rate",
        "error_rate_interval",
        "duration_p50_ms",
        "duration_p95_ms",
        "duration_p99_ms",
        "error_rate_ratio",
        "duration_ratio_p50",
        "error_p_value",
        "duration_p_value",
        "verdict",
    }
    assert all(item["verdict"] in VERDICTS for item in document["variants"])


def test_the_async_twin_answers_the_same() -> None:
    collector = InMemoryAnalyticsCollector()
    drive(collector, {"control": CONTROL, "treatment": CONTROL}, 300, 9)
    sync = collector.query.impact(FLAG, baseline="control")
    assert asyncio.run(collector.query.impact_async(FLAG, baseline="control")) == sync


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"scope": "trace"}, ValueError, "scope"),
        ({"scope": 1}, TypeError, "scope"),
        ({"baseline": 3}, TypeError, "baseline"),
        ({"flag_key": "other"}, ValueError, "first argument"),
        ({"since": "yesterday"}, TypeError, "since"),
    ],
)
def test_bad_arguments_are_refused_clearly(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        InMemoryAnalyticsCollector().query.impact(FLAG, **kwargs)


def test_a_flag_key_that_is_not_text_is_refused() -> None:
    with pytest.raises(TypeError, match="flag_key"):
        InMemoryAnalyticsCollector().query.impact(3)  # type: ignore[arg-type]
