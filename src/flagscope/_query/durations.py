"""A variant's durations, sorted and ranked: with NumPy where the ``stats`` extra put it.

``impact`` sorts each variant's durations (int nanoseconds, from the store) for its
percentiles, and ranks a variant's against the baseline's for the Mann-Whitney U
test. Over 100,000 evaluations that is half of a call's time in the standard library
(two sorts of 50,000 ints and a merge of them); NumPy (``pip install
'flagscope[stats]'``, and in the ``server`` extra) does it in about two fifths of that.

Both paths give the same answers to the bit: twice U and the tie term are counted as
exact integers on each, made floats alike, and the p-value comes from them by one
formula (``significance.mann_whitney_p_value``). Durations that are not all int64
(ints beyond it from a producer's nonsense times, or a hand-made outcome's floats)
take the standard library's path.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from functools import cache
from typing import Any

from flagscope._query.significance import mann_whitney, mann_whitney_p_value, percentile

__all__ = ["mann_whitney_ns", "percentile_ns", "sorted_known"]


@cache
def _load_numpy() -> Any:
    """NumPy, imported on first use (a tenth of a second, paid by ``impact`` alone), or None."""
    try:
        import numpy
    except ImportError:
        return None
    return numpy


def sorted_known(durations: Sequence[int]) -> Sequence[int]:
    """``durations`` sorted ascending, without the unknown ones.

    The store marks a duration it does not know ``-1``. Where there is one, every
    negative value goes (a way in may hand over others, which mean as little);
    where there is none, negative values stay, as sent.

    Returns:
        A NumPy array of int64 where NumPy is installed and every value is an int
        that fits, else a list.
    """
    known: Any = None
    numpy = _load_numpy()
    if numpy is not None:
        try:
            values = numpy.array(durations)
        except (OverflowError, TypeError, ValueError):
            values = None
        # Ints only ("i": signed): floats, text or ints beyond int64 (an object or
        # uint64 array) keep the standard library's answers.
        if values is not None and values.dtype.kind == "i":
            known = values.astype(numpy.int64, copy=False)
            known.sort()
    if known is None:
        known = sorted(durations)
    if len(known) and known[0] < 0:
        # The unknown ones (-1) sort first, with any other negative value: one
        # bisection finds where they end, in a list or an array alike.
        cut = bisect_left(known, 0)
        if known[cut - 1] == -1:
            known = known[cut:]
    return known  # type: ignore[no-any-return]


def percentile_ns(sorted_values: Sequence[int], fraction: float) -> float | None:
    """``significance.percentile`` of ``sorted_known``'s result, as a Python number."""
    value = percentile(sorted_values, fraction)
    item = getattr(value, "item", None)  # a NumPy scalar's Python value
    return value if item is None else item()


def mann_whitney_ns(sorted_a: Sequence[int], sorted_b: Sequence[int]) -> tuple[float, float]:
    """``significance.mann_whitney`` of two of ``sorted_known``'s results: ``(U of a, p)``."""
    n_a = len(sorted_a)
    n_b = len(sorted_b)
    if n_a == 0 or n_b == 0:
        return (0.0, 1.0)
    numpy = _load_numpy()
    if (
        numpy is None
        or not isinstance(sorted_a, numpy.ndarray)
        or not isinstance(sorted_b, numpy.ndarray)
    ):
        # NumPy is not installed, or one side is not int64: the standard library.
        return mann_whitney(_as_list(sorted_a), _as_list(sorted_b))
    u, tie_term = _u_and_ties(numpy, sorted_a, sorted_b)
    return (u, mann_whitney_p_value(u, n_a, n_b, tie_term))


def _as_list(values: Sequence[int]) -> Sequence[int]:
    tolist = getattr(values, "tolist", None)
    return values if tolist is None else tolist()


def _u_and_ties(numpy: Any, sorted_a: Any, sorted_b: Any) -> tuple[float, float]:
    """U of a and the tie term (the sum of ``t^3 - t``), exact, for two sorted arrays.

    Each value of a has ``left`` values of b below it and ``right - left`` equal to
    it, which count one half each: twice U is the sum of ``left + right``.
    """
    left = numpy.searchsorted(sorted_b, sorted_a, "left")
    right = numpy.searchsorted(sorted_b, sorted_a, "right")
    twice_u = int(left.sum()) + int(right.sum())
    merged = numpy.concatenate((sorted_a, sorted_b))
    # Two sorted runs: a stable sort (Timsort for int64) merges them in one pass.
    merged.sort(kind="stable")
    changes = merged[1:] != merged[:-1]
    total = 0
    if not changes.all():
        # The sizes of the runs of equal values, from where the value changes.
        edges = numpy.flatnonzero(changes) + 1
        bounds = numpy.concatenate(([0], edges, [len(merged)]))
        sizes = numpy.diff(bounds)
        # Python ints: t^3 summed over a large store would overflow int64.
        for t in sizes[sizes > 1].tolist():
            total += t * t * t - t
    return (twice_u / 2, float(total))
