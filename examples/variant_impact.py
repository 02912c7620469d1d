"""Is the new variant hurting? Judge a 20% rollout by what happens to its requests.

Run with ``.venv/bin/python examples/variant_impact.py``. An OpenFeature flag with the
OpenTelemetry ``TracingHook`` serves ``new-pricing`` to 20% of 3,000 checkout requests;
requests that get it fail more often and run slower. ``collector.query.impact`` compares
each variant's requests with the baseline's. (The latency is simulated with explicit span
times, and seeded, so the script runs in a second and prints the same every time.)
"""

from __future__ import annotations

import math
import random
import zlib

from openfeature import api
from openfeature.contrib.hook.opentelemetry import TracingHook
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from flagscope import FlagEvaluationSpanExporter, InMemoryAnalyticsCollector

# What a checkout does, by pricing variant: (chance of a 500, median latency in ms).
BEHAVIOUR = {"legacy": (0.02, 90.0), "new-pricing": (0.05, 125.0)}


def main() -> None:
    collector = InMemoryAnalyticsCollector(max_size=50_000)
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(SimpleSpanProcessor(FlagEvaluationSpanExporter(collector)))
    tracer = provider.get_tracer("checkout")

    def rollout(flag: InMemoryFlag[str], context: EvaluationContext) -> FlagResolutionDetails[str]:
        # 20% of users, by a stable hash of their key.
        key = context.targeting_key or ""
        variant = "new-pricing" if zlib.crc32(key.encode()) % 5 == 0 else "legacy"
        return FlagResolutionDetails(flag.variants[variant], variant=variant, reason=Reason.SPLIT)

    api.set_provider(
        InMemoryProvider(
            {
                "pricing-engine": InMemoryFlag(
                    "legacy",
                    {"legacy": "v1", "new-pricing": "v2"},
                    context_evaluator=rollout,
                )
            }
        )
    )
    api.add_hooks([TracingHook()])
    client = api.get_client()

    rng = random.Random(7)
    now = 1_767_225_600_000_000_000  # 2026-01-01, in ns
    for request in range(3000):
        context = EvaluationContext(targeting_key=f"user-{request % 997}")
        span = tracer.start_span("POST /checkout", kind=SpanKind.SERVER, start_time=now)
        with trace.use_span(span, end_on_exit=False):
            engine = client.get_string_value("pricing-engine", "v1", context)
        failure_rate, median_ms = BEHAVIOUR["new-pricing" if engine == "v2" else "legacy"]
        failed = rng.random() < failure_rate
        span.set_attribute("http.response.status_code", 500 if failed else 200)
        if failed:
            span.set_status(Status(StatusCode.ERROR, "pricing timed out"))
        duration_ns = int(median_ms * math.exp(rng.gauss(0.0, 0.4)) * 1e6)
        span.end(end_time=now + duration_ns)
        now += duration_ns

    impact = collector.query.impact("pricing-engine", baseline="legacy")
    print(f"flag {impact.flag_key}, baseline {impact.baseline}, judged per {impact.scope}")
    for variant in impact.variants:
        low, high = variant.error_rate_interval or (0.0, 0.0)
        print(
            f"  {variant.variant:<12} {variant.requests:>5} requests"
            f"  errors {variant.error_rate or 0:6.2%} (95% CI {low:.2%}-{high:.2%})"
            f"  p50 {variant.duration_p50_ms or 0:6.1f} ms"
            f"  p95 {variant.duration_p95_ms or 0:6.1f} ms"
            f"  -> {variant.verdict}"
        )
    worse = impact.variant("new-pricing")
    print(
        f"new-pricing: errors x{worse.error_rate_ratio:.2f} (p={worse.error_p_value:.1e}), "
        f"p50 x{worse.duration_ratio_p50:.2f} (p={worse.duration_p_value:.1e})"
    )
    api.shutdown()
    provider.shutdown()


if __name__ == "__main__":
    main()
