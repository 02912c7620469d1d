"""Soak ``flagscope serve``: well-formed senders beside every kind of bad client, at once.

One ``flagscope serve`` process on loopback, and for ``--seconds`` (60 by default):
  - well-formed senders: OTLP/protobuf requests of 100 spans (one flag event each) on
    keep-alive connections, as fast as the server answers;
  - slow clients: uploads that send their headers and then a byte every half second
    (the server runs with ``--body-timeout 10``);
  - oversized bodies: a declared 64 MiB body, and chunked bodies past the limit;
  - malformed bodies: garbage protobuf and JSON, corrupt gzip, a wrong content type,
    and a gzip body of 800,000 members;
  - idle sockets: 300 connections that never send, reopened as the server closes them;
  - readers that never read: pipelined ``/api/events?limit=10000`` requests, unread;
  - a prober: ``/api/health`` every 100 ms, which must answer within a second.
Then it prints: requests served, p99 latency of the well-formed requests, events sent
and stored (stored = sent below capacity), peak RSS of the server, and whether the server
stayed responsive throughout.
Run: ``.venv/bin/python benchmarks/soak_server.py [--seconds 60]``.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench_server import batch_request

FLAGSCOPE = str(Path(sys.executable).with_name("flagscope"))
PROTOBUF = {"content-type": "application/x-protobuf"}
RESPONSIVE_SECONDS = 1.0


@dataclass
class Figures:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    good_latencies: list[float] = field(default_factory=list)
    events_sent: int = 0
    good_failures: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    probes: int = 0
    probe_worst: float = 0.0
    probe_failures: int = 0

    def count(self, kind: str) -> None:
        with self.lock:
            self.requests += 1
            self.statuses[kind] = self.statuses.get(kind, 0) + 1


def start_server(*options: str) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [FLAGSCOPE, "serve", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on " not in line:
        raise RuntimeError(f"flagscope serve did not start: {line!r}")
    return process, int(line.split("listening on ", 1)[1].split()[0].rsplit(":", 1)[1])


def connect(port: int, timeout: float = 30.0) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)


def well_formed(port: int, stop: threading.Event, figures: Figures, seed: int) -> None:
    body = batch_request(random.Random(seed), 100).SerializeToString()
    connection = connect(port)
    while not stop.is_set():
        started = time.perf_counter()
        try:
            connection.request("POST", "/v1/traces", body=body, headers=PROTOBUF)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            with figures.lock:
                figures.good_failures += 1
            connection.close()
            connection = connect(port)
            continue
        elapsed = time.perf_counter() - started
        figures.count(f"good {response.status}")
        with figures.lock:
            if response.status == 200:
                figures.good_latencies.append(elapsed)
                figures.events_sent += 100
            else:
                figures.good_failures += 1
    connection.close()


def slow_client(port: int, stop: threading.Event, figures: Figures) -> None:
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(
                    b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/x-protobuf\r\nContent-Length: 100000\r\n\r\n"
                )
                answer = b""
                while not stop.is_set() and not answer:
                    sock.sendall(b"\x00")
                    sock.settimeout(0.5)
                    try:
                        answer = sock.recv(4096)
                    except TimeoutError:
                        continue
                figures.count(f"slow {answer[9:12].decode(errors='replace') or 'closed'}")
        except OSError:
            figures.count("slow reset")


def oversized(port: int, stop: threading.Event, figures: Figures) -> None:
    chunk = bytes(1024 * 1024)
    while not stop.is_set():
        for declared in (True, False):
            connection = connect(port)
            try:
                if declared:
                    connection.putrequest("POST", "/v1/traces")
                    connection.putheader("content-type", "application/x-protobuf")
                    connection.putheader("content-length", str(64 * 1024 * 1024))
                    connection.endheaders()
                    connection.send(chunk)
                else:
                    parts = (chunk for _ in range(17))
                    connection.request("POST", "/v1/traces", body=parts, headers=PROTOBUF)
                response = connection.getresponse()
                response.read()
                figures.count(f"oversized {response.status}")
            except (OSError, http.client.HTTPException):
                figures.count("oversized reset")
            finally:
                connection.close()


def malformed(port: int, stop: threading.Event, figures: Figures) -> None:
    members = gzip.compress(b"") * 800_000
    cases = [
        (b"\xff" * 5000, PROTOBUF),
        (b'{"resourceSpans": 5', {"content-type": "application/json"}),
        (b"not gzip at all", {**PROTOBUF, "content-encoding": "gzip"}),
        (b"hello", {"content-type": "text/plain"}),
        (members, {**PROTOBUF, "content-encoding": "gzip"}),
    ]
    while not stop.is_set():
        for body, headers in cases:
            connection = connect(port)
            try:
                connection.request("POST", "/v1/traces", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                figures.count(f"malformed {response.status}")
            except (OSError, http.client.HTTPException):
                figures.count("malformed reset")
            finally:
                connection.close()


def idle_sockets(port: int, stop: threading.Event, figures: Figures, count: int) -> None:
    sockets: list[socket.socket] = []
    while not stop.is_set():
        alive = []
        for sock in sockets:
            try:
                sock.setblocking(False)
                closed = sock.recv(1) == b""
            except BlockingIOError:
                closed = False
            except OSError:
                closed = True
            if closed:
                sock.close()
                figures.count("idle closed")
            else:
                alive.append(sock)
        sockets = alive
        while len(sockets) < count:
            try:
                sockets.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                figures.count("idle refused")
                break
        stop.wait(0.5)
    for sock in sockets:
        sock.close()


def non_reader(port: int, stop: threading.Event, figures: Figures) -> None:
    request = b"GET /api/events?limit=10000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.sendall(request * 20)
                figures.count("non-reader sent")
                stop.wait(15)
        except OSError:
            figures.count("non-reader reset")


def prober(port: int, stop: threading.Event, figures: Figures) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        connection = connect(port, timeout=5)
        try:
            connection.request("GET", "/api/health")
            response = connection.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
        finally:
            connection.close()
        elapsed = time.perf_counter() - started
        with figures.lock:
            figures.probes += 1
            figures.probe_worst = max(figures.probe_worst, elapsed)
            if not ok or elapsed > RESPONSIVE_SECONDS:
                figures.probe_failures += 1
        figures.count("probe")
        stop.wait(0.1)


def peak_rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    (line,) = [line for line in status.splitlines() if line.startswith("VmHWM:")]
    return int(line.split()[1]) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the soak lasts")
    parser.add_argument("--senders", type=int, default=2, help="well-formed sender threads")
    parser.add_argument("--idle", type=int, default=300, help="idle sockets held open")
    parser.add_argument("--quick", action="store_true", help="5 s: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.idle = 5.0, 50
        print("quick mode: the figures below mean little")

    # Sized above what can be sent, so stored = sent unless something is lost.
    process, port = start_server(
        "--max-size", "5000000", "--max-bytes", str(4 * 1024**3), "--body-timeout", "10"
    )
    figures = Figures()
    stop = threading.Event()
    workers = [
        *(
            threading.Thread(target=well_formed, args=(port, stop, figures, n))
            for n in range(args.senders)
        ),
        *(threading.Thread(target=slow_client, args=(port, stop, figures)) for _ in range(4)),
        threading.Thread(target=oversized, args=(port, stop, figures)),
        threading.Thread(target=malformed, args=(port, stop, figures)),
        threading.Thread(target=idle_sockets, args=(port, stop, figures, args.idle)),
        threading.Thread(target=non_reader, args=(port, stop, figures)),
        threading.Thread(target=prober, args=(port, stop, figures)),
    ]
    try:
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        stop.wait(args.seconds)
        stop.set()
        for worker in workers:
            worker.join(60)
        elapsed = time.perf_counter() - started
        connection = connect(port)
        connection.request("GET", "/api/health")
        health = json.loads(connection.getresponse().read())
        connection.close()
        rss = peak_rss(process.pid)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)

    latencies = sorted(figures.good_latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000 if latencies else 0
    p50 = statistics.median(latencies) * 1000 if latencies else 0
    recorded = health["total_recorded"]
    responsive = figures.probe_failures == 0 and figures.good_failures == 0
    print(f"soak: {elapsed:.0f} s against flagscope serve on 127.0.0.1:{port}")
    print(f"requests served: {figures.requests} ({figures.requests / elapsed:.0f}/s)")
    for kind, count in sorted(figures.statuses.items()):
        print(f"  {kind}: {count}")
    print(
        f"well-formed requests: {len(latencies)}, latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"failed {figures.good_failures}"
    )
    print(
        f"events sent: {figures.events_sent}, stored: {recorded} "
        f"(held {health['stored']}, evicted {health['evicted']}): "
        f"{'stored = sent' if recorded == figures.events_sent else 'LOST SOME'}"
    )
    print(f"receiver counters: {json.dumps(health['receiver'], sort_keys=True)}")
    print(f"peak RSS: {rss / 1024**2:.0f} MiB")
    print(
        f"responsive throughout: {'yes' if responsive else 'NO'} "
        f"({figures.probes} health probes, worst {figures.probe_worst * 1000:.0f} ms, "
        f"{figures.probe_failures} over {RESPONSIVE_SECONDS:g} s or failed)"
    )
    if "Traceback" in stderr:
        print("the server printed a traceback:\n" + stderr)


if __name__ == "__main__":
    main()
