"""Flag values: the JSON model they are stored in, and the one rule for comparing them.

Every stored value is a plain JSON-model Python value: ``dict`` (string keys),
``list``, ``str``, ``int``, ``float``, ``bool`` or ``None``. Two values are equal
when their canonical JSON text (``value_key``) is equal, which means:

* ``1 == 1.0``: JSON has one number type, and JavaScript producers send one
  evaluation as an ``intValue`` or a ``doubleValue`` depending on the number;
* ``True != 1`` and ``False != 0``: a boolean flag is not a number flag;
* ``NaN`` equals ``NaN`` (a stored NaN can be filtered, counted and asserted), and
  ``-0.0`` equals ``0.0``;
* mappings compare by content whatever their key order, tuples equal lists;
* strings compare exactly (``"1"`` is not ``1``).

Every filter, wait, assertion, snapshot, ``by_value`` count, inventory check and
the JSON API's ``value=`` parameter goes through ``value_key``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["clean_text", "plain_value", "value_key", "values_equal"]

_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_REPLACEMENT: Final = "\ufffd"


def clean_text(text: str) -> str:
    r"""Return ``text`` with lone surrogates replaced by U+FFFD.

    A lone surrogate (``"\ud800"``, which JSON text can spell) is a Python
    string that cannot be written as UTF-8: stored as it is, it would make every
    JSON response, export and terminal table that shows it fail. Valid text is
    returned as it is (the common ASCII case costs one flag check).
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _LONE_SURROGATE.sub(_REPLACEMENT, text)
    return text


def plain_value(value: Any) -> Any:
    """Return ``value`` in the JSON model: dicts with str keys, lists, scalars.

    Tuples (OTLP arrays, SDK sequence attributes) become lists, mappings (log
    attributes, ``MappingProxyType``) dicts, bytes their hex text; strings get
    lone surrogates replaced (``clean_text``). Anything else is returned as it is.
    """
    kind = type(value)
    if kind is str:
        return clean_text(value)
    if value is None or kind is bool or kind is int or kind is float:
        return value
    if isinstance(value, Mapping):
        return {clean_text(str(k)): plain_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return value


def _canonical(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        if value != value:
            return value
        if value.is_integer():
            return int(value)  # 1.0 is 1, -0.0 is 0
        return value
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return value


def value_key(value: Any) -> str:
    """Return the canonical JSON text of a flag value: equal values, equal keys.

    Keys are sorted, no spaces; integral floats print as integers (``1.0`` is
    ``1``); non-finite floats print as ``NaN``/``Infinity``/``-Infinity``;
    anything JSON cannot hold prints as its ``repr``. Used for comparing and for
    counting (``FlagSummary.by_value`` is keyed by it).
    """
    if value is None:
        return "null"
    kind = type(value)
    if kind is str or kind is bool:
        return json.dumps(value, ensure_ascii=False)
    if kind is int:
        return str(value)
    if kind is float:
        if value != value:
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value.is_integer():
            return str(int(value))
        return repr(value)
    try:
        return json.dumps(
            _canonical(value),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=repr,
        )
    except (TypeError, ValueError, RecursionError):
        # Keys of mixed types cannot be sorted; the repr still tells values apart.
        return repr(value)


def values_equal(left: Any, right: Any) -> bool:
    """Whether two flag values are equal under flagscope's one rule (see the module)."""
    return value_key(left) == value_key(right)
