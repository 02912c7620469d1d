"""Per-evaluation limits: what one evaluation may carry, cut visibly, the same by every way in."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flagscope._store.records import FlagEvaluationEvent
from flagscope._telemetry import semconv
from flagscope._telemetry.limits import (
    DEFAULT_LIMITS,
    DROPPED_ATTRIBUTES_KEY,
    TRUNCATED_VALUES_KEY,
    AttributeLimits,
    limit_evaluation,
)
from flagscope._telemetry.mapping import map_evaluation
from flagscope._telemetry.otlp import map_traces

BASE = {
    semconv.KEY: "new-checkout",
    semconv.RESULT_VALUE: "true",
    semconv.RESULT_VARIANT: "on",
    semconv.CONTEXT_ID: "user-1",
}


def test_an_evaluation_within_the_limits_is_passed_through_unchanged() -> None:
    attributes = {**BASE, "extra": "x" * 100, "n": 3, "ok": True}
    kept, body = limit_evaluation(attributes, "plain")
    assert kept is attributes
    assert body == "plain"


def test_past_the_attribute_count_the_flag_keys_stay_and_the_drop_is_counted() -> None:
    extras = {f"attr.{n}": n for n in range(1_000)}
    # The flag keys come last, as an attacker would send them.
    kept, _ = limit_evaluation({**extras, **BASE})
    assert len(kept) == DEFAULT_LIMITS.max_attributes + 1  # the marker is on top
    assert all(kept[key] == value for key, value in BASE.items())
    assert kept[DROPPED_ATTRIBUTES_KEY] == 1_000 + len(BASE) - DEFAULT_LIMITS.max_attributes
    assert "attr.0" in kept
    assert "attr.999" not in kept


def test_long_strings_keys_arrays_and_maps_are_cut_and_counted() -> None:
    limits = AttributeLimits(max_attributes=10, max_value_length=4, max_depth=2)
    kept, body = limit_evaluation(
        {
            semconv.KEY: "flag",
            "txt": "abcdefgh",
            "k" * 10: 1,
            "arr": tuple(range(10)),
            "map": MappingProxyType({"a": (("deep",),)}),
        },
        body_value="0123456789",
        limits=limits,
    )
    assert kept["txt"] == "abcd"
    assert kept["kkkk"] == 1
    assert kept["arr"] == (0, 1, 2, 3)
    assert kept["map"] == {"a": (None,)}
    assert body == "0123"
    assert kept[TRUNCATED_VALUES_KEY] == 5
    assert DROPPED_ATTRIBUTES_KEY not in kept


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("max_attributes", 0, ValueError),
        ("max_value_length", -1, ValueError),
        ("max_depth", 0, ValueError),
        ("max_attributes", 1.5, TypeError),
        ("max_depth", True, TypeError),
    ],
)
def test_limits_out_of_range_or_of_the_wrong_type_are_refused(
    field: str, value: Any, error: type[Exception]
) -> None:
    with pytest.raises(error, match=field):
        AttributeLimits(**{field: value})


def test_the_mapper_records_what_was_cut_on_the_record() -> None:
    attributes = {**BASE, "huge": "x" * 1_000_000}
    attributes.update({f"attr.{n}": "v" for n in range(200_000)})
    event = map_evaluation(attributes, timestamp_ns=1, language="python")
    assert isinstance(event, FlagEvaluationEvent)
    assert event.flag_key == "new-checkout"
    assert event.value is True
    assert event.variant == "on"
    assert len(event.attributes["huge"]) == DEFAULT_LIMITS.max_value_length
    assert event.attributes[TRUNCATED_VALUES_KEY] == 1
    assert event.attributes[DROPPED_ATTRIBUTES_KEY] > 199_000
    assert len(event.attributes) <= DEFAULT_LIMITS.max_attributes + 2


def test_a_huge_value_is_cut_and_kept_as_text() -> None:
    payload = '{"a": "' + "x" * 100_000 + '"}'
    event = map_evaluation({**BASE, semconv.RESULT_VALUE: payload}, timestamp_ns=1)
    assert isinstance(event, FlagEvaluationEvent)
    assert event.value == payload[: DEFAULT_LIMITS.max_value_length]
    assert event.attributes[TRUNCATED_VALUES_KEY] == 1


def test_otlp_and_the_in_process_mapper_keep_the_same_cut_record() -> None:
    attributes = {**BASE, **{f"attr.{n}": f"value-{n}" for n in range(300)}}
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    span.span_id = bytes.fromhex("b7ad6b7169203331")
    event = span.events.add()
    event.name = semconv.EVENT_NAME
    event.time_unix_nano = 1_700_000_000_000_000_000
    for key, value in attributes.items():
        pair = event.attributes.add()
        pair.key = key
        pair.value.string_value = value

    (received,) = map_traces(request).events
    in_process = map_evaluation(
        attributes,
        timestamp_ns=1_700_000_000_000_000_000,
        trace_id=span.trace_id,
        span_id=span.span_id,
    )
    assert received == in_process
    assert received.attributes[DROPPED_ATTRIBUTES_KEY] == 300 + len(BASE) - 128
