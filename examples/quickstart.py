"""Quickstart: capture OpenFeature flag evaluations through OpenTelemetry.

Run with ``.venv/bin/python examples/quickstart.py``. (``make demo`` runs something else,
``flagscope demo``: a shop exporting OTLP to a local flagscope server.)
"""

from __future__ import annotations

from openfeature import api
from openfeature.contrib.hook.opentelemetry import TracingHook
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from flagscope import FlagEvaluationSpanExporter, InMemoryAnalyticsCollector


def main() -> None:
    # 1. A collector, and the exporter that feeds it, on your TracerProvider.
    collector = InMemoryAnalyticsCollector(max_size=10_000)
    provider = TracerProvider(resource=Resource.create({"service.name": "quickstart"}))
    provider.add_span_processor(SimpleSpanProcessor(FlagEvaluationSpanExporter(collector)))
    tracer = provider.get_tracer("quickstart")

    # 2. Your flags, evaluated through OpenFeature with its OpenTelemetry hook.
    api.set_provider(
        InMemoryProvider(
            {
                "new-checkout": InMemoryFlag("on", {"on": True, "off": False}),
                "banner-color": InMemoryFlag("red", {"red": "#c05543", "blue": "#1f6feb"}),
                "max-items": InMemoryFlag("ten", {"ten": 10, "five": 5}),
            }
        )
    )
    api.add_hooks([TracingHook()])
    client = api.get_client()

    # The hook adds an event to the current span, so evaluate inside one.
    for user in ("alice", "bob"):
        with tracer.start_as_current_span("GET /checkout"):
            context = EvaluationContext(targeting_key=user)
            client.get_boolean_value("new-checkout", False, context)
            client.get_string_value("banner-color", "#000000", context)
            client.get_integer_value("max-items", 3, context)
            client.get_boolean_value("not-declared", False, context)  # flag_not_found

    provider.shutdown()  # the collector keeps its records after shutdown

    # 3. What was captured.
    print(f"captured {len(collector)} flag evaluations:")
    print(f"  {'flag':<14} {'value':<10} {'variant':<8} {'reason':<8} {'user':<6} {'trace'}")
    for event in collector.events():
        print(
            f"  {event.flag_key:<14} {event.value!r:<10} {event.variant or '-':<8} "
            f"{event.reason:<8} {event.targeting_key or '-':<6} {event.trace_id}"
            + (f"  error={event.error_type}" if event.error_type else "")
        )
    per_flag = collector.counts_by_flag()
    print("per flag:", ", ".join(f"{key}={count}" for key, count in per_flag.items()))


if __name__ == "__main__":
    main()
