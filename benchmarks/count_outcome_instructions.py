"""What outcome capture adds to the span exporter, in instructions (run under callgrind).

Wall-clock differences of a microsecond drown in the noise of a shared machine (the
medians of ``bench_exporter.py`` moved by several microseconds between runs); the
instruction count of a whole process does not. Each run builds ``COUNT`` finished
spans with the SDK (``TracerProvider`` + ``SimpleSpanProcessor`` +
``InMemorySpanExporter``), then exports them one per ``export()`` call with:

  none      no flagscope exporter (the SDK's own cost of the spans is the difference
            from a run with COUNT 0)
  without   flagscope's exporter into a sink with ``record_batch`` only (no outcomes)
  with      flagscope's exporter into an ``InMemoryAnalyticsCollector`` (outcomes kept)

Workloads: ``one``, a span with one TracingHook-shaped flag event; ``request``, a
SERVER span around a child span with the event (two spans a request).

Run, for example::

    for m in none without with; do
      valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python benchmarks/count_outcome_instructions.py $m one 1000 2>&1 | grep Collected
    done
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
      .venv/bin/python benchmarks/count_outcome_instructions.py none one 0 2>&1 | grep Collected

(with - without) / spans is what capture adds per span; (none[COUNT] - none[0]) /
spans is the SDK's own span, to express it as a share of a span's cost. An optional
fourth argument is the collector's ``max_size`` (default 1000); 10000 is what
``bench_exporter.py`` uses (run more spans than that, so the collector evicts).
"""

from __future__ import annotations

import sys
from typing import Any

from _common import TYPICAL_ATTRIBUTES
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from flagscope import FlagEvaluationSpanExporter, InMemoryAnalyticsCollector
from flagscope._telemetry import semconv


class RecordOnly:
    """A sink with ``record_batch`` only: the exporter keeps no outcomes for it."""

    def __init__(self, collector: InMemoryAnalyticsCollector) -> None:
        self.record_batch = collector.record_batch


def one(tracer: Any) -> None:
    with tracer.start_as_current_span("request") as span:
        span.add_event(semconv.EVENT_NAME, TYPICAL_ATTRIBUTES)


def request(tracer: Any) -> None:
    with tracer.start_as_current_span("GET /checkout", kind=SpanKind.SERVER) as root:
        with tracer.start_as_current_span("pricing") as child:
            child.add_event(semconv.EVENT_NAME, TYPICAL_ATTRIBUTES)
        root.set_attribute("http.response.status_code", 200)


def finished_spans(workload: Any, count: int) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({semconv.SERVICE_NAME: "checkout"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("count")
    for _ in range(count):
        workload(tracer)
    return list(memory.get_finished_spans())


def main() -> None:
    mode, workload, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    max_size = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    spans = finished_spans({"one": one, "request": request}[workload], count)
    if mode == "none":
        return
    sink: Any = InMemoryAnalyticsCollector(max_size)
    if mode == "without":
        sink = RecordOnly(sink)
    elif mode != "with":
        raise SystemExit(f"mode must be none, without or with, got {mode!r}")
    exporter = FlagEvaluationSpanExporter(sink)
    for span in spans:
        exporter.export((span,))
    assert exporter.stats.events_mapped == count


if __name__ == "__main__":
    main()
