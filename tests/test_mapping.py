"""The pure mapper: feature_flag attributes -> FlagEvaluationEvent or a SkipReason.

Driven without any SDK: the attribute sets below are what DESIGN.md section 4
records real producers sending.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flagscope._store.records import EvaluationReason, FlagEvaluationEvent, json_safe
from flagscope._telemetry import semconv
from flagscope._telemetry.mapping import (
    SkipReason,
    decode_value,
    format_span_id,
    format_trace_id,
    map_evaluation,
    normalize_reason,
    timestamp_from_ns,
)

KEY = semconv.KEY
TRACE_HEX = "0af7651916cd43dd8448eb211c80319c"
SPAN_HEX = "b7ad6b7169203331"
NS = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123456789Z


def mapped(attributes: Mapping[str, Any], **kwargs: Any) -> FlagEvaluationEvent:
    """Map attributes that must give a record; a Python producer's unless told."""
    kwargs.setdefault("language", "python")
    result = map_evaluation(attributes, **kwargs)
    assert isinstance(result, FlagEvaluationEvent), result
    return result


# -- fields and their aliases ------------------------------------------------------


@pytest.mark.parametrize("variant_key", semconv.VARIANT_KEYS)
def test_variant_is_read_from_every_spelling(variant_key: str) -> None:
    event = mapped({KEY: "f", variant_key: "on"})
    assert event.variant == "on"
    assert variant_key not in event.attributes


@pytest.mark.parametrize("provider_key", semconv.PROVIDER_KEYS)
def test_provider_is_read_from_every_spelling(provider_key: str) -> None:
    event = mapped({KEY: "f", provider_key: "In-Memory Provider"})
    assert event.provider_name == "In-Memory Provider"
    assert provider_key not in event.attributes


@pytest.mark.parametrize("message_key", semconv.ERROR_MESSAGE_KEYS)
def test_error_message_is_read_from_every_spelling(message_key: str) -> None:
    event = mapped({KEY: "f", message_key: "Flag 'f' not found"})
    assert event.error_message == "Flag 'f' not found"
    assert message_key not in event.attributes


@pytest.mark.parametrize("reason_key", semconv.REASON_KEYS)
@pytest.mark.parametrize("reason", list(EvaluationReason))
def test_known_reasons_become_enum_members_from_every_spelling(
    reason_key: str, reason: EvaluationReason
) -> None:
    event = mapped({KEY: "f", reason_key: reason.value})
    assert event.reason is reason
    assert reason_key not in event.attributes


@pytest.mark.parametrize("reason_key", semconv.REASON_KEYS)
@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("STATIC", EvaluationReason.STATIC),
        ("TARGETING_MATCH", EvaluationReason.TARGETING_MATCH),
        ("Split", EvaluationReason.SPLIT),
        ("ERROR", EvaluationReason.ERROR),
    ],
)
def test_uppercase_reasons_are_lowercased(
    reason_key: str, sent: str, expected: EvaluationReason
) -> None:
    assert mapped({KEY: "f", reason_key: sent}).reason is expected


@pytest.mark.parametrize("reason_key", semconv.REASON_KEYS)
@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("rule_match", "rule_match"),
        ("FALLTHROUGH", "fallthrough"),
        ("Prerequisite", "prerequisite"),
    ],
)
def test_custom_reasons_are_kept_lowercased(reason_key: str, sent: str, expected: str) -> None:
    event = mapped({KEY: "f", reason_key: sent})
    assert event.reason == expected
    assert type(event.reason) is str
    assert not event.is_error


@pytest.mark.parametrize(
    "attributes",
    [{KEY: "f"}, {KEY: "f", semconv.RESULT_REASON: ""}, {KEY: "f", semconv.RESULT_REASON: 3}],
    ids=["absent", "empty", "not-a-string"],
)
def test_missing_reason_is_unknown(attributes: dict[str, Any]) -> None:
    assert mapped(attributes).reason is EvaluationReason.UNKNOWN


@pytest.mark.parametrize("error_type", ["flag_not_found", "type_mismatch", "general", "custom"])
def test_missing_reason_with_error_type_is_error(error_type: str) -> None:
    event = mapped({KEY: "f", semconv.ERROR_TYPE: error_type})
    assert event.reason is EvaluationReason.ERROR
    assert event.error_type == error_type
    assert event.is_error


def test_sent_reason_wins_over_error_type() -> None:
    event = mapped({KEY: "f", semconv.RESULT_REASON: "default", semconv.ERROR_TYPE: "general"})
    assert event.reason is EvaluationReason.DEFAULT
    assert event.error_type == "general"
    assert event.is_error


ALIAS_FIELDS = [
    ("variant", semconv.VARIANT_KEYS),
    ("provider_name", semconv.PROVIDER_KEYS),
    ("error_message", semconv.ERROR_MESSAGE_KEYS),
    ("reason", semconv.REASON_KEYS),
]
ALIAS_PAIRS = [
    pytest.param(field, keys[newer], keys[older], id=f"{keys[newer]}>{keys[older]}")
    for field, keys in ALIAS_FIELDS
    for newer in range(len(keys))
    for older in range(newer + 1, len(keys))
]


@pytest.mark.parametrize(("field", "newer", "older"), ALIAS_PAIRS)
def test_newest_spelling_wins_and_older_one_stays_in_attributes(
    field: str, newer: str, older: str
) -> None:
    event = mapped({KEY: "f", older: "old_value", newer: "new_value"})
    assert getattr(event, field) == "new_value"
    assert event.attributes == {older: "old_value"}


@pytest.mark.parametrize(("field", "newer", "older"), ALIAS_PAIRS)
def test_older_spelling_is_used_when_newer_one_is_not_a_string(
    field: str, newer: str, older: str
) -> None:
    event = mapped({KEY: "f", newer: 42, older: "old_value"})
    assert getattr(event, field) == "old_value"
    assert event.attributes == {newer: 42}


@pytest.mark.parametrize(
    ("sent", "expected"),
    [("user-123", "user-123"), ("org:org-9:user:user-123", "org:org-9:user:user-123"), ("", None)],
    ids=["single", "multi-context", "empty-means-none"],
)
def test_context_id_is_the_targeting_key(sent: str, expected: str | None) -> None:
    event = mapped({KEY: "f", semconv.CONTEXT_ID: sent})
    assert event.targeting_key == expected
    assert semconv.CONTEXT_ID not in event.attributes


@pytest.mark.parametrize(
    ("key", "field"),
    [
        (semconv.SET_ID, "flag_set_id"),
        (semconv.VERSION, "version"),
        (semconv.ERROR_TYPE, "error_type"),
    ],
)
def test_single_spelling_fields_are_read(key: str, field: str) -> None:
    event = mapped({KEY: "f", key: "abc-7"})
    assert getattr(event, field) == "abc-7"
    assert key not in event.attributes


@pytest.mark.parametrize(
    ("key", "field"),
    [
        (semconv.SET_ID, "flag_set_id"),
        (semconv.VERSION, "version"),
        (semconv.ERROR_TYPE, "error_type"),
        (semconv.CONTEXT_ID, "targeting_key"),
        (semconv.RESULT_VARIANT, "variant"),
    ],
)
def test_non_string_field_values_stay_in_attributes(key: str, field: str) -> None:
    event = mapped({KEY: "f", key: 7})
    assert getattr(event, field) is None
    assert event.attributes == {key: 7}


def test_every_known_key_is_taken_by_a_field() -> None:
    attributes = {
        KEY: "f",
        semconv.RESULT_VARIANT: "on",
        semconv.RESULT_VALUE: "true",
        semconv.RESULT_REASON: "static",
        semconv.PROVIDER_NAME: "p",
        semconv.CONTEXT_ID: "user-1",
        semconv.SET_ID: "set-1",
        semconv.VERSION: "v1",
        semconv.ERROR_TYPE: "general",
        semconv.ERROR_MESSAGE: "boom",
    }
    event = mapped(attributes)
    assert event.attributes == {}
    assert (event.flag_key, event.variant, event.value, event.reason) == (
        "f",
        "on",
        True,
        EvaluationReason.STATIC,
    )
    assert (event.provider_name, event.targeting_key, event.flag_set_id, event.version) == (
        "p",
        "user-1",
        "set-1",
        "v1",
    )
    assert (event.error_type, event.error_message) == ("general", "boom")


# -- what real producers send (DESIGN.md section 4) -------------------------------


def test_openfeature_tracing_hook_03_success() -> None:
    event = mapped(
        {
            KEY: "bool-flag",
            semconv.RESULT_VALUE: "true",
            semconv.RESULT_REASON: "static",
            semconv.RESULT_VARIANT: "on",
            semconv.CONTEXT_ID: "user-123",
            semconv.PROVIDER_NAME: "In-Memory Provider",
        }
    )
    assert event.flag_key == "bool-flag"
    assert event.value is True
    assert event.reason is EvaluationReason.STATIC
    assert event.variant == "on"
    assert event.targeting_key == "user-123"
    assert event.provider_name == "In-Memory Provider"
    assert event.attributes == {}
    assert not event.is_error


def test_openfeature_tracing_hook_03_failure() -> None:
    event = mapped(
        {
            KEY: "missing-flag",
            semconv.RESULT_VALUE: '"fallback"',
            semconv.RESULT_REASON: "error",
            semconv.ERROR_TYPE: "flag_not_found",
            semconv.ERROR_MESSAGE_GENERIC: "Flag 'missing-flag' not found",
            semconv.PROVIDER_NAME: "In-Memory Provider",
        }
    )
    assert event.value == "fallback"
    assert event.reason is EvaluationReason.ERROR
    assert event.error_type == "flag_not_found"
    assert event.error_message == "Flag 'missing-flag' not found"
    assert event.is_error


def test_openfeature_tracing_hook_02_legacy_keys() -> None:
    event = mapped(
        {KEY: "str-flag", semconv.VARIANT_LEGACY: "red", semconv.PROVIDER_NAME_LEGACY: "p"}
    )
    assert event.variant == "red"
    assert event.provider_name == "p"
    assert event.value is None
    assert event.reason is EvaluationReason.UNKNOWN
    assert event.attributes == {}


def test_launchdarkly_hook_variation_index_is_kept_in_attributes() -> None:
    event = mapped(
        {
            semconv.CONTEXT_ID: "user-123",
            KEY: "bool-flag",
            semconv.PROVIDER_NAME: "LaunchDarkly",
            "feature_flag.result.variationIndex": 0,
            semconv.RESULT_VALUE: '"#c05543"',
            semconv.SET_ID: "env-abc",
        }
    )
    assert event.provider_name == "LaunchDarkly"
    assert event.value == "#c05543"
    assert event.flag_set_id == "env-abc"
    assert event.reason is EvaluationReason.UNKNOWN
    assert event.attributes == {"feature_flag.result.variationIndex": 0}


def test_launchdarkly_invalid_context_has_no_targeting_key() -> None:
    event = mapped({KEY: "f", semconv.CONTEXT_ID: "", semconv.PROVIDER_NAME: "LaunchDarkly"})
    assert event.targeting_key is None
    assert event.attributes == {}


# -- leftover attributes -----------------------------------------------------------


def test_leftover_attributes_are_kept_with_their_values() -> None:
    sent = {KEY: "f", "app.tier": "gold", "app.retries": 3, "app.tags": ("a", "b")}
    event = mapped(sent)
    assert event.attributes == {"app.tier": "gold", "app.retries": 3, "app.tags": ("a", "b")}


def test_leftover_attributes_are_read_only() -> None:
    event = mapped({KEY: "f", "app.tier": "gold"})
    with pytest.raises(TypeError):
        event.attributes["app.tier"] = "free"  # type: ignore[index]
    with pytest.raises(TypeError):
        del event.attributes["app.tier"]  # type: ignore[attr-defined]


def test_leftover_attributes_do_not_follow_later_changes_to_the_input() -> None:
    sent: dict[str, Any] = {KEY: "f", "app.tier": "gold"}
    event = mapped(sent)
    sent["app.tier"] = "free"
    sent["app.new"] = 1
    assert event.attributes == {"app.tier": "gold"}


# -- values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("true", True),
        ("false", False),
        ("5", 5),
        ("-2.5", -2.5),
        ("1e3", 1000.0),
        ('"#c05543"', "#c05543"),
        ('"true"', "true"),
        ('"42"', "42"),
        ('""', ""),
        ("[1, 2]", [1, 2]),
        ('["a", [true, null]]', ["a", [True, None]]),
        ("[]", []),
        ('{"color": "red", "size": [1, 2]}', {"color": "red", "size": [1, 2]}),
    ],
)
def test_python_producers_json_encoded_values_are_decoded(sent: str, expected: Any) -> None:
    event = mapped({KEY: "f", semconv.RESULT_VALUE: sent})
    assert event.value == expected
    assert type(event.value) is type(expected)
    assert decode_value(sent, language="python") == expected
    assert decode_value(sent, "json") == expected


def test_json_null_value_decodes_to_none() -> None:
    assert decode_value("null", "json") is None
    assert mapped({KEY: "f", semconv.RESULT_VALUE: "null"}).value is None


# The "auto" decision table (README, "What gets recorded"), one row per producer:
# (language, provider, what the producer sent, what is stored).
_AUTO_TABLE = [
    # OpenFeature Python hook 0.3: every value JSON-encoded.
    ("python", "In-Memory Provider", '"42"', "42"),
    ("python", "In-Memory Provider", "42", 42),
    ("python", "In-Memory Provider", '{"a": 1}', {"a": 1}),
    # LaunchDarkly hooks, Python and Node: JSON text for every type.
    ("python", "LaunchDarkly", '"#c05543"', "#c05543"),
    ("nodejs", "LaunchDarkly", '"42"', "42"),
    ("nodejs", "LaunchDarkly", "3.14159", 3.14159),
    (None, "LaunchDarkly", '[1,"two",true]', [1, "two", True]),
    # JS OpenFeature hooks 1.0: typed numbers and booleans, strings raw, JSON containers.
    ("nodejs", "in-memory", "42", "42"),
    ("nodejs", "in-memory", "true", "true"),
    ("nodejs", "in-memory", "null", "null"),
    ("nodejs", "in-memory", "NaN", "NaN"),
    ("nodejs", "in-memory", "#c05543", "#c05543"),
    ("nodejs", "in-memory", '"quoted"', '"quoted"'),
    ("nodejs", "in-memory", "", ""),
    ("nodejs", "in-memory", '{"methods":["post"]}', {"methods": ["post"]}),
    ("nodejs", "in-memory", "[1,2]", [1, 2]),
    ("nodejs", "in-memory", "{not json", "{not json"),
    ("nodejs", "in-memory", 42, 42),
    ("nodejs", "in-memory", 1e21, 1e21),
    ("nodejs", "in-memory", False, False),
    # Other SDKs and producers that do not say: typed values; a string stays a string.
    ("go", "flagd", "42", "42"),
    ("go", "flagd", ("a", "b"), ["a", "b"]),
    ("java", None, '"x"', '"x"'),
    (None, None, "true", "true"),
    (None, None, '{"a":1}', {"a": 1}),
]


@pytest.mark.parametrize(("language", "provider", "sent", "expected"), _AUTO_TABLE)
def test_auto_decoding_follows_the_producer(
    language: str | None, provider: str | None, sent: Any, expected: Any
) -> None:
    attributes = {KEY: "f", semconv.RESULT_VALUE: sent}
    if provider is not None:
        attributes[semconv.PROVIDER_NAME] = provider
    event = mapped(attributes, language=language)
    assert event.value == expected
    assert type(event.value) is type(expected)
    assert decode_value(sent, language=language, provider_name=provider) == expected


def test_object_values_are_plain_copies_per_read() -> None:
    sent = '{"color": "red", "size": [1, 2], "nested": {"a": null}}'
    event = mapped({KEY: "f", semconv.RESULT_VALUE: sent})
    value = event.value
    assert type(value) is dict
    assert value == {"color": "red", "size": [1, 2], "nested": {"a": None}}
    value["color"] = "blue"
    value["nested"]["a"] = 1
    assert event.value == {"color": "red", "size": [1, 2], "nested": {"a": None}}
    assert json.loads(json.dumps(event.to_dict()))["value"] == event.value


@pytest.mark.parametrize(
    "sent",
    [
        '{"color": "re',
        "[1, 2",
        "tru",
        "{",
        "-",
        "01",
        "1 2",
        '"unterminated',
        "plain",
        "on",
        "#c05543",
        "True",
        "None",
        "",
        " ",
        "{'a': 1}",
    ],
)
@pytest.mark.parametrize("language", ["python", "nodejs", None])
def test_strings_that_are_not_json_are_kept_as_sent(sent: str, language: str | None) -> None:
    event = mapped({KEY: "f", semconv.RESULT_VALUE: sent}, language=language)
    assert event.value == sent
    assert type(event.value) is str


@pytest.mark.parametrize(
    ("sent", "check"),
    [
        ("NaN", math.isnan),
        ("Infinity", lambda v: v == math.inf),
        ("-Infinity", lambda v: v == -math.inf),
    ],
)
def test_python_json_constants_decode_consistently(sent: str, check: Any) -> None:
    # json.dumps(float("nan")) is what a Python producer sends for a non-finite value.
    value = decode_value(sent, language="python")
    assert type(value) is float
    assert check(value)


def test_deeply_nested_json_is_kept_as_the_string() -> None:
    sent = "[" * 100_000 + "]" * 100_000
    assert decode_value(sent, "json") == sent
    assert decode_value(sent) == sent


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        (5, 5),
        (2.5, 2.5),
        (True, True),
        (False, False),
        (0, 0),
        (-1, -1),
        ((1, 2, 3), [1, 2, 3]),
        (("a", "b"), ["a", "b"]),
        ((True, False), [True, False]),
        ((1.5,), [1.5]),
        ((), []),
    ],
    ids=repr,
)
def test_typed_values_are_kept_and_arrays_become_lists(sent: Any, expected: Any) -> None:
    event = mapped({KEY: "f", semconv.RESULT_VALUE: sent})
    assert event.value == expected
    assert type(event.value) is type(expected)


@pytest.mark.parametrize("sent", [float("nan"), float("inf"), float("-inf")], ids=repr)
def test_native_non_finite_floats_are_kept(sent: float) -> None:
    assert mapped({KEY: "f", semconv.RESULT_VALUE: sent}).value is sent


@pytest.mark.parametrize(
    "sent",
    ['"#c05543"', "true", "5", '{"a": 1}', "[1, 2]", "plain", 5, True],
    ids=repr,
)
def test_raw_mode_keeps_the_value_as_sent(sent: Any) -> None:
    event = mapped({KEY: "f", semconv.RESULT_VALUE: sent}, value_decoding="raw")
    assert event.value is sent
    assert decode_value(sent, "raw") is sent


@pytest.mark.parametrize("decoding", ["auto", "json", "raw"])
@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ({"a": {"b": 1}}, {"a": {"b": 1}}),
        ([{"a": 1}, [2]], [{"a": 1}, [2]]),
        (({"a": 1}, 2), [{"a": 1}, 2]),
        ((({"a": [1]},),), [[{"a": [1]}]]),
    ],
    ids=["map", "list", "tuple-of-maps", "nested-tuples"],
)
def test_native_maps_and_lists_become_plain_json_values(
    sent: Any, expected: Any, decoding: str
) -> None:
    # Log attributes may hold maps, and arrays of maps (as tuples).
    value = decode_value(sent, decoding)  # type: ignore[arg-type]
    assert value == expected
    assert json.loads(json.dumps(value)) == expected


def test_body_value_is_used_when_result_value_is_absent() -> None:
    event = mapped({KEY: "f"}, body_value='"from-body"')
    assert event.value == "from-body"
    assert mapped({KEY: "f"}, body_value=7).value == 7


def test_result_value_wins_over_body_value() -> None:
    event = mapped({KEY: "f", semconv.RESULT_VALUE: "1"}, body_value="2")
    assert event.value == 1


def test_a_value_sent_as_none_is_taken_and_leaves_nothing_stale() -> None:
    # OTLP/JSON from JavaScript sends NaN as doubleValue: null, an empty value.
    event = mapped({KEY: "f", semconv.RESULT_VALUE: None, "app.x": 1}, language="nodejs")
    assert event.value is None
    assert event.attributes == {"app.x": 1}


@pytest.mark.parametrize(
    "field",
    ["flag_key", "variant", "reason", "targeting_key", "provider_name", "error_message"],
)
def test_lone_surrogates_are_replaced_in_every_text_field(field: str) -> None:
    keys = {
        "flag_key": KEY,
        "variant": semconv.RESULT_VARIANT,
        "reason": semconv.RESULT_REASON,
        "targeting_key": semconv.CONTEXT_ID,
        "provider_name": semconv.PROVIDER_NAME,
        "error_message": semconv.ERROR_MESSAGE,
    }
    attributes = {KEY: "f", keys[field]: "bad\ud800text"}
    event = mapped(attributes)
    assert getattr(event, field) == "bad\ufffdtext"
    json.dumps(event.to_dict(), ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize(
    ("sent", "language", "expected"),
    [
        ('"\\ud800"', "python", "\ufffd"),
        ('{"k\\udc00": ["\\ud83d"]}', "python", {"k\ufffd": ["\ufffd"]}),
        ('{"ok": "\\ud83d\\ude80"}', "nodejs", {"ok": "\U0001f680"}),
        ("raw\udfff", "nodejs", "raw\ufffd"),
    ],
)
def test_lone_surrogates_in_values_are_replaced_and_pairs_kept(
    sent: str, language: str, expected: Any
) -> None:
    event = mapped({KEY: "f", semconv.RESULT_VALUE: sent, "x\ud800": "y\udc00"}, language=language)
    assert event.value == expected
    assert event.attributes == {"x\ufffd": "y\ufffd"}
    json.dumps(event.to_dict(), ensure_ascii=False).encode("utf-8")


def test_no_value_anywhere_gives_none() -> None:
    event = mapped({KEY: "f"})
    assert event.value is None


# -- reasons directly --------------------------------------------------------------


def test_normalize_reason_handles_more_custom_reasons_than_its_cache_holds() -> None:
    sent = [f"Custom_Reason_{n}" for n in range(3000)]
    assert [normalize_reason(reason) for reason in sent] == [reason.lower() for reason in sent]
    assert [normalize_reason(reason) for reason in sent] == [reason.lower() for reason in sent]


def test_normalize_reason_gives_the_same_answer_twice() -> None:
    assert normalize_reason("CACHED") is EvaluationReason.CACHED
    assert normalize_reason("CACHED") is EvaluationReason.CACHED
    assert normalize_reason("Stale") is EvaluationReason.STALE


# -- timestamps --------------------------------------------------------------------


def test_timestamp_is_aware_utc_to_the_microsecond() -> None:
    event = mapped({KEY: "f"}, timestamp_ns=NS)
    assert event.timestamp == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert event.timestamp.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("ns", "expected"),
    [
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        (999, datetime(1970, 1, 1, tzinfo=UTC)),
        (1_000, datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC)),
        (-1_000, datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        (NS, datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)),
    ],
)
def test_timestamp_from_ns_truncates_to_microseconds(ns: int, expected: datetime) -> None:
    assert timestamp_from_ns(ns) == expected
    assert timestamp_from_ns(ns).tzinfo is not None


def test_missing_timestamp_means_now() -> None:
    before = timestamp_from_ns(time.time_ns())
    event = mapped({KEY: "f"})
    after = timestamp_from_ns(time.time_ns())
    assert before <= event.timestamp <= after
    assert event.timestamp.tzinfo is not None


@pytest.mark.parametrize("ns", [1.5, "1700000000", True, b"1", [1]], ids=repr)
def test_timestamp_from_ns_rejects_non_int_types(ns: Any) -> None:
    with pytest.raises(TypeError):
        timestamp_from_ns(ns)


@pytest.mark.parametrize("ns", [10**30, -(10**30)], ids=["far-future", "far-past"])
def test_timestamp_from_ns_rejects_overflow(ns: int) -> None:
    with pytest.raises(OverflowError):
        timestamp_from_ns(ns)


# -- ids and resource --------------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    [
        int(TRACE_HEX, 16),
        bytes.fromhex(TRACE_HEX),
        bytearray.fromhex(TRACE_HEX),
        TRACE_HEX,
        TRACE_HEX.upper(),
    ],
    ids=["int", "bytes", "bytearray", "hex", "upper-hex"],
)
def test_trace_id_is_formatted_as_lowercase_hex(sent: Any) -> None:
    assert format_trace_id(sent) == TRACE_HEX
    assert mapped({KEY: "f"}, trace_id=sent).trace_id == TRACE_HEX


@pytest.mark.parametrize(
    "sent",
    [int(SPAN_HEX, 16), bytes.fromhex(SPAN_HEX), SPAN_HEX, SPAN_HEX.upper()],
    ids=["int", "bytes", "hex", "upper-hex"],
)
def test_span_id_is_formatted_as_lowercase_hex(sent: Any) -> None:
    assert format_span_id(sent) == SPAN_HEX
    assert mapped({KEY: "f"}, span_id=sent).span_id == SPAN_HEX


def test_small_int_ids_are_zero_padded() -> None:
    assert format_trace_id(1) == "0" * 31 + "1"
    assert format_span_id(255) == "0" * 14 + "ff"


INVALID_IDS = [
    None,
    0,
    -1,
    True,
    1.5,
    "",
    "zz",
    object(),
]


@pytest.mark.parametrize(
    "sent",
    [
        *INVALID_IDS,
        1 << 128,
        b"\x00" * 16,
        b"\x01" * 15,
        "0" * 32,
        "z" * 32,
        TRACE_HEX[:-1],
        "0x" + TRACE_HEX[2:],
        " " + TRACE_HEX[1:],
        "+" + TRACE_HEX[1:],
        "-" + TRACE_HEX[1:],
        TRACE_HEX[:4] + "_" + TRACE_HEX[5:],
    ],
    ids=repr,
)
def test_invalid_trace_ids_give_none(sent: Any) -> None:
    assert format_trace_id(sent) is None
    assert mapped({KEY: "f"}, trace_id=sent).trace_id is None


@pytest.mark.parametrize(
    "sent",
    [
        *INVALID_IDS,
        1 << 64,
        b"\x00" * 8,
        b"\x01" * 16,
        "0" * 16,
        TRACE_HEX,
        "0x" + SPAN_HEX[2:],
        " " + SPAN_HEX[1:],
        "+" + SPAN_HEX[1:],
        SPAN_HEX[:4] + "_" + SPAN_HEX[5:],
    ],
    ids=repr,
)
def test_invalid_span_ids_give_none(sent: Any) -> None:
    assert format_span_id(sent) is None
    assert mapped({KEY: "f"}, span_id=sent).span_id is None


@pytest.mark.parametrize(("sent", "expected"), [("checkout", "checkout"), (None, None), (5, None)])
def test_service_name_is_kept_when_it_is_a_string(sent: Any, expected: str | None) -> None:
    assert mapped({KEY: "f"}, service_name=sent).service_name == expected


# -- skips -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({}, SkipReason.MISSING_FLAG_KEY),
        ({KEY: None}, SkipReason.MISSING_FLAG_KEY),
        ({semconv.RESULT_VALUE: "true", "flag.key": "f"}, SkipReason.MISSING_FLAG_KEY),
        ({KEY: ""}, SkipReason.INVALID_FLAG_KEY),
        ({KEY: 5}, SkipReason.INVALID_FLAG_KEY),
        ({KEY: True}, SkipReason.INVALID_FLAG_KEY),
        ({KEY: b"f"}, SkipReason.INVALID_FLAG_KEY),
        ({KEY: ("f",)}, SkipReason.INVALID_FLAG_KEY),
        (None, SkipReason.INVALID_ATTRIBUTES),
        ("feature_flag.key", SkipReason.INVALID_ATTRIBUTES),
        ([(KEY, "f")], SkipReason.INVALID_ATTRIBUTES),
        (42, SkipReason.INVALID_ATTRIBUTES),
    ],
    ids=[
        "empty",
        "key-none",
        "wrong-key-name",
        "key-empty",
        "key-int",
        "key-bool",
        "key-bytes",
        "key-tuple",
        "attributes-none",
        "attributes-str",
        "attributes-pairs",
        "attributes-int",
    ],
)
def test_unusable_input_is_skipped_with_a_reason(attributes: Any, expected: SkipReason) -> None:
    assert map_evaluation(attributes) is expected


@pytest.mark.parametrize("ns", [1.5, "1700000000", True, 10**30, -(10**30)], ids=repr)
def test_bad_timestamps_are_skipped(ns: Any) -> None:
    assert map_evaluation({KEY: "f"}, timestamp_ns=ns) is SkipReason.INVALID_TIMESTAMP


# -- properties --------------------------------------------------------------------

_scalars = st.one_of(
    st.text(max_size=20),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
)
_json_texts = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
).map(json.dumps)
_garbage = st.one_of(
    st.none(),
    st.binary(max_size=8),
    st.builds(object),
    st.dictionaries(st.text(max_size=5), _scalars, max_size=3),
    st.lists(_scalars, max_size=3),
    st.complex_numbers(),
)
_attribute_values = st.one_of(
    _scalars,
    _json_texts,
    st.lists(_scalars, max_size=4).map(tuple),
    _garbage,
)
_known_keys = [
    semconv.RESULT_VALUE,
    semconv.CONTEXT_ID,
    semconv.SET_ID,
    semconv.VERSION,
    semconv.ERROR_TYPE,
    *semconv.VARIANT_KEYS,
    *semconv.REASON_KEYS,
    *semconv.PROVIDER_KEYS,
    *semconv.ERROR_MESSAGE_KEYS,
    "feature_flag.result.variationIndex",
]
_attribute_maps = st.dictionaries(
    st.sampled_from(_known_keys) | st.text(max_size=30), _attribute_values, max_size=12
)
_flag_keys = st.one_of(st.text(max_size=30), _garbage, st.integers())


def _expected_taken(attributes: Mapping[str, Any]) -> set[str]:
    """Reference model: the keys a field should take (first string per alias group)."""
    taken = {KEY}
    groups = [
        (semconv.ERROR_TYPE,),
        semconv.REASON_KEYS,
        (semconv.CONTEXT_ID,),
        semconv.VARIANT_KEYS,
        semconv.PROVIDER_KEYS,
        (semconv.SET_ID,),
        (semconv.VERSION,),
        semconv.ERROR_MESSAGE_KEYS,
    ]
    for keys in groups:
        for key in keys:
            if type(attributes.get(key)) is str:
                taken.add(key)
                break
    if semconv.RESULT_VALUE in attributes:
        # Present, even as None (an empty OTLP value): the value field takes it.
        taken.add(semconv.RESULT_VALUE)
    return taken


@settings(max_examples=200, deadline=None)
@given(
    attributes=_attribute_maps,
    flag_key=st.none() | _flag_keys,
    decoding=st.sampled_from(["json", "raw"]),
    timestamp_ns=st.none() | st.integers(min_value=-(10**20), max_value=10**20),
)
def test_mapper_never_raises_and_loses_no_key(
    attributes: dict[str, Any], flag_key: Any, decoding: Any, timestamp_ns: int | None
) -> None:
    if flag_key is not None:
        attributes[KEY] = flag_key
    result = map_evaluation(attributes, value_decoding=decoding, timestamp_ns=timestamp_ns)

    if flag_key is None:
        assert result is SkipReason.MISSING_FLAG_KEY
        return
    if type(flag_key) is not str or not flag_key:
        assert result is SkipReason.INVALID_FLAG_KEY
        return
    if result is SkipReason.INVALID_TIMESTAMP:
        # Only a given timestamp can be out of datetime's range; "now" always fits.
        assert timestamp_ns is not None
        with pytest.raises(OverflowError):
            timestamp_from_ns(timestamp_ns)
        return

    assert isinstance(result, FlagEvaluationEvent)
    assert result.flag_key == flag_key
    taken = _expected_taken(attributes)
    assert set(result.attributes) == set(attributes) - taken
    for key, value in result.attributes.items():
        # Kept read-only: maps as mappingproxy, arrays as tuples, the same content.
        assert json_safe(value) == json_safe(attributes[key])
    json.dumps(result.to_dict(), allow_nan=False)


def test_map_typical_gives_map_attributes_record_or_none() -> None:
    """The usual event's short path makes the general path's record; anything else, None."""
    from flagscope._telemetry.mapping import map_attributes, map_typical

    usual: dict[str, Any] = {
        "feature_flag.key": "bool-flag",
        "feature_flag.result.value": "true",
        "feature_flag.result.reason": "static",
        "feature_flag.result.variant": "on",
        "feature_flag.context.id": "user-123",
        "feature_flag.provider.name": "In-Memory Provider",
    }
    without_context = {k: v for k, v in usual.items() if k != "feature_flag.context.id"}
    for attributes in (usual, without_context, {**usual, "feature_flag.result.value": 3}):
        typical = map_typical(attributes, 10**18, 5, 6, None, "svc", "python", "auto")
        general = map_attributes(
            attributes, 10**18, f"{5:032x}", f"{6:016x}", None, "svc", "python", "auto", None, None
        )
        assert typical == general
    for attributes in (
        {**usual, "extra": 1},
        {**usual, "feature_flag.key": ""},
        {**usual, "feature_flag.result.variant": "é"},
        {**usual, "feature_flag.result.value": [1]},
        {**usual, "feature_flag.result.value": "x" * 9000},
    ):
        assert map_typical(attributes, 10**18, 5, 6, None, "svc", "python", "auto") is None
