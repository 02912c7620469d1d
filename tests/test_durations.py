"""impact's durations: NumPy's path answers as the standard library's does, to the bit."""

from __future__ import annotations

import sys
from typing import Any

import numpy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flagscope import InMemoryAnalyticsCollector
from flagscope._query import durations
from flagscope._query.durations import mann_whitney_ns, percentile_ns, sorted_known
from flagscope._query.significance import mann_whitney
from impact_traffic import FLAG, Behaviour, drive

INT64_MAX = 2**63 - 1

# Few distinct values (many ties, the unknown -1 and other negatives among them),
# values across the whole int64 range, and ints beyond it among others (a producer's
# nonsense times), which NumPy cannot hold.
_crowded = st.lists(st.integers(-3, 40), max_size=300)
_wide = st.lists(st.integers(-(2**63), INT64_MAX), max_size=60)
_beyond = st.lists(st.integers(-(2**70), 2**70) | st.integers(-3, 40), max_size=60)
_samples = _crowded | _wide | _beyond


def _fits(values: list[int]) -> bool:
    return bool(values) and all(-(2**63) <= value <= INT64_MAX for value in values)


def _python(values: Any) -> Any:
    return values.tolist() if isinstance(values, numpy.ndarray) else values


@pytest.fixture
def standard_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """The path taken where NumPy is not installed."""
    monkeypatch.setattr(durations, "_load_numpy", lambda: None)


def _pure(function: Any, *args: Any) -> Any:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(durations, "_load_numpy", lambda: None)
        return function(*args)


@given(_samples)
def test_sorted_known_with_numpy_equals_the_standard_librarys(values: list[int]) -> None:
    fast = sorted_known(values)
    assert isinstance(fast, numpy.ndarray) == _fits(values)
    assert _python(fast) == _pure(sorted_known, values)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([5, -1, 3, -1], [3, 5]),
        ([5, -7, 3, -1], [3, 5]),  # with an unknown, every negative goes
        ([5, -7, 3], [-7, 3, 5]),  # without one, negatives stay, as sent
        ([-1, -1], []),
        ([], []),
    ],
)
def test_sorted_known_drops_unknown_durations_on_both_paths(
    values: list[int], expected: list[int]
) -> None:
    assert list(sorted_known(values)) == expected
    assert _pure(sorted_known, values) == expected


@given(_samples, _samples)
def test_mann_whitney_with_numpy_equals_the_standard_librarys(a: list[int], b: list[int]) -> None:
    fast = mann_whitney_ns(sorted_known(a), sorted_known(b))
    slow = _pure(lambda: mann_whitney_ns(sorted_known(a), sorted_known(b)))
    assert fast == slow
    known_a, known_b = _pure(sorted_known, a), _pure(sorted_known, b)
    if known_a and known_b:
        assert fast == mann_whitney(known_a, known_b)


def test_mann_whitney_counts_ties_across_and_within_samples() -> None:
    """scipy mannwhitneyu([1,2,3,4], [3,5,6,7], method='asymptotic', use_continuity=False)."""
    u, p = mann_whitney_ns(sorted_known([1, 2, 3, 4]), sorted_known([3, 5, 6, 7]))
    assert u == 1.5
    assert p == pytest.approx(0.05907, abs=1e-4)


@pytest.mark.parametrize(
    "values",
    [[0.5, 1.5, 2.5, 3.0], [1, 2.5, float("inf")], [True, False, True]],
    ids=["floats", "ints and floats", "bools"],
)
def test_durations_that_are_not_all_ints_take_the_standard_librarys_path(
    values: list[Any],
) -> None:
    """A hand-made outcome's floats are not truncated to ints, as int64 would."""
    other: list[Any] = [1.0, 2.0, 3.0, 4]
    assert isinstance(sorted_known(values), list)
    fast = mann_whitney_ns(sorted_known(values), sorted_known(other))
    assert fast == _pure(lambda: mann_whitney_ns(sorted_known(values), sorted_known(other)))
    assert fast == mann_whitney(sorted(values), sorted(other))
    top = percentile_ns(sorted_known(values), 1.0)
    assert (top, type(top)) == (max(values), type(max(values)))


def test_durations_beyond_int64_take_the_standard_librarys_path() -> None:
    huge = [2**64 - 5, 3, 10]
    known = sorted_known(huge)
    assert known == [3, 10, 2**64 - 5]
    other = sorted_known([4, 11, 12])
    assert isinstance(other, numpy.ndarray)
    assert mann_whitney_ns(known, other) == mann_whitney([3, 10, 2**64 - 5], [4, 11, 12])


def test_percentiles_are_python_ints_on_the_numpy_path() -> None:
    known = sorted_known([30, 10, 20])
    assert isinstance(known, numpy.ndarray)
    median = percentile_ns(known, 0.5)
    assert (median, type(median)) == (20, int)
    assert percentile_ns(sorted_known([]), 0.5) is None


@pytest.mark.parametrize(
    "variants",
    [
        {"control": Behaviour(0.02, 100.0), "treatment": Behaviour(0.06, 140.0)},
        {"control": Behaviour(0.02, 100.0), "treatment": Behaviour(0.02, 100.0)},
        {
            "control": Behaviour(0.02, 100.0),
            "blue": Behaviour(0.01, 90.0),
            "red": Behaviour(0.08, 100.0),
        },
    ],
)
def test_impact_is_the_same_with_numpy_and_without(variants: dict[str, Behaviour]) -> None:
    collector = InMemoryAnalyticsCollector(max_size=20_000)
    drive(collector, variants, 2000, 7)
    fast = collector.query.impact(FLAG, baseline="control")
    slow = _pure(lambda: collector.query.impact(FLAG, baseline="control"))
    assert fast == slow
    assert {type(item.duration_p50_ms) for item in fast.variants} == {float}
    assert fast.to_dict() == slow.to_dict()


def test_impact_answers_without_numpy_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "numpy", None)  # import numpy raises ImportError
    durations._load_numpy.cache_clear()
    try:
        assert durations._load_numpy() is None
        collector = InMemoryAnalyticsCollector()
        drive(collector, {"control": Behaviour(0.02, 100.0)}, 200, 1)
        impact = collector.query.impact(FLAG)
        assert impact.variant("control").requests == 200
        assert isinstance(sorted_known([2, 1]), list)
    finally:
        durations._load_numpy.cache_clear()


def test_the_standard_library_path_alone_judges_a_seeded_effect(standard_library: None) -> None:
    collector = InMemoryAnalyticsCollector(max_size=20_000)
    drive(
        collector,
        {"control": Behaviour(0.02, 100.0), "treatment": Behaviour(0.02, 140.0)},
        3000,
        2,
    )
    treatment = collector.query.impact(FLAG, baseline="control").variant("treatment")
    assert treatment.verdict == "worse"
    assert treatment.duration_ratio_p50 is not None
    assert 1.25 < treatment.duration_ratio_p50 < 1.55
