"""Flag coverage's recorder and report, in process: counting, declarations, merging, text.

The pytest side (options, xdist, processors, exit statuses) is in
``test_coverage_plugin.py``, through real pytest sessions in subprocesses.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flagscope._store.records import EvaluationReason, FlagEvaluationEvent
from flagscope.testing._coverage import CoverageRecorder, build_report, render_summary
from flagscope.testing._declarations import DeclaredFlag, load_declared_flags


def evaluation(
    flag_key: str,
    variant: str | None = None,
    value: Any = True,
    *,
    reason: str = "static",
    error_type: str | None = None,
) -> FlagEvaluationEvent:
    return FlagEvaluationEvent(
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        flag_key=flag_key,
        value=value,
        variant=variant,
        reason=EvaluationReason(reason),
        error_type=error_type,
    )


def record(recorder: CoverageRecorder, test: str | None, *events: FlagEvaluationEvent) -> None:
    if test is not None:
        recorder.begin(test)
    recorder.record_batch(list(events))
    recorder.end()


def test_each_evaluation_counts_for_the_running_test_and_its_variant() -> None:
    recorder = CoverageRecorder()
    record(recorder, "t.py::one", evaluation("a", "on"), evaluation("a", "on"))
    record(recorder, "t.py::two", evaluation("a", "off"), evaluation("b", "red"))

    report = build_report(recorder.to_data())

    a = report.flags["a"]
    assert (a.evaluations, a.tests) == (3, ("t.py::one", "t.py::two"))
    assert {name: (v.evaluations, v.tests) for name, v in a.variants.items()} == {
        "off": (1, ("t.py::two",)),
        "on": (2, ("t.py::one",)),
    }
    assert report.flags["b"].tests == ("t.py::two",)
    assert report.tests == ("t.py::one", "t.py::two")


def test_evaluations_while_no_test_runs_count_for_the_flag_but_no_test() -> None:
    recorder = CoverageRecorder()
    record(recorder, None, evaluation("a", "on"))
    record(recorder, "t.py::one", evaluation("a", "on"))
    record(recorder, None, evaluation("a", "on"))

    flag = build_report(recorder.to_data()).flags["a"]

    assert flag.evaluations == 3
    assert flag.tests == ("t.py::one",)
    assert flag.variants["on"].evaluations == 3
    assert flag.variants["on"].tests == ("t.py::one",)


def test_without_a_variant_the_value_counts_as_json_text() -> None:
    recorder = CoverageRecorder()
    record(
        recorder,
        "t.py::one",
        evaluation("color", None, "#c05543"),
        evaluation("limits", None, {"b": 2, "a": [1]}),
        evaluation("limits", None, {"a": [1], "b": 2}),
    )

    report = build_report(recorder.to_data())

    assert list(report.flags["color"].variants) == ['"#c05543"']
    assert report.flags["limits"].variants['{"a":[1],"b":2}'].evaluations == 2


def test_a_declared_variant_is_found_by_its_value_when_the_producer_sends_none() -> None:
    recorder = CoverageRecorder()
    record(recorder, "t.py::one", evaluation("flag", None, 20), evaluation("same", None, 0))
    declared = {
        "flag": DeclaredFlag("flag", variants={"ten": 10, "twenty": 20}),
        # Two variants hold 0: the value names neither.
        "same": DeclaredFlag("same", variants={"none": 0, "zero": 0}),
    }

    report = build_report(recorder.to_data(), declared)

    assert list(report.flags["flag"].variants) == ["twenty"]
    assert report.flags["flag"].missing_variants == ("ten",)
    assert list(report.flags["same"].variants) == ["0"]
    assert report.flags["same"].missing_variants == ("none", "zero")


def test_failed_evaluations_count_for_the_flag_and_for_no_variant() -> None:
    recorder = CoverageRecorder()
    record(
        recorder,
        "t.py::one",
        evaluation("gone", None, False, reason="error", error_type="flag_not_found"),
        evaluation("gone", "on", True, reason="error"),
        evaluation("gone", "on"),
    )

    flag = build_report(recorder.to_data()).flags["gone"]

    assert (flag.evaluations, flag.errors) == (3, 2)
    assert {name: v.evaluations for name, v in flag.variants.items()} == {"on": 1}


def test_declarations_give_missing_variants_never_evaluated_and_undeclared_flags() -> None:
    recorder = CoverageRecorder()
    record(recorder, "t.py::one", evaluation("checkout", "on"), evaluation("legacy", "x"))
    declared = {
        "checkout": DeclaredFlag("checkout", variants={"on": True, "off": False}),
        "dark-mode": DeclaredFlag("dark-mode", variants={"on": True, "off": False}),
        "listed": DeclaredFlag("listed"),
        "retired": DeclaredFlag("retired", enabled=False, variants={"on": True}),
    }

    report = build_report(recorder.to_data(), declared)

    assert report.flags["checkout"].missing_variants == ("off",)
    assert report.flags["dark-mode"].missing_variants == ("off", "on")
    assert report.missing_variants == {"checkout": ("off",), "dark-mode": ("off", "on")}
    assert report.never_evaluated == ("dark-mode", "listed")
    assert report.undeclared == ("legacy",)
    # A disabled flag is reported as disabled: neither missing nor never evaluated.
    assert report.flags["retired"].disabled
    assert report.flags["retired"].missing_variants == ()
    assert report.to_dict()["flags"]["retired"]["state"] == "DISABLED"
    assert report.to_dict()["flags"]["listed"]["declared_variants"] is None
    assert report.to_dict()["flags"]["legacy"]["state"] is None


def test_without_declarations_nothing_is_missing_or_undeclared() -> None:
    recorder = CoverageRecorder()
    record(recorder, "t.py::one", evaluation("a", "on"))

    report = build_report(recorder.to_data())

    assert report.to_dict() == {
        "flags": {
            "a": {
                "declared_variants": None,
                "errors": 0,
                "evaluations": 1,
                "missing_variants": [],
                "state": None,
                "tests": ["t.py::one"],
                "variants": {"on": {"evaluations": 1, "tests": ["t.py::one"]}},
            }
        },
        "never_evaluated": [],
        "undeclared": [],
    }


events_strategy = st.lists(
    st.tuples(
        st.sampled_from(["t.py::a", "t.py::b", "t.py::c[1]", "u.py::d"]),
        st.sampled_from(["f1", "f2", "f3"]),
        st.one_of(st.none(), st.sampled_from(["on", "off"])),
        st.sampled_from([True, 0, "x", None]),
        st.booleans(),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(events=events_strategy, workers=st.lists(st.integers(0, 3), min_size=40, max_size=40))
def test_merging_workers_tallies_gives_the_report_of_one_process(
    events: list[tuple[str, str, str | None, Any, bool]], workers: list[int]
) -> None:
    """What pytest-xdist relies on: any split of the tests over workers merges to one answer."""
    single = CoverageRecorder()
    split = [CoverageRecorder() for _ in range(4)]
    for index, (test, key, variant, value, failed) in enumerate(events):
        event = evaluation(key, variant, value, error_type="general" if failed else None)
        record(single, test, event)
        record(split[workers[index]], test, event)
    controller = CoverageRecorder()
    for worker in split:
        # The data crosses a process boundary as plain JSON-able values.
        controller.merge_data(json.loads(json.dumps(worker.to_data())))
    declared = {"f1": DeclaredFlag("f1", variants={"on": True, "off": False})}

    expected = json.dumps(build_report(single.to_data(), declared).to_dict())
    assert json.dumps(build_report(controller.to_data(), declared).to_dict()) == expected


def test_recording_from_many_threads_loses_no_evaluation() -> None:
    recorder = CoverageRecorder()
    recorder.begin("t.py::threads")
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        for _ in range(500):
            recorder.record_batch([evaluation("a", "on")])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert build_report(recorder.to_data()).flags["a"].variants["on"].evaluations == 2000


def test_summary_marks_never_exercised_variants_and_disabled_flags() -> None:
    recorder = CoverageRecorder()
    record(recorder, "t.py::one", evaluation("checkout", "on"), evaluation("gone", None, False))
    record(recorder, "t.py::two", evaluation("checkout", "on"), evaluation("extra", "x"))
    record(recorder, "t.py::two", evaluation("gone", None, 0, reason="error"))
    declared = {
        "checkout": DeclaredFlag("checkout", variants={"on": True, "off": False}),
        "gone": DeclaredFlag("gone"),
        "retired": DeclaredFlag("retired", enabled=False, variants={"on": True}),
        "unused": DeclaredFlag("unused", variants={"on": True}),
    }

    lines = render_summary(build_report(recorder.to_data(), declared))

    assert lines == [
        "flag      evaluations  tests  tests per variant",
        "checkout            2      2  off 0 (never exercised), on 2",
        "extra               1      1  x 1",
        "gone                2      2  false 1, 1 failed evaluation",
        "retired             0      0  disabled",
        "unused              0      0  never evaluated",
        "3 flags evaluated by 2 tests; 4 declared (1 disabled)",
        "declared flags never evaluated: unused",
        "declared variants never exercised: checkout (off); unused (on)",
        "evaluated but not declared: extra",
    ]


def test_verbose_summary_lists_the_tests_of_each_variant() -> None:
    recorder = CoverageRecorder()
    record(recorder, "t.py::one", evaluation("checkout", "on"))
    record(recorder, "t.py::two", evaluation("checkout", "on"))
    declared = {"checkout": DeclaredFlag("checkout", variants={"on": True, "off": False})}

    lines = render_summary(build_report(recorder.to_data(), declared), verbose=True)

    assert lines[1:6] == [
        "checkout            2      2  off 0 (never exercised), on 2",
        "    on:",
        "      t.py::one",
        "      t.py::two",
        "    off: no test",
    ]


def test_an_empty_run_says_no_evaluation_was_recorded() -> None:
    lines = render_summary(build_report({}))

    assert lines[0].startswith("no flag evaluations were recorded")


def test_the_example_shop_declares_its_flags_in_flagd_format() -> None:
    path = Path(__file__).resolve().parent.parent / "examples" / "app" / "flags.json"

    declared = load_declared_flags(path)

    assert list(declared) == ["discount-percent", "gift-wrap", "new-checkout", "shipping-options"]
    assert declared["discount-percent"].variant_names == ("ten", "twenty")
    assert declared["gift-wrap"].enabled is False
