"""Reading the flags an application declares: flagd definition files and key lists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flagscope.testing._declarations import FlagDefinitionsError, load_declared_flags


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "flags.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_a_flagd_file_gives_each_flag_its_state_variants_and_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "$schema": "https://flagd.dev/schema/v0/flags.json",
            "flags": {
                "zeta": {
                    "state": "ENABLED",
                    "variants": {"on": True, "off": False},
                    "defaultVariant": "off",
                    "targeting": {"if": [{"==": [{"var": "targetingKey"}, "bob"]}, "on"]},
                    "metadata": {"owner": "checkout"},
                },
                "alpha": {"state": "DISABLED", "variants": {"a": 1}, "defaultVariant": "a"},
                "code-default": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": None},
            },
            "metadata": {"version": "1"},
        },
    )

    flags = load_declared_flags(path)

    assert list(flags) == ["alpha", "code-default", "zeta"]
    assert flags["zeta"].enabled
    assert flags["zeta"].variant_names == ("off", "on")
    assert dict(flags["zeta"].variants or {}) == {"on": True, "off": False}
    assert flags["zeta"].default_variant == "off"
    assert not flags["alpha"].enabled
    assert flags["code-default"].default_variant is None


def test_a_json_list_declares_keys_without_variants(tmp_path: Path) -> None:
    flags = load_declared_flags(write(tmp_path, ["b", "a", "b"]))

    assert list(flags) == ["a", "b"]
    assert flags["a"].enabled
    assert flags["a"].variant_names is None


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FlagDefinitionsError, match=r"absent\.json: no such file$"):
        load_declared_flags(tmp_path / "absent.json")


def test_invalid_json_says_where(tmp_path: Path) -> None:
    path = write(tmp_path, '{"flags": {\n  "a": }')

    with pytest.raises(FlagDefinitionsError, match=r"not valid JSON: Expecting value at line 2"):
        load_declared_flags(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (42, "the top level is a number"),
        ({"flag": {}}, 'the object has no "flags" member'),
        ({"flags": []}, '"flags" is a list, not an object'),
        ({"flags": {"a": "on"}}, "flag 'a' is a string, not an object"),
        (
            {"flags": {"a": {"variants": {"on": True}}}},
            'flag \'a\': "state" must be "ENABLED" or "DISABLED", got nothing',
        ),
        (
            {"flags": {"a": {"state": "enabled", "variants": {"on": True}}}},
            'flag \'a\': "state" must be "ENABLED" or "DISABLED", got "enabled"',
        ),
        (
            {"flags": {"a": {"state": "ENABLED", "variants": {}}}},
            "flag 'a': \"variants\" must be an object naming at least one variant, got {}",
        ),
        (
            {"flags": {"a": {"state": "ENABLED", "variants": {"on": 1}, "defaultVariant": "x"}}},
            "flag 'a': \"defaultVariant\" must name one of its variants ('on') or be null, "
            'got "x"',
        ),
        (
            {"flags": {"a": {"state": "ENABLED", "variants": {"on": 1}, "targeting": []}}},
            "flag 'a': \"targeting\" must be an object, got a list",
        ),
        (["a", 3], "item 1 of the list is a number, not a flag key (a non-empty string)"),
        (["a", ""], "item 1 of the list is an empty string, not a flag key (a non-empty string)"),
    ],
)
def test_a_malformed_declaration_says_what_is_wrong(
    tmp_path: Path, data: Any, message: str
) -> None:
    with pytest.raises(FlagDefinitionsError) as raised:
        load_declared_flags(write(tmp_path, data))

    text = str(raised.value)
    assert text.startswith(f"{tmp_path / 'flags.json'}: not a flagd flag definition file")
    assert text.endswith(message)
