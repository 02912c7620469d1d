"""flagscope: see every feature-flag evaluation your application makes, through OpenTelemetry."""

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

__version__ = "0.1.0"
