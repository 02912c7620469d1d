"""Flag coverage of a test suite: which flags and variants the tests exercised.

``CoverageRecorder`` is an exporter sink: it counts each evaluation against the test
running when it is recorded, keeping counts and sets of test ids, never the records,
so a long suite costs memory per (flag, variant, test) and not per evaluation. Its
tallies travel as plain data (``to_data``/``merge_data``), which is how pytest-xdist
workers hand theirs to the controller. ``build_report`` joins tallies with the
declared flags into a ``CoverageReport``; ``render_summary`` prints it for the
terminal.

A successful evaluation counts for its variant, or, when the producer sent no
variant, for its value (as canonical JSON text, so the string ``"on"`` shows as
``"on"`` with its quotes). A declared, enabled flagd flag maps such a value back to
the one declared variant that holds it. Failed evaluations count for the flag and in
``errors``, for no variant: the value they carry is the code's default.
"""

from __future__ import annotations

import dataclasses
import threading
import types
from collections.abc import Iterable, Mapping
from typing import Any

from flagscope._query.filters import value_key
from flagscope._store.records import EvaluationReason, FlagEvaluationEvent
from flagscope.testing._declarations import DeclaredFlag

__all__ = [
    "CoverageData",
    "CoverageRecorder",
    "CoverageReport",
    "FlagCoverage",
    "VariantCoverage",
    "build_report",
    "render_summary",
]

# The plain form of a recorder's tallies: JSON- and execnet-safe.
# {flag: {"evaluations": int, "errors": int, "tests": [...],
#         "variants": {name: {"evaluations": int, "tests": [...]}},
#         "values": {json_text: {"evaluations": int, "tests": [...]}}}}
CoverageData = dict[str, dict[str, Any]]


class _Count:
    """Evaluations of one variant (or value) and the tests that made them."""

    __slots__ = ("evaluations", "tests")

    def __init__(self) -> None:
        self.evaluations = 0
        self.tests: set[str] = set()

    def add(self, evaluations: int, tests: Iterable[str]) -> None:
        self.evaluations += evaluations
        self.tests.update(tests)

    def to_data(self) -> dict[str, Any]:
        return {"evaluations": self.evaluations, "tests": sorted(self.tests)}


class _FlagTally(_Count):
    """One flag's counts: all its evaluations, its failures, per variant and per value."""

    __slots__ = ("errors", "values", "variants")

    def __init__(self) -> None:
        super().__init__()
        self.errors = 0
        self.variants: dict[str, _Count] = {}
        self.values: dict[str, _Count] = {}


class CoverageRecorder:
    """Counts flag evaluations per test; an ``EventSink`` for the shared exporter.

    ``begin(nodeid)`` and ``end()`` bracket a test. The exporter may call
    ``record_batch`` from any thread (the batch processor's worker too), so the
    running test is a plain attribute, not a context variable, and the tallies are
    guarded by a lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._test: str | None = None
        self._flags: dict[str, _FlagTally] = {}

    def begin(self, nodeid: str) -> None:
        """Count what is recorded from now on for the test ``nodeid``."""
        self._test = nodeid

    def end(self) -> None:
        """Stop counting for the current test; later evaluations belong to no test."""
        self._test = None

    def record_batch(self, events: list[FlagEvaluationEvent]) -> int:
        """Count the evaluations for the running test (or for no test, between tests)."""
        test = self._test
        count = 0
        with self._lock:
            flags = self._flags
            for event in events:
                count += 1
                tally = flags.get(event.flag_key)
                if tally is None:
                    tally = flags[event.flag_key] = _FlagTally()
                tally.evaluations += 1
                if test is not None:
                    tally.tests.add(test)
                if event.error_type is not None or event.reason == EvaluationReason.ERROR:
                    tally.errors += 1
                    continue
                if event.variant is not None:
                    counts, key = tally.variants, event.variant
                else:
                    counts, key = tally.values, value_key(event.value)
                entry = counts.get(key)
                if entry is None:
                    entry = counts[key] = _Count()
                entry.evaluations += 1
                if test is not None:
                    entry.tests.add(test)
        return count

    def to_data(self) -> CoverageData:
        """The tallies as plain data, sorted: what a pytest-xdist worker sends."""
        with self._lock:
            return {
                key: {
                    **tally.to_data(),
                    "errors": tally.errors,
                    "variants": {name: c.to_data() for name, c in sorted(tally.variants.items())},
                    "values": {text: c.to_data() for text, c in sorted(tally.values.items())},
                }
                for key, tally in sorted(self._flags.items())
            }

    def merge_data(self, data: CoverageData) -> None:
        """Add another recorder's ``to_data()`` to these tallies.

        Raises:
            ValueError: ``data`` is not in ``to_data()``'s form.
        """
        try:
            with self._lock:
                for key, flag in data.items():
                    tally = self._flags.get(key)
                    if tally is None:
                        tally = self._flags[key] = _FlagTally()
                    tally.add(int(flag["evaluations"]), flag["tests"])
                    tally.errors += int(flag["errors"])
                    for part, counts in (("variants", tally.variants), ("values", tally.values)):
                        for name, entry in flag[part].items():
                            counts.setdefault(name, _Count()).add(
                                int(entry["evaluations"]), entry["tests"]
                            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"not flag coverage data: {error!r}") from None


@dataclasses.dataclass(frozen=True, slots=True)
class VariantCoverage:
    """How often one variant (or value) was served, and to which tests."""

    evaluations: int
    tests: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: evaluations and the sorted test ids."""
        return {"evaluations": self.evaluations, "tests": list(self.tests)}


@dataclasses.dataclass(frozen=True, slots=True)
class FlagCoverage:
    """One flag's coverage: its evaluations, tests and variants, against its declaration.

    Attributes:
        flag_key: The flag.
        evaluations: How many evaluations, failed ones included.
        errors: How many of them failed (no variant counted for those).
        tests: The tests that evaluated it, sorted.
        variants: Per variant name (or value JSON text), sorted by key.
        declared: The declaration, or ``None`` for a flag the file does not declare
            (or when no file was given).
    """

    flag_key: str
    evaluations: int
    errors: int
    tests: tuple[str, ...]
    variants: Mapping[str, VariantCoverage]
    declared: DeclaredFlag | None

    @property
    def disabled(self) -> bool:
        """Whether the flag is declared with flagd ``state`` ``DISABLED``."""
        return self.declared is not None and not self.declared.enabled

    @property
    def declared_variants(self) -> tuple[str, ...] | None:
        """The declared variant names, sorted; ``None`` when none are declared."""
        return None if self.declared is None else self.declared.variant_names

    @property
    def missing_variants(self) -> tuple[str, ...]:
        """Declared variants no test exercised; always empty for a disabled flag."""
        declared = self.declared_variants
        if declared is None or self.disabled:
            return ()
        return tuple(name for name in declared if name not in self.variants)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``--flagscope-coverage-json``)."""
        declared = self.declared_variants
        return {
            "evaluations": self.evaluations,
            "errors": self.errors,
            "tests": list(self.tests),
            "variants": {name: entry.to_dict() for name, entry in self.variants.items()},
            "declared_variants": None if declared is None else list(declared),
            "missing_variants": list(self.missing_variants),
            "state": self.state,
        }

    @property
    def state(self) -> str | None:
        """The declared flagd ``state``, ``ENABLED`` or ``DISABLED``; else ``None``."""
        if self.declared is None or self.declared.variants is None:
            return None
        return "ENABLED" if self.declared.enabled else "DISABLED"


@dataclasses.dataclass(frozen=True, slots=True)
class CoverageReport:
    """The suite's flag coverage.

    Attributes:
        flags: Every evaluated or declared flag, sorted by key.
        never_evaluated: Declared flags, not disabled, that no test evaluated.
        undeclared: Evaluated flags the declarations do not name (empty when
            nothing was declared).
        declarations_given: Whether a declared-flags file was read.
    """

    flags: Mapping[str, FlagCoverage]
    never_evaluated: tuple[str, ...]
    undeclared: tuple[str, ...]
    declarations_given: bool

    @property
    def missing_variants(self) -> dict[str, tuple[str, ...]]:
        """Declared, enabled flags with variants no test exercised, and those variants."""
        missing = {key: flag.missing_variants for key, flag in self.flags.items()}
        return {key: names for key, names in missing.items() if names}

    @property
    def tests(self) -> tuple[str, ...]:
        """Every test that evaluated a flag, sorted."""
        return tuple(sorted({test for flag in self.flags.values() for test in flag.tests}))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: flags, never_evaluated, undeclared; stable from run to run."""
        return {
            "flags": {key: flag.to_dict() for key, flag in self.flags.items()},
            "never_evaluated": list(self.never_evaluated),
            "undeclared": list(self.undeclared),
        }


def build_report(
    data: CoverageData, declared: Mapping[str, DeclaredFlag] | None = None
) -> CoverageReport:
    """Join a recorder's tallies with the declared flags.

    Args:
        data: ``CoverageRecorder.to_data()``, merged over workers if need be.
        declared: The declared flags by key; ``None`` when no file was given.

    Returns:
        The report; every list in it is sorted, so equal tallies give equal JSON.
    """
    declared = declared or {}
    flags: dict[str, FlagCoverage] = {}
    for key in sorted(set(data) | set(declared)):
        tally = data.get(key)
        declaration = declared.get(key)
        if tally is None:
            flags[key] = FlagCoverage(key, 0, 0, (), types.MappingProxyType({}), declaration)
            continue
        counts = _variant_counts(tally, declaration)
        flags[key] = FlagCoverage(
            key,
            evaluations=tally["evaluations"],
            errors=tally["errors"],
            tests=tuple(sorted(tally["tests"])),
            variants=types.MappingProxyType(
                {
                    name: VariantCoverage(count.evaluations, tuple(sorted(count.tests)))
                    for name, count in sorted(counts.items())
                }
            ),
            declared=declaration,
        )
    never = tuple(
        key
        for key, flag in flags.items()
        if flag.evaluations == 0 and key in declared and not flag.disabled
    )
    undeclared = tuple(key for key in flags if declared and key not in declared)
    return CoverageReport(
        types.MappingProxyType(flags),
        never_evaluated=never,
        undeclared=undeclared,
        declarations_given=bool(declared),
    )


def _variant_counts(
    tally: Mapping[str, Any], declaration: DeclaredFlag | None
) -> dict[str, _Count]:
    counts: dict[str, _Count] = {}
    for name, entry in tally["variants"].items():
        counts.setdefault(name, _Count()).add(entry["evaluations"], entry["tests"])
    by_value: dict[str, str] = {}
    if declaration is not None and declaration.enabled and declaration.variants is not None:
        holders: dict[str, list[str]] = {}
        for name, value in declaration.variants.items():
            holders.setdefault(value_key(value), []).append(name)
        # Only an unambiguous value names its variant.
        by_value = {text: names[0] for text, names in holders.items() if len(names) == 1}
    for text, entry in tally["values"].items():
        name = by_value.get(text, text)
        counts.setdefault(name, _Count()).add(entry["evaluations"], entry["tests"])
    return counts


def render_summary(report: CoverageReport, *, verbose: bool = False) -> list[str]:
    """The terminal summary's lines, without the section header.

    Compact: one line per flag with its evaluations, tests, and per variant the
    number of tests that saw it; declared variants never exercised are marked.
    ``verbose`` lists each variant's tests under its flag.
    """
    if not report.flags:
        return [
            "no flag evaluations were recorded (flag hooks add their events to the current "
            "span: evaluate inside a span, through a TracerProvider from the OpenTelemetry SDK)"
        ]
    rows = [("flag", "evaluations", "tests", "tests per variant")]
    details: list[list[str]] = [[]]
    for key, flag in report.flags.items():
        rows.append((key, str(flag.evaluations), str(len(flag.tests)), _variant_cell(flag)))
        details.append(_variant_tests(flag) if verbose else [])
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = []
    for (key, evaluations, tests, variants), extra in zip(rows, details, strict=True):
        lines.append(
            f"{key:<{widths[0]}}  {evaluations:>{widths[1]}}  {tests:>{widths[2]}}  {variants}"
        )
        lines.extend(extra)
    lines.append(_totals(report))
    if report.never_evaluated:
        lines.append(f"declared flags never evaluated: {', '.join(report.never_evaluated)}")
    missing = report.missing_variants
    if missing:
        lines.append(f"declared variants never exercised: {describe_missing(missing)}")
    if report.undeclared:
        lines.append(f"evaluated but not declared: {', '.join(report.undeclared)}")
    return lines


def describe_missing(missing: Mapping[str, Iterable[str]]) -> str:
    """``flag (variant, variant); flag (variant)``, in key order."""
    return "; ".join(f"{key} ({', '.join(names)})" for key, names in missing.items())


def _variant_cell(flag: FlagCoverage) -> str:
    if flag.disabled:
        return f"disabled: {_counts(flag)}" if flag.variants else "disabled"
    if flag.evaluations == 0:
        return "never evaluated"
    declared = flag.declared_variants
    parts = []
    for name in sorted({*flag.variants, *flag.missing_variants}):
        entry = flag.variants.get(name)
        if entry is None:
            parts.append(f"{name} 0 (never exercised)")
        elif declared is not None and name not in declared:
            parts.append(f"{name} {len(entry.tests)} (not declared)")
        else:
            parts.append(f"{name} {len(entry.tests)}")
    if flag.errors:
        parts.append(f"{flag.errors} failed evaluation{'' if flag.errors == 1 else 's'}")
    return ", ".join(parts)


def _counts(flag: FlagCoverage) -> str:
    return ", ".join(f"{name} {len(entry.tests)}" for name, entry in flag.variants.items())


def _variant_tests(flag: FlagCoverage) -> list[str]:
    lines = []
    for name, entry in flag.variants.items():
        lines.append(f"    {name}:")
        lines.extend(f"      {test}" for test in entry.tests)
    for name in flag.missing_variants:
        lines.append(f"    {name}: no test")
    return lines


def _totals(report: CoverageReport) -> str:
    evaluated = sum(1 for flag in report.flags.values() if flag.evaluations)
    text = f"{evaluated} flags evaluated by {len(report.tests)} tests"
    if report.declarations_given:
        declared = sum(1 for flag in report.flags.values() if flag.declared is not None)
        disabled = sum(1 for flag in report.flags.values() if flag.disabled)
        text += f"; {declared} declared ({disabled} disabled)"
    return text
