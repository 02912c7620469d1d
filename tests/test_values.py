"""flagscope's one value-equality rule, as one table run through every entry point.

The rule (``flagscope._store.values``): values compare by their canonical JSON, so ``1``
equals ``1.0``, ``True`` is not ``1``, NaN matches NaN, ``-0.0`` is ``0.0``,
mappings compare by content and tuples equal lists; strings compare exactly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from flagscope import FlagEvaluationEvent
from flagscope._query.aggregates import check_inventory
from flagscope._store.values import clean_text, plain_value, value_key, values_equal
from flagscope._telemetry import semconv
from flagscope.server import BackgroundServer, serve_in_background
from flagscope.testing import FlagEvaluationCapture, capture_flag_evaluations

# (what a Python producer sent as feature_flag.result.value, what a reader asks for, equal?)
TABLE: list[tuple[str, Any, bool]] = [
    ("1", 1.0, True),
    ("1.0", 1, True),
    ("1e21", 10**21, True),
    ("-0.0", 0, True),
    ("NaN", math.nan, True),
    ("Infinity", math.inf, True),
    ("true", True, True),
    ("true", 1, False),
    ("1", True, False),
    ("0", False, False),
    ('"1"', 1, False),
    ('"x"', "x", True),
    ('"x"', "X", False),
    ("null", None, True),
    ('{"b": null, "a": [1, 2]}', {"a": (1, 2), "b": None}, True),
    ('{"a": [1, 2]}', {"a": [2, 1]}, False),
    ("[1, 2]", (1, 2), True),
    ("[1.0, true]", [1, True], True),
    ("[1, true]", [1, 1], False),
]
IDS = [f"{sent}~{wanted!r}" for sent, wanted, _ in TABLE]


@pytest.fixture(scope="module")
def capture() -> Iterator[FlagEvaluationCapture]:
    provider = TracerProvider(resource=Resource.create({"service.name": "values"}))
    tracer = provider.get_tracer("tests")
    with capture_flag_evaluations(provider) as running:
        for index, (sent, _, _) in enumerate(TABLE):
            with tracer.start_as_current_span("request") as span:
                span.add_event(
                    semconv.EVENT_NAME, {semconv.KEY: f"row-{index}", semconv.RESULT_VALUE: sent}
                )
        yield running
    provider.shutdown()


@pytest.fixture(scope="module")
def server(capture: FlagEvaluationCapture) -> Iterator[BackgroundServer]:
    with serve_in_background(collector=capture.collector, port=0) as running:
        yield running


@pytest.mark.parametrize(("index", "row"), list(enumerate(TABLE)), ids=IDS)
def test_the_rule_itself(index: int, row: tuple[str, Any, bool]) -> None:
    sent, wanted, equal = row
    assert values_equal(json.loads(sent), wanted) is equal
    assert (value_key(json.loads(sent)) == value_key(wanted)) is equal


@pytest.mark.parametrize(("index", "row"), list(enumerate(TABLE)), ids=IDS)
def test_query_filters_follow_the_rule(
    capture: FlagEvaluationCapture, index: int, row: tuple[str, Any, bool]
) -> None:
    _, wanted, equal = row
    assert capture.query.count(flag_key=f"row-{index}", value=wanted) == int(equal)
    assert len(capture.query.events(value=wanted, flag_key=f"row-{index}")) == int(equal)


@pytest.mark.parametrize(("index", "row"), list(enumerate(TABLE)), ids=IDS)
def test_wait_for_follows_the_rule(
    capture: FlagEvaluationCapture, index: int, row: tuple[str, Any, bool]
) -> None:
    _, wanted, equal = row
    if equal:
        assert len(capture.wait_for(flag_key=f"row-{index}", value=wanted, timeout=0)) == 1
    else:
        with pytest.raises(TimeoutError):
            capture.wait_for(flag_key=f"row-{index}", value=wanted, timeout=0)


@pytest.mark.parametrize(("index", "row"), list(enumerate(TABLE)), ids=IDS)
def test_assert_evaluated_follows_the_rule(
    capture: FlagEvaluationCapture, index: int, row: tuple[str, Any, bool]
) -> None:
    _, wanted, equal = row
    if equal:
        capture.assert_evaluated(f"row-{index}", value=wanted)
    else:
        with pytest.raises(AssertionError):
            capture.assert_evaluated(f"row-{index}", value=wanted)


@pytest.mark.parametrize(("index", "row"), list(enumerate(TABLE)), ids=IDS)
def test_by_value_and_inventory_count_equal_values_as_one(
    capture: FlagEvaluationCapture, index: int, row: tuple[str, Any, bool]
) -> None:
    _, wanted, equal = row
    (stored,) = capture.query.events(flag_key=f"row-{index}")
    other = FlagEvaluationEvent(stored.timestamp, stored.flag_key, wanted, "static")
    both = [stored, other]
    summary = capture.query.summary(flag_key=f"row-{index}")
    assert (value_key(wanted) in summary.by_value) is equal
    report = check_inventory([stored.flag_key], both)
    assert (stored.flag_key in report.single_variant) is equal


@pytest.mark.parametrize(("index", "row"), list(enumerate(TABLE)), ids=IDS)
def test_the_json_api_value_parameter_follows_the_rule(
    server: BackgroundServer, index: int, row: tuple[str, Any, bool]
) -> None:
    _, wanted, equal = row
    response = httpx.get(
        server.url + "/api/events",
        params={"flag_key": f"row-{index}", "value": json.dumps(wanted)},
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["events"]) == int(equal)


def test_snapshot_values_are_the_plain_json_values(capture: FlagEvaluationCapture) -> None:
    rows = capture.snapshot()
    for (sent, _, _), row in zip(TABLE, rows, strict=True):
        decoded = json.loads(sent)
        if isinstance(decoded, float) and not math.isfinite(decoded):
            continue  # snapshot rows are strict JSON: non-finite floats as text
        assert row["value"] == decoded
    json.dumps(rows, allow_nan=False)


_NOW = datetime(2026, 1, 1, tzinfo=UTC)
# Lone surrogates included: JSON text can spell them, and they must never break a view.
_TEXT = st.text(st.characters(exclude_categories=()))
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


@given(_JSON_VALUES)
def test_every_value_equals_itself_and_its_json_round_trip(value: Any) -> None:
    assert values_equal(value, value)
    assert values_equal(value, json.loads(json.dumps(value)))
    # plain_value replaces lone surrogates, so compare plain with plain.
    assert values_equal(plain_value(value), plain_value(json.loads(json.dumps(value))))


@given(_JSON_VALUES)
def test_a_stored_value_reads_back_equal_and_json_dumps(value: Any) -> None:
    event = FlagEvaluationEvent(_NOW, "f", value, "static")
    assert values_equal(event.value, plain_value(value))  # lone surrogates replaced
    json.dumps(event.value, ensure_ascii=False).encode("utf-8")
    json.dumps(event.to_dict(), ensure_ascii=False).encode("utf-8")


@given(_TEXT)
def test_clean_text_always_gives_utf8_encodable_text(text: str) -> None:
    cleaned = clean_text(text)
    cleaned.encode("utf-8")
    if not any("\ud800" <= char <= "\udfff" for char in text):
        assert cleaned == text
