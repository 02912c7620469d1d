"""The flags an application declares, read from the file it ships, for flag coverage.

Two formats: the flagd flag definition format (OpenFeature's standard JSON, which the
flagd daemon and the flagd providers' offline file mode read), and a plain JSON list
of flag keys for applications whose flags live elsewhere.

flagd format, as far as coverage needs it::

    {"flags": {"new-checkout": {"state": "ENABLED",
                                "variants": {"on": true, "off": false},
                                "defaultVariant": "off",
                                "targeting": {...}}}}

Everything else in the file (``$schema``, ``$evaluators``, ``metadata``, each flag's
``targeting`` and ``metadata``) is accepted and not read.
"""

from __future__ import annotations

import dataclasses
import json
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

__all__ = ["DeclaredFlag", "FlagDefinitionsError", "load_declared_flags"]

_STATES: Final = ("ENABLED", "DISABLED")


class FlagDefinitionsError(ValueError):
    """The declared-flags file is missing, unreadable, or not in a known format."""


@dataclasses.dataclass(frozen=True, slots=True)
class DeclaredFlag:
    """One flag the application declares.

    Attributes:
        key: The flag's key.
        enabled: False for a flagd flag whose ``state`` is ``DISABLED``.
        variants: The declared variants' values by name, in file order; ``None``
            when the file only lists keys.
        default_variant: flagd's ``defaultVariant``; ``None`` when absent or null
            (the code's default is served) or when the file only lists keys.
    """

    key: str
    enabled: bool = True
    variants: Mapping[str, Any] | None = None
    default_variant: str | None = None

    @property
    def variant_names(self) -> tuple[str, ...] | None:
        """The declared variants' names, sorted; ``None`` when none are declared."""
        return None if self.variants is None else tuple(sorted(self.variants))


def load_declared_flags(path: Path) -> dict[str, DeclaredFlag]:
    """Read a flagd flag definition file, or a JSON list of flag keys.

    Args:
        path: The file.

    Returns:
        The declared flags by key, sorted by key.

    Raises:
        FlagDefinitionsError: The file is missing or unreadable, is not JSON, or
            is neither format; the message names the file and what is wrong.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FlagDefinitionsError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise FlagDefinitionsError(f"{path}: cannot be read ({error})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise FlagDefinitionsError(
            f"{path}: not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        raise FlagDefinitionsError(f"{path}: not valid JSON: nested too deep") from None
    except ValueError as error:
        # json.loads' other refusals, such as an integer of more digits than Python
        # converts (sys.set_int_max_str_digits).
        raise FlagDefinitionsError(f"{path}: not valid JSON: {error}") from None
    try:
        if isinstance(data, list):
            flags = _from_key_list(data)
        elif isinstance(data, dict):
            flags = _from_flagd(data)
        else:
            raise FlagDefinitionsError(f"the top level is {_json_type(data)}")
    except FlagDefinitionsError as error:
        raise FlagDefinitionsError(
            f'{path}: not a flagd flag definition file ({{"flags": {{...}}}}) nor a JSON '
            f"list of flag keys: {error}"
        ) from None
    return dict(sorted(flags.items()))


def _from_key_list(data: list[Any]) -> dict[str, DeclaredFlag]:
    flags: dict[str, DeclaredFlag] = {}
    for index, key in enumerate(data):
        if not isinstance(key, str) or not key:
            what = "an empty string" if key == "" else _json_type(key)
            raise FlagDefinitionsError(
                f"item {index} of the list is {what}, not a flag key (a non-empty string)"
            )
        flags[key] = DeclaredFlag(key)
    return flags


def _from_flagd(data: dict[str, Any]) -> dict[str, DeclaredFlag]:
    if "flags" not in data:
        raise FlagDefinitionsError('the object has no "flags" member')
    definitions = data["flags"]
    if not isinstance(definitions, dict):
        raise FlagDefinitionsError(f'"flags" is {_json_type(definitions)}, not an object')
    flags: dict[str, DeclaredFlag] = {}
    for key, definition in definitions.items():
        if not key:
            raise FlagDefinitionsError('"flags" has an empty flag key')
        flags[key] = _flagd_flag(key, definition)
    return flags


def _flagd_flag(key: str, definition: object) -> DeclaredFlag:
    where = f"flag {key!r}"
    if not isinstance(definition, dict):
        raise FlagDefinitionsError(f"{where} is {_json_type(definition)}, not an object")
    state = definition.get("state")
    if state not in _STATES:
        raise FlagDefinitionsError(
            f'{where}: "state" must be "ENABLED" or "DISABLED", got {_shown(state)}'
        )
    variants = definition.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise FlagDefinitionsError(
            f'{where}: "variants" must be an object naming at least one variant, got '
            f"{_shown(variants)}"
        )
    default = definition.get("defaultVariant")
    if default is not None and (not isinstance(default, str) or default not in variants):
        raise FlagDefinitionsError(
            f'{where}: "defaultVariant" must name one of its variants '
            f"({', '.join(map(repr, variants))}) or be null, got {_shown(default)}"
        )
    targeting = definition.get("targeting")
    if targeting is not None and not isinstance(targeting, dict):
        raise FlagDefinitionsError(
            f'{where}: "targeting" must be an object, got {_json_type(targeting)}'
        )
    return DeclaredFlag(
        key,
        enabled=state == "ENABLED",
        variants=types.MappingProxyType(dict(variants)),
        default_variant=default,
    )


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _shown(value: object) -> str:
    if value is None:
        return "nothing"
    text = json.dumps(value)
    return text if len(text) <= 40 else f"{_json_type(value)}"
