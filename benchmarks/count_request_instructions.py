"""Instructions one protobuf request costs in one process and one thread (callgrind).

``count_server_instructions.py`` counts a whole ``flagscope serve``; its worker thread
makes that count move by about 1% from run to run. This counts what the receiver
does with a body, without HTTP or threads, so that a change to the decoder or the
store shows alone: it decodes the body as ``POST /v1/traces`` does, records its
evaluations into a collector set up as ``create_app`` sets it (byte budget and
rollups), and stores the spans' outcomes; three requests to warm up, then ``N``
counted between ``callgrind_control -z`` and ``-d``::

    .venv/bin/python benchmarks/count_instructions.py write-body protobuf /tmp/body.pb
    valgrind --tool=callgrind --callgrind-out-file=/tmp/request.callgrind \\
        .venv/bin/python benchmarks/count_request_instructions.py /tmp/body.pb 40
    grep summary /tmp/request.callgrind.1   # divided by N: per request

Run with another checkout's ``src`` on ``PYTHONPATH`` to compare (the rollups' catch-up
falls every 8,192 records, so ``N`` of 40 200-span requests holds one).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flagscope import InMemoryAnalyticsCollector
from flagscope._telemetry.otlp import read_traces

_WARM_UP = 3


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit("usage: BODY N (under valgrind --tool=callgrind)")
    body = Path(sys.argv[1]).read_bytes()
    count = int(sys.argv[2])
    collector = InMemoryAnalyticsCollector(
        5_000_000, max_bytes=256 * 1024 * 1024, summary_rollups=True
    )

    def request() -> None:
        batch = read_traces(body, "protobuf")
        collector.record_batch(list(batch.events))
        if batch.outcomes:
            collector.record_outcomes(batch.outcomes)

    for _ in range(_WARM_UP):
        request()
    pid = str(os.getpid())
    subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
    for _ in range(count):
        request()
    subprocess.run(["callgrind_control", "-d", "measured", pid], check=True, capture_output=True)


if __name__ == "__main__":
    main()
