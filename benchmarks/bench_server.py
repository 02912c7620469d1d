"""How many spans per second ``flagscope serve`` accepts from concurrent OTLP senders.

A ``flagscope serve`` process on loopback (its own process, as users run it) and
several sender threads here, each posting ``ExportTraceServiceRequest``s over a
keep-alive ``http.client`` connection for a bounded time. Each span carries one
TracingHook-shaped ``feature_flag.evaluation`` event, encoded by the OTel SDK's own
OTLP encoder; the same spans go out once as protobuf and once as OTLP/JSON (what
JavaScript's default exporter sends: hex ids, 64-bit integers as strings), each
against a fresh server. Figures:
  (a) accepted spans per second per encoding (and requests per second, latency
      percentiles), each to its own server in alternating rounds, and JSON's
      throughput over protobuf's, the median of the rounds: target >= 0.5;
  (b) events stored / events sent, read back from ``/api/health``: target 1.0, since
      the collector is sized above what is sent (below capacity nothing may be lost);
  (c) what the dashboard's polling costs: ``/api/flags`` on a server started with
      ``--max-size 1000000`` holding a million evaluations of 50 flags, the first
      request and the median of the next ones (target < 100 ms: the page asks every 2 s);
  (d) whether one large body stalls the others: the worst ``/api/health`` latency,
      asked every 10 ms while an 800,000-member gzip body (16 MB) is inflated and
      decoded (target <= 50 ms);
  (e) decoding the recorded JS SpanEventHook request (``tests/fixtures/otlp-js``,
      57 flag events) against ``json.loads`` of the same body, in process;
  (f) with ``--against TREE``: protobuf throughput of this checkout over that of
      another checkout's ``src`` (a git worktree of an earlier commit), the same
      senders in alternating rounds: target >= 1.0, no slower.
Run: ``.venv/bin/python benchmarks/bench_server.py [--seconds 5 --senders 4 --batch 200]
[--rounds 3] [--against ../base [--only-against]]``.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import timeit
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import TYPICAL_ATTRIBUTES, report, span_ids
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags

FLAGSCOPE = str(Path(sys.executable).with_name("flagscope"))
START_NS = 1_700_000_000_000_000_000
FIXTURE = (
    Path(__file__).resolve().parent.parent
    / "tests/fixtures/otlp-js/of-spanevent-json/001-traces.request.json"
)


@dataclass
class Tally:
    requests: int = 0
    spans: int = 0
    failures: int = 0
    latencies: list[float] = field(default_factory=list)


def batch_request(
    rng: random.Random, size: int, events_per_span: int = 1
) -> ExportTraceServiceRequest:
    """One OTLP request of ``size`` spans, ``events_per_span`` flag events each."""
    resource = Resource.create({"service.name": "bench"})
    spans = []
    for index in range(size):
        trace_id, span_id = span_ids(rng)
        events = []
        for n in range(events_per_span):
            attributes = dict(TYPICAL_ATTRIBUTES)
            attributes["feature_flag.key"] = f"flag-{(index + n) % 50:02d}"
            attributes["feature_flag.context.id"] = f"user-{rng.randrange(10_000)}"
            events.append(Event("feature_flag.evaluation", attributes, START_NS + index))
        spans.append(
            ReadableSpan(
                name="GET /",
                context=SpanContext(trace_id, span_id, False, TraceFlags(1)),
                resource=resource,
                events=events,
                start_time=START_NS,
                end_time=START_NS + 1_000_000,
            )
        )
    return encode_spans(spans)


def _hex_ids(node: Any) -> None:
    # Protobuf's JSON mapping writes bytes as base64; OTLP/JSON writes ids as hex.
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"traceId", "spanId", "parentSpanId"} and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)


def encode(request: ExportTraceServiceRequest, encoding: str) -> bytes:
    """The request as sent over OTLP/HTTP in ``encoding``."""
    if encoding == "protobuf":
        return request.SerializeToString()
    document = json_format.MessageToDict(request)
    _hex_ids(document)
    return json.dumps(document, separators=(",", ":")).encode()


CONTENT_TYPES = {"protobuf": "application/x-protobuf", "json": "application/json"}


def send_for(
    url: str, body: bytes, encoding: str, spans_per_body: int, seconds: float, tally: Tally
) -> None:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"content-type": CONTENT_TYPES[encoding]}
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            connection.request("POST", "/v1/traces", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            tally.latencies.append(time.perf_counter() - started)
            tally.requests += 1
            if response.status == 200:
                tally.spans += spans_per_body
            else:
                tally.failures += 1
    finally:
        connection.close()


def start_server(
    max_size: int, *options: str, tree: Path | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Start ``flagscope serve``; with ``tree``, the flagscope in that checkout's ``src``."""
    command = [FLAGSCOPE, "serve"]
    env = None
    if tree is not None:
        # That checkout's own console-script entry point, run from its src/.
        scripts = tomllib.loads((tree / "pyproject.toml").read_text())["project"]["scripts"]
        module, _, function = scripts["flagscope"].partition(":")
        launcher = (
            f"import sys; sys.argv[0] = 'flagscope'; "
            f"from {module} import {function}; sys.exit({function}())"
        )
        command = [sys.executable, "-c", launcher, "serve"]
        env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    process = subprocess.Popen(
        [*command, "--port", "0", "--max-size", str(max_size), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "listening on " in line:
            # "listening on URL (OTLP/HTTP) and GRPC_URL (OTLP/gRPC)": the first URL.
            return process, line.split("listening on ", 1)[1].split()[0]
    raise RuntimeError("flagscope serve did not start")


def health(url: str) -> dict[str, int]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", "/api/health")
        data: dict[str, int] = json.loads(connection.getresponse().read())
        return data
    finally:
        connection.close()


def timed_get(connection: http.client.HTTPConnection, path: str) -> float:
    """GET ``path`` on a kept-alive connection; return the seconds it took."""
    started = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    assert response.status == 200, response.status
    return time.perf_counter() - started


def dashboard_cost(stored: int, quick: bool) -> None:
    """(c): /api/flags on a server holding ``stored`` evaluations of 50 flags."""
    rng = random.Random(99)
    body = batch_request(
        rng, 100, events_per_span=20
    ).SerializeToString()  # 2,000 evaluations per request
    # The byte budget is raised so the count bound is the one reached.
    process, url = start_server(stored, "--max-bytes", str(4 * 1024**3))
    try:
        parts = urllib.parse.urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        started = time.perf_counter()
        sent = 0
        while sent < stored:
            connection.request(
                "POST", "/v1/traces", body=body, headers={"content-type": "application/x-protobuf"}
            )
            response = connection.getresponse()
            response.read()
            assert response.status == 200, response.status
            sent += 2000
        fill = time.perf_counter() - started
        held = health(url)["stored"]
        cold = timed_get(connection, "/api/flags")
        warm = [timed_get(connection, "/api/flags") for _ in range(3 if quick else 20)]
        connection.close()
    finally:
        process.terminate()
        process.wait(timeout=60)
    median = statistics.median(warm) * 1000
    print(f"(c) filled {held} evaluations of 50 flags in {fill:.1f} s")
    report(
        f"(c) /api/flags at --max-size {stored}, {held} stored: first {cold * 1000:.1f} ms, "
        "then median",
        f"{median:.1f} ms",
        "< 100 ms",
        median < 100,
    )


def gzip_stall(label: str, body: bytes) -> None:
    """(d): the worst health-check latency while a gzip body is inflated and decoded."""
    process, url = start_server(1_000_000, "--max-bytes", str(4 * 1024**3))
    try:
        parts = urllib.parse.urlsplit(url)
        done = threading.Event()
        outcome: list[int] = []

        def post() -> None:
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
            try:
                headers = {"content-type": "application/x-protobuf", "content-encoding": "gzip"}
                connection.request("POST", "/v1/traces", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                outcome.append(response.status)
            finally:
                connection.close()
                done.set()

        checker = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        # The floor: the same checks with nothing else to do (the machine is shared).
        idle = []
        for _ in range(50):
            idle.append(timed_get(checker, "/api/health"))
            time.sleep(0.01)
        latencies = []
        poster = threading.Thread(target=post)
        started = time.perf_counter()
        poster.start()
        while not done.is_set():
            latencies.append(timed_get(checker, "/api/health"))
            done.wait(0.01)
        elapsed = time.perf_counter() - started
        poster.join()
        checker.close()
    finally:
        process.terminate()
        process.wait(timeout=60)
    worst = max(latencies) * 1000
    print(
        f"(d) {label} ({len(body)} bytes) took {elapsed:.2f} s "
        f"(status {outcome[0] if outcome else '?'}); health checks with nothing else to do: "
        f"median {statistics.median(idle) * 1000:.1f} ms, worst {max(idle) * 1000:.1f} ms"
    )
    report(
        f"(d) /api/health during {label}, worst of {len(latencies)} checks",
        f"{worst:.1f} ms",
        "<= 50 ms",
        worst <= 50,
    )


@dataclass
class Run:
    encoding: str
    body_bytes: int
    elapsed: float
    tallies: list[Tally]
    stored: dict[str, int]

    @property
    def sent(self) -> int:
        return sum(t.spans for t in self.tallies)

    @property
    def spans_per_second(self) -> float:
        return self.sent / self.elapsed


ROUNDS = 3


@dataclass(frozen=True)
class Target:
    """One server under load: its label, the encoding sent, the checkout it runs from."""

    label: str
    encoding: str
    tree: Path | None = None


def alternate(
    targets: list[Target], bodies: dict[str, list[bytes]], args: argparse.Namespace
) -> tuple[dict[str, Run], list[dict[str, float]]]:
    """Load each target's own server in turn, in alternating rounds.

    The machine is shared: alternating short rounds lets drift hit every target
    alike, and the per-round rates show how much it moved.
    """
    servers = {}
    try:
        for target in targets:
            # Sized well above what can be sent, so any loss is a bug, not eviction.
            servers[target.label] = start_server(max_size=5_000_000, tree=target.tree)
        tallies = {t.label: [Tally() for _ in range(args.senders)] for t in targets}
        elapsed = {t.label: 0.0 for t in targets}
        rounds = []
        for _ in range(args.rounds):
            rates = {}
            for target in targets:
                encoded = bodies[target.encoding]
                round_tallies = [Tally() for _ in range(args.senders)]
                threads = [
                    threading.Thread(
                        target=send_for,
                        args=(
                            servers[target.label][1],
                            encoded[n],
                            target.encoding,
                            args.batch,
                            args.seconds / args.rounds,
                            round_tallies[n],
                        ),
                    )
                    for n in range(args.senders)
                ]
                started = time.perf_counter()
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                took = time.perf_counter() - started
                elapsed[target.label] += took
                rates[target.label] = sum(t.spans for t in round_tallies) / took
                for total, part in zip(tallies[target.label], round_tallies, strict=True):
                    total.requests += part.requests
                    total.spans += part.spans
                    total.failures += part.failures
                    total.latencies.extend(part.latencies)
            rounds.append(rates)
        runs = {
            t.label: Run(
                t.label,
                len(bodies[t.encoding][0]),
                elapsed[t.label],
                tallies[t.label],
                health(servers[t.label][1]),
            )
            for t in targets
        }
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=30)
    return runs, rounds


def against_tree(tree: Path, bodies: dict[str, list[bytes]], args: argparse.Namespace) -> None:
    """(f): protobuf throughput of this checkout against another one, same senders."""
    here = Path(__file__).resolve().parent.parent
    targets = [
        Target("protobuf, this tree", "protobuf", here),
        Target(f"protobuf, {tree}", "protobuf", tree),
    ]
    runs, rounds = alternate(targets, bodies, args)
    for target in targets:
        print(f"(f) {target.label}: {runs[target.label].spans_per_second:,.0f} spans/s")
    ratios = [rates[targets[0].label] / rates[targets[1].label] for rates in rounds]
    ratio = statistics.median(ratios)
    report(
        f"(f) protobuf throughput, this tree / {tree} (median of {args.rounds} alternating rounds: "
        f"{', '.join(f'{r:.2f}' for r in ratios)})",
        f"{ratio:.2f}",
        ">= 1.0 (no slower)",
        ratio >= 1.0,
    )


def print_run(result: Run, args: argparse.Namespace) -> None:
    requests = sum(t.requests for t in result.tallies)
    failures = sum(t.failures for t in result.tallies)
    latencies = sorted(latency for t in result.tallies for latency in t.latencies)
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    name = result.encoding
    print(
        f"{name}: {args.senders} senders x {args.seconds:g} s, {args.batch} spans (1 flag event "
        f"each) per request ({result.body_bytes} bytes)"
    )
    print(f"{name}: requests: {requests} ({requests / result.elapsed:.0f}/s), non-200: {failures}")
    print(f"{name}: request latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"{name}: accepted spans per second: {result.spans_per_second:,.0f}")
    sent = result.sent
    recorded = result.stored["total_recorded"]
    ratio = recorded / sent if sent else 0.0
    report(
        f"{name}: events stored / events sent",
        f"{recorded} / {sent} = {ratio:.4f} (evicted {result.stored['evicted']})",
        "1.0 below capacity",
        ratio == 1.0 and failures == 0,
    )


def decode_fixture(quick: bool) -> None:
    """(c): the recorded JS request, decoded in process, against json.loads of it."""
    from flagscope._telemetry.otlp import read_traces

    body = FIXTURE.read_bytes()
    number = 20 if quick else 300

    def best(work: Any) -> float:
        return min(timeit.repeat(work, number=number, repeat=5)) / number * 1000

    loads = best(lambda: json.loads(body))
    decode = best(lambda: read_traces(body, "json"))
    events = len(read_traces(body, "json").events)
    print(
        f"(e) decode {FIXTURE.name} ({len(body)} bytes, {events} flag events): "
        f"read_traces {decode:.3f} ms, json.loads alone {loads:.3f} ms ({decode / loads:.1f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="how long senders send")
    parser.add_argument("--senders", type=int, default=4, help="concurrent sender threads")
    parser.add_argument("--batch", type=int, default=200, help="spans per request")
    parser.add_argument("--quick", action="store_true", help="1 s, 2 senders: a smoke run")
    parser.add_argument(
        "--stored", type=int, default=1_000_000, help="(c): evaluations held for /api/flags"
    )
    parser.add_argument(
        "--against",
        type=Path,
        metavar="TREE",
        help="(f): also send protobuf to a server run from another checkout (its src/), "
        "e.g. a git worktree of the commit before a change, in alternating rounds",
    )
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help="alternating rounds (--seconds shared out)"
    )
    parser.add_argument(
        "--only-against",
        action="store_true",
        help="(f) alone: with --against, skip the other figures",
    )
    args = parser.parse_args()
    if args.only_against and args.against is None:
        parser.error("--only-against needs --against TREE")
    if args.quick:
        args.seconds, args.senders = 1.0, 2
        print("quick mode: the figures below mean little")
    if args.seconds <= 0 or args.senders < 1 or args.batch < 1 or args.rounds < 1:
        parser.error("--seconds, --senders, --batch and --rounds must be positive")

    rng = random.Random(1234)
    requests = [batch_request(rng, args.batch) for _ in range(args.senders)]
    bodies = {
        encoding: [encode(request, encoding) for request in requests]
        for encoding in ("protobuf", "json")
    }
    if args.only_against:
        against_tree(args.against.resolve(), {"protobuf": bodies["protobuf"]}, args)
        return
    runs, rounds = alternate([Target("protobuf", "protobuf"), Target("json", "json")], bodies, args)
    for result in runs.values():
        print_run(result, args)
    ratios = [rates["json"] / rates["protobuf"] for rates in rounds]
    ratio = statistics.median(ratios)
    report(
        f"OTLP/JSON throughput / protobuf throughput (median of {args.rounds} alternating rounds: "
        f"{', '.join(f'{r:.2f}' for r in ratios)})",
        f"{ratio:.2f}",
        ">= 0.5",
        ratio >= 0.5,
    )
    dashboard_cost(20_000 if args.quick else args.stored, args.quick)
    members = 80_000 if args.quick else 800_000
    gzip_stall(f"a gzip body of {members} members", gzip.compress(b"") * members)
    spans = 2_000 if args.quick else 40_000
    large = gzip.compress(batch_request(random.Random(7), spans).SerializeToString())
    gzip_stall(f"a gzip body of {spans} spans", large)
    decode_fixture(args.quick)
    if args.against is not None:
        against_tree(args.against.resolve(), {"protobuf": bodies["protobuf"]}, args)


if __name__ == "__main__":
    main()
