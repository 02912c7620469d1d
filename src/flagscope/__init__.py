"""flagscope: see every feature-flag evaluation your application makes, through OpenTelemetry.

The names below are imported when first used (PEP 562): ``import flagscope``, and
the pytest plugin every pytest run loads, import no OpenTelemetry module until a
name that needs the SDK is asked for.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from flagscope.aggregates import FlagSummary, InventoryReport, TimeBucket
    from flagscope.collector import AnalyticsCollector, InMemoryAnalyticsCollector
    from flagscope.exporter import EventSink, FlagEvaluationSpanExporter
    from flagscope.filters import FilterArgs
    from flagscope.impact import FlagImpact, VariantImpact
    from flagscope.log_exporter import FlagEvaluationLogExporter
    from flagscope.mapping import SkipReason, ValueDecoding, decode_value, map_evaluation
    from flagscope.models import EvaluationReason, FlagEvaluationEvent
    from flagscope.outcomes import SpanOutcome
    from flagscope.query import CollectorQuery
    from flagscope.stats import ExporterStats
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
]

if TYPE_CHECKING:
    # One source for the version: the package metadata, written from pyproject.toml
    # (read on first use, below).
    __version__: str

# Public name -> the module that defines it.
_WHERE: Final = {
    "AnalyticsCollector": "flagscope.collector",
    "CollectorQuery": "flagscope.query",
    "EvaluationReason": "flagscope.models",
    "EventSink": "flagscope.exporter",
    "ExporterStats": "flagscope.stats",
    "FilterArgs": "flagscope.filters",
    "FlagEvaluationCapture": "flagscope.testing",
    "FlagEvaluationEvent": "flagscope.models",
    "FlagEvaluationLogExporter": "flagscope.log_exporter",
    "FlagEvaluationSpanExporter": "flagscope.exporter",
    "FlagImpact": "flagscope.impact",
    "FlagSummary": "flagscope.aggregates",
    "InMemoryAnalyticsCollector": "flagscope.collector",
    "InventoryReport": "flagscope.aggregates",
    "SkipReason": "flagscope.mapping",
    "SpanOutcome": "flagscope.outcomes",
    "TimeBucket": "flagscope.aggregates",
    "ValueDecoding": "flagscope.mapping",
    "VariantImpact": "flagscope.impact",
    "capture_flag_evaluations": "flagscope.testing",
    "decode_value": "flagscope.mapping",
    "map_evaluation": "flagscope.mapping",
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
