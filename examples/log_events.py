"""Log-based flag evaluation events, through the OpenTelemetry SDK's logs pipeline.

The semantic conventions define ``feature_flag.evaluation`` as a log-based event too;
``FlagEvaluationLogExporter`` maps those log records with the span exporter's mapper.
Run with ``.venv/bin/python examples/log_events.py``.
"""

from __future__ import annotations

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

from flagscope import FlagEvaluationLogExporter, InMemoryAnalyticsCollector


def main() -> None:
    collector = InMemoryAnalyticsCollector(max_size=1_000)
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(FlagEvaluationLogExporter(collector))
    )

    # What a producer of log-based events emits (semantic conventions v1.34 and later).
    logger = logger_provider.get_logger("checkout")
    logger.emit(
        event_name="feature_flag.evaluation",
        attributes={
            "feature_flag.key": "new-checkout",
            "feature_flag.result.variant": "on",
            "feature_flag.result.value": True,
            "feature_flag.result.reason": "targeting_match",
            "feature_flag.context.id": "alice",
        },
    )
    logger_provider.shutdown()

    for event in collector.events():
        print(event.flag_key, event.value, event.variant, event.reason, event.targeting_key)


if __name__ == "__main__":
    main()
