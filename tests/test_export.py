"""JSON, JSON Lines and CSV exports of records and aggregates."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flagscope import FlagEvaluationEvent
from flagscope._query.export import to_csv, to_json, to_jsonl, write_csv, write_json, write_jsonl
from flagscope._query.query import CollectorQuery
from flagscope._store.records import json_safe
from traffic import THEME

EventFactory = Callable[..., FlagEvaluationEvent]


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_json_of_events_is_an_array_of_their_dicts(query: CollectorQuery) -> None:
    events = query.events()
    loaded = json.loads(to_json(events))
    assert loaded == [e.to_dict() for e in events]
    (theme,) = [row for row in loaded if row["flag_key"] == "theme"]
    assert theme["value"] == THEME


def test_json_of_one_summary_is_an_object(query: CollectorQuery) -> None:
    summary = query.summary(flag_key="new-checkout")
    assert json.loads(to_json(summary)) == summary.to_dict()
    assert json.loads(to_json(query.summaries())) == [s.to_dict() for s in query.summaries()]


def test_json_lines_hold_one_record_per_line(query: CollectorQuery) -> None:
    events = query.events()
    lines = to_jsonl(events).splitlines()
    assert len(lines) == len(events)
    assert [json.loads(line) for line in lines] == [e.to_dict() for e in events]


def test_csv_of_events_has_every_field_and_values_as_json_text(query: CollectorQuery) -> None:
    events = query.events()
    rows = _csv_rows(to_csv(events))
    assert list(rows[0]) == list(events[0].to_dict())
    assert [json.loads(row["value"]) for row in rows] == [json_safe(e.value) for e in events]
    assert [row["flag_key"] for row in rows] == [e.flag_key for e in events]
    # None is an empty cell; the anonymous evaluations have no targeting key.
    assert [row["targeting_key"] for row in rows] == [e.targeting_key or "" for e in events]
    assert [json.loads(row["attributes"]) for row in rows] == [
        json_safe(e.attributes) for e in events
    ]


def test_csv_tells_a_string_true_from_a_boolean(make_event: EventFactory) -> None:
    events = [make_event(value="true"), make_event(value=True), make_event(value=None)]
    rows = _csv_rows(to_csv(events))
    assert [json.loads(row["value"]) for row in rows] == ["true", True, None]


def test_csv_of_summaries_writes_count_mappings_as_json(query: CollectorQuery) -> None:
    summaries = query.summaries()
    rows = _csv_rows(to_csv(summaries))
    assert [row["flag_key"] for row in rows] == [s.flag_key for s in summaries]
    assert [json.loads(row["by_variant"]) for row in rows] == [
        dict(s.by_variant) for s in summaries
    ]
    assert [int(row["count"]) for row in rows] == [s.count for s in summaries]
    assert [float(row["error_rate"]) for row in rows] == [s.error_rate for s in summaries]


def test_time_buckets_and_inventory_export_too(query: CollectorQuery) -> None:
    buckets = query.time_buckets(timedelta(minutes=1))
    assert json.loads(to_json(buckets)) == [b.to_dict() for b in buckets]
    report = query.inventory(["new-checkout"])
    assert json.loads(to_json(report)) == report.to_dict()


def test_mixed_records_share_one_csv_header(query: CollectorQuery) -> None:
    event = query.events(limit=1)[0]
    summary = query.summary()
    rows = _csv_rows(to_csv([event, summary]))
    header = list(rows[0])
    assert header[: len(event.to_dict())] == list(event.to_dict())
    assert set(header) == set(event.to_dict()) | set(summary.to_dict())
    assert rows[1]["timestamp"] == ""


def test_mappings_export_as_they_are(query: CollectorQuery) -> None:
    per_trace = query.evaluations_per_trace()
    assert json.loads(to_json(per_trace)) == per_trace
    assert _csv_rows(to_csv([{"trace_id": t, "count": n} for t, n in per_trace.items()]))[0] == {
        "trace_id": next(iter(per_trace)),
        "count": str(next(iter(per_trace.values()))),
    }


def test_empty_input_gives_empty_output() -> None:
    assert json.loads(to_json([])) == []
    assert to_jsonl([]) == ""
    assert to_csv([]) == ""


@pytest.mark.parametrize("kind", ["json", "jsonl", "csv"])
@pytest.mark.parametrize("target", ["path", "stream"])
def test_write_functions_match_the_string_functions(
    query: CollectorQuery, tmp_path: Path, kind: str, target: str
) -> None:
    events = query.events()
    writers: dict[str, Callable[..., int | None]] = {
        "json": write_json,
        "jsonl": write_jsonl,
        "csv": write_csv,
    }
    write = writers[kind]
    expected = {"json": to_json, "jsonl": to_jsonl, "csv": to_csv}[kind](events)
    if kind == "json":
        expected += "\n"
    if target == "path":
        path = tmp_path / f"events.{kind}"
        result = write(events, path)
        text = path.read_text(encoding="utf-8")
    else:
        stream = io.StringIO()
        result = write(events, stream)
        text = stream.getvalue()
    assert text == expected
    if kind != "json":
        assert result == len(events)


@pytest.mark.parametrize("function", [to_json, to_jsonl, to_csv])
@pytest.mark.parametrize("items", [[object()], 5, "events", [1, 2]])
def test_what_is_not_a_record_raises_type_error(function: Any, items: Any) -> None:
    with pytest.raises(TypeError, match="export takes records"):
        function(items)


def test_a_bad_item_creates_no_file(tmp_path: Path, make_event: EventFactory) -> None:
    path = tmp_path / "out.jsonl"
    with pytest.raises(TypeError):
        write_jsonl([make_event(), object()], path)  # type: ignore[list-item]
    assert not path.exists()


def test_a_bad_target_raises_type_error(make_event: EventFactory) -> None:
    with pytest.raises(TypeError, match="path or a text stream"):
        write_csv([make_event()], 42)  # type: ignore[arg-type]


_JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=5), children, max_size=3),
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(value=_JSON_VALUES, extra=_JSON_VALUES)
def test_values_and_attributes_round_trip_through_json_and_csv(value: Any, extra: Any) -> None:
    event = FlagEvaluationEvent(
        timestamp=datetime(2025, 1, 1, tzinfo=UTC),
        flag_key="flag",
        value=value,
        reason="static",
        attributes={"x.extra": extra, "x.n": 3},
    )
    expected_value = json_safe(value)
    expected_attributes = {"x.extra": json_safe(extra), "x.n": 3}
    (loaded,) = json.loads(to_json([event]))
    assert loaded["value"] == expected_value
    assert loaded["attributes"] == expected_attributes
    assert json.loads(to_jsonl([event]))["value"] == expected_value
    (row,) = _csv_rows(to_csv([event]))
    assert json.loads(row["value"]) == expected_value
    assert json.loads(row["attributes"]) == expected_attributes


@pytest.mark.parametrize("text", ["cr\rkey", "lf\nkey", "crlf\r\nkey", "tab\tkey", "bel\x07key"])
def test_csv_cells_with_line_breaks_read_back_exactly_in_one_row(
    make_event: EventFactory, text: str
) -> None:
    # Before Python 3.13, csv left a cell holding a lone CR unquoted when rows end in
    # LF, and every reader split its row there.
    written = to_csv([make_event(flag_key=text, variant=text)])
    rows = list(csv.DictReader(io.StringIO(written, newline="")))
    assert len(rows) == 1
    assert (rows[0]["flag_key"], rows[0]["variant"]) == (text, text)
    # Rows still end in LF, whatever is inside the quoted cells.
    assert written.endswith("\n")
    assert not written.endswith("\r\n")


def test_impact_csv_cells_with_a_carriage_return_read_back_exactly() -> None:
    from flagscope._cli.impact_report import impact_csv

    impact: dict[str, Any] = {"flag_key": "f\rk", "baseline": "a", "scope": "request"}
    impact["variants"] = [{"variant": "v\r1", "evaluations": 1, "verdict": "baseline"}]
    rows = list(csv.DictReader(io.StringIO(impact_csv([impact]), newline="")))
    assert [(row["flag_key"], row["variant"]) for row in rows] == [("f\rk", "v\r1")]
