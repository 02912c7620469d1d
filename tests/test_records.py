"""FlagEvaluationEvent and EvaluationReason: immutable, litestar-compatible, JSON-safe."""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import litestar_flags.analytics as litestar_analytics
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar_flags.types import EvaluationReason as LitestarReason

from flagscope._store.records import EvaluationReason, FlagEvaluationEvent, build_event, json_safe

EventFactory = Callable[..., FlagEvaluationEvent]
WHEN = datetime(2025, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)


def test_evaluation_reason_is_a_str_enum_of_exactly_the_semconv_values() -> None:
    assert issubclass(EvaluationReason, StrEnum)
    assert {reason.value for reason in EvaluationReason} == {
        "static",
        "default",
        "targeting_match",
        "split",
        "cached",
        "disabled",
        "unknown",
        "stale",
        "error",
    }


@pytest.mark.parametrize("reason", list(EvaluationReason))
def test_evaluation_reason_compares_and_prints_as_its_value(reason: EvaluationReason) -> None:
    assert reason == reason.value
    assert str(reason) == reason.value
    assert EvaluationReason(reason.value) is reason


def test_event_is_frozen(make_event: EventFactory) -> None:
    event = make_event()
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.flag_key = "other"  # type: ignore[misc]
    assert event.flag_key == "flag"


def test_event_is_slotted(make_event: EventFactory) -> None:
    event = make_event()
    assert not hasattr(event, "__dict__")
    assert "flag_key" in type(event).__slots__
    with pytest.raises((AttributeError, TypeError)):
        event.new_field = 1  # type: ignore[attr-defined]


def test_event_takes_litestar_positional_arguments() -> None:
    event = FlagEvaluationEvent(WHEN, "checkout", True, EvaluationReason.TARGETING_MATCH)
    assert event.timestamp == WHEN
    assert event.flag_key == "checkout"
    assert event.value is True
    assert event.reason is EvaluationReason.TARGETING_MATCH
    assert event.variant is None
    assert event.targeting_key is None
    assert dict(event.context_attributes) == {}
    assert dict(event.attributes) == {}


def test_event_starts_with_litestar_fields_in_litestar_order() -> None:
    ours = [f.name for f in dataclasses.fields(FlagEvaluationEvent)]
    theirs = [f.name for f in dataclasses.fields(litestar_analytics.FlagEvaluationEvent)]
    assert ours[: len(theirs)] == theirs


def test_event_accepts_every_keyword_litestar_event_accepts() -> None:
    theirs = litestar_analytics.FlagEvaluationEvent(
        timestamp=WHEN,
        flag_key="new_checkout",
        value={"tier": "gold"},
        reason=LitestarReason.TARGETING_MATCH,
        variant="beta_users",
        targeting_key="user-123",
        context_attributes={"plan": "premium"},
        evaluation_duration_ms=1.5,
    )
    fields = {f.name: getattr(theirs, f.name) for f in dataclasses.fields(theirs)}
    ours = FlagEvaluationEvent(**fields)
    for name, value in fields.items():
        if name != "reason":
            assert getattr(ours, name) == value, name
    # litestar-flags' reasons are uppercase; ours are the semconv's lowercase values.
    assert ours.reason is EvaluationReason.TARGETING_MATCH


@pytest.mark.parametrize(
    ("theirs", "ours"),
    [
        (LitestarReason.ERROR, EvaluationReason.ERROR),
        (LitestarReason.STATIC, EvaluationReason.STATIC),
        ("DEFAULT", EvaluationReason.DEFAULT),
        (LitestarReason.OVERRIDE, "override"),
    ],
)
def test_event_normalizes_reasons_passed_by_users(theirs: str, ours: str) -> None:
    event = FlagEvaluationEvent(WHEN, "f", 1, theirs)
    assert event.reason == ours
    assert type(event.reason) is type(ours)
    assert event.is_error is (ours is EvaluationReason.ERROR)


def test_equal_events_hash_alike_even_with_unhashable_values() -> None:
    first = FlagEvaluationEvent(WHEN, "f", {"a": [1]}, "static", trace_id="ab" * 16)
    second = FlagEvaluationEvent(WHEN, "f", {"a": [1]}, "STATIC", trace_id="ab" * 16)
    assert first == second
    assert hash(first) == hash(second)
    assert len({first, second}) == 1


def test_event_copies_context_attributes_read_only() -> None:
    context = {"plan": "premium", "country": "NZ"}
    event = FlagEvaluationEvent(WHEN, "f", 1, EvaluationReason.STATIC, context_attributes=context)
    context["plan"] = "free"
    assert event.context_attributes == {"plan": "premium", "country": "NZ"}
    with pytest.raises(TypeError):
        event.context_attributes["plan"] = "free"  # type: ignore[index]


def test_event_copies_attributes_read_only() -> None:
    attributes: dict[str, Any] = {"feature_flag.result.variationIndex": 0}
    event = FlagEvaluationEvent(WHEN, "f", 1, EvaluationReason.STATIC, attributes=attributes)
    attributes["extra"] = "later"
    assert event.attributes == {"feature_flag.result.variationIndex": 0}
    with pytest.raises(TypeError):
        event.attributes["extra"] = "later"  # type: ignore[index]


def test_events_with_equal_fields_are_equal() -> None:
    first = FlagEvaluationEvent(WHEN, "f", "on", EvaluationReason.STATIC, variant="on")
    second = FlagEvaluationEvent(WHEN, "f", "on", EvaluationReason.STATIC, variant="on")
    assert first == second
    assert first != dataclasses.replace(second, variant="off")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"reason": EvaluationReason.ERROR}, True),
        ({"reason": EvaluationReason.DEFAULT, "error_type": "flag_not_found"}, True),
        ({"reason": "error"}, True),
        ({"reason": EvaluationReason.STATIC}, False),
        ({"reason": "custom_reason"}, False),
        ({"reason": EvaluationReason.UNKNOWN, "error_message": "no error type"}, False),
    ],
)
def test_is_error_follows_error_type_or_error_reason(
    fields: dict[str, Any], expected: bool
) -> None:
    event = FlagEvaluationEvent(timestamp=WHEN, flag_key="f", value=None, **fields)
    assert event.is_error is expected


def test_to_dict_has_every_field_once() -> None:
    event = FlagEvaluationEvent(WHEN, "f", 1, EvaluationReason.STATIC)
    assert set(event.to_dict()) == {f.name for f in dataclasses.fields(FlagEvaluationEvent)}


def test_to_dict_writes_plain_values_unchanged() -> None:
    event = FlagEvaluationEvent(
        WHEN,
        "checkout",
        "#c05543",
        EvaluationReason.TARGETING_MATCH,
        variant="red",
        targeting_key="user-123",
        provider_name="In-Memory Provider",
        flag_set_id="env-abc",
        version="7",
        error_type=None,
        error_message=None,
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
        service_name="shop",
        attributes={"feature_flag.result.variationIndex": 2},
    )
    data = event.to_dict()
    assert data["timestamp"] == "2025-03-01T12:30:45.123456+00:00"
    assert data["reason"] == "targeting_match"
    assert type(data["reason"]) is str
    assert data["value"] == "#c05543"
    assert data["attributes"] == {"feature_flag.result.variationIndex": 2}
    for name in ("variant", "targeting_key", "provider_name", "flag_set_id", "version"):
        assert data[name] == getattr(event, name)
    for name in ("trace_id", "span_id", "service_name"):
        assert data[name] == getattr(event, name)
    assert json.loads(json.dumps(data)) == data


def test_to_dict_keeps_a_custom_reason_string() -> None:
    event = FlagEvaluationEvent(WHEN, "f", 1, "my_rollout")
    assert event.to_dict()["reason"] == "my_rollout"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ((1, 2, (3, "x")), [1, 2, [3, "x"]]),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
        (b"\x01\xff", "01ff"),
        (MappingProxyType({"a": MappingProxyType({"b": (1,)})}), {"a": {"b": [1]}}),
        ({1: "int key", None: "none key"}, {"1": "int key", "None": "none key"}),
        ([float("nan"), {"deep": float("inf")}], ["nan", {"deep": "inf"}]),
        (WHEN, "2025-03-01T12:30:45.123456+00:00"),
        (None, None),
        (True, True),
        (2.5, 2.5),
        (10**30, 10**30),
    ],
    ids=[
        "tuple",
        "nan",
        "inf",
        "-inf",
        "bytes",
        "nested-mapping",
        "non-str-keys",
        "nested-nonfinite",
        "datetime",
        "none",
        "bool",
        "float",
        "big-int",
    ],
)
def test_to_dict_makes_awkward_values_json_safe(value: Any, expected: Any) -> None:
    event = FlagEvaluationEvent(
        WHEN, "f", value, EvaluationReason.STATIC, context_attributes={"v": value}
    )
    data = event.to_dict()
    assert data["value"] == expected
    assert data["context_attributes"] == {"v": expected}
    # allow_nan=False: the output must be strict JSON that any reader accepts.
    assert json.loads(json.dumps(data, allow_nan=False)) == data


@pytest.mark.parametrize(
    ("duration", "expected"), [(float("nan"), "nan"), (float("inf"), "inf"), (1.5, 1.5)]
)
def test_to_dict_makes_a_non_finite_evaluation_duration_json_safe(
    duration: float, expected: Any
) -> None:
    # A user's record with a NaN duration made every page of /api/events holding it
    # answer 400, and to_json write NaN, which strict JSON readers refuse.
    event = FlagEvaluationEvent(
        WHEN, "f", True, EvaluationReason.STATIC, evaluation_duration_ms=duration
    )
    data = event.to_dict()
    assert data["evaluation_duration_ms"] == expected
    assert json.loads(json.dumps(data, allow_nan=False)) == data


def test_json_safe_falls_back_to_repr_for_unknown_objects() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    assert json_safe(Opaque()) == "<opaque>"
    assert json_safe({1, 2}) in ("{1, 2}", "{2, 1}")
    json.dumps(json_safe({"x": Opaque(), "s": frozenset()}), allow_nan=False)


def test_record_serializes_a_reason_from_another_enum_as_the_semconv_value() -> None:
    # Code written against litestar-flags may pass its own (uppercase) reason enum.
    event = FlagEvaluationEvent(WHEN, "f", True, LitestarReason.STATIC)
    assert event.to_dict()["reason"] == "static"
    assert json.loads(json.dumps(event.to_dict()))["reason"] == "static"


# -- build_event: the mapper's fast constructor ---------------------------------------


def test_build_event_takes_exactly_the_records_fields_with_the_same_defaults() -> None:
    parameters = inspect.signature(build_event).parameters
    fields = dataclasses.fields(FlagEvaluationEvent)
    assert list(parameters) == [f.name for f in fields]
    for f in fields:
        parameter = parameters[f.name]
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
        if f.default is not dataclasses.MISSING:
            assert parameter.default == f.default
        elif f.default_factory is not dataclasses.MISSING:
            assert parameter.default == f.default_factory()
        else:
            assert parameter.default is inspect.Parameter.empty


_texts = st.none() | st.text(max_size=8)
_mappings = st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3)


@settings(max_examples=150, deadline=None)
@given(
    fields=st.fixed_dictionaries(
        {
            "timestamp": st.datetimes(timezones=st.just(UTC)),
            "flag_key": st.text(min_size=1, max_size=10),
            "value": st.none() | st.booleans() | st.integers() | st.text(max_size=5),
            "reason": st.sampled_from(list(EvaluationReason)) | st.text(max_size=8),
        },
        optional={
            "variant": _texts,
            "targeting_key": _texts,
            "context_attributes": _mappings,
            "evaluation_duration_ms": st.none() | st.floats(allow_nan=False),
            "provider_name": _texts,
            "flag_set_id": _texts,
            "version": _texts,
            "error_type": _texts,
            "error_message": _texts,
            "trace_id": _texts,
            "span_id": _texts,
            "service_name": _texts,
            "attributes": _mappings,
        },
    )
)
def test_build_event_makes_the_same_record_as_the_constructor(fields: dict[str, Any]) -> None:
    built = build_event(**fields)
    constructed = FlagEvaluationEvent(**fields)

    assert type(built) is FlagEvaluationEvent
    assert built == constructed
    assert repr(built) == repr(constructed)
    assert type(built.attributes) is MappingProxyType
    assert type(built.context_attributes) is MappingProxyType
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.flag_key = "other"  # type: ignore[misc]


def test_build_event_copies_the_mappings_it_is_given() -> None:
    attributes = {"k": 1}
    context = {"plan": "vip"}
    event = build_event(
        timestamp=WHEN,
        flag_key="f",
        value=True,
        reason="static",
        attributes=attributes,
        context_attributes=context,
    )

    attributes["k"] = 2
    context["plan"] = "free"
    assert event.attributes == {"k": 1}
    assert event.context_attributes == {"plan": "vip"}


@pytest.mark.parametrize(
    ("trace_id", "span_id"),
    [
        ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"),  # canonical: kept as ints
        ("4BF92F3577B34DA6A3CE929D0E0E4736", "0x00f067aa0ba902"),  # kept as given
        ("t1", "not hex at all!!"),
        (None, None),
    ],
)
def test_ids_read_back_as_the_text_given_and_records_stay_equal_and_hashable(
    trace_id: str | None, span_id: str | None
) -> None:
    fields: dict[str, Any] = {
        "timestamp": datetime(2025, 1, 1, tzinfo=UTC),
        "flag_key": "f",
        "value": True,
        "reason": "static",
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": span_id,
    }
    made = FlagEvaluationEvent(**fields)
    built = build_event(**fields)
    assert (made.trace_id, made.span_id, made.parent_span_id) == (trace_id, span_id, span_id)
    assert built == made
    assert hash(built) == hash(made)
    assert made.to_dict()["trace_id"] == trace_id
    assert dataclasses.replace(made, flag_key="g").span_id == span_id
