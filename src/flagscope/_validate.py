"""Argument checks, in one place: every public entry point validates through these.

Each check returns the value in the type the caller works with, or raises a
``TypeError`` (wrong type) or ``ValueError`` (right type, wrong value) that names the
argument and what was given. ``bool`` is never taken for a number, although Python
makes it an ``int``: ``max_size=True`` is a mistake, not a size of 1.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from typing import Literal, TypeGuard, TypeVar, overload

__all__ = [
    "check_aware_datetime",
    "check_bool",
    "check_choice",
    "check_int",
    "check_keys",
    "check_optional_int",
    "check_positive_duration",
    "check_seconds",
    "check_str",
]

_Choice = TypeVar("_Choice", bound=str)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(name: str, value: object, *, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` if it is an int (not a bool) from ``minimum`` to ``maximum``.

    Raises:
        TypeError: It is not an int.
        ValueError: It is out of range.
    """
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if maximum is not None and not minimum <= value <= maximum:
        raise ValueError(f"{name} must be between {minimum} and {maximum}, got {value}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def check_optional_int(name: str, value: object, *, minimum: int) -> int | None:
    """Return ``value`` if it is ``None`` or an int (not a bool) of at least ``minimum``.

    Raises:
        TypeError: It is neither ``None`` nor an int.
        ValueError: It is below ``minimum``.
    """
    if value is None:
        return None
    if not _is_int(value):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__}")
    return check_int(name, value, minimum=minimum)


@overload
def check_seconds(
    name: str, value: object, *, optional: Literal[False] = False, zero: bool = False
) -> float: ...
@overload
def check_seconds(
    name: str, value: object, *, optional: Literal[True], zero: bool = False
) -> float | None: ...
def check_seconds(
    name: str, value: object, *, optional: bool = False, zero: bool = False
) -> float | None:
    """Return ``value`` as a float of seconds: finite and above 0 (or at least 0 with ``zero``).

    Args:
        name: The argument's name, for the message.
        value: What was given.
        optional: ``None`` is allowed (and returned).
        zero: 0 is allowed.

    Raises:
        TypeError: It is not a number.
        ValueError: It is negative, NaN, infinite, or 0 without ``zero``.
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        expected = "a number of seconds or None" if optional else "a number of seconds"
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__}")
    shown: object = value
    try:
        seconds = float(value)
    except OverflowError:
        # An int beyond any float (10**400): as long as infinity, where that is allowed.
        seconds = math.inf if value > 0 else -math.inf
        shown = "an integer beyond any float"
    if zero:
        if math.isnan(seconds) or seconds < 0:
            raise ValueError(f"{name} must be at least 0 seconds, got {shown}")
    elif not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"{name} must be a finite number of seconds above 0, got {shown}")
    return seconds


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool.

    Raises:
        TypeError: It is not (``0`` and ``1`` included).
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def check_str(name: str, value: object) -> str:
    """Return ``value`` if it is a str.

    Raises:
        TypeError: It is not.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return value


def check_aware_datetime(name: str, value: object) -> datetime:
    """Return ``value`` if it is a timezone-aware datetime.

    Raises:
        TypeError: It is not a datetime.
        ValueError: It is naive.
    """
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} must be timezone-aware (records are in UTC), got naive {value.isoformat()}"
        )
    return value


def check_positive_duration(name: str, value: object) -> timedelta:
    """Return ``value`` if it is a ``timedelta`` above zero.

    Raises:
        TypeError: It is not a ``timedelta``.
        ValueError: It is zero or negative.
    """
    if not isinstance(value, timedelta):
        raise TypeError(f"{name} must be a datetime.timedelta, got {type(value).__name__}")
    if value <= timedelta(0):
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def check_keys(name: str, value: object, *, one_str: bool = False) -> frozenset[str]:
    """Return flag keys as a set: a collection of str (or one str, with ``one_str``).

    Raises:
        TypeError: It is a str (without ``one_str``), not iterable, or holds a non-str.
    """
    if isinstance(value, str):
        if one_str:
            return frozenset((value,))
        raise TypeError(f"{name} must be a collection of flag keys, not one str: {value!r}")
    if not isinstance(value, (Collection, Iterable)):
        kind = "a str or a collection of str" if one_str else "a collection of flag keys"
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__}")
    items = tuple(value)
    try:
        keys = frozenset(items)
    except TypeError:
        kinds = sorted({type(key).__name__ for key in items if not isinstance(key, str)})
        raise TypeError(f"{name} must hold flag keys (str), got {', '.join(kinds)}") from None
    for key in keys:
        if not isinstance(key, str):
            raise TypeError(f"{name} must hold flag keys (str), got {type(key).__name__}")
    return keys


def check_choice(name: str, value: object, choices: tuple[_Choice, ...]) -> _Choice:
    """Return ``value`` if it is one of ``choices`` (strings).

    Raises:
        TypeError: It is not a str.
        ValueError: It is another string.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {choices}, got {type(value).__name__}")
    for choice in choices:
        if value == choice:
            return choice
    raise ValueError(f"{name} must be one of {choices}, got {value!r}")
