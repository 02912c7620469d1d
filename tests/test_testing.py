"""capture_flag_evaluations and its assertions, with real producers on private providers.

Every test hands its own SDK ``TracerProvider`` to the capture: the global provider can be
set once per process, and the plugin tests (``test_pytest_plugin.py``) cover it in
subprocesses.
"""

from __future__ import annotations

import json
import threading
import unittest
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.hook.opentelemetry import TracingHook
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor, TracerProvider

from flagscope import EvaluationReason
from flagscope._telemetry import semconv
from flagscope.testing import (
    DEFAULT_SNAPSHOT_FIELDS,
    FlagEvaluationCapture,
    UnexpectedFlagWarning,
    capture_flag_evaluations,
)
from producers import launchdarkly_client, launchdarkly_hook

SERVICE = "shop-tests"
NO_SPAN_HINT = (
    "no flag evaluations were captured (flag hooks add their events to the current span, "
    "and flagscope sees a span when it ends: was the flag evaluated inside a recording "
    "span that ended during the capture?)"
)


def _beta_only(flag: InMemoryFlag[Any], context: EvaluationContext) -> FlagResolutionDetails[Any]:
    variant = "on" if context.targeting_key == "beta" else "off"
    return FlagResolutionDetails(
        flag.variants[variant], variant=variant, reason=Reason.TARGETING_MATCH
    )


FLAGS: dict[str, InMemoryFlag[Any]] = {
    "new-checkout": InMemoryFlag("off", {"on": True, "off": False}, context_evaluator=_beta_only),
    "banner-color": InMemoryFlag("red", {"red": "#c05543", "blue": "#1f6feb"}),
    "max-items": InMemoryFlag("ten", {"ten": 10}),
    "theme": InMemoryFlag("dark", {"dark": {"colors": ["black", "grey"], "dense": None}}),
}


class _CountingProcessors(SynchronousMultiSpanProcessor):
    """A provider's processor list (its public constructor takes one) that counts additions."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated
        self.added: list[SpanProcessor] = []

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        self.added.append(span_processor)
        super().add_span_processor(span_processor)


@pytest.fixture
def processors() -> _CountingProcessors:
    return _CountingProcessors()


@pytest.fixture
def provider(processors: _CountingProcessors) -> Iterator[TracerProvider]:
    provider = TracerProvider(
        resource=Resource.create({semconv.SERVICE_NAME: SERVICE}), active_span_processor=processors
    )
    try:
        yield provider
    finally:
        provider.shutdown()


@pytest.fixture
def client() -> OpenFeatureClient:
    """An OpenFeature client with its own domain and hook, so global hooks stay untouched."""
    domain = f"flagscope-testing-{uuid.uuid4().hex}"
    api.set_provider_and_wait(InMemoryProvider(FLAGS), domain)
    client = api.get_client(domain)
    client.add_hooks([TracingHook()])
    return client


Evaluate = Callable[..., None]


@pytest.fixture
def evaluate(provider: TracerProvider, client: OpenFeatureClient) -> Evaluate:
    """Evaluate flags for a user inside one span, as an instrumented request would."""
    tracer = provider.get_tracer("tests")
    getters: dict[str, Callable[[str, Any, EvaluationContext], Any]] = {
        "new-checkout": client.get_boolean_value,
        "banner-color": client.get_string_value,
        "max-items": client.get_integer_value,
        "theme": client.get_object_value,
        "missing": client.get_boolean_value,
    }
    defaults: dict[str, Any] = {
        "new-checkout": False,
        "banner-color": "#000000",
        "max-items": 3,
        "theme": {},
        "missing": False,
    }

    def run(*flag_keys: str, user: str | None = "alice") -> None:
        context = EvaluationContext(targeting_key=user)
        with tracer.start_as_current_span("request"):
            for key in flag_keys:
                getters[key](key, defaults[key], context)

    return run


@pytest.fixture
def captured(provider: TracerProvider, evaluate: Evaluate) -> FlagEvaluationCapture:
    """A stopped capture of four evaluations, one of them failed."""
    with capture_flag_evaluations(provider) as capture:
        evaluate("new-checkout", "banner-color", user="alice")
        evaluate("new-checkout", "missing", user="beta")
    return capture


# -- lifecycle -------------------------------------------------------------------------------


def test_capture_records_evaluations_made_inside_spans_while_active(
    provider: TracerProvider, evaluate: Evaluate
) -> None:
    evaluate("banner-color")
    with capture_flag_evaluations(provider) as capture:
        assert capture.active
        evaluate("new-checkout", "max-items")
    evaluate("theme")

    assert not capture.active
    assert [event.flag_key for event in capture] == ["new-checkout", "max-items"]
    assert [event.service_name for event in capture.events] == [SERVICE, SERVICE]
    assert capture.tracer_provider is provider


def test_each_capture_starts_empty(provider: TracerProvider, evaluate: Evaluate) -> None:
    with capture_flag_evaluations(provider) as first:
        evaluate("new-checkout")
    with capture_flag_evaluations(provider) as second:
        assert len(second) == 0
        evaluate("banner-color")

    assert first.flag_keys() == ["new-checkout"]
    assert second.flag_keys() == ["banner-color"]


def test_one_processor_is_attached_per_provider_whatever_the_number_of_captures(
    provider: TracerProvider, processors: _CountingProcessors, evaluate: Evaluate
) -> None:
    for _ in range(5):
        with capture_flag_evaluations(provider) as capture:
            evaluate("max-items")
        assert len(capture) == 1

    assert len(processors.added) == 1


def test_nested_captures_both_see_the_inner_evaluations(
    provider: TracerProvider, evaluate: Evaluate
) -> None:
    with capture_flag_evaluations(provider) as outer:
        evaluate("new-checkout")
        with capture_flag_evaluations(provider) as inner:
            evaluate("banner-color")

    assert outer.flag_keys() == ["new-checkout", "banner-color"]
    assert inner.flag_keys() == ["banner-color"]


def test_evaluations_from_another_thread_are_captured(
    provider: TracerProvider, evaluate: Evaluate
) -> None:
    with capture_flag_evaluations(provider) as capture:
        worker = threading.Thread(target=evaluate, args=("max-items",))
        worker.start()
        worker.join()

    capture.assert_evaluated("max-items", value=10, times=1)


def test_a_provider_shut_down_between_captures_is_attached_again(evaluate: Evaluate) -> None:
    provider = TracerProvider()
    tracer = provider.get_tracer("tests")
    with capture_flag_evaluations(provider) as first, tracer.start_as_current_span("before"):
        trace.get_current_span().add_event(semconv.EVENT_NAME, {semconv.KEY: "a"})
    provider.shutdown()

    with capture_flag_evaluations(provider) as second, tracer.start_as_current_span("after"):
        trace.get_current_span().add_event(semconv.EVENT_NAME, {semconv.KEY: "b"})

    assert first.flag_keys() == ["a"]
    assert second.flag_keys() == ["b"]


def test_batch_processor_delivers_from_its_thread_and_wait_for_returns_the_events(
    provider: TracerProvider, evaluate: Evaluate
) -> None:
    with capture_flag_evaluations(provider, processor="batch") as capture:
        assert capture.processor == "batch"
        evaluate("new-checkout", "banner-color")
        events = capture.wait_for(count=2)

    assert [event.flag_key for event in events] == ["new-checkout", "banner-color"]


def test_stopping_a_batch_capture_flushes_what_ended_before_the_stop(
    provider: TracerProvider, evaluate: Evaluate
) -> None:
    with capture_flag_evaluations(provider, processor="batch") as first:
        evaluate("max-items")
    with capture_flag_evaluations(provider, processor="batch") as second:
        pass

    assert first.flag_keys() == ["max-items"]
    assert len(second) == 0


def test_a_batch_capture_gets_none_of_the_spans_that_ended_before_it_started(
    provider: TracerProvider, evaluate: Evaluate
) -> None:
    with capture_flag_evaluations(provider, processor="batch"):
        pass  # the batch processor is now attached and stays
    evaluate("max-items", "theme")  # queued in the batch processor, no capture active

    with capture_flag_evaluations(provider, processor="batch") as capture:
        capture.flush()

    assert len(capture) == 0


@pytest.mark.asyncio
async def test_wait_for_async_awaits_batch_deliveries_inside_an_event_loop(
    provider: TracerProvider, evaluate: Evaluate
) -> None:
    with capture_flag_evaluations(provider, processor="batch") as capture:
        evaluate("theme")
        (event,) = await capture.wait_for_async(flag_key="theme")

    assert capture.snapshot()[0]["value"] == {"colors": ["black", "grey"], "dense": None}
    assert event.flag_key == "theme"


def test_wait_for_timeout_says_what_was_captured_instead(
    provider: TracerProvider, evaluate: Evaluate
) -> None:
    with capture_flag_evaluations(provider) as capture:
        evaluate("max-items")
        with pytest.raises(TimeoutError) as excinfo:
            capture.wait_for(flag_key="banner-color", timeout=0.01)

    message = str(excinfo.value)
    assert "flag_key='banner-color'" in message
    assert "max-items x1" in message


def test_launchdarkly_hook_evaluations_are_captured(provider: TracerProvider) -> None:
    from ldclient import Context
    from ldclient.integrations.test_data import TestData

    td = TestData.data_source()
    td.update(td.flag("bool-flag").variation_for_all(True))
    tracer = provider.get_tracer("tests")
    with (
        capture_flag_evaluations(provider) as capture,
        launchdarkly_client(td, launchdarkly_hook(provider)) as ld,
        tracer.start_as_current_span("request"),
    ):
        ld.variation("bool-flag", Context.create("user-123"), False)

    capture.assert_evaluated(
        "bool-flag", targeting_key="user-123", reason=EvaluationReason.UNKNOWN, times=1
    )
    assert capture.events[0].provider_name == "LaunchDarkly"


def test_unittest_test_cases_capture_with_start_and_stop(
    provider: TracerProvider, evaluate: Evaluate
) -> None:
    class CheckoutTest(unittest.TestCase):
        def setUp(self) -> None:
            self.flags = capture_flag_evaluations(provider).start()
            self.addCleanup(self.flags.stop)

        def test_checkout(self) -> None:
            evaluate("new-checkout", user="beta")
            self.flags.assert_evaluated("new-checkout", value=True, variant="on")

        def test_banner(self) -> None:
            evaluate("banner-color")
            self.flags.assert_not_evaluated("new-checkout")

    result = unittest.TestResult()
    unittest.defaultTestLoader.loadTestsFromTestCase(CheckoutTest).run(result)

    assert (result.testsRun, result.failures, result.errors) == (2, [], [])


# -- configuration mistakes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"processor": "fast"}, ValueError, "processor must be one of ('simple', 'batch')"),
        ({"value_decoding": "yaml"}, ValueError, "value_decoding must be one of"),
        ({"strict": True}, ValueError, "strict=True needs expected_flags"),
        ({"strict": "yes"}, TypeError, "strict must be a bool"),
        ({"expected_flags": "a"}, TypeError, "expected_flags must be a collection"),
        ({"expected_flags": ["a", 1]}, TypeError, "expected_flags must hold flag keys"),
        ({"max_size": 0}, ValueError, "max_size must be at least 1"),
    ],
)
def test_configuration_mistakes_raise_at_construction(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        capture_flag_evaluations(**kwargs)


def test_a_non_sdk_provider_passed_explicitly_is_refused() -> None:
    capture = capture_flag_evaluations(trace.NoOpTracerProvider())

    with pytest.raises(TypeError) as excinfo:
        capture.start()

    assert str(excinfo.value) == (
        "flagscope can only capture from an opentelemetry.sdk.trace.TracerProvider; "
        "tracer_provider is a NoOpTracerProvider"
    )


def test_a_capture_cannot_start_twice(provider: TracerProvider) -> None:
    with capture_flag_evaluations(provider) as capture, pytest.raises(RuntimeError):
        capture.start()


# -- assert_evaluated -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "expected",
    [
        {},
        {"value": True},
        {"variant": "on"},
        {"reason": "targeting_match"},
        {"reason": "TARGETING_MATCH"},
        {"reason": EvaluationReason.TARGETING_MATCH},
        {"targeting_key": "beta"},
        {"error_type": None},
        {"value": True, "variant": "on", "reason": "targeting_match", "targeting_key": "beta"},
        {"times": 2},
        {"value": False, "times": 1},
        {"value": 1, "times": 0},
    ],
)
def test_assert_evaluated_passes_when_an_evaluation_matches(
    captured: FlagEvaluationCapture, expected: dict[str, Any]
) -> None:
    matches = captured.assert_evaluated("new-checkout", **expected)

    assert len(matches) == expected.get("times", len(matches))
    assert all(event.flag_key == "new-checkout" for event in matches)


@pytest.mark.parametrize(
    "expected",
    [
        {"value": "true"},
        {"value": 1},
        {"variant": "maybe"},
        {"variant": None},
        {"reason": "static"},
        {"targeting_key": "carol"},
        {"targeting_key": None},
        {"error_type": "general"},
        {"times": 3},
        {"value": True, "times": 2},
    ],
)
def test_assert_evaluated_fails_when_no_evaluation_matches(
    captured: FlagEvaluationCapture, expected: dict[str, Any]
) -> None:
    with pytest.raises(AssertionError):
        captured.assert_evaluated("new-checkout", **expected)


def test_assert_evaluated_can_check_for_none(captured: FlagEvaluationCapture) -> None:
    captured.assert_evaluated("missing", variant=None, error_type="flag_not_found", value=False)
    captured.assert_evaluated("banner-color", error_type=None, variant="red")


def test_assert_evaluated_message_tables_what_was_evaluated_instead(
    captured: FlagEvaluationCapture,
) -> None:
    with pytest.raises(AssertionError) as excinfo:
        captured.assert_evaluated("new-checkout", value=True, targeting_key="alice")

    assert str(excinfo.value).splitlines() == [
        "expected flag 'new-checkout' to be evaluated with value=True, targeting_key='alice'; "
        "0 of its 2 evaluations matched",
        "captured 4 flag evaluations (> marks 'new-checkout'):",
        "    flag_key      value      variant  reason           targeting_key  error"
        "           vs expected",
        "  > new-checkout  False      off      targeting_match  alice          -"
        "               value False != True",
        "    banner-color  '#c05543'  red      static           alice          -",
        "  > new-checkout  True       on       targeting_match  beta           -"
        "               targeting_key 'beta' != 'alice'",
        "    missing       False      -        error            beta           flag_not_found",
    ]


def test_assert_evaluated_message_for_a_flag_never_evaluated(
    captured: FlagEvaluationCapture,
) -> None:
    with pytest.raises(AssertionError) as excinfo:
        captured.assert_evaluated("theme")

    assert str(excinfo.value).splitlines()[:2] == [
        "expected flag 'theme' to be evaluated; it was not evaluated",
        "captured 4 flag evaluations:",
    ]


def test_assert_evaluated_message_for_a_wrong_count(captured: FlagEvaluationCapture) -> None:
    with pytest.raises(AssertionError) as excinfo:
        captured.assert_evaluated("banner-color", times=2)

    assert str(excinfo.value).splitlines()[0] == (
        "expected flag 'banner-color' to be evaluated 2 times; it was evaluated once"
    )


def test_assert_evaluated_on_an_empty_capture_hints_at_the_missing_span(
    provider: TracerProvider, client: OpenFeatureClient
) -> None:
    with capture_flag_evaluations(provider) as capture:
        client.get_boolean_value("new-checkout", False)  # no span is current

    with pytest.raises(AssertionError) as excinfo:
        capture.assert_evaluated("new-checkout")

    assert str(excinfo.value).splitlines() == [
        "expected flag 'new-checkout' to be evaluated; it was not evaluated",
        NO_SPAN_HINT,
    ]


def test_an_empty_capture_says_when_the_sdk_is_disabled(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    with capture_flag_evaluations(provider) as capture:
        pass

    with pytest.raises(AssertionError) as excinfo:
        capture.assert_evaluated("a")

    assert str(excinfo.value).splitlines()[1] == (
        "no flag evaluations were captured "
        "(OTEL_SDK_DISABLED=true is set, so the SDK records no spans at all)"
    )


def test_the_capture_api_is_exported_from_the_package() -> None:
    import flagscope

    assert flagscope.capture_flag_evaluations is capture_flag_evaluations
    assert flagscope.FlagEvaluationCapture is FlagEvaluationCapture


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda capture: capture.assert_evaluated(1), TypeError),
        (lambda capture: capture.assert_evaluated("a", times=-1), ValueError),
        (lambda capture: capture.assert_evaluated("a", times=1.0), TypeError),
        (lambda capture: capture.assert_evaluated("a", times=True), TypeError),
        (lambda capture: capture.assert_not_evaluated(None), TypeError),
        (lambda capture: capture.assert_only_evaluated("a", 2), TypeError),
        (lambda capture: capture.assert_only_evaluated(["a"]), TypeError),
        (lambda capture: capture.assert_evaluated("a", reason=3), TypeError),
        (lambda capture: capture.snapshot(normalize_ids="y"), TypeError),
        (lambda capture: capture.assert_no_regression("a", require_verdict="no"), TypeError),
    ],
)
def test_assertion_helpers_reject_wrong_argument_types(
    captured: FlagEvaluationCapture, call: Callable[[FlagEvaluationCapture], Any], error: type
) -> None:
    with pytest.raises(error):
        call(captured)


# JSON values, as producers encode them (no NaN or infinity: JSON has neither).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _plain_tuples(value: Any) -> Any:
    """The same value with every list as a tuple, as the Go hook sends arrays."""
    if isinstance(value, list):
        return tuple(_plain_tuples(item) for item in value)
    if isinstance(value, dict):
        return {key: _plain_tuples(item) for key, item in value.items()}
    return value


@settings(max_examples=100, deadline=None)
@given(value=json_values)
def test_assert_evaluated_matches_any_value_through_its_json_encoding(value: Any) -> None:
    provider = TracerProvider()
    tracer = provider.get_tracer("tests")
    with capture_flag_evaluations(provider) as capture, tracer.start_as_current_span("s"):
        trace.get_current_span().add_event(
            semconv.EVENT_NAME, {semconv.KEY: "f", semconv.RESULT_VALUE: json.dumps(value)}
        )
    provider.shutdown()

    capture.assert_evaluated("f", value=value, times=1)
    capture.assert_evaluated("f", value=_plain_tuples(value), times=1)
    assert capture.snapshot()[0]["value"] == json.loads(json.dumps(value))


@pytest.mark.parametrize(
    ("stored", "asserted"),
    [(True, 1), (False, 0), (1, True), (0, False), ("1", 1), (None, False), ([1], (1, 2))],
)
def test_assert_evaluated_keeps_values_of_different_json_types_apart(
    provider: TracerProvider, stored: Any, asserted: Any
) -> None:
    tracer = provider.get_tracer("tests")
    with capture_flag_evaluations(provider) as capture, tracer.start_as_current_span("s"):
        trace.get_current_span().add_event(
            semconv.EVENT_NAME, {semconv.KEY: "f", semconv.RESULT_VALUE: json.dumps(stored)}
        )

    capture.assert_evaluated("f", value=stored)
    with pytest.raises(AssertionError):
        capture.assert_evaluated("f", value=asserted)


# -- the other assertions -------------------------------------------------------------------


def test_assert_not_evaluated_passes_for_an_unevaluated_flag(
    captured: FlagEvaluationCapture,
) -> None:
    captured.assert_not_evaluated("theme")


def test_assert_not_evaluated_message_marks_the_evaluations(
    captured: FlagEvaluationCapture,
) -> None:
    with pytest.raises(AssertionError) as excinfo:
        captured.assert_not_evaluated("banner-color")

    assert str(excinfo.value).splitlines() == [
        "expected flag 'banner-color' not to be evaluated; it was evaluated once",
        "captured 4 flag evaluations (> marks 'banner-color'):",
        "    flag_key      value      variant  reason           error",
        "    new-checkout  False      off      targeting_match  -",
        "  > banner-color  '#c05543'  red      static           -",
        "    new-checkout  True       on       targeting_match  -",
        "    missing       False      -        error            flag_not_found",
    ]


def test_assert_no_errors_message_shows_each_failure_with_its_message(
    captured: FlagEvaluationCapture,
) -> None:
    with pytest.raises(AssertionError) as excinfo:
        captured.assert_no_errors()

    assert str(excinfo.value).splitlines() == [
        "expected no failed flag evaluations; 1 of 4 failed",
        "captured 4 flag evaluations (> marks failures):",
        "    flag_key      value      variant  reason           error           message",
        "    new-checkout  False      off      targeting_match  -",
        "    banner-color  '#c05543'  red      static           -",
        "    new-checkout  True       on       targeting_match  -",
        "  > missing       False      -        error            flag_not_found  "
        "Flag 'missing' not found",
    ]


def test_assert_no_errors_passes_when_every_evaluation_succeeded(
    provider: TracerProvider, evaluate: Evaluate
) -> None:
    with capture_flag_evaluations(provider) as capture:
        evaluate("new-checkout", "banner-color", "max-items", "theme")

    capture.assert_no_errors()
    assert len(capture) == 4


def test_assert_only_evaluated_names_each_unexpected_flag_with_its_count(
    captured: FlagEvaluationCapture,
) -> None:
    captured.assert_only_evaluated("new-checkout", "banner-color", "missing", "theme")
    with pytest.raises(AssertionError) as excinfo:
        captured.assert_only_evaluated("banner-color")

    assert str(excinfo.value).splitlines()[:2] == [
        "unexpected flags evaluated (expected only ['banner-color']): "
        "'new-checkout' (2 times), 'missing' (once)",
        "captured 4 flag evaluations (> marks unexpected flags):",
    ]


def test_long_values_are_shortened_in_the_table(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("tests")
    with capture_flag_evaluations(provider) as capture, tracer.start_as_current_span("s"):
        trace.get_current_span().add_event(
            semconv.EVENT_NAME, {semconv.KEY: "f", semconv.RESULT_VALUE: json.dumps("x" * 100)}
        )

    with pytest.raises(AssertionError) as excinfo:
        capture.assert_evaluated("f", value="y")

    row = str(excinfo.value).splitlines()[3]
    assert "'" + "x" * 36 + "..." in row
    assert "x" * 40 not in row
    assert row.endswith("'" + "x" * 36 + "... != 'y'")


def test_many_evaluations_show_only_the_marked_rows(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("tests")
    with capture_flag_evaluations(provider) as capture, tracer.start_as_current_span("s"):
        for index in range(60):
            key = "needle" if index in (10, 50) else f"hay-{index}"
            trace.get_current_span().add_event(semconv.EVENT_NAME, {semconv.KEY: key})

    with pytest.raises(AssertionError) as excinfo:
        capture.assert_not_evaluated("needle")

    lines = str(excinfo.value).splitlines()
    assert [line.split()[1] for line in lines[3:5]] == ["needle", "needle"]
    assert lines[5:] == ["    ... and 58 more not shown"]


def test_many_evaluations_of_other_flags_show_the_first_rows_when_none_is_marked(
    provider: TracerProvider,
) -> None:
    tracer = provider.get_tracer("tests")
    with capture_flag_evaluations(provider) as capture, tracer.start_as_current_span("s"):
        for index in range(60):
            trace.get_current_span().add_event(semconv.EVENT_NAME, {semconv.KEY: f"hay-{index}"})

    with pytest.raises(AssertionError) as excinfo:
        capture.assert_evaluated("needle")

    lines = str(excinfo.value).splitlines()
    assert lines[:2] == [
        "expected flag 'needle' to be evaluated; it was not evaluated",
        "captured 60 flag evaluations:",
    ]
    assert [line.split()[0] for line in lines[3:-1]] == [f"hay-{index}" for index in range(40)]
    assert lines[-1] == "    ... and 20 more not shown"


# -- expected flags -------------------------------------------------------------------------


def test_strict_expected_flags_fail_the_stop_on_another_flag(
    provider: TracerProvider, evaluate: Evaluate
) -> None:
    with pytest.raises(AssertionError) as excinfo:  # noqa: SIM117 (the raise is at exit)
        with capture_flag_evaluations(provider, expected_flags=["max-items"], strict=True):
            evaluate("max-items", "theme")

    assert str(excinfo.value).splitlines()[0] == (
        "unexpected flags evaluated (expected only ['max-items']): 'theme' (once)"
    )


def test_strict_expected_flags_pass_when_only_those_were_evaluated(
    provider: TracerProvider, evaluate: Evaluate
) -> None:
    with capture_flag_evaluations(
        provider, expected_flags=["max-items", "theme"], strict=True
    ) as capture:
        evaluate("max-items")

    assert capture.flag_keys() == ["max-items"]


def test_lax_expected_flags_warn_on_another_flag(
    provider: TracerProvider, evaluate: Evaluate
) -> None:
    with (
        pytest.warns(UnexpectedFlagWarning, match=r"expected_flags=\['max-items'\]: 'theme'"),
        capture_flag_evaluations(provider, expected_flags=["max-items"]),
    ):
        evaluate("max-items", "theme")


def test_a_failure_inside_the_block_is_not_masked_by_the_flag_check(
    provider: TracerProvider, evaluate: Evaluate
) -> None:
    capture = capture_flag_evaluations(provider, expected_flags=[], strict=True)

    def code_under_test() -> None:
        with capture:
            evaluate("theme")
            raise KeyError("the code under test failed")

    with pytest.raises(KeyError):
        code_under_test()
    assert capture.flag_keys() == ["theme"]


# -- snapshot -------------------------------------------------------------------------------


def test_snapshot_is_plain_deterministic_data(captured: FlagEvaluationCapture) -> None:
    assert captured.snapshot() == [
        {
            "flag_key": "new-checkout",
            "value": False,
            "variant": "off",
            "reason": "targeting_match",
            "targeting_key": "alice",
            "error_type": None,
        },
        {
            "flag_key": "banner-color",
            "value": "#c05543",
            "variant": "red",
            "reason": "static",
            "targeting_key": "alice",
            "error_type": None,
        },
        {
            "flag_key": "new-checkout",
            "value": True,
            "variant": "on",
            "reason": "targeting_match",
            "targeting_key": "beta",
            "error_type": None,
        },
        {
            "flag_key": "missing",
            "value": False,
            "variant": None,
            "reason": "error",
            "targeting_key": "beta",
            "error_type": "flag_not_found",
        },
    ]
    assert all(type(row["reason"]) is str for row in captured.snapshot())
    assert tuple(captured.snapshot()[0]) == DEFAULT_SNAPSHOT_FIELDS


def test_snapshot_values_are_json_plain(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("tests")
    with capture_flag_evaluations(provider) as capture, tracer.start_as_current_span("s"):
        trace.get_current_span().add_event(
            semconv.EVENT_NAME, {semconv.KEY: "go-array", semconv.RESULT_VALUE: ("a", "b")}
        )
        trace.get_current_span().add_event(
            semconv.EVENT_NAME, {semconv.KEY: "object", semconv.RESULT_VALUE: '{"a": [1, {}]}'}
        )

    assert capture.events[0].value == ["a", "b"]
    assert [row["value"] for row in capture.snapshot()] == [["a", "b"], {"a": [1, {}]}]
    assert json.loads(json.dumps(capture.snapshot())) == capture.snapshot()


def test_snapshot_include_and_exclude_choose_the_fields(captured: FlagEvaluationCapture) -> None:
    rows = captured.snapshot(
        include=("provider_name", "service_name", "error_message"),
        exclude=("value", "variant", "reason", "error_type"),
    )

    assert rows[3] == {
        "flag_key": "missing",
        "targeting_key": "beta",
        "provider_name": "In-Memory Provider",
        "service_name": SERVICE,
        "error_message": "Flag 'missing' not found",
    }


def test_snapshot_ids_and_timestamps_appear_only_when_included(
    captured: FlagEvaluationCapture,
) -> None:
    rows = captured.snapshot(include=("trace_id", "span_id", "timestamp"))

    assert "trace_id" not in captured.snapshot()[0]
    assert [row["trace_id"] for row in rows] == [event.trace_id for event in captured]
    assert [row["timestamp"] for row in rows] == [event.timestamp.isoformat() for event in captured]


def test_snapshot_normalize_ids_numbers_traces_and_spans_in_order(
    captured: FlagEvaluationCapture,
) -> None:
    rows = captured.snapshot(
        include=("trace_id", "span_id"), exclude=DEFAULT_SNAPSHOT_FIELDS, normalize_ids=True
    )

    assert rows == [{"trace_id": n, "span_id": n} for n in (1, 1, 2, 2)]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"include": ("colour",)}, ValueError),
        ({"exclude": ("is_error",)}, ValueError),
        ({"include": "trace_id"}, TypeError),
    ],
)
def test_snapshot_rejects_unknown_field_names(
    captured: FlagEvaluationCapture, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        captured.snapshot(**kwargs)


# -- reading ----------------------------------------------------------------------------------


def test_query_and_clear_work_on_the_captured_evaluations(
    captured: FlagEvaluationCapture,
) -> None:
    assert captured.query.count(flag_key="new-checkout", value=True) == 1
    assert captured.query.count(errors_only=True) == 1
    assert "stopped: 4 evaluation(s) of 3 flag(s)" in repr(captured)

    captured.clear()

    assert list(captured) == []
    assert captured.snapshot() == []
