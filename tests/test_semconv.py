"""The semconv constants match the feature_flag conventions (DESIGN.md section 3)."""

from __future__ import annotations

import pytest

from flagscope._store.records import EvaluationReason
from flagscope._telemetry import semconv

ALIAS_GROUPS = {
    "variant": semconv.VARIANT_KEYS,
    "reason": semconv.REASON_KEYS,
    "provider": semconv.PROVIDER_KEYS,
    "error_message": semconv.ERROR_MESSAGE_KEYS,
}


def _string_constants() -> dict[str, str]:
    return {
        name: value
        for name, value in vars(semconv).items()
        if name.isupper() and isinstance(value, str)
    }


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (semconv.VARIANT_KEYS, ("feature_flag.result.variant", "feature_flag.variant")),
        (
            semconv.REASON_KEYS,
            ("feature_flag.result.reason", "feature_flag.evaluation.reason"),
        ),
        (
            semconv.PROVIDER_KEYS,
            ("feature_flag.provider.name", "feature_flag.provider_name"),
        ),
        (
            semconv.ERROR_MESSAGE_KEYS,
            (
                "feature_flag.error.message",
                "error.message",
                "feature_flag.evaluation.error.message",
            ),
        ),
    ],
    ids=["variant", "reason", "provider", "error_message"],
)
def test_alias_tuples_list_spellings_newest_first(
    keys: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert keys == expected


@pytest.mark.parametrize(
    ("constant", "spelling"),
    [
        (semconv.KEY, "feature_flag.key"),
        (semconv.RESULT_VALUE, "feature_flag.result.value"),
        (semconv.CONTEXT_ID, "feature_flag.context.id"),
        (semconv.SET_ID, "feature_flag.set.id"),
        (semconv.VERSION, "feature_flag.version"),
        (semconv.ERROR_TYPE, "error.type"),
        (semconv.LOG_BODY_VALUE, "value"),
        (semconv.SERVICE_NAME, "service.name"),
    ],
)
def test_single_spelling_keys_match_the_conventions(constant: str, spelling: str) -> None:
    assert constant == spelling


def test_event_names_cover_current_and_legacy_names() -> None:
    assert semconv.EVENT_NAME == "feature_flag.evaluation"
    assert semconv.EVENT_NAME_LEGACY == "feature_flag"
    assert {"feature_flag.evaluation", "feature_flag"} == semconv.EVENT_NAMES
    assert semconv.SPAN_NAME == semconv.EVENT_NAME


def test_exception_event_is_not_an_evaluation_event_name() -> None:
    assert semconv.EXCEPTION_EVENT_NAME not in semconv.EVENT_NAMES


def test_alias_groups_do_not_share_keys() -> None:
    seen: dict[str, str] = {}
    for group, keys in ALIAS_GROUPS.items():
        assert len(set(keys)) == len(keys), group
        for key in keys:
            assert key not in seen, f"{key} is in both {seen.get(key)} and {group}"
            seen[key] = group


def test_attribute_key_constants_are_distinct() -> None:
    # Two names for one spelling would make the mapper take one attribute twice.
    keys = {
        name: value
        for name, value in _string_constants().items()
        if "." in value and name not in {"EVENT_NAME", "SPAN_NAME", "EVENT_NAME_LEGACY"}
    }
    assert len(set(keys.values())) == len(keys)


def test_error_types_are_the_documented_values() -> None:
    assert {
        "flag_not_found",
        "invalid_context",
        "parse_error",
        "provider_fatal",
        "provider_not_ready",
        "targeting_key_missing",
        "type_mismatch",
        "general",
        "_OTHER",
    } == semconv.ERROR_TYPES


def test_error_type_constants_are_all_listed_in_error_types() -> None:
    constants = {
        value
        for name, value in _string_constants().items()
        # Attribute keys (error.type, error.message ...) have dots; values do not.
        if name.startswith("ERROR_") and "." not in value
    }
    assert constants == semconv.ERROR_TYPES


def test_error_reason_is_not_an_error_type() -> None:
    # "error" is a reason, never an error.type: the mapper tells them apart by key.
    assert EvaluationReason.ERROR.value not in semconv.ERROR_TYPES
