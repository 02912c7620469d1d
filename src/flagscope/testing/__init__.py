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
"""

from flagscope.testing._assertions import UNSET
from flagscope.testing._attachment import (
    PROCESSOR_KINDS,
    SpanProcessorKind,
    resolve_tracer_provider,
)
from flagscope.testing._snapshot import DEFAULT_SNAPSHOT_FIELDS
from flagscope.testing.capture import (
    FlagEvaluationCapture,
    UnexpectedFlagWarning,
    capture_flag_evaluations,
)

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
