"""Instructions per span of ``bench_exporter.py``'s pipelines (run under callgrind).

The pipelines of ``bench_exporter.py``, one per process, as an application runs them
(``TracerProvider`` + ``SimpleSpanProcessor``; spans are made, exported and freed):

  memory    the SDK's ``InMemorySpanExporter``, cleared every 100 spans
  without   flagscope's exporter into a sink with ``record_batch`` only (no outcomes)
  with      flagscope's exporter into an ``InMemoryAnalyticsCollector`` (outcomes kept)

Workloads: ``one`` (a span with one TracingHook-shaped flag event), ``request`` (a
SERVER span around a child span with the event: two spans a call) and
``openfeature`` (a span around a real OpenFeature evaluation with the TracingHook).
Each run first makes 12,000 calls (the collector, of max_size 10,000, is then full
and every record evicts one), then ``COUNT`` more. Per span, a pipeline costs
``(run[COUNT] - run[0]) / (COUNT * spans per call)``; outcome capture is ``with``
minus ``without``, and the export ratio ``with`` over ``memory``. For example::

    for m in memory without with; do for n in 0 20000; do
      PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python benchmarks/count_pipeline_instructions.py $m one $n 2>&1 | grep Collected
    done; done

A smaller store takes less time under callgrind: ``SIZE=2000 WARM_UP=6000`` (the ring
of ``2 * SIZE`` outcome rows then full before the count starts). ``NO_GC=1`` turns the
garbage collector off, so that a collection falling inside one run's window and not
another's moves no comparison (a full one is millions of instructions).
"""

from __future__ import annotations

import gc
import os
import sys
from typing import Any

from bench_exporter import (
    CONTEXT,
    RecordOnly,
    add_event,
    openfeature_client,
    request_with_child,
    tracer_for,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flagscope import FlagEvaluationSpanExporter, InMemoryAnalyticsCollector

WARM_UP = int(os.environ.get("WARM_UP", "12000"))
SIZE = int(os.environ.get("SIZE", "10000"))


def main() -> None:
    mode, workload, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if os.environ.get("NO_GC"):
        gc.disable()
    clear = None
    if mode == "memory":
        memory = InMemorySpanExporter()
        tracer = tracer_for(memory)
        clear = memory.clear
    elif mode in ("without", "with"):
        collector = InMemoryAnalyticsCollector(max_size=SIZE)
        sink: Any = collector if mode == "with" else RecordOnly(collector)
        tracer = tracer_for(FlagEvaluationSpanExporter(sink))
    else:
        raise SystemExit(f"mode must be memory, without or with, got {mode!r}")
    if workload == "one":
        work: Any = add_event
    elif workload == "request":
        work = request_with_child
    elif workload == "openfeature":
        client = openfeature_client()

        def work(tracer: Any) -> None:
            with tracer.start_as_current_span("request"):
                client.get_boolean_value("bool-flag", False, CONTEXT)

    else:
        raise SystemExit(f"workload must be one, request or openfeature, got {workload!r}")
    for index in range(WARM_UP + count):
        work(tracer)
        if clear is not None and index % 100 == 0:
            clear()


if __name__ == "__main__":
    main()
