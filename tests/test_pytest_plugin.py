"""The pytest plugin, run through real pytest sessions with ``pytester``.

In-process runs share this process's global OpenTelemetry state, which is what most
users have too. Sessions that must set the global provider themselves (an app that
set one, a NoOp provider, none at all) run in a subprocess, where it starts unset.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

# A small instrumented application the inner sessions import. Its tracer is taken at
# import time, before any provider is set: a proxy that follows the global provider.
FLAGAPP = """
import asyncio
import uuid

from openfeature import api
from openfeature.contrib.hook.opentelemetry import TracingHook
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider
from opentelemetry import trace

tracer = trace.get_tracer("flagapp")

DOMAIN = f"flagapp-{uuid.uuid4().hex}"
api.set_provider_and_wait(
    InMemoryProvider(
        {
            "a": InMemoryFlag("on", {"on": True, "off": False}),
            "b": InMemoryFlag("red", {"red": "#c05543"}),
            "c": InMemoryFlag("ten", {"ten": 10}),
        }
    ),
    DOMAIN,
)
client = api.get_client(DOMAIN)
client.add_hooks([TracingHook()])
GETTERS = {
    "a": (client.get_boolean_value, False),
    "b": (client.get_string_value, "#000000"),
    "c": (client.get_integer_value, 0),
    "missing": (client.get_boolean_value, False),
}


def evaluate(*keys, user="alice"):
    with tracer.start_as_current_span("request"):
        for key in keys:
            getter, default = GETTERS[key]
            getter(key, default, EvaluationContext(targeting_key=user))


async def evaluate_async(*keys, user="alice"):
    with tracer.start_as_current_span("async request"):
        await asyncio.sleep(0)
        for key in keys:
            getter, default = GETTERS[key]
            getter(key, default, EvaluationContext(targeting_key=user))
        await asyncio.sleep(0)
"""

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
"""


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester directory holding the instrumented app and a quiet ini."""
    pytester.makepyfile(flagapp=FLAGAPP)
    pytester.makeini(INI)
    return pytester


def literal(line: str) -> str:
    """Escape fnmatch's special characters: match ``line`` exactly."""
    return "".join(f"[{char}]" if char in "[]*?" else char for char in line)


def test_fixture_is_registered_through_the_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from flagapp import evaluate

        def test_sees_the_evaluations(flag_evaluations):
            evaluate("a", "b")
            assert [event.flag_key for event in flag_evaluations] == ["a", "b"]
            assert len(flag_evaluations) == 2
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["plugins: *flagscope-*"])


def test_passing_assertions_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from flagapp import evaluate

        def test_assert_evaluated(flag_evaluations):
            evaluate("a", "b", user="bob")
            flag_evaluations.assert_evaluated(
                "a", value=True, variant="on", reason="static", targeting_key="bob",
                error_type=None, times=1,
            )
            flag_evaluations.assert_evaluated("b", value="#c05543")

        def test_assert_not_evaluated_and_no_errors(flag_evaluations):
            evaluate("a")
            flag_evaluations.assert_not_evaluated("b")
            flag_evaluations.assert_no_errors()

        def test_snapshot(flag_evaluations):
            evaluate("c", user=None)
            assert flag_evaluations.snapshot() == [
                {"flag_key": "c", "value": 10, "variant": "ten", "reason": "static",
                 "targeting_key": None, "error_type": None},
            ]

        def test_query_and_wait_for(flag_evaluations):
            evaluate("a", "missing")
            assert flag_evaluations.query.count(errors_only=True) == 1
            (event,) = flag_evaluations.wait_for(flag_key="missing")
            assert event.error_type == "flag_not_found"
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=4)


def test_failing_assertions_show_what_was_evaluated_instead(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from flagapp import evaluate

        def test_wrong_value(flag_evaluations):
            evaluate("a", "b")
            flag_evaluations.assert_evaluated("a", value=False)

        def test_evaluated_but_should_not_be(flag_evaluations):
            evaluate("a", "b", "b")
            flag_evaluations.assert_not_evaluated("b")

        def test_errors(flag_evaluations):
            evaluate("a", "missing")
            flag_evaluations.assert_no_errors()

        def test_nothing_captured(flag_evaluations):
            flag_evaluations.assert_evaluated("a")
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(
        [
            literal(line)
            for line in [
                '>       flag_evaluations.assert_evaluated("a", value=False)',
                "E       AssertionError: expected flag 'a' to be evaluated with value=False; "
                "0 of its 1 evaluation matched",
                "E       captured 2 flag evaluations (> marks 'a'):",
                "E           flag_key  value      variant  reason  error  vs expected",
                "E         > a         True       on       static  -      value True != False",
                "E           b         '#c05543'  red      static  -",
                "test_failing_assertions_show_what_was_evaluated_instead.py:5: AssertionError",
            ]
        ]
    )
    result.stdout.fnmatch_lines(
        [
            literal(line)
            for line in [
                "E       AssertionError: expected flag 'b' not to be evaluated; "
                "it was evaluated 2 times",
                "E       captured 3 flag evaluations (> marks 'b'):",
                "E           flag_key  value      variant  reason  error",
                "E           a         True       on       static  -",
                "E         > b         '#c05543'  red      static  -",
                "E         > b         '#c05543'  red      static  -",
            ]
        ]
    )
    result.stdout.fnmatch_lines(
        [
            literal(line)
            for line in [
                "E       AssertionError: expected no failed flag evaluations; 1 of 2 failed",
                "E       captured 2 flag evaluations (> marks failures):",
                "E           flag_key  value  variant  reason  error           message",
                "E           a         True   on       static  -",
                "E         > missing   False  -        error   flag_not_found  "
                "Flag 'missing' not found",
            ]
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "E       AssertionError: expected flag 'a' to be evaluated; it was not evaluated",
            "E       no flag evaluations were captured (flag hooks add their events to the "
            "current span, *",
        ]
    )
    # The helpers hide their own frames: the traceback ends in the test.
    assert "testing.py" not in result.stdout.str()


def test_each_test_starts_with_an_empty_capture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from flagapp import evaluate

        def test_one(flag_evaluations):
            evaluate("a")
            assert len(flag_evaluations) == 1

        def test_two(flag_evaluations):
            assert len(flag_evaluations) == 0
            evaluate("b")
            assert flag_evaluations.flag_keys() == ["b"]

        def test_without_the_fixture():
            evaluate("c")

        def test_three(flag_evaluations):
            flag_evaluations.assert_not_evaluated("c")

        @pytest.mark.flagscope(processor="batch")
        def test_batch_leaves_without_waiting(flag_evaluations):
            evaluate("a", "b", "c")

        @pytest.mark.flagscope(processor="batch")
        def test_batch_next_test_gets_none_of_it(flag_evaluations):
            assert flag_evaluations.wait_for(count=0) == []
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=6)


def test_wait_for_timeout_says_what_was_seen(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from flagapp import evaluate

        def test_waits_in_vain(flag_evaluations):
            evaluate("a")
            flag_evaluations.wait_for(flag_key="b", timeout=0.01)
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            '>       flag_evaluations.wait_for(flag_key="b", timeout=0.01)',
            "E       TimeoutError: timed out after 0.01 s waiting for 1 evaluation(s) matching "
            "flag_key='b'; 0 matched.",
            "E       Seen instead: *a x1*",
        ]
    )


def test_an_application_that_already_set_a_provider_keeps_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        appotel="""
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor, TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        class CountingProcessors(SynchronousMultiSpanProcessor):
            def __init__(self):
                super().__init__()
                self.added = []

            def add_span_processor(self, span_processor):
                self.added.append(span_processor)
                super().add_span_processor(span_processor)

        APP_PROCESSORS = CountingProcessors()
        APP_SPANS = InMemorySpanExporter()
        APP_PROVIDER = TracerProvider(
            resource=Resource.create({"service.name": "my-app"}),
            active_span_processor=APP_PROCESSORS,
        )
        APP_PROVIDER.add_span_processor(SimpleSpanProcessor(APP_SPANS))
        trace.set_tracer_provider(APP_PROVIDER)
        """
    )
    pytester.makeconftest("import appotel")
    pytester.makepyfile(
        """
        from opentelemetry import trace
        from appotel import APP_PROCESSORS, APP_PROVIDER, APP_SPANS
        from flagapp import evaluate

        def processors():
            return len(APP_PROCESSORS.added)

        def test_one(flag_evaluations):
            evaluate("a")
            assert trace.get_tracer_provider() is APP_PROVIDER
            assert flag_evaluations.tracer_provider is APP_PROVIDER
            flag_evaluations.assert_evaluated("a", times=1)
            assert flag_evaluations.events[0].service_name == "my-app"
            assert [span.name for span in APP_SPANS.get_finished_spans()] == ["request"]

        def test_two(flag_evaluations):
            evaluate("b")
            flag_evaluations.assert_evaluated("b", times=1)
            assert len(flag_evaluations) == 1
            assert processors() == 2  # the app's and flagscope's, attached once
        """
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=2)
    assert "Overriding of current TracerProvider" not in result.stderr.str() + result.stdout.str()


def test_without_a_provider_one_is_installed_once_and_proxies_follow_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        processorspy="""
        from opentelemetry.sdk.trace import TracerProvider

        ADDED = []  # (provider, processor) for every add_span_processor call
        _add = TracerProvider.add_span_processor

        def _counting(self, span_processor):
            ADDED.append((self, span_processor))
            _add(self, span_processor)

        TracerProvider.add_span_processor = _counting
        """
    )
    pytester.makeconftest("import processorspy")
    pytester.makepyfile(
        """
        import processorspy
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        import flagapp

        def test_proxy_tracer_from_before_is_captured(flag_evaluations):
            assert isinstance(flagapp.tracer, trace.ProxyTracer)
            flagapp.evaluate("a")
            flag_evaluations.assert_evaluated("a", value=True)
            assert isinstance(trace.get_tracer_provider(), TracerProvider)

        def test_the_same_provider_serves_every_test(flag_evaluations):
            flagapp.evaluate("b")
            assert flag_evaluations.tracer_provider is trace.get_tracer_provider()
            provider = flag_evaluations.tracer_provider
            added = [p for owner, p in processorspy.ADDED if owner is provider]
            assert len(added) == 1
        """
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=2)


def test_a_noop_global_provider_gets_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from opentelemetry import trace

        trace.set_tracer_provider(trace.NoOpTracerProvider())
        """
    )
    pytester.makepyfile(
        """
        def test_cannot_capture(flag_evaluations):
            pass
        """
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "E*TypeError: flagscope cannot capture flag evaluations: the global tracer "
            "provider is a NoOpTracerProvider, not an opentelemetry.sdk.trace.TracerProvider, "
            "so no spans are recorded. *override the flagscope_tracer_provider fixture)",
        ]
    )


def test_an_explicit_provider_comes_from_the_flagscope_tracer_provider_fixture(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
        import pytest
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        @pytest.fixture(scope="session")
        def flagscope_tracer_provider():
            provider = TracerProvider(resource=Resource.create({"service.name": "explicit"}))
            yield provider
            provider.shutdown()
        """
    )
    pytester.makepyfile(
        """
        from opentelemetry import trace

        def test_captures_from_it(flag_evaluations, flagscope_tracer_provider):
            tracer = flagscope_tracer_provider.get_tracer("t")
            with tracer.start_as_current_span("s"):
                trace.get_current_span().add_event(
                    "feature_flag.evaluation", {"feature_flag.key": "x"}
                )
            assert flag_evaluations.tracer_provider is flagscope_tracer_provider
            assert flag_evaluations.snapshot(include=("service_name",), exclude=(
                "value", "variant", "reason", "targeting_key", "error_type"
            )) == [{"flag_key": "x", "service_name": "explicit"}]
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)


ASYNC_STRICT = """
import pytest
import pytest_asyncio
from flagapp import evaluate, evaluate_async

@pytest_asyncio.fixture
async def signed_in(flag_evaluations):
    await evaluate_async("a")
    return "alice"

@pytest.mark.asyncio
async def test_async_test_and_async_fixture(signed_in, flag_evaluations):
    await evaluate_async("b")
    assert flag_evaluations.flag_keys() == ["a", "b"]

@pytest.mark.asyncio
@pytest.mark.flagscope(processor="batch")
async def test_batch_delivery_is_awaited(flag_evaluations):
    evaluate("c")
    (event,) = await flag_evaluations.wait_for_async(flag_key="c")
    assert event.value == 10
"""

ASYNC_AUTO = """
import pytest
from flagapp import evaluate, evaluate_async

@pytest.fixture
async def signed_in(flag_evaluations):
    await evaluate_async("a")
    return "alice"

async def test_async_test_and_async_fixture(signed_in, flag_evaluations):
    await evaluate_async("b")
    assert flag_evaluations.flag_keys() == ["a", "b"]

@pytest.mark.flagscope(processor="batch")
async def test_batch_delivery_is_awaited(flag_evaluations):
    evaluate("c")
    (event,) = await flag_evaluations.wait_for_async(flag_key="c")
    assert event.value == 10
"""


@pytest.mark.parametrize(("mode", "source"), [("strict", ASYNC_STRICT), ("auto", ASYNC_AUTO)])
def test_async_tests_and_fixtures_under_pytest_asyncio(
    pytester: pytest.Pytester, mode: str, source: str
) -> None:
    pytester.makepyfile(source)

    result = pytester.runpytest("-p", "no:cacheprovider", "-o", f"asyncio_mode={mode}")

    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"asyncio: mode=*{mode.upper()}*"])


def test_strict_marker_fails_at_teardown_listing_unexpected_flags(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from flagapp import evaluate

        @pytest.mark.flagscope(expected_flags=["a"], strict=True)
        def test_strict(flag_evaluations):
            evaluate("a", "b", "c", "c")

        @pytest.mark.flagscope(expected_flags=["a", "b"], strict=True)
        def test_strict_and_clean(flag_evaluations):
            evaluate("a")

        @pytest.mark.flagscope(expected_flags=["a"], strict=True)
        def test_strict_but_failed_already(flag_evaluations):
            evaluate("b")
            assert False, "the test's own failure"
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers")

    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at teardown of test_strict _*",
            literal(
                "E   AssertionError: unexpected flags evaluated (expected only ['a']): "
                "'b' (once), 'c' (2 times)"
            ),
            "    captured 4 flag evaluations (> marks unexpected flags):",
        ]
    )
    assert "ERROR at teardown of test_strict_but_failed_already" not in result.stdout.str()


def test_strict_marker_leaves_a_setup_error_a_skip_and_an_xfail_as_they_are(
    pytester: pytest.Pytester,
) -> None:
    """Each ended before its flags meant anything: one outcome each, no teardown error."""
    pytester.makepyfile(
        """
        import pytest
        from flagapp import evaluate

        @pytest.fixture
        def broken():
            evaluate("b")
            raise RuntimeError("setup broke")

        @pytest.mark.flagscope(expected_flags=["a"], strict=True)
        def test_setup_fails(flag_evaluations, broken):
            pass

        @pytest.mark.flagscope(expected_flags=["a"], strict=True)
        def test_skips_itself(flag_evaluations):
            evaluate("a", "b")
            pytest.skip("not today")

        @pytest.mark.xfail(reason="a known bug")
        @pytest.mark.flagscope(expected_flags=["a"], strict=True)
        def test_known_bug(flag_evaluations):
            evaluate("a", "b")
            assert False
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider", "-rA")

    result.assert_outcomes(skipped=1, xfailed=1, errors=1)
    output = result.stdout.str()
    assert "ERROR at setup of test_setup_fails" in output
    assert "at teardown" not in output


def test_lax_marker_warns_about_unexpected_flags(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from flagapp import evaluate

        @pytest.mark.flagscope(expected_flags=["a"])
        def test_lax(flag_evaluations):
            evaluate("a", "b")
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*"
            + literal(
                "UnexpectedFlagWarning: flags evaluated outside expected_flags=['a']: 'b' (once)"
            )
        ]
    )


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ('flagscope("a")', "*TypeError: @pytest.mark.flagscope takes keyword arguments only*"),
        (
            "flagscope(flags=['a'])",
            "*TypeError: @pytest.mark.flagscope got unknown option(s) flags*",
        ),
        ("flagscope(strict=True)", "*ValueError: strict=True needs expected_flags*"),
        ("flagscope(processor='fast')", "*ValueError: processor must be one of*"),
    ],
)
def test_marker_mistakes_are_reported_clearly(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.{marker}
        def test_marked(flag_evaluations):
            pass
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([literal(message).replace("[*]", "*")])


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")

    result.stdout.fnmatch_lines(
        ["@pytest.mark.flagscope(expected_flags=None, strict=False, processor=None): *"]
    )


def test_ini_option_chooses_the_batch_processor(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI + "flagscope_processor = batch\n")
    pytester.makepyfile(
        """
        from flagapp import evaluate

        def test_batch(flag_evaluations):
            assert flag_evaluations.processor == "batch"
            evaluate("a")
            flag_evaluations.wait_for(flag_key="a")
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)


def test_a_bad_ini_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI + "flagscope_processor = fast\n")
    pytester.makepyfile("def test_nothing(): pass")

    result = pytester.runpytest("-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*flagscope_processor must be one of simple, batch, got 'fast'*"])


def test_disabling_the_plugin_removes_the_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_wants_it(flag_evaluations):
            pass
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:flagscope")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'flag_evaluations' not found*"])
