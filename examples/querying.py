"""Querying: filter, wait for, summarise and export the flag evaluations a collector holds.

Run with ``.venv/bin/python examples/querying.py``.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

from openfeature import api
from openfeature.contrib.hook.opentelemetry import TracingHook
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from flagscope import FlagEvaluationSpanExporter, InMemoryAnalyticsCollector
from flagscope._query.export import to_csv, write_jsonl


def vip_only(flag: InMemoryFlag[bool], context: EvaluationContext) -> FlagResolutionDetails[bool]:
    if context.attributes.get("plan") == "vip":
        return FlagResolutionDetails(True, variant="on", reason=Reason.TARGETING_MATCH)
    return FlagResolutionDetails(False, variant="off", reason=Reason.DEFAULT)


def main() -> None:
    collector = InMemoryAnalyticsCollector(max_size=10_000)
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(FlagEvaluationSpanExporter(collector)))
    tracer = provider.get_tracer("shop")

    api.set_provider(
        InMemoryProvider(
            {
                "new-checkout": InMemoryFlag(
                    "off", {"on": True, "off": False}, context_evaluator=vip_only
                ),
                "banner-color": InMemoryFlag("red", {"red": "#c05543", "blue": "#1f6feb"}),
            }
        )
    )
    api.add_hooks([TracingHook()])
    client = api.get_client()

    for user, plan in [("alice", "vip"), ("bob", "free"), ("carol", "free")]:
        with tracer.start_as_current_span("GET /checkout"):
            context = EvaluationContext(targeting_key=user, attributes={"plan": plan})
            client.get_boolean_value("new-checkout", False, context)
            client.get_string_value("banner-color", "#000000", context)
    with tracer.start_as_current_span("GET /search"):
        context = EvaluationContext(targeting_key="dave")
        for _ in range(3):  # the same flag, three times in one request
            client.get_boolean_value("new-checkout", False, context)
        client.get_boolean_value("retired-flag", False, context)  # flag_not_found
    provider.shutdown()
    api.shutdown()

    query = collector.query

    # Records: any filters, combined; recording order, or newest first with paging.
    print("vip evaluations:", query.count(flag_key="new-checkout", variant="on"))
    latest = query.events(flag_key="new-checkout", newest_first=True, limit=2)
    print("latest new-checkout users:", [event.targeting_key for event in latest])
    print("errors:", [(e.flag_key, e.error_type) for e in query.events(errors_only=True)])

    # Waiting (returns at once here; with a BatchSpanProcessor it waits for delivery).
    found = query.wait_for(flag_key="banner-color", count=3, timeout=5)
    print("banner colours served:", sorted({event.value for event in found}))

    # Aggregates: per flag, sorted by key; counts by variant, value, reason, ...
    for summary in query.summaries():
        print(
            f"{summary.flag_key}: count={summary.count} variants={dict(summary.by_variant)} "
            f"error_rate={summary.error_rate:.2f} max_per_trace={summary.max_per_trace}"
        )
    overall = query.summary()
    print(f"overall: {overall.count} evaluations, {overall.distinct_targeting_keys} users")
    buckets = query.time_buckets(timedelta(minutes=1))
    print("in one-minute buckets:", sum(bucket.count for bucket in buckets))
    trace_counts = list(query.evaluations_per_trace(flag_key="new-checkout").values())
    print("new-checkout evaluations per trace:", trace_counts)

    # Inventory: the flags the application declares, against what was evaluated.
    report = query.inventory(["new-checkout", "banner-color", "dark-mode"])
    print("never evaluated:", list(report.never_evaluated))
    print("not declared:", list(report.undeclared))
    print("served one variant only:", dict(report.single_variant))
    print("failing:", dict(report.erroring))

    # Exports: JSON, JSON Lines and CSV, of records or of aggregates.
    print(to_csv(query.summaries()).splitlines()[0].split(",")[:4])
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "evaluations.jsonl"
        lines = write_jsonl(query.events(), path)
        print(f"wrote {lines} lines to evaluations.jsonl")


if __name__ == "__main__":
    main()
