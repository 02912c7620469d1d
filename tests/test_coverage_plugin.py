"""Flag coverage of a whole test suite, through real pytest sessions in subprocesses.

Each inner session starts with no global TracerProvider, as a fresh ``pytest`` run
does; serial runs and pytest-xdist runs (``-n 2``) must give the same JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from test_pytest_plugin import FLAGAPP, INI, literal

pytest_plugins = ["pytester"]

FLAGS = {
    "flags": {
        "a": {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"},
        "b": {"state": "ENABLED", "variants": {"red": "#c05543"}, "defaultVariant": "red"},
        "c": {"state": "ENABLED", "variants": {"ten": 10}, "defaultVariant": "ten"},
        "retired": {"state": "DISABLED", "variants": {"on": True}, "defaultVariant": "on"},
    }
}

# Fixture and non-fixture tests; evaluations in setup, call and teardown; a failing test.
SUITE = """
import pytest
from flagapp import evaluate

@pytest.fixture
def around():
    evaluate("c")
    yield
    evaluate("b")

def test_with_the_fixture(flag_evaluations):
    evaluate("a")
    flag_evaluations.assert_evaluated("a", times=1)

def test_without_the_fixture(around):
    evaluate("a", "missing")

@pytest.mark.parametrize("user", ["alice", "bob"])
def test_parametrized(user):
    evaluate("a", user=user)

def test_failing():
    evaluate("b")
    assert False, "fails after evaluating b"
"""

EXPECTED_JSON: dict[str, Any] = {
    "flags": {
        "a": {
            "declared_variants": ["off", "on"],
            "errors": 0,
            "evaluations": 4,
            "missing_variants": ["off"],
            "state": "ENABLED",
            "tests": [
                "test_suite.py::test_parametrized[alice]",
                "test_suite.py::test_parametrized[bob]",
                "test_suite.py::test_with_the_fixture",
                "test_suite.py::test_without_the_fixture",
            ],
            "variants": {
                "on": {
                    "evaluations": 4,
                    "tests": [
                        "test_suite.py::test_parametrized[alice]",
                        "test_suite.py::test_parametrized[bob]",
                        "test_suite.py::test_with_the_fixture",
                        "test_suite.py::test_without_the_fixture",
                    ],
                }
            },
        },
        "b": {
            "declared_variants": ["red"],
            "errors": 0,
            "evaluations": 2,
            "missing_variants": [],
            "state": "ENABLED",
            "tests": ["test_suite.py::test_failing", "test_suite.py::test_without_the_fixture"],
            "variants": {
                "red": {
                    "evaluations": 2,
                    "tests": [
                        "test_suite.py::test_failing",
                        "test_suite.py::test_without_the_fixture",
                    ],
                }
            },
        },
        "c": {
            "declared_variants": ["ten"],
            "errors": 0,
            "evaluations": 1,
            "missing_variants": [],
            "state": "ENABLED",
            "tests": ["test_suite.py::test_without_the_fixture"],
            "variants": {
                "ten": {"evaluations": 1, "tests": ["test_suite.py::test_without_the_fixture"]}
            },
        },
        "missing": {
            "declared_variants": None,
            "errors": 1,
            "evaluations": 1,
            "missing_variants": [],
            "state": None,
            "tests": ["test_suite.py::test_without_the_fixture"],
            "variants": {},
        },
        "retired": {
            "declared_variants": ["on"],
            "errors": 0,
            "evaluations": 0,
            "missing_variants": [],
            "state": "DISABLED",
            "tests": [],
            "variants": {},
        },
    },
    "never_evaluated": [],
    "undeclared": ["missing"],
}

SUMMARY = [
    "=* flag coverage =*",
    "flag     evaluations  tests  tests per variant",
    "a                  4      4  off 0 (never exercised), on 4",
    "b                  2      2  red 2",
    "c                  1      1  ten 1",
    "missing            1      1  1 failed evaluation",
    "retired            0      0  disabled",
    "4 flags evaluated by 5 tests; 4 declared (1 disabled)",
    "declared variants never exercised: a (off)",
    "evaluated but not declared: missing",
]


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester directory with the instrumented app, a quiet ini and flags.json."""
    pytester.makepyfile(flagapp=FLAGAPP)
    pytester.makeini(INI)
    (pytester.path / "flags.json").write_text(json.dumps(FLAGS))
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def read_json(pytester: pytest.Pytester, name: str) -> Any:
    return json.loads((pytester.path / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_every_evaluation_is_counted_for_the_test_that_made_it(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    """Setup, call and teardown; with and without the fixture; passing or not; any worker."""
    pytester.makepyfile(test_suite=SUITE)

    result = run(
        pytester,
        *workers,
        "--flagscope-coverage",
        "--flagscope-flags=flags.json",
        "--flagscope-coverage-json=out/coverage.json",
    )

    result.assert_outcomes(passed=4, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([literal(line).replace("[*]", "*") for line in SUMMARY])
    result.stdout.fnmatch_lines(
        [f"flag coverage JSON written to {pytester.path}/out/coverage.json"]
    )
    # Byte for byte, so serial and xdist runs write identical files.
    expected = json.dumps(EXPECTED_JSON, indent=2, sort_keys=True) + "\n"
    assert (pytester.path / "out" / "coverage.json").read_text(encoding="utf-8") == expected


def test_batch_processor_evaluations_belong_to_the_test_that_made_them(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI + "flagscope_processor = batch\n")
    pytester.makepyfile(
        """
        import pytest
        from flagapp import evaluate

        def test_one():
            evaluate("a")

        # A batch capture flushes the processor when it starts: without a flush at the
        # end of test_one, test_one's span would be exported here, during test_two.
        @pytest.mark.flagscope(processor="batch")
        def test_two(flag_evaluations):
            evaluate("b")
            flag_evaluations.wait_for(flag_key="b")

        def test_three():
            evaluate("c")
        """
    )

    result = run(pytester, "--flagscope-coverage-json=coverage.json")

    result.assert_outcomes(passed=3)
    flags = read_json(pytester, "coverage.json")["flags"]
    assert {key: flag["tests"] for key, flag in flags.items()} == {
        "a": ["test_batch_processor_evaluations_belong_to_the_test_that_made_them.py::test_one"],
        "b": ["test_batch_processor_evaluations_belong_to_the_test_that_made_them.py::test_two"],
        "c": ["test_batch_processor_evaluations_belong_to_the_test_that_made_them.py::test_three"],
    }


def test_verbose_lists_the_tests_of_each_variant(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from flagapp import evaluate

        def test_one():
            evaluate("a", "b")

        def test_two():
            evaluate("a")
        """
    )

    result = run(pytester, "-v", "--flagscope-coverage", "--flagscope-flags=flags.json")

    result.stdout.fnmatch_lines(
        [
            literal(line)
            for line in [
                "a                  2      2  off 0 (never exercised), on 2",
                "    on:",
                "      test_verbose_lists_the_tests_of_each_variant.py::test_one",
                "      test_verbose_lists_the_tests_of_each_variant.py::test_two",
                "    off: no test",
                "b                  1      1  red 1",
                "    red:",
                "      test_verbose_lists_the_tests_of_each_variant.py::test_one",
            ]
        ]
    )


COVERING_SUITE = """
from flagapp import evaluate

def test_all_but_off():
    evaluate("a", "b")
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_require_variants_fails_a_passing_run_naming_what_was_never_exercised(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    pytester.makepyfile(COVERING_SUITE)

    result = run(
        pytester,
        *workers,
        "--flagscope-flags=flags.json",
        "--flagscope-require-variants",
        "--flagscope-require-flags",
    )

    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "FAILED --flagscope-require-variants: declared variants never exercised: "
            "a (off); c (ten)",
            "FAILED --flagscope-require-flags: declared flags never evaluated: c",
        ]
    )


def test_requirements_met_keep_the_run_green(pytester: pytest.Pytester) -> None:
    (pytester.path / "flags.json").write_text(json.dumps(["a", "b"]))
    pytester.makepyfile(COVERING_SUITE)

    result = run(
        pytester,
        "--flagscope-flags=flags.json",
        "--flagscope-require-variants",
        "--flagscope-require-flags",
    )

    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    assert "FAILED" not in result.stdout.str()


def test_ini_options_turn_coverage_and_requirements_on(pytester: pytest.Pytester) -> None:
    (pytester.path / "config").mkdir()
    (pytester.path / "config" / "flags.json").write_text(json.dumps(FLAGS))
    (pytester.path / "config" / "pytest.ini").write_text(
        INI
        + "flagscope_coverage = true\n"
        + "flagscope_flags = flags.json\n"
        + "flagscope_require_flags = true\n"
    )
    pytester.makepyfile(COVERING_SUITE)

    result = run(pytester, "-c", "config/pytest.ini", "--rootdir", str(pytester.path))
    switched_off = run(
        pytester,
        "-c",
        "config/pytest.ini",
        "--rootdir",
        str(pytester.path),
        "--no-flagscope-coverage",
    )

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["FAILED --flagscope-require-flags: declared flags never evaluated: c"]
    )
    assert switched_off.ret == pytest.ExitCode.OK
    assert "flag coverage" not in switched_off.stdout.str()


def test_coverage_is_off_by_default_and_loads_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sys
        from opentelemetry import trace
        from flagapp import evaluate

        def test_nothing_watches():
            evaluate("a")
            assert "flagscope.testing._coverage_plugin" not in sys.modules
            assert "flagscope.testing._coverage" not in sys.modules
            # No provider was installed: the evaluation made no recording span.
            assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        """
    )

    result = run(pytester, "--flagscope-flags=flags.json")

    result.assert_outcomes(passed=1)
    assert "flag coverage" not in result.stdout.str()


def test_a_provider_from_flagscope_tracer_provider_counts_too(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        from opentelemetry.sdk.trace import TracerProvider

        PROVIDER = TracerProvider()

        @pytest.fixture(scope="session")
        def flagscope_tracer_provider():
            return PROVIDER
        """
    )
    pytester.makepyfile(
        """
        from opentelemetry import trace
        from conftest import PROVIDER

        def emit(key):
            with PROVIDER.get_tracer("t").start_as_current_span("s"):
                trace.get_current_span().add_event(
                    "feature_flag.evaluation",
                    {"feature_flag.key": key, "feature_flag.result.value": "1"},
                )

        def test_one(flag_evaluations):
            emit("own")
            flag_evaluations.assert_evaluated("own")

        def test_two():
            emit("own")
        """
    )

    result = run(pytester, "--flagscope-coverage-json=coverage.json")

    result.assert_outcomes(passed=2)
    flag = read_json(pytester, "coverage.json")["flags"]["own"]
    assert flag["evaluations"] == 2
    assert list(flag["variants"]) == ["1"]


def test_a_provider_made_for_each_test_is_neither_kept_nor_walked_by_later_tests(
    pytester: pytest.Pytester,
) -> None:
    """A function-scoped flagscope_tracer_provider: each test's is freed after it.

    Kept, every later test walked them all (800 tests took 18 s against 3 s without
    coverage) and held each alive.
    """
    pytester.makeconftest(
        """
        import pytest
        from opentelemetry.sdk.trace import TracerProvider

        @pytest.fixture
        def flagscope_tracer_provider():
            provider = TracerProvider()
            yield provider
            provider.shutdown()
        """
    )
    pytester.makepyfile(
        """
        import gc
        import pytest
        from opentelemetry.sdk.trace import TracerProvider

        @pytest.mark.parametrize("number", range(40))
        def test_each(flag_evaluations, flagscope_tracer_provider, number):
            tracer = flagscope_tracer_provider.get_tracer("t")
            with tracer.start_as_current_span("s") as span:
                span.add_event(
                    "feature_flag.evaluation",
                    {"feature_flag.key": "k", "feature_flag.result.variant": str(number % 2)},
                )
            flag_evaluations.assert_evaluated("k", times=1)

        def test_zz_earlier_providers_are_gone():
            gc.collect()
            alive = [item for item in gc.get_objects() if isinstance(item, TracerProvider)]
            # The global one, and at most the last test's, not yet collected.
            assert len(alive) <= 2, len(alive)
        """
    )

    result = run(pytester, "--flagscope-coverage-json=coverage.json")

    result.assert_outcomes(passed=41)
    flag = read_json(pytester, "coverage.json")["flags"]["k"]
    assert flag["evaluations"] == 40
    assert sorted(flag["variants"]) == ["0", "1"]


def test_a_noop_global_provider_is_reported_not_fatal(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from opentelemetry import trace

        trace.set_tracer_provider(trace.NoOpTracerProvider())
        """
    )
    pytester.makepyfile("def test_one(): pass")

    result = run(pytester, "--flagscope-coverage")

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "flagscope cannot capture flag evaluations: the global tracer provider is a "
            "NoOpTracerProvider*",
            "no flag evaluations were recorded*",
        ]
    )


@pytest.mark.parametrize(
    ("contents", "args", "message"),
    [
        (
            None,
            ["--flagscope-coverage", "--flagscope-flags=absent.json"],
            "ERROR: flagscope declared flags: {path}/absent.json: no such file",
        ),
        (
            '{"flags": {"a": {"state": "ON", "variants": {"x": 1}}}}',
            ["--flagscope-coverage", "--flagscope-flags=bad.json"],
            "ERROR: flagscope declared flags: {path}/bad.json: not a flagd flag definition "
            'file * nor a JSON list of flag keys: flag \'a\': "state" must be "ENABLED" or '
            '"DISABLED", got "ON"',
        ),
        (
            '{"flags": ',
            ["-n", "2", "--flagscope-coverage", "--flagscope-flags=bad.json"],
            "ERROR: flagscope declared flags: {path}/bad.json: not valid JSON: Expecting value "
            "at line 1 column 11",
        ),
        (
            None,
            ["--flagscope-require-variants"],
            "ERROR: --flagscope-require-variants needs the declared flags: pass "
            "--flagscope-flags=PATH or set the flagscope_flags ini option",
        ),
        (
            None,
            ["--flagscope-coverage-json=."],
            "ERROR: --flagscope-coverage-json: {path} is a directory, not a file name",
        ),
        (
            "[" * 100_000 + "]" * 100_000,
            ["--flagscope-coverage", "--flagscope-flags=bad.json"],
            "ERROR: flagscope declared flags: {path}/bad.json: not valid JSON: nested too deep",
        ),
        (
            '{"flags": {"a": {"state": "ENABLED", "variants": {"x": 1' + "0" * 5000 + "}}}}",
            ["--flagscope-coverage", "--flagscope-flags=bad.json"],
            "ERROR: flagscope declared flags: {path}/bad.json: not valid JSON: Exceeds the limit *",
        ),
    ],
    ids=[
        "missing",
        "malformed",
        "not-json-under-xdist",
        "requirement-without-flags",
        "json-dir",
        "nested-too-deep",
        "integer-too-long",
    ],
)
def test_declared_flags_problems_are_usage_errors_without_a_traceback(
    pytester: pytest.Pytester, contents: str | None, args: list[str], message: str
) -> None:
    if contents is not None:
        (pytester.path / "bad.json").write_text(contents)
    pytester.makepyfile("def test_one(): pass")

    result = run(pytester, *args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message.format(path=pytester.path)])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_the_example_shop_leaves_one_variant_never_exercised(pytester: pytest.Pytester) -> None:
    examples = Path(__file__).resolve().parent.parent / "examples"

    result = pytester.run(
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        str(examples),
        "--flagscope-flags",
        str(examples / "app" / "flags.json"),
        "--flagscope-coverage-json=coverage.json",
    )

    assert result.ret == pytest.ExitCode.OK
    report = read_json(pytester, "coverage.json")
    assert report["flags"]["discount-percent"]["missing_variants"] == ["twenty"]
    assert report["flags"]["gift-wrap"]["state"] == "DISABLED"
    assert report["never_evaluated"] == []
    assert report["undeclared"] == []
    assert {key: flag["missing_variants"] for key, flag in report["flags"].items()} == {
        "discount-percent": ["twenty"],
        "gift-wrap": [],
        "new-checkout": [],
        "shipping-options": [],
    }
