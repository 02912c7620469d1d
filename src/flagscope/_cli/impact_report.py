"""``flagscope report --impact``: each variant's impact, from a running server.

Asks ``/api/flag/impact?flag_key=`` for each flag (every stored flag, or those
given) and prints a table, JSON or CSV. Every cell shown comes from telemetry
anyone could send, so it is made printable first.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from flagscope._cli.main import ReportError, write_text
from flagscope._query.export import LfRows

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


def _shown(value: object) -> str:
    line = _printable(" ".join(repr(value).split()))
    return line if len(line) <= 60 else line[:57] + "..."


# How the API words a baseline= the flag never served (``BaselineNotServedError``).
_NEVER_SERVED: Final = "was never served"
_VARIANT_COUNTS: Final = ("evaluations", "requests", "errors")
_VARIANT_NUMBERS: Final = (
    "error_rate",
    "duration_p50_ms",
    "duration_p95_ms",
    "duration_p99_ms",
    "error_rate_ratio",
    "duration_ratio_p50",
    "error_p_value",
    "duration_p_value",
)


def _check_variant(variant: object) -> str | None:
    """Say what is wrong with one variant of an impact, or ``None`` if it can be shown."""
    if not isinstance(variant, dict):
        return f"a variant that is a {type(variant).__name__}, not an object"
    if not isinstance(variant.get("variant"), str):
        return f"variant {_shown(variant.get('variant'))}, not a name"
    for name in _VARIANT_COUNTS:
        value = variant.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{name} {_shown(value)}, not a count"
    for name in _VARIANT_NUMBERS:
        value = variant.get(name)
        if value is not None and _number(value) is None:
            return f"{name} {_shown(value)}, not a number"
    interval = variant.get("error_rate_interval")
    if interval is not None and not (
        isinstance(interval, list)
        and len(interval) == 2
        and all(_number(end) is not None for end in interval)
    ):
        return f"error_rate_interval {_shown(interval)}, not a pair of numbers"
    if not isinstance(variant.get("verdict", ""), str):
        return f"verdict {_shown(variant.get('verdict'))}, not a word"
    return None


def _check_impact(document: object) -> str | None:
    """Say what is wrong with one ``/impact`` answer, or ``None`` if it can be shown."""
    if not isinstance(document, dict):
        return f"a {type(document).__name__}, not an object"
    if not isinstance(document.get("flag_key"), str):
        return "an impact without a flag_key"
    for name in ("baseline", "scope"):
        if not isinstance(document.get(name), (str, type(None))):
            return f"{name} {_shown(document.get(name))}, not a name"
    variants = document.get("variants")
    if not isinstance(variants, list):
        return f"variants {_shown(variants)}, not a list"
    for variant in variants:
        problem = _check_variant(variant)
        if problem is not None:
            return problem
    return None


def fetch_impacts(
    url: str,
    flag_keys: Sequence[str],
    fetch_json: Any,
    *,
    scope: str = "request",
    baseline: str | None = None,
    timeout: float,
    deadline: float | None = None,
    skipped: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Return ``/api/flag/impact?flag_key=KEY`` for each flag (every stored one when none given).

    A flag listed by ``/api/flags`` but gone when its impact is asked for (evicted in
    between, on a busy server), or that never served ``baseline``, is skipped, with a
    note on stderr; a flag given that is not stored, or that never served it, is an
    error.

    Args:
        url: The server.
        flag_keys: The flags (repeats are asked for once); none: every stored flag.
        fetch_json: The CLI's (``flagscope._cli.main.fetch_json``): one request,
            bounded in time and size, with one-line errors.
        scope: ``"request"`` or ``"span"``.
        baseline: The variant to compare with (``None``: the server's choice).
        timeout: Seconds the whole report may take, every request included.
        deadline: The ``time.monotonic()`` instant ``timeout`` ends at, when the
            report started earlier (default: ``timeout`` from now).
        skipped: Where to add the keys of the flags skipped, if given.

    Raises:
        ReportError: As ``fetch_json``, or an answer is not flagscope's.
    """
    if deadline is None:
        deadline = time.monotonic() + timeout
    keys = list(dict.fromkeys(flag_keys))
    listed = not keys
    if listed:
        body = fetch_json(url, "/api/flags", timeout=timeout, deadline=deadline)
        flags = body.get("flags") if isinstance(body, dict) else None
        if not isinstance(flags, list):
            raise ReportError(
                f"{url}/api/flags did not answer a flags list: is it a flagscope server?"
            )
        keys = [
            flag["flag_key"]
            for flag in flags
            if isinstance(flag, dict) and isinstance(flag.get("flag_key"), str)
        ]
    params = [("scope", scope)] + ([("baseline", baseline)] if baseline is not None else [])
    impacts = []
    for key in keys:
        try:
            # The key in the query: any key ("..", ".../impact") reaches its flag.
            document = fetch_json(
                url,
                "/api/flag/impact",
                [("flag_key", key), *params],
                timeout=timeout,
                deadline=deadline,
            )
        except ReportError as error:
            if not listed:
                raise
            if error.status == 404:
                # The store dropped its evaluations after /api/flags listed it: the
                # others can still be reported.
                why = f"{url} no longer stores it (evicted since the flags were listed)"
            elif (
                error.status == 400
                and baseline is not None
                and _NEVER_SERVED in (error.server_error or "")
            ):
                # --baseline for every flag: the flags that never served it have
                # nothing to be judged against (the API refuses them).
                why = f"it never served the baseline {_shown(baseline)}"
            else:
                raise
            click.echo(f"skipped flag {_shown(key)}: {why}", err=True)
            if skipped is not None:
                skipped.append(key)
            continue
        problem = _check_impact(document)
        if problem is not None:
            raise ReportError(
                f"{url}/api/flag/impact for flag {_shown(key)} answered {problem}: "
                "is it a flagscope server?"
            )
        impacts.append(document)
    return impacts


def _rows(impacts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for impact in impacts:
        for variant in impact.get("variants") or []:
            if not isinstance(variant, dict):
                continue
            interval = variant.get("error_rate_interval")
            if not isinstance(interval, list) or len(interval) != 2:
                interval = [None, None]
            row = {name: variant.get(name) for name in IMPACT_CSV_COLUMNS}
            row.update(
                flag_key=impact.get("flag_key"),
                baseline=impact.get("baseline"),
                scope=impact.get("scope"),
                error_rate_low=interval[0],
                error_rate_high=interval[1],
            )
            rows.append(row)
    return rows


def impact_csv(impacts: Sequence[Mapping[str, Any]]) -> str:
    """One CSV row per variant, with ``IMPACT_CSV_COLUMNS``."""
    out = io.StringIO()
    writer = csv.DictWriter(LfRows(out), fieldnames=IMPACT_CSV_COLUMNS, lineterminator="\r\n")
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
    console: Console,
    url: str,
    impacts: Sequence[Mapping[str, Any]],
    output: str,
    *,
    skipped: int = 0,
) -> None:
    """Print impacts as a table (``table``), JSON (``json``) or CSV (``csv``).

    The table goes through ``console``; JSON and CSV straight to ``sys.stdout``, cells
    exactly as the server gave them. ``skipped``: how many stored flags
    ``fetch_impacts`` skipped (an empty table then says so, not that none is stored).
    """
    if output == "json":
        write_text(json.dumps(list(impacts), indent=2))
    elif output == "csv":
        write_text(impact_csv(impacts))
    elif not impacts and skipped:
        console.print(
            f"no flag to judge at {url}: the {skipped} stored were skipped (see above)",
            markup=False,
            highlight=False,
        )
    elif not impacts:
        console.print(f"no flag evaluations stored at {url} yet", markup=False, highlight=False)
    else:
        console.print(render_impact_table(impacts))
        console.print(
            f"verdicts need {_printable(impacts[0].get('min_requests', '?'))} requests a side; "
            f"dashboard: {url.rstrip('/')}/",
            markup=False,
            highlight=False,
        )
