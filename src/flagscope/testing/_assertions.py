"""What the capture's ``assert_*`` methods check, over a snapshot of its records.

Each function raises ``AssertionError`` with a table of what was evaluated
instead; ``__tracebackhide__`` keeps these frames out of pytest's tracebacks.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Final

from flagscope._store.records import FlagEvaluationEvent, json_safe
from flagscope._store.values import values_equal
from flagscope._validate import check_keys, check_str
from flagscope.testing._table import column_names, describe_counts, how_often, plural, short, table

__all__ = [
    "UNSET",
    "Unset",
    "check_flag_key",
    "check_flag_keys",
    "evaluated",
    "no_errors",
    "not_evaluated",
    "only_evaluated",
    "unexpected_flags",
]


class Unset(enum.Enum):
    """The type of ``UNSET``."""

    UNSET = enum.auto()

    def __repr__(self) -> str:
        return "<unset>"


UNSET: Final = Unset.UNSET
"""Default of the assertion keywords: the field is not checked (so ``None`` can be)."""


def check_flag_key(flag_key: object) -> None:
    """Raise ``TypeError`` unless ``flag_key`` is a str."""
    check_str("flag_key", flag_key)


def check_flag_keys(name: str, keys: object) -> frozenset[str]:
    """Return ``keys`` as a set; ``TypeError`` unless it is a collection of str (not a str)."""
    return check_keys(name, keys)


def unexpected_flags(
    events: Iterable[FlagEvaluationEvent], allowed: Collection[str]
) -> dict[str, int]:
    """Count the evaluations of each flag outside ``allowed``, first evaluated first."""
    counts: dict[str, int] = {}
    for event in events:
        if event.flag_key not in allowed:
            counts[event.flag_key] = counts.get(event.flag_key, 0) + 1
    return counts


def evaluated(
    events: list[FlagEvaluationEvent], flag_key: str, *, times: int | None, **fields: Any
) -> list[FlagEvaluationEvent]:
    """Check ``assert_evaluated``; ``fields`` are its keywords, ``UNSET`` ones unchecked."""
    __tracebackhide__ = True
    check_flag_key(flag_key)
    if times is not None and (isinstance(times, bool) or not isinstance(times, int)):
        raise TypeError(f"times must be an int or None, got {times!r}")
    if times is not None and times < 0:
        raise ValueError(f"times must be at least 0, got {times}")
    expected = {name: wanted for name, wanted in fields.items() if wanted is not UNSET}
    if "reason" in expected and expected["reason"] is not None:
        expected["reason"] = str(check_str("reason", expected["reason"])).lower()
    notes: dict[int, str] = {}
    matches: list[FlagEvaluationEvent] = []
    for index, event in enumerate(events):
        if event.flag_key != flag_key:
            continue
        differences = _differences(event, expected)
        notes[index] = "; ".join(differences) if differences else ("matches" if expected else "")
        if not differences:
            matches.append(event)
    if (times is None and matches) or (times is not None and len(matches) == times):
        return matches
    with_part = (
        " with " + ", ".join(f"{name}={wanted!r}" for name, wanted in expected.items())
        if expected
        else ""
    )
    wanted_times = "" if times is None else f" {how_often(times)}"
    headline = f"expected flag {flag_key!r} to be evaluated{wanted_times}{with_part}; "
    if not notes:
        headline += "it was not evaluated"
    elif not expected:
        headline += f"it was evaluated {how_often(len(notes))}"
    else:
        headline += f"{len(matches)} of its {plural(len(notes), 'evaluation')} matched"
    columns = column_names(with_targeting="targeting_key" in expected)
    raise AssertionError(
        headline + "\n" + table(events, notes, columns, marks=f"> marks {flag_key!r}")
    )


def not_evaluated(events: list[FlagEvaluationEvent], flag_key: str) -> None:
    """Check ``assert_not_evaluated``."""
    __tracebackhide__ = True
    check_flag_key(flag_key)
    notes = {index: "" for index, event in enumerate(events) if event.flag_key == flag_key}
    if notes:
        raise AssertionError(
            f"expected flag {flag_key!r} not to be evaluated; it was evaluated "
            f"{how_often(len(notes))}\n"
            + table(events, notes, column_names(), marks=f"> marks {flag_key!r}")
        )


def no_errors(events: list[FlagEvaluationEvent]) -> None:
    """Check ``assert_no_errors``."""
    __tracebackhide__ = True
    notes = {
        index: event.error_message or "" for index, event in enumerate(events) if event.is_error
    }
    if notes:
        raise AssertionError(
            f"expected no failed flag evaluations; {len(notes)} of {len(events)} failed\n"
            + table(events, notes, column_names(), marks="> marks failures", note="message")
        )


def only_evaluated(events: list[FlagEvaluationEvent], allowed: Collection[str]) -> None:
    """Check ``assert_only_evaluated`` (and a strict capture's ``expected_flags``)."""
    __tracebackhide__ = True
    unexpected = unexpected_flags(events, allowed)
    if unexpected:
        notes = {index: "" for index, event in enumerate(events) if event.flag_key in unexpected}
        raise AssertionError(
            f"unexpected flags evaluated (expected only {sorted(allowed)!r}): "
            f"{describe_counts(unexpected)}\n"
            + table(events, notes, column_names(), marks="> marks unexpected flags")
        )


def _differences(event: FlagEvaluationEvent, expected: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for name, wanted in expected.items():
        actual: Any = getattr(event, name)
        if name == "value":
            same = values_equal(actual, wanted)
            actual = json_safe(actual)
        elif name == "reason":
            actual = str(actual)
            same = actual == wanted
        else:
            same = actual == wanted
        if not same:
            found.append(f"{name} {short(repr(actual))} != {short(repr(wanted))}")
    return found
