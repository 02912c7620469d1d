"""Instruction counts (valgrind callgrind) of two hot paths, for this checkout or an older one.

Wall-clock figures on a shared machine move by 10% or more between runs; instruction
counts do not. Each workload runs ``N`` times after a warm-up, so the cost of one
operation is the difference between two runs divided by the difference in ``N``::

    for n in 2000 18000; do PYTHONHASHSEED=0 PYTHONPATH=src valgrind --tool=callgrind \\
        --callgrind-out-file=/dev/null .venv/bin/python benchmarks/count_instructions.py \\
        record $n 2>&1 | grep refs; done        # (b - a) / 16000 per record

Point ``PYTHONPATH`` at another checkout's ``src`` (a git worktree of an earlier commit)
to count the same workload there: the imports fall back to the older module layout.

Workloads:
  record N         ``await collector.record(event)`` into a full collector of
                   max_size=10000, N times (per record);
  decode-protobuf N [BODY] / decode-json N [BODY]
                   decode and map one 200-span OTLP trace request (one TracingHook flag
                   event per span, as ``bench_server.py`` sends), N times (per request:
                   divide by 200 for a span). An older checkout cannot import this
                   checkout's benchmarks: write the body first with this checkout
                   (``write-body protobuf FILE``) and pass it as BODY.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import cycle, islice
from pathlib import Path
from typing import Any


def _record(n: int) -> None:
    from flagscope import EvaluationReason, InMemoryAnalyticsCollector

    try:
        from flagscope._store.records import build_event
    except ImportError:  # an older checkout
        from flagscope.models import build_event  # type: ignore[import-not-found,no-redef]

    # A fixed pool, cycled: building records is not what is counted.
    pool = [
        build_event(
            timestamp=datetime(2025, 1, 1, tzinfo=UTC),
            flag_key=f"flag-{i % 100}",
            value=True,
            reason=EvaluationReason.STATIC,
            variant="on",
            targeting_key=f"user-{i}",
            trace_id=f"{i + 1:032x}",
            span_id=f"{i + 1:016x}",
        )
        for i in range(1000)
    ]
    collector = InMemoryAnalyticsCollector(max_size=10_000)

    async def main() -> None:
        for event in islice(cycle(pool), 10_000 + n):
            await collector.record(event)

    asyncio.run(main())


def _decoder(encoding: str) -> Callable[[bytes], Any]:
    try:
        from flagscope._telemetry.otlp import read_traces
    except ImportError:  # an older checkout: decode, then map
        from flagscope.otlp import decode_traces, map_traces  # type: ignore[import-not-found]

        return lambda body: map_traces(decode_traces(body, encoding)).events
    return lambda body: read_traces(body, encoding).events  # type: ignore[arg-type]


def _request_body(encoding: str) -> bytes:
    from bench_server import batch_request, encode

    return encode(batch_request(random.Random(1), 200), encoding)


def _decode(encoding: str, n: int, body_file: str | None) -> None:
    body = Path(body_file).read_bytes() if body_file else _request_body(encoding)
    decode = _decoder(encoding)
    assert len(decode(body)) == 200
    for _ in range(n):
        decode(body)


def main() -> None:
    workload = sys.argv[1]
    if workload == "write-body":
        Path(sys.argv[3]).write_bytes(_request_body(sys.argv[2]))
    elif workload == "record":
        _record(int(sys.argv[2]))
    elif workload in ("decode-protobuf", "decode-json"):
        body_file = sys.argv[3] if len(sys.argv) > 3 else None
        _decode(workload.removeprefix("decode-"), int(sys.argv[2]), body_file)
    else:
        raise SystemExit(f"unknown workload {workload!r}: see the docstring")


if __name__ == "__main__":
    main()
