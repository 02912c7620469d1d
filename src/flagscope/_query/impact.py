"""What each variant of a flag does to the requests (or spans) that evaluated it.

``collector.query.impact(flag_key)`` answers "is the new variant hurting?": per
variant, the error rate of the requests that saw it (with a 95% Wilson
interval), their latency percentiles, and a verdict against a baseline from
named tests (``flagscope._query.significance``):

* error rates: Fisher's exact test when an expected cell is below 5, the pooled
  two-proportion z test otherwise;
* durations: the Mann-Whitney U test (no assumption about their distribution);
* every test of every variant against the baseline is corrected together with
  Holm-Bonferroni at a familywise level of ``ALPHA`` (1%), so comparing five
  variants does not find a difference five times as often;
* no verdict other than ``insufficient_data`` below ``MIN_REQUESTS`` requests
  with a known outcome, in the variant and in the baseline.

A request (or span) failed when its status is error or its
``http.response.status_code`` is 500 or more. A request that evaluated the flag
several times counts once per variant it saw.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from flagscope._query.durations import mann_whitney_ns, percentile_ns, sorted_known
from flagscope._query.significance import error_rate_p_value, holm, wilson_interval
from flagscope._store.outcomes import LabelFigures
from flagscope._store.records import EvaluationReason, FlagEvaluationEvent
from flagscope._store.ring import RecordStore
from flagscope._validate import check_choice

__all__ = [
    "ALPHA",
    "MIN_REQUESTS",
    "VERDICTS",
    "BaselineNotServedError",
    "FlagImpact",
    "ImpactScope",
    "VariantImpact",
    "Verdict",
    "compute_impact",
    "variant_label",
]

ImpactScope = Literal["request", "span"]


class BaselineNotServedError(ValueError):
    """``baseline=`` names a variant the flag did not serve (among the filtered evaluations).

    Every other variant would be compared with nothing: a misspelt baseline would
    turn a real regression into ``insufficient_data``.
    """


Verdict = Literal["baseline", "worse", "better", "no_difference", "insufficient_data"]
VERDICTS: Final[tuple[Verdict, ...]] = (
    "baseline",
    "worse",
    "better",
    "no_difference",
    "insufficient_data",
)

# Below this many requests with a known outcome, in the variant or the baseline,
# every verdict is insufficient_data: rates of a few dozen requests swing widely.
MIN_REQUESTS: Final = 100
# The familywise significance level over all tests of one impact() call.
ALPHA: Final = 0.01

_VERDICT_WORDS: Final[Mapping[str, str]] = {
    "baseline": "the baseline the others are compared with",
    "worse": "worse than the baseline: more errors or slower",
    "better": "better than the baseline: fewer errors or faster",
    "no_difference": "no difference from the baseline that the tests can tell",
    "insufficient_data": f"not enough requests to judge (at least {MIN_REQUESTS} each)",
}


@dataclass(frozen=True, slots=True)
class VariantImpact:
    """What one variant did to the requests (or spans) that evaluated it.

    Attributes:
        variant: The variant (or, for flags sent without variants, the value as
            text).
        evaluations: How many matching evaluations served it.
        requests: Distinct requests (or spans) that saw it with a known outcome.
        errors: Of those, how many failed.
        error_rate: ``errors / requests`` (``None`` without requests).
        error_rate_interval: Its 95% Wilson interval, ``(low, high)``.
        duration_p50_ms: Median duration of those requests, milliseconds.
        duration_p95_ms: 95th percentile (nearest rank).
        duration_p99_ms: 99th percentile (nearest rank).
        error_rate_ratio: ``error_rate`` over the baseline's (``None`` for the
            baseline, or when the baseline's rate is 0 or unknown).
        duration_ratio_p50: ``duration_p50_ms`` over the baseline's.
        error_p_value: The error-rate test's p-value against the baseline,
            before correction (``None`` for the baseline or too little data).
        duration_p_value: The Mann-Whitney p-value against the baseline.
        verdict: ``"baseline"``, ``"worse"``, ``"better"``, ``"no_difference"``
            or ``"insufficient_data"``.
    """

    variant: str
    evaluations: int
    requests: int
    errors: int
    error_rate: float | None
    error_rate_interval: tuple[float, float] | None
    duration_p50_ms: float | None
    duration_p95_ms: float | None
    duration_p99_ms: float | None
    error_rate_ratio: float | None
    duration_ratio_p50: float | None
    error_p_value: float | None
    duration_p_value: float | None
    verdict: Verdict

    @property
    def verdict_text(self) -> str:
        """The verdict in words."""
        return _VERDICT_WORDS[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field, the interval as a two-item list."""
        interval = self.error_rate_interval
        return {
            "variant": self.variant,
            "evaluations": self.evaluations,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "error_rate_interval": list(interval) if interval is not None else None,
            "duration_p50_ms": self.duration_p50_ms,
            "duration_p95_ms": self.duration_p95_ms,
            "duration_p99_ms": self.duration_p99_ms,
            "error_rate_ratio": self.error_rate_ratio,
            "duration_ratio_p50": self.duration_ratio_p50,
            "error_p_value": self.error_p_value,
            "duration_p_value": self.duration_p_value,
            "verdict": self.verdict,
            "verdict_text": self.verdict_text,
        }


@dataclass(frozen=True, slots=True)
class FlagImpact:
    """Every variant of one flag, judged against a baseline.

    Attributes:
        flag_key: The flag.
        baseline: The variant the others are compared with (``None``: no data).
        scope: ``"request"`` (the trace's local root) or ``"span"`` (the span
            each evaluation was made in).
        variants: One ``VariantImpact`` per variant, the baseline first, then by
            evaluations (most first) and name.
    """

    flag_key: str
    baseline: str | None
    scope: ImpactScope
    variants: tuple[VariantImpact, ...]

    def variant(self, name: str) -> VariantImpact:
        """Return one variant's figures.

        Raises:
            KeyError: No such variant.
        """
        for item in self.variants:
            if item.variant == name:
                return item
        raise KeyError(name)

    @property
    def worse(self) -> tuple[VariantImpact, ...]:
        """The variants judged worse than the baseline."""
        return tuple(item for item in self.variants if item.verdict == "worse")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with the thresholds the verdicts used."""
        return {
            "flag_key": self.flag_key,
            "baseline": self.baseline,
            "scope": self.scope,
            "min_requests": MIN_REQUESTS,
            "alpha": ALPHA,
            "variants": [item.to_dict() for item in self.variants],
        }


def variant_label(event: FlagEvaluationEvent) -> str:
    """The variant an evaluation served, or its value as text when none was sent."""
    variant = event.variant
    if variant is not None:
        return variant
    value = event.value
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


_SCOPES: Final[tuple[ImpactScope, ...]] = ("request", "span")


def check_scope(scope: object) -> ImpactScope:
    """Return ``scope`` if it is ``"request"`` or ``"span"``.

    Raises:
        TypeError: It is not a str.
        ValueError: It is another string.
    """
    return check_choice("scope", scope, _SCOPES)


def compute_impact(
    collector: RecordStore,
    flag_key: str,
    events: Sequence[FlagEvaluationEvent] | None,
    *,
    baseline: str | None,
    scope: ImpactScope,
) -> FlagImpact:
    """Judge ``events`` (one flag's matching evaluations) variant by variant.

    ``query.impact`` checks the arguments and selects the events (``None``: every
    stored evaluation of ``flag_key``); this does the rest.
    """
    # The store joins the evaluations to their outcomes and counts, per label, the
    # evaluations (by reason) and the distinct requests: a request counts once per
    # variant it saw.
    if events is None:
        found = collector.flag_figures(flag_key, scope, variant_label)
    else:
        found = collector.outcomes.figures(scope, events, variant_label)
    evaluations = Counter({label: item.evaluations for label, item in found.items()})
    if not found:
        return FlagImpact(flag_key, None, scope, ())
    chosen = _baseline(baseline, found)
    if chosen not in found:
        served = ", ".join(map(repr, sorted(found, key=lambda label: (-evaluations[label], label))))
        among = "" if events is None else " among the filtered evaluations"
        raise BaselineNotServedError(
            f"baseline {chosen!r} of flag {flag_key!r} was never served{among}; served: {served}"
        )
    figures = {
        label: _Figures(item.requests, item.errors, item.durations) for label, item in found.items()
    }
    order = sorted(figures, key=lambda label: (label != chosen, -evaluations[label], label))

    base = figures[chosen]
    # Every test of every variant, corrected together.
    tests: list[tuple[str, str, float]] = []
    p_values: dict[tuple[str, str], float] = {}
    for label in order:
        if label == chosen:
            continue
        mine = figures[label]
        if mine.requests < MIN_REQUESTS or base.requests < MIN_REQUESTS:
            continue
        error_p = error_rate_p_value(mine.errors, mine.requests, base.errors, base.requests)
        tests.append((label, "errors", error_p))
        p_values[(label, "errors")] = error_p
        if len(mine.durations) >= MIN_REQUESTS and len(base.durations) >= MIN_REQUESTS:
            u, duration_p = mann_whitney_ns(mine.durations, base.durations)
            mine.u_above_half = u > len(mine.durations) * len(base.durations) / 2
            tests.append((label, "durations", duration_p))
            p_values[(label, "durations")] = duration_p
    rejected = holm([p for _, _, p in tests], ALPHA)
    significant = {
        (label, what) for (label, what, _), hit in zip(tests, rejected, strict=True) if hit
    }

    results = []
    for label in order:
        mine = figures[label]
        if label == chosen:
            verdict: Verdict = "baseline"
        elif (label, "errors") not in p_values:
            verdict = "insufficient_data"
        else:
            worse = better = False
            if (label, "errors") in significant:
                if mine.error_rate > base.error_rate:  # type: ignore[operator]
                    worse = True
                else:
                    better = True
            if (label, "durations") in significant:
                if mine.u_above_half:
                    worse = True
                else:
                    better = True
            verdict = "worse" if worse else "better" if better else "no_difference"
        is_base = label == chosen
        results.append(
            VariantImpact(
                variant=label,
                evaluations=evaluations[label],
                requests=mine.requests,
                errors=mine.errors,
                error_rate=mine.error_rate,
                error_rate_interval=(
                    wilson_interval(mine.errors, mine.requests) if mine.requests else None
                ),
                duration_p50_ms=mine.p50,
                duration_p95_ms=mine.p95,
                duration_p99_ms=mine.p99,
                error_rate_ratio=None if is_base else _ratio(mine.error_rate, base.error_rate),
                duration_ratio_p50=None if is_base else _ratio(mine.p50, base.p50),
                error_p_value=p_values.get((label, "errors")),
                duration_p_value=p_values.get((label, "durations")),
                verdict=verdict,
            )
        )
    return FlagImpact(flag_key, chosen, scope, tuple(results))


def _ratio(mine: float | None, base: float | None) -> float | None:
    if mine is None or base is None or base == 0:
        return None
    return mine / base


class _Figures:
    """One variant's counts and sorted durations (ns), worked out once."""

    __slots__ = (
        "durations",
        "error_rate",
        "errors",
        "p50",
        "p95",
        "p99",
        "requests",
        "u_above_half",
    )

    def __init__(self, requests: int, errors: int, durations: Sequence[int]) -> None:
        """``durations`` as the store gives them: unsorted, -1 where not known."""
        self.requests = requests
        self.errors = errors
        self.error_rate = errors / requests if requests else None
        known = sorted_known(durations)
        self.durations = known
        self.p50 = _ms(percentile_ns(known, 0.50))
        self.p95 = _ms(percentile_ns(known, 0.95))
        self.p99 = _ms(percentile_ns(known, 0.99))
        self.u_above_half = False


def _ms(value: float | None) -> float | None:
    return None if value is None else value / 1e6


def _baseline(given: str | None, found: Mapping[str, LabelFigures]) -> str:
    """``given``, else the variant served with reason default, else the most evaluated."""
    if given is not None:
        return given
    # The store counts each label's evaluations by reason; "default" as a plain string
    # is the same key as the enum member.
    defaults = {
        label: item.reasons[EvaluationReason.DEFAULT]
        for label, item in found.items()
        if EvaluationReason.DEFAULT in item.reasons
    }
    pool = defaults or {label: item.evaluations for label, item in found.items()}
    return min(pool, key=lambda label: (-pool[label], label))
