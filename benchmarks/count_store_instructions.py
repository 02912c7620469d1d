"""What the server's store path costs per record, in instructions (run under callgrind).

Wall-clock figures on a shared machine move by 10%; instruction counts do not. Each
run decodes the same ``COUNT`` TracingHook-shaped evaluations (``bench_server``'s
requests, 200 spans a request, decoded as ``POST /v1/traces`` decodes them), then
records them a request at a time into a collector set up as:

  none      nothing recorded (the decoding alone: the baseline to subtract)
  plain     ``InMemoryAnalyticsCollector(MAX_SIZE)``: count bound only, no hooks
  budget    plus the server's byte budget (``max_bytes``, 256 MiB)
  rollups   plus ``summary_rollups=True`` (what ``create_app`` attaches), no budget
  server    budget and rollups: what ``flagscope serve`` records into

``MAX_SIZE`` (default 5,000,000, as ``bench_server.py``'s throughput servers) below
``COUNT`` measures the steady state, every record evicting one. Reads at the end ask
``/api/flags``'s question (``query.summaries()``) once, so catching up is counted.

Run, for example::

    for m in none plain server; do
      valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python benchmarks/count_store_instructions.py $m 20000 2>&1 | grep Collected
    done

(mode - none) / COUNT is what recording costs per record in that mode.
"""

from __future__ import annotations

import random
import sys

from bench_server import batch_request

from flagscope import InMemoryAnalyticsCollector
from flagscope._telemetry.otlp import read_traces

MODES = ("none", "plain", "budget", "rollups", "server")


def main() -> None:
    mode = sys.argv[1]
    count = int(sys.argv[2])
    max_size = int(sys.argv[3]) if len(sys.argv) > 3 else 5_000_000
    if mode not in MODES or count % 200:
        raise SystemExit(f"usage: MODE ({'|'.join(MODES)}) COUNT (a multiple of 200) [MAX_SIZE]")
    rng = random.Random(1234)
    bodies = [batch_request(rng, 200).SerializeToString() for _ in range(4)]
    batches = [read_traces(bodies[n % 4], "protobuf").events for n in range(count // 200)]
    if mode == "none":
        return
    collector = InMemoryAnalyticsCollector(
        max_size,
        max_bytes=256 * 1024 * 1024 if mode in ("budget", "server") else None,
        summary_rollups=mode in ("rollups", "server"),
    )
    for events in batches:
        collector.record_batch(list(events))
    collector.query.summaries()


if __name__ == "__main__":
    main()
