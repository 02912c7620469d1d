"""JSON, JSON Lines and CSV of records and aggregates, with the standard library only.

Each function takes records with a ``to_dict()`` (``FlagEvaluationEvent``,
``FlagSummary``, ``TimeBucket``, ``InventoryReport``), plain mappings, or an
iterable of either. JSON keeps values and attributes as JSON; CSV puts them
(and any other nested cell) in as JSON text, so ``"true"`` and ``true`` stay apart.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any, Final, Protocol, runtime_checkable

__all__ = ["to_csv", "to_json", "to_jsonl", "write_csv", "write_json", "write_jsonl"]

# Columns written as JSON text whatever the cell holds: a value may be a string,
# a number, null or an object, and CSV alone cannot tell "1" from 1.
JSON_COLUMNS: Final = frozenset({"value", "attributes", "context_attributes"})

Target = str | os.PathLike[str] | IO[str]


@runtime_checkable
class _Record(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


# What the export functions take: one record (anything with ``to_dict()``) or mapping,
# or an iterable of them.
Exportable = _Record | Mapping[str, Any] | Iterable[_Record | Mapping[str, Any]]


def _row(item: object) -> dict[str, Any]:
    if isinstance(item, _Record):
        return item.to_dict()
    if isinstance(item, Mapping):
        return dict(item)
    raise TypeError(
        "export takes records with to_dict() (events, summaries, buckets) or mappings, "
        f"got {type(item).__name__}"
    )


def _is_single(items: object) -> bool:
    return isinstance(items, (_Record, Mapping))


def _rows(items: object) -> Iterator[dict[str, Any]]:
    if _is_single(items):
        yield _row(items)
        return
    if not isinstance(items, Iterable) or isinstance(items, (str, bytes)):
        raise TypeError(f"export takes records or an iterable of them, got {type(items).__name__}")
    for item in items:
        yield _row(item)


def _dumps(data: Any, indent: int | None = None) -> str:
    return json.dumps(data, ensure_ascii=False, indent=indent)


def to_json(items: Exportable, *, indent: int | None = 2) -> str:
    """Return ``items`` as JSON: an array, or an object for a single record.

    Raises:
        TypeError: An item is neither a record with ``to_dict()`` nor a mapping.
    """
    if _is_single(items):
        return _dumps(_row(items), indent)
    return _dumps(list(_rows(items)), indent)


def to_jsonl(items: Exportable) -> str:
    """Return ``items`` as JSON Lines: one compact object per line."""
    return "".join(_dumps(row) + "\n" for row in _rows(items))


def _cell(column: str, value: Any) -> Any:
    if column in JSON_COLUMNS or isinstance(value, (dict, list)):
        return _dumps(value)
    if value is None:
        return ""
    return value


class LfRows:
    """A text stream for ``csv`` writers told to end rows in CRLF: rows end in LF.

    Before Python 3.13, a writer quotes only the cells holding a character of its
    line terminator: with LF alone, a cell holding a carriage return went out bare,
    and readers split its row there. Told rows end in CRLF, the writer quotes cells
    holding either; each row (one ``write`` a row) then ends in LF, as 3.13 writes
    them.
    """

    __slots__ = ("_stream",)

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        """Write one row, its CRLF ending written as LF."""
        if text.endswith("\r\n"):
            text = text[:-2] + "\n"
        return self._stream.write(text)


def _write_csv_rows(rows: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    # Columns are the union of every row's keys, in first-seen order, so mixed
    # records still line up; the rows must be known before the header is written.
    materialised = list(rows)
    columns: dict[str, None] = {}
    for row in materialised:
        columns.update(dict.fromkeys(row))
    writer = csv.writer(LfRows(stream), lineterminator="\r\n")
    if columns:
        writer.writerow(columns)
    for row in materialised:
        writer.writerow(_cell(column, row.get(column)) for column in columns)
    return len(materialised)


def to_csv(items: Exportable) -> str:
    """Return ``items`` as CSV with a header row; nested cells and values as JSON text."""
    buffer = io.StringIO()
    _write_csv_rows(_rows(items), buffer)
    return buffer.getvalue()


@contextmanager
def _opened(target: Target) -> Iterator[IO[str]]:
    """Yield a text stream: a file opened (and closed) for a path, or the stream itself."""
    if isinstance(target, (str, os.PathLike)):
        # newline="": the csv module writes its own line endings.
        with open(target, "w", encoding="utf-8", newline="") as stream:
            yield stream
    elif callable(getattr(target, "write", None)):
        yield target
    else:
        raise TypeError(f"target must be a path or a text stream, got {type(target).__name__}")


def write_json(items: Exportable, target: Target, *, indent: int | None = 2) -> None:
    """Write ``to_json(items)`` and a newline to a path or a text stream."""
    text = to_json(items, indent=indent)
    with _opened(target) as stream:
        stream.write(text + "\n")


def write_jsonl(items: Exportable, target: Target) -> int:
    """Write ``to_jsonl(items)`` to a path or a text stream; returns how many lines."""
    rows = list(_rows(items))  # every item checked before a file is created
    with _opened(target) as stream:
        for row in rows:
            stream.write(_dumps(row) + "\n")
    return len(rows)


def write_csv(items: Exportable, target: Target) -> int:
    """Write ``to_csv(items)`` to a path or a text stream; returns how many rows."""
    rows = list(_rows(items))
    with _opened(target) as stream:
        return _write_csv_rows(rows, stream)
