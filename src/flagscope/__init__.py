"""flagscope: see every feature-flag evaluation your application makes, through OpenTelemetry."""

from flagscope.collector import AnalyticsCollector, InMemoryAnalyticsCollector
from flagscope.exporter import EventSink, FlagEvaluationSpanExporter
from flagscope.mapping import SkipReason, ValueDecoding, decode_value, map_evaluation
from flagscope.models import EvaluationReason, FlagEvaluationEvent
from flagscope.stats import ExporterStats

__all__ = [
    "AnalyticsCollector",
    "EvaluationReason",
    "EventSink",
    "ExporterStats",
    "FlagEvaluationEvent",
    "FlagEvaluationSpanExporter",
    "InMemoryAnalyticsCollector",
    "SkipReason",
    "ValueDecoding",
    "decode_value",
    "map_evaluation",
]

__version__ = "0.1.0"
