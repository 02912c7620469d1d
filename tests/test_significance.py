"""The statistics behind impact, against textbook values and stated rules."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flagscope._query.significance import (
    error_rate_p_value,
    fisher_exact_p_value,
    holm,
    mann_whitney,
    percentile,
    two_proportion_p_value,
    wilson_interval,
)


def test_wilson_interval_matches_the_published_value() -> None:
    """5 of 100: (0.0215, 0.1118), as in Newcombe (1998) and scipy's binomtest."""
    low, high = wilson_interval(5, 100)
    assert low == pytest.approx(0.02154, abs=1e-4)
    assert high == pytest.approx(0.11175, abs=1e-4)


@given(st.integers(0, 10_000), st.integers(1, 10_000))
def test_the_wilson_interval_holds_the_rate_and_stays_within_0_and_1(
    errors: int, extra: int
) -> None:
    trials = errors + extra
    low, high = wilson_interval(errors, trials)
    assert 0.0 <= low <= errors / trials <= high <= 1.0


def test_fisher_exact_matches_scipy() -> None:
    """scipy.stats.fisher_exact([[1, 9], [5, 5]]) gives p = 0.1409."""
    assert fisher_exact_p_value(1, 10, 5, 10) == pytest.approx(0.14087, abs=1e-4)


def test_the_two_proportion_test_matches_the_normal_formula() -> None:
    """30/1000 against 10/1000: pooled 0.02, z = 0.02 / 0.006261 = 3.194, p = 0.00140."""
    assert two_proportion_p_value(30, 1000, 10, 1000) == pytest.approx(0.00140, abs=2e-5)


@given(st.integers(0, 40), st.integers(0, 40), st.integers(0, 40), st.integers(0, 40))
def test_error_rate_tests_give_probabilities_symmetric_in_the_two_groups(
    errors_a: int, rest_a: int, errors_b: int, rest_b: int
) -> None:
    n_a, n_b = errors_a + rest_a, errors_b + rest_b
    p = error_rate_p_value(errors_a, n_a, errors_b, n_b)
    assert 0.0 <= p <= 1.0
    assert p == pytest.approx(error_rate_p_value(errors_b, n_b, errors_a, n_a))


def test_mann_whitney_matches_scipy_with_ties() -> None:
    """scipy mannwhitneyu([1,2,3,4], [3,5,6,7], method='asymptotic', use_continuity=False)."""
    u, p = mann_whitney([1, 2, 3, 4], [3, 5, 6, 7])
    assert u == 1.5
    assert p == pytest.approx(0.05907, abs=1e-4)


@given(
    st.lists(st.integers(0, 20), min_size=1, max_size=40),
    st.lists(st.integers(0, 20), min_size=1, max_size=40),
)
def test_mann_whitney_u_counts_the_pairs_a_wins_ties_as_half(a: list[int], b: list[int]) -> None:
    """The definition, pair by pair, for ints and floats alike; U_a + U_b = n_a n_b."""
    expected = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b)
    u_int, p = mann_whitney(sorted(a), sorted(b))
    u_float, _ = mann_whitney(sorted(map(float, a)), sorted(map(float, b)))
    u_other, _ = mann_whitney(sorted(b), sorted(a))
    assert u_int == u_float == expected
    assert u_int + u_other == len(a) * len(b)
    assert 0.0 <= p <= 1.0


@given(
    st.lists(st.integers(0, 30), min_size=1, max_size=60),
    st.lists(st.integers(0, 30), min_size=1, max_size=60),
    st.data(),
)
def test_mann_whitney_of_ints_counts_ties_of_distinct_and_shared_objects(
    a: list[int], b: list[int], data: st.DataObject
) -> None:
    """Large ints, some the very same object in both samples (a request seen with both
    variants shares its duration), give the pair-by-pair U and the tie term of floats."""
    pool = [int(str(10**9 + value)) for value in range(31)]  # one object per value
    shared = data.draw(st.booleans())
    sample_a = sorted(pool[value] if shared else int(str(10**9 + value)) for value in a)
    sample_b = sorted(pool[value] for value in b)
    expected = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b)
    u, p = mann_whitney(sample_a, sample_b, ints=True)
    assert (u, p) == mann_whitney(sorted(map(float, sample_a)), sorted(map(float, sample_b)))
    assert u == expected


@given(st.lists(st.floats(0, 1), min_size=1, max_size=12), st.floats(0.001, 0.2))
def test_holm_rejects_whatever_bonferroni_rejects_and_keeps_the_order(
    p_values: list[float], alpha: float
) -> None:
    rejected = holm(p_values, alpha)
    for p, hit in zip(p_values, rejected, strict=True):
        if p <= alpha / len(p_values):
            assert hit
    for p, hit in zip(p_values, rejected, strict=True):
        if hit:
            assert all(other_hit for q, other_hit in zip(p_values, rejected, strict=True) if q < p)


def test_percentile_is_the_nearest_rank() -> None:
    values = list(range(1, 101))
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99)) == (
        50,
        95,
        99,
    )
    assert percentile([], 0.5) is None
    assert math.isclose(percentile([7.5], 0.99) or 0, 7.5)
