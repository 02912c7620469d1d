"""The statistics behind ``query.impact``: intervals and tests, in the standard library.

Short, named, textbook methods, so the core needs no SciPy:

* ``wilson_interval``: the Wilson score interval for a proportion;
* ``two_proportion_p_value``: the pooled two-proportion z test, two-sided;
* ``fisher_exact_p_value``: Fisher's exact test on a 2x2 table, two-sided
  (the tables at least as unlikely as the one seen), for small counts;
* ``error_rate_p_value``: Fisher's test when an expected cell is below 5, the
  z test otherwise (the usual rule of thumb for the normal approximation);
* ``mann_whitney_p_value``: the Mann-Whitney U test, two-sided, normal
  approximation with the tie correction (sound for the sample sizes ``impact``
  requires before it judges);
* ``holm``: the Holm-Bonferroni step-down correction for several tests at once.

The results were checked against SciPy 1.x (``scipy.stats.fisher_exact``,
``mannwhitneyu(..., method="asymptotic", use_continuity=False)``) in the tests.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import compress, islice
from operator import eq
from typing import Final

__all__ = [
    "Z_95",
    "error_rate_p_value",
    "fisher_exact_p_value",
    "holm",
    "mann_whitney",
    "mann_whitney_p_value",
    "normal_two_sided_p",
    "percentile",
    "two_proportion_p_value",
    "wilson_interval",
]

# The standard normal quantile for a two-sided 95% interval.
Z_95: Final = 1.959963984540054


def normal_two_sided_p(z: float) -> float:
    """Two-sided p-value of a standard normal statistic."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for ``successes`` out of ``trials`` (95% by default).

    Unlike the normal (Wald) interval it stays within [0, 1] and is sound for
    rates near 0, which error rates are. ``trials`` of 0 gives (0, 1).
    """
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    z2 = z * z
    denominator = 1.0 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    # The interval always holds p; rounding can put a bound a hair past it (at 0
    # successes the lower bound is exactly 0, not 1.7e-18).
    return (min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)))


def two_proportion_p_value(errors_a: int, n_a: int, errors_b: int, n_b: int) -> float:
    """The pooled two-proportion z test, two-sided; 1.0 when it cannot tell."""
    if n_a <= 0 or n_b <= 0:
        return 1.0
    pooled = (errors_a + errors_b) / (n_a + n_b)
    variance = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    if variance <= 0:
        return 1.0
    return normal_two_sided_p((errors_a / n_a - errors_b / n_b) / math.sqrt(variance))


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_exact_p_value(errors_a: int, n_a: int, errors_b: int, n_b: int) -> float:
    """Fisher's exact test of the 2x2 table (errors, not) x (a, b), two-sided.

    Sums the hypergeometric probabilities of every table with the same margins
    that is no more likely than the one observed (SciPy's definition), with a
    relative tolerance for ties in floating point.
    """
    if n_a <= 0 or n_b <= 0:
        return 1.0
    total = n_a + n_b
    errors = errors_a + errors_b
    low = max(0, errors - n_b)
    high = min(errors, n_a)
    log_denominator = _log_choose(total, errors)

    def log_p(k: int) -> float:
        return _log_choose(n_a, k) + _log_choose(n_b, errors - k) - log_denominator

    observed = log_p(errors_a)
    threshold = observed + math.log1p(1e-7)
    p = 0.0
    for k in range(low, high + 1):
        value = log_p(k)
        if value <= threshold:
            p += math.exp(value)
    return min(1.0, p)


def error_rate_p_value(errors_a: int, n_a: int, errors_b: int, n_b: int) -> float:
    """Fisher's exact test when an expected cell is below 5, else the two-proportion z test."""
    total = n_a + n_b
    if n_a <= 0 or n_b <= 0:
        return 1.0
    errors = errors_a + errors_b
    successes = total - errors
    smallest_expected = min(n_a, n_b) * min(errors, successes) / total
    if smallest_expected < 5:
        return fisher_exact_p_value(errors_a, n_a, errors_b, n_b)
    return two_proportion_p_value(errors_a, n_a, errors_b, n_b)


def mann_whitney(
    sorted_a: Sequence[float], sorted_b: Sequence[float], *, ints: bool = False
) -> tuple[float, float]:
    """The Mann-Whitney U test of two sorted samples: ``(U of a, two-sided p)``.

    ``U`` counts the pairs where a's value is larger (ties count one half); it
    is above ``len(a) * len(b) / 2`` when a tends to be larger. The p-value uses
    the normal approximation with the tie correction, no continuity correction.
    Both inputs must be sorted ascending (the caller sorts them for percentiles
    anyway); one merge pass counts the pairs and the ties. ``ints`` says both
    hold only ints, which saves checking every value.
    """
    n_a = len(sorted_a)
    n_b = len(sorted_b)
    if n_a == 0 or n_b == 0:
        return (0.0, 1.0)
    if ints or (_all_ints(sorted_a) and _all_ints(sorted_b)):
        u, tie_term = _u_and_ties_of_ints(sorted_a, sorted_b)
    else:
        u = _u_by_merge(sorted_a, sorted_b)
        # Equal values sit side by side in a sorted sample: the tied values are those
        # with an equal neighbour or in both samples, found in C-level passes, and only
        # those are counted (a Counter of every value costs ten times more).
        tied = _tied_values(sorted_a) | _tied_values(sorted_b)
        tied.update(set(sorted_a).intersection(sorted_b))
        tie_term = 0.0  # sum of t^3 - t over groups of t equal values
        if tied:
            total = 0
            for value in tied:
                t = _occurrences(sorted_a, value) + _occurrences(sorted_b, value)
                total += t * t * t - t
            tie_term = float(total)
    return (u, mann_whitney_p_value(u, n_a, n_b, tie_term))


def mann_whitney_p_value(u: float, n_a: int, n_b: int, tie_term: float) -> float:
    """The two-sided p-value of a Mann-Whitney ``u`` (``mann_whitney``'s approximation).

    Args:
        u: U of the first sample.
        n_a: The first sample's size (at least 1).
        n_b: The second sample's size (at least 1).
        tie_term: The sum of ``t^3 - t`` over the groups of ``t`` equal values.
    """
    n = n_a + n_b
    mean = n_a * n_b / 2
    variance = n_a * n_b / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    return normal_two_sided_p((u - mean) / math.sqrt(variance))


def _all_ints(values: Sequence[float]) -> bool:
    # The types in one C-level pass: a Python test per value costs 10 ms per 100,000.
    return type(values[0]) is int and set(map(type, values)) == _INT_ONLY


_INT_ONLY: Final = {int}


def _tied_values(sorted_values: Sequence[float]) -> set[float]:
    """The values that occur more than once in a sorted sample."""
    rest = islice(sorted_values, 1, None)
    return set(compress(rest, map(eq, sorted_values, islice(sorted_values, 1, None))))


def _occurrences(sorted_values: Sequence[float], value: float) -> int:
    return bisect_right(sorted_values, value) - bisect_left(sorted_values, value)


def _u_and_ties_of_ints(
    sorted_a: Sequence[float], sorted_b: Sequence[float]
) -> tuple[float, float]:
    """U of a and the tie term (sum of ``t^3 - t``), for ints, from one merged run.

    One sort of the two sorted runs (a linear merge in Timsort) orders both
    samples; being stable, it puts the first sample's copies of a tied value
    before the second's. Each value of the shorter sample is then found in the
    merged run by ``list.index`` from the previous one's position, a C-level scan
    of the few values between: its position, less the values of its own sample
    before it, counts the other sample's values below it. (Copies of one value
    are all found at the first copy's position; the tie correction below moves
    them to their own.) Ties involving the shorter sample show as an equal value
    right after it; ties within the other sample come from one C-level pass over
    it. Each tied group (there are few) is then counted by bisection, its pairs
    across the samples adding one half each. Every term is a multiple of one
    half, so the float result is exact.
    """
    n_a = len(sorted_a)
    n_b = len(sorted_b)
    swap = n_b < n_a
    first, second = (sorted_b, sorted_a) if swap else (sorted_a, sorted_b)
    merged = sorted([*first, *second])
    # ``following[i]`` is ``merged[i + 1]``: read in the loop without adding one.
    following: list[float | None] = [*merged[1:], None]
    find = merged.index
    position = 0
    positions = 0
    tied: list[float] = []
    for value in first:
        # From the previous position, not past it: no int to add and allocate.
        position = find(value, position)
        positions += position
        if following[position] == value:
            tied.append(value)
    tied_values = set(tied)
    # Slices, not islices: copying pointers is cheaper than a Python iterator step.
    rest = second[1:]
    tied_values.update(compress(rest, map(eq, second, rest)))
    n_first = len(first)
    # Twice the first sample's U, counting its pairs with equal values as none so far.
    twice_u = 2 * positions + 2 * n_first - n_first * (n_first + 1)
    total = 0
    for value in tied_values:
        t = bisect_right(merged, value) - bisect_left(merged, value)
        total += t * t * t - t
        in_first = bisect_right(first, value) - bisect_left(first, value)
        # Its pairs across the samples count one half each; its copies in the first
        # sample, found at one position, move up to theirs (0, 1, ...: twice that sum).
        twice_u += in_first * (t - in_first) + in_first * (in_first - 1)
    u_first = twice_u / 2
    return (n_a * n_b - u_first if swap else u_first, float(total))


def _u_by_merge(sorted_a: Sequence[float], sorted_b: Sequence[float]) -> float:
    """U by one merge pass over two sorted samples (any numbers)."""
    n_a = len(sorted_a)
    n_b = len(sorted_b)
    u = 0.0
    i = j = 0
    while i < n_a and j < n_b:
        a = sorted_a[i]
        b = sorted_b[j]
        if a < b:
            u += j
            i += 1
        elif b < a:
            j += 1
        else:
            # A group of equal values: each pair of them counts one half.
            ia = i
            while i < n_a and sorted_a[i] == a:
                i += 1
            jb = j
            while j < n_b and sorted_b[j] == a:
                j += 1
            u += (i - ia) * (jb + (j - jb) / 2)
    u += (n_a - i) * n_b
    return u


def holm(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm-Bonferroni: which of several tests reject at familywise level ``alpha``.

    The smallest p-value is compared with ``alpha / m``, the next with
    ``alpha / (m - 1)`` and so on, stopping at the first that does not reject.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda index: p_values[index])
    rejected = [False] * m
    for rank, index in enumerate(order):
        if p_values[index] <= alpha / (m - rank):
            rejected[index] = True
        else:
            break
    return rejected


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of sorted values (``None`` when there are none)."""
    n = len(sorted_values)
    if n == 0:
        return None
    rank = max(1, math.ceil(fraction * n))
    return sorted_values[min(rank, n) - 1]
