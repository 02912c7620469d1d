"""The public surface, pinned: adding or removing a public name is a deliberate change here.

Each package's ``__all__`` is compared with the names below, and every name must
resolve (the package root imports its names lazily, so a typo in its table would
only show when someone asks for that name).
"""

from __future__ import annotations

import importlib

import pytest

SURFACE: dict[str, set[str]] = {
    "flagscope": {
        "AnalyticsCollector",
        "CollectorQuery",
        "EvaluationReason",
        "EventSink",
        "ExporterStats",
        "FilterArgs",
        "FlagEvaluationCapture",
        "FlagEvaluationEvent",
        "FlagEvaluationLogExporter",
        "FlagEvaluationSpanExporter",
        "FlagImpact",
        "FlagSummary",
        "InMemoryAnalyticsCollector",
        "InventoryReport",
        "SkipReason",
        "SpanOutcome",
        "TimeBucket",
        "ValueDecoding",
        "VariantImpact",
        "capture_flag_evaluations",
        "decode_value",
        "map_evaluation",
        "to_csv",
        "to_json",
        "to_jsonl",
        "write_csv",
        "write_json",
        "write_jsonl",
    },
    "flagscope.testing": {
        "DEFAULT_SNAPSHOT_FIELDS",
        "FlagEvaluationCapture",
        "PROCESSOR_KINDS",
        "SpanProcessorKind",
        "UNSET",
        "UnexpectedFlagWarning",
        "capture_flag_evaluations",
        "resolve_tracer_provider",
    },
    "flagscope.server": {
        "BackgroundServer",
        "DEFAULT_MAX_BODY_BYTES",
        "PortInUseError",
        "ReceiverStats",
        "create_app",
        "serve_in_background",
    },
}


@pytest.mark.parametrize("package", sorted(SURFACE))
def test_the_public_names_are_exactly_the_pinned_ones(package: str) -> None:
    module = importlib.import_module(package)
    assert set(module.__all__) == SURFACE[package]
    assert len(module.__all__) == len(set(module.__all__))


@pytest.mark.parametrize(
    ("package", "name"),
    sorted((package, name) for package, names in SURFACE.items() for name in names),
)
def test_every_public_name_resolves(package: str, name: str) -> None:
    module = importlib.import_module(package)
    assert getattr(module, name) is not None
    assert name in dir(module)
