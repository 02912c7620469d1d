"""flagscope: see every feature-flag evaluation your application makes, through OpenTelemetry.

The names below are imported when first used (PEP 562): ``import flagscope``, and
the pytest plugin every pytest run loads, import no OpenTelemetry module until a
name that needs the SDK is asked for.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from flagscope._query.aggregates import FlagSummary, InventoryReport, TimeBucket
    from flagscope._query.collector import AnalyticsCollector, InMemoryAnalyticsCollector
    from flagscope._query.export import (
        to_csv,
        to_json,
        to_jsonl,
        write_csv,
        write_json,
        write_jsonl,
    )
    from flagscope._query.filters import FilterArgs
    from flagscope._query.impact import FlagImpact, VariantImpact
    from flagscope._query.query import CollectorQuery
    from flagscope._store.outcomes import SpanOutcome
    from flagscope._store.records import EvaluationReason, FlagEvaluationEvent
    from flagscope._telemetry.exporter import EventSink, FlagEvaluationSpanExporter
    from flagscope._telemetry.log_exporter import FlagEvaluationLogExporter
    from flagscope._telemetry.mapping import SkipReason, ValueDecoding, decode_value, map_evaluation
    from flagscope._telemetry.stats import ExporterStats
    from flagscope.testing import FlagEvaluationCapture, capture_flag_evaluations

__all__ = [
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
]

if TYPE_CHECKING:
    # One source for the version: the package metadata, written from pyproject.toml
    # (read on first use, below).
    __version__: str

# Public name -> the module that defines it.
_WHERE: Final = {
    "AnalyticsCollector": "flagscope._query.collector",
    "CollectorQuery": "flagscope._query.query",
    "EvaluationReason": "flagscope._store.records",
    "EventSink": "flagscope._telemetry.exporter",
    "ExporterStats": "flagscope._telemetry.stats",
    "FilterArgs": "flagscope._query.filters",
    "FlagEvaluationCapture": "flagscope.testing",
    "FlagEvaluationEvent": "flagscope._store.records",
    "FlagEvaluationLogExporter": "flagscope._telemetry.log_exporter",
    "FlagEvaluationSpanExporter": "flagscope._telemetry.exporter",
    "FlagImpact": "flagscope._query.impact",
    "FlagSummary": "flagscope._query.aggregates",
    "InMemoryAnalyticsCollector": "flagscope._query.collector",
    "InventoryReport": "flagscope._query.aggregates",
    "SkipReason": "flagscope._telemetry.mapping",
    "SpanOutcome": "flagscope._store.outcomes",
    "TimeBucket": "flagscope._query.aggregates",
    "ValueDecoding": "flagscope._telemetry.mapping",
    "VariantImpact": "flagscope._query.impact",
    "capture_flag_evaluations": "flagscope.testing",
    "decode_value": "flagscope._telemetry.mapping",
    "map_evaluation": "flagscope._telemetry.mapping",
    "to_csv": "flagscope._query.export",
    "to_json": "flagscope._query.export",
    "to_jsonl": "flagscope._query.export",
    "write_csv": "flagscope._query.export",
    "write_json": "flagscope._query.export",
    "write_jsonl": "flagscope._query.export",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib import metadata

        version = metadata.version("flagscope")
        globals()[name] = version
        return version
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'flagscope' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
