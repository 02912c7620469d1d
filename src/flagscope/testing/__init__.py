"""Capture the flag evaluations a test makes, and assert on them.

``capture_flag_evaluations()`` works anywhere (unittest, scripts); the pytest
plugin's ``flag_evaluations`` fixture is a thin wrapper around it.

The package: ``capture`` holds the capture object; ``_attachment`` how it reaches
the spans (one processor per provider, shared by every capture); ``_assertions``
what its ``assert_*`` methods check; ``_table`` their failure messages;
``_snapshot`` records as plain dicts. Flag coverage of a whole suite
(``pytest --flagscope-coverage``): ``_declarations`` reads the declared flags,
``_coverage`` counts evaluations per test and builds the report, and
``_coverage_plugin`` is the pytest plugin the main plugin registers when asked.

The names below are imported when first used (PEP 562), so the pytest plugin can
load this package without the OpenTelemetry SDK.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any, Final

from flagscope.testing._kinds import PROCESSOR_KINDS, SpanProcessorKind

if TYPE_CHECKING:
    from flagscope.testing._assertions import UNSET
    from flagscope.testing._attachment import resolve_tracer_provider
    from flagscope.testing._capture import (
        FlagEvaluationCapture,
        UnexpectedFlagWarning,
        capture_flag_evaluations,
    )
    from flagscope.testing._snapshot import DEFAULT_SNAPSHOT_FIELDS

__all__ = [
    "DEFAULT_SNAPSHOT_FIELDS",
    "PROCESSOR_KINDS",
    "UNSET",
    "FlagEvaluationCapture",
    "SpanProcessorKind",
    "UnexpectedFlagWarning",
    "capture_flag_evaluations",
    "resolve_tracer_provider",
]

_WHERE: Final = {
    "DEFAULT_SNAPSHOT_FIELDS": "flagscope.testing._snapshot",
    "UNSET": "flagscope.testing._assertions",
    "FlagEvaluationCapture": "flagscope.testing._capture",
    "UnexpectedFlagWarning": "flagscope.testing._capture",
    "capture_flag_evaluations": "flagscope.testing._capture",
    "resolve_tracer_provider": "flagscope.testing._attachment",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'flagscope.testing' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
