"""OTLP/gRPC calls per second that ``flagscope serve`` answers, for this checkout and another.

4 sender threads here, each on its own channel, make unary ``TraceService/Export`` calls
of ``SPANS`` spans (default 1: the per-call cost, as a ``SimpleSpanProcessor`` exporting
over gRPC pays it) to a ``flagscope serve`` of each tree in turn, ``ROUNDS`` times
(default 2), ``CALLS`` calls (default 2,000) each::

    .venv/bin/python benchmarks/bench_grpc_calls.py . ../base
    SPANS=200 .venv/bin/python benchmarks/bench_grpc_calls.py . ../base
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import bench_server
import grpc  # type: ignore[import-untyped]

METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
CALLS = int(os.environ.get("CALLS", "2000"))
SENDERS = 4


def calls_per_second(tree: Path, body: bytes) -> float:
    """Start ``flagscope serve`` from ``tree``'s ``src``; time ``CALLS`` calls of ``body``."""
    scripts = tomllib.loads((tree / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts["flagscope"].partition(":")
    launcher = (
        f"import sys; sys.argv[0] = 'flagscope'; from {module} import {function}; "
        f"sys.exit({function}())"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", launcher, "serve", "--port", "0", "--grpc-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tree / "src")},
    )
    assert process.stdout is not None
    banner = process.stdout.readline()
    match = re.search(r"and http://127\.0\.0\.1:(\d+) \(OTLP/gRPC\)", banner)
    assert match, "flagscope serve did not start with gRPC"
    port = int(match.group(1))
    try:

        def send(count: int) -> None:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                export = channel.unary_unary(METHOD)
                for _ in range(count):
                    export(body, timeout=10)

        send(100)  # warm up
        started = time.perf_counter()
        senders = [threading.Thread(target=send, args=(CALLS // SENDERS,)) for _ in range(SENDERS)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        return CALLS / (time.perf_counter() - started)
    finally:
        process.terminate()
        process.wait()


def main() -> None:
    trees = [Path(arg).resolve() for arg in sys.argv[1:]] or [Path(".").resolve()]
    spans = int(os.environ.get("SPANS", "1"))
    body = bench_server.batch_request(random.Random(5), spans).SerializeToString()
    for _ in range(int(os.environ.get("ROUNDS", "2"))):
        for tree in trees:
            rate = calls_per_second(tree, body)
            print(f"{tree}: {rate:,.0f} calls/s of {spans} span(s), {SENDERS} senders")


if __name__ == "__main__":
    main()
