"""Captured records as plain, deterministic dicts (``FlagEvaluationCapture.snapshot``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, Final

from flagscope._store.records import FlagEvaluationEvent, json_safe

__all__ = ["DEFAULT_SNAPSHOT_FIELDS", "snapshot_rows"]

DEFAULT_SNAPSHOT_FIELDS: Final = (
    "flag_key",
    "value",
    "variant",
    "reason",
    "targeting_key",
    "error_type",
)
_EVENT_FIELDS: Final = tuple(field.name for field in dataclasses.fields(FlagEvaluationEvent))
_ID_FIELDS: Final = frozenset({"trace_id", "span_id"})


def snapshot_rows(
    events: Sequence[FlagEvaluationEvent],
    include: Iterable[str],
    exclude: Iterable[str],
    *,
    normalize_ids: bool,
) -> list[dict[str, Any]]:
    """Return one plain dict per record; see ``FlagEvaluationCapture.snapshot``.

    Raises:
        ValueError: A name that is not a ``FlagEvaluationEvent`` field.
        TypeError: ``include`` or ``exclude`` is a single string.
    """
    added = _check_field_names("include", include)
    removed = set(_check_field_names("exclude", exclude))
    names = [name for name in (*DEFAULT_SNAPSHOT_FIELDS, *added) if name not in removed]
    names = list(dict.fromkeys(names))
    numbering: dict[str, dict[str, int]] = {"trace_id": {}, "span_id": {}}
    rows: list[dict[str, Any]] = []
    for event in events:
        row: dict[str, Any] = {}
        for name in names:
            raw = getattr(event, name)
            if normalize_ids and name in _ID_FIELDS and raw is not None:
                seen = numbering[name]
                row[name] = seen.setdefault(raw, len(seen) + 1)
            elif name == "reason":
                row[name] = str(raw)
            else:
                row[name] = json_safe(raw)
        rows.append(row)
    return rows


def _check_field_names(name: str, names: Iterable[str]) -> list[str]:
    if isinstance(names, str):
        raise TypeError(f"{name} must be a collection of field names, got the string {names!r}")
    items = list(names)
    unknown = [item for item in items if item not in _EVENT_FIELDS]
    if unknown:
        raise ValueError(
            f"{name}: {unknown[0]!r} is not a FlagEvaluationEvent field; "
            f"choose from {', '.join(_EVENT_FIELDS)}"
        )
    return items
