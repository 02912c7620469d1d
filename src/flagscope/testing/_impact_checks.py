"""What ``assert_no_regression`` checks, with a table of every variant when it fails."""

from __future__ import annotations

from flagscope._query.impact import MIN_REQUESTS, FlagImpact, VariantImpact

__all__ = ["no_regression"]


def _cell(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _rate(item: VariantImpact) -> str:
    if item.error_rate is None or item.error_rate_interval is None:
        return "-"
    low, high = item.error_rate_interval
    return f"{item.error_rate:.1%} ({low:.1%}-{high:.1%})"


def impact_table(impact: FlagImpact) -> str:
    """Every variant of ``impact`` as an aligned text table."""
    header = ("variant", "requests", "error rate (95% CI)", "p50 ms", "p95 ms", "verdict")
    rows = [header] + [
        (
            item.variant,
            str(item.requests),
            _rate(item),
            _cell(item.duration_p50_ms, ".1f"),
            _cell(item.duration_p95_ms, ".1f"),
            item.verdict,
        )
        for item in impact.variants
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def no_regression(impact: FlagImpact, *, require_verdict: bool) -> None:
    """Raise ``AssertionError`` when a variant is worse (or, if required, unjudged)."""
    __tracebackhide__ = True
    where = f"flag {impact.flag_key!r} (baseline {impact.baseline!r}, scope {impact.scope})"
    if not impact.variants:
        if require_verdict:
            raise AssertionError(f"flag {impact.flag_key!r} was never evaluated: nothing to judge")
        return
    worse = [item.variant for item in impact.variants if item.verdict == "worse"]
    if worse:
        raise AssertionError(
            f"{', '.join(map(repr, worse))} of {where} made requests fail more or run "
            f"slower:\n{impact_table(impact)}"
        )
    unjudged = [item.variant for item in impact.variants if item.verdict == "insufficient_data"]
    if require_verdict and (unjudged or len(impact.variants) < 2):
        what = (
            f"{', '.join(map(repr, unjudged))} had fewer than {MIN_REQUESTS} requests "
            "with a known outcome (or the baseline had)"
            if unjudged
            else "only one variant was served"
        )
        raise AssertionError(
            f"{where}: {what}, so nothing was judged; drive more traffic or pass "
            f"require_verdict=False:\n{impact_table(impact)}"
        )
