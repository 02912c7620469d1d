"""The tables and wording of the capture's failure messages."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from flagscope._store.records import FlagEvaluationEvent, json_safe

__all__ = ["column_names", "describe_counts", "how_often", "plural", "short", "table"]

_MAX_TABLE_ROWS: Final = 40
_MAX_CELL: Final = 40
_NO_SPAN_HINT: Final = (
    "flag hooks add their events to the current span, and flagscope sees a span when it "
    "ends: was the flag evaluated inside a recording span that ended during the capture?"
)


def plural(number: int, noun: str) -> str:
    """``1 evaluation``, ``2 evaluations``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def how_often(number: int) -> str:
    """``once``, ``2 times``."""
    return "once" if number == 1 else f"{number} times"


def describe_counts(counts: Mapping[str, int]) -> str:
    """``'a' (once), 'b' (2 times)``."""
    return ", ".join(f"{key!r} ({how_often(count)})" for key, count in counts.items())


def short(text: str) -> str:
    """``text`` on one line, cut to the width of a table cell."""
    text = text.replace("\n", " ")
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 3] + "..."


def column_names(*, with_targeting: bool = False) -> tuple[str, ...]:
    """The table's columns; ``targeting_key`` only when the assertion is about it."""
    if with_targeting:
        return ("flag_key", "value", "variant", "reason", "targeting_key", "error")
    return ("flag_key", "value", "variant", "reason", "error")


def _cell(event: FlagEvaluationEvent, column: str) -> str:
    if column == "value":
        text = repr(json_safe(event.value))
    elif column == "error":
        text = event.error_type or ("error" if event.is_error else "-")
    else:
        raw = getattr(event, column)
        text = "-" if raw is None else str(raw)
    return short(text)


def table(
    events: list[FlagEvaluationEvent],
    notes: Mapping[int, str],
    columns: tuple[str, ...],
    *,
    marks: str,
    note: str = "",
) -> str:
    """Render the captured evaluations as an aligned table, marked rows first-class."""
    if not events:
        hint = _NO_SPAN_HINT
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            hint = "OTEL_SDK_DISABLED=true is set, so the SDK records no spans at all"
        return f"no flag evaluations were captured ({hint})"
    shown = list(range(len(events)))
    hidden = 0
    if len(shown) > _MAX_TABLE_ROWS:
        # Too many to read: keep the rows the message is about, or the first ones when
        # it is about none (a flag never evaluated).
        kept = sorted(notes)[:_MAX_TABLE_ROWS] or shown[:_MAX_TABLE_ROWS]
        hidden = len(events) - len(kept)
        shown = kept
    has_notes = any(notes.get(index) for index in shown)
    header = [*columns, note or "vs expected"] if has_notes else list(columns)
    rows = [
        [*(_cell(events[index], column) for column in columns), notes.get(index, "")]
        if has_notes
        else [_cell(events[index], column) for column in columns]
        for index in shown
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(prefix: str, cells: list[str]) -> str:
        return (prefix + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))).rstrip()

    title = f"captured {plural(len(events), 'flag evaluation')}"
    lines = [f"{title} ({marks}):" if notes else f"{title}:", line("    ", header)]
    lines += [
        line("  > " if index in notes else "    ", row)
        for index, row in zip(shown, rows, strict=True)
    ]
    if hidden:
        lines.append(f"    ... and {hidden} more not shown")
    return "\n".join(lines)
