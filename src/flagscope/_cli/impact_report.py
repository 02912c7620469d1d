"""``flagscope report --impact``: each variant's impact, from a running server.

Asks ``/api/flags/{flag_key}/impact`` for each flag (every stored flag, or those
given) and prints a table, JSON or CSV. Every cell shown comes from telemetry
anyone could send, so it is made printable first.
"""

from __future__ import annotations

import csv
import io
import json
import math
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, Final

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = [
    "IMPACT_CSV_COLUMNS",
    "fetch_impacts",
    "impact_csv",
    "print_impact_report",
    "render_impact_table",
    "verdict_words",
]

IMPACT_CSV_COLUMNS: Final = (
    "flag_key",
    "baseline",
    "scope",
    "variant",
    "evaluations",
    "requests",
    "errors",
    "error_rate",
    "error_rate_low",
    "error_rate_high",
    "duration_p50_ms",
    "duration_p95_ms",
    "duration_p99_ms",
    "error_rate_ratio",
    "duration_ratio_p50",
    "error_p_value",
    "duration_p_value",
    "verdict",
)
_VERDICT_STYLES: Final = {
    "worse": "bold red",
    "better": "green",
    "no_difference": "",
    "baseline": "dim",
    "insufficient_data": "yellow",
}
_VERDICT_WORDS: Final = {
    "worse": "WORSE",
    "better": "better",
    "no_difference": "no difference",
    "baseline": "baseline",
    "insufficient_data": "not enough data",
}


def verdict_words(verdict: object) -> str:
    """The verdict as the report shows it."""
    return _VERDICT_WORDS.get(str(verdict), _printable(verdict))


def _printable(text: object) -> str:
    value = str(text)
    if value.isprintable():
        return value
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in value)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def fetch_impacts(
    url: str,
    flag_keys: Sequence[str],
    fetch_json: Any,
    *,
    scope: str = "request",
    baseline: str | None = None,
    timeout: float,
) -> list[dict[str, Any]]:
    """Return ``/api/flags/{key}/impact`` for each flag (every stored one when none given).

    ``fetch_json`` is the CLI's (``flagscope._cli.main.fetch_json``): one request, bounded
    in time and size, with one-line errors.
    """
    keys = list(flag_keys)
    if not keys:
        body = fetch_json(url, "/api/flags", timeout=timeout)
        flags = body.get("flags") if isinstance(body, dict) else None
        keys = [
            flag["flag_key"]
            for flag in flags or []
            if isinstance(flag, dict) and isinstance(flag.get("flag_key"), str)
        ]
    impacts = []
    for key in keys:
        path = f"/api/flags/{urllib.parse.quote(key, safe='')}/impact"
        params = [("scope", scope)] + ([("baseline", baseline)] if baseline is not None else [])
        document = fetch_json(url, path, params, timeout=timeout)
        if isinstance(document, dict) and isinstance(document.get("variants"), list):
            impacts.append(document)
    return impacts


def _rows(impacts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for impact in impacts:
        for variant in impact.get("variants") or []:
            if not isinstance(variant, dict):
                continue
            interval = variant.get("error_rate_interval") or [None, None]
            row = {name: variant.get(name) for name in IMPACT_CSV_COLUMNS}
            row.update(
                flag_key=impact.get("flag_key"),
                baseline=impact.get("baseline"),
                scope=impact.get("scope"),
                error_rate_low=interval[0] if len(interval) == 2 else None,
                error_rate_high=interval[1] if len(interval) == 2 else None,
            )
            rows.append(row)
    return rows


def impact_csv(impacts: Sequence[Mapping[str, Any]]) -> str:
    """One CSV row per variant, with ``IMPACT_CSV_COLUMNS``."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=IMPACT_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in _rows(impacts):
        writer.writerow({name: "" if row[name] is None else row[name] for name in row})
    return out.getvalue()


def _rate(variant: Mapping[str, Any]) -> str:
    rate = _number(variant.get("error_rate"))
    if rate is None:
        return "-"
    interval = variant.get("error_rate_interval")
    if isinstance(interval, list) and len(interval) == 2:
        low, high = _number(interval[0]), _number(interval[1])
        if low is not None and high is not None:
            return f"{rate:.1%} ({low:.1%}-{high:.1%})"
    return f"{rate:.1%}"


def _ms(value: object) -> str:
    number = _number(value)
    return "-" if number is None else f"{number:.1f}"


def _against(variant: Mapping[str, Any]) -> str:
    parts = []
    errors = _number(variant.get("error_rate_ratio"))
    if errors is not None:
        parts.append(f"errors {errors:.2f}x")
    p50 = _number(variant.get("duration_ratio_p50"))
    if p50 is not None:
        parts.append(f"p50 {p50:.2f}x")
    return ", ".join(parts) or "-"


def render_impact_table(impacts: Sequence[Mapping[str, Any]]) -> Table:
    """A rich table, one row per variant of each flag."""
    table = Table(
        title="variant impact (95% intervals; tests corrected together)", title_justify="left"
    )
    table.add_column("flag", overflow="fold")
    table.add_column("variant")
    table.add_column("requests", justify="right")
    table.add_column("error rate (95% CI)", justify="right")
    table.add_column("p50 ms", justify="right")
    table.add_column("p95 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    table.add_column("vs baseline")
    table.add_column("verdict")
    for impact in impacts:
        for variant in impact.get("variants") or []:
            if not isinstance(variant, dict):
                continue
            verdict = str(variant.get("verdict"))
            table.add_row(
                Text(_printable(impact.get("flag_key")), style="bold"),
                Text(_printable(variant.get("variant"))),
                Text(_printable(variant.get("requests", 0))),
                Text(_rate(variant)),
                Text(_ms(variant.get("duration_p50_ms"))),
                Text(_ms(variant.get("duration_p95_ms"))),
                Text(_ms(variant.get("duration_p99_ms"))),
                Text(_against(variant)),
                Text(verdict_words(verdict), style=_VERDICT_STYLES.get(verdict, "")),
            )
    return table


def print_impact_report(
    console: Console, url: str, impacts: Sequence[Mapping[str, Any]], output: str
) -> None:
    """Print impacts as a table (``table``), JSON (``json``) or CSV (``csv``)."""
    if output == "json":
        console.out(json.dumps(list(impacts), indent=2), highlight=False)
    elif output == "csv":
        console.out(impact_csv(impacts).rstrip("\n"), highlight=False)
    elif not impacts:
        console.print(f"no flag evaluations stored at {url} yet", markup=False, highlight=False)
    else:
        console.print(render_impact_table(impacts))
        console.print(
            f"verdicts need {impacts[0].get('min_requests', '?')} requests a side; "
            f"dashboard: {url.rstrip('/')}/",
            markup=False,
            highlight=False,
        )
