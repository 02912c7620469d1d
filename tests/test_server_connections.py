"""Slow, stalled, idle and abandoned connections never lock out a normal request; stops are prompt.

Every test runs ``flagscope serve`` in its own process with short timeouts, and talks
to it over raw sockets on loopback. Waits are bounded by socket timeouts, never sleeps.
"""

from __future__ import annotations

import resource
import signal
import socket
from collections.abc import Iterator

import pytest

from otlp_payloads import traces_protobuf
from producers import flag_event, readable_span
from serve_process import ServeProcess, port_is_free, serving, start_serve

PROTOBUF = {"content-type": "application/x-protobuf"}
MAX_CONNECTIONS = 40


@pytest.fixture(scope="module")
def server() -> Iterator[ServeProcess]:
    with serving(
        "--header-timeout",
        "1",
        "--body-timeout",
        "1",
        "--max-connections",
        str(MAX_CONNECTIONS),
    ) as running:
        yield running


def _connect(server: ServeProcess, timeout: float = 15.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Read until the server closes the connection (bounded by the socket's timeout)."""
    parts = []
    while chunk := sock.recv(65536):
        parts.append(chunk)
    return b"".join(parts)


def _good_post(server: ServeProcess, name: str = "normal") -> int:
    body = traces_protobuf([readable_span(events=[flag_event(name)])])
    status, _ = server.request("POST", "/v1/traces", body=body, headers=PROTOBUF, timeout=10)
    return status


def test_a_socket_that_never_sends_is_closed_after_the_header_timeout(
    server: ServeProcess,
) -> None:
    with _connect(server) as sock:
        assert _read_all(sock) == b""


def test_a_header_trickled_byte_by_byte_is_cut_off(server: ServeProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHo")
        assert _read_all(sock) == b""


def test_a_stalled_upload_is_answered_408_and_its_connection_closed(
    server: ServeProcess,
) -> None:
    before = server.get_json("/api/health")["receiver"]["timed_out"]
    with _connect(server) as sock:
        sock.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-protobuf\r\nContent-Length: 15000000\r\n\r\n"
            + bytes(1_000_000)
        )
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert server.get_json("/api/health")["receiver"]["timed_out"] == before + 1


def test_a_flood_of_idle_sockets_beyond_the_cap_does_not_lock_out_a_normal_post(
    server: ServeProcess,
) -> None:
    idle = [_connect(server) for _ in range(MAX_CONNECTIONS + 30)]
    try:
        # The sockets are open on the server's side before the normal request arrives.
        assert server.get_json("/api/health")["status"] == "ok"
        assert _good_post(server) == 200
    finally:
        for sock in idle:
            sock.close()


def test_half_sent_headers_from_many_sockets_do_not_lock_out_a_normal_post(
    server: ServeProcess,
) -> None:
    slow = []
    try:
        for _ in range(MAX_CONNECTIONS + 10):
            sock = _connect(server)
            sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            slow.append(sock)
        assert _good_post(server) == 200
    finally:
        for sock in slow:
            sock.close()


def test_a_client_that_stops_reading_cannot_hold_the_server(server: ServeProcess) -> None:
    _good_post(server, "for-reading")
    with _connect(server) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        request = b"GET /api/events?limit=10000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        sock.sendall(request * 50)
        # Never read: other clients are still served.
        assert _good_post(server) == 200


def test_more_idle_sockets_than_the_file_descriptor_limit_do_not_lock_out_a_post() -> None:
    """Issue 10's case: 1,030 idle sockets against a server limited to 1,024 open files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        if hard != resource.RLIM_INFINITY and hard < 1200:
            pytest.skip("this test process cannot open 1,030 sockets")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    try:
        with serving(max_open_files=1024) as running:
            idle = [_connect(running) for _ in range(1030)]
            try:
                assert _good_post(running) == 200
                assert running.get_json("/api/health")["status"] == "ok"
            finally:
                for sock in idle:
                    sock.close()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 0)])
def test_a_signal_stops_the_server_promptly_despite_a_stalled_upload(
    sig: signal.Signals, code: int
) -> None:
    running = start_serve()
    try:
        with _connect(running) as sock:
            sock.sendall(
                b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/x-protobuf\r\nContent-Length: 15000000\r\n\r\n"
                + bytes(1_000_000)
            )
            assert running.get_json("/api/health")["status"] == "ok"
            # Within the grace period (a few seconds), or communicate() times out.
            returncode, stderr = running.stop(sig, timeout=10)
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.communicate()

    assert returncode == code
    assert "Traceback" not in stderr
    assert "Error" not in stderr
    assert port_is_free(running.port)


def test_large_answers_nobody_reads_are_capped_and_others_are_still_served() -> None:
    """Issue 10: clients that stop reading their responses took RSS to 2.2 GiB."""
    padding = {"padding": "x" * 1500}
    body = traces_protobuf(
        [readable_span(events=[flag_event(f"flag-{n % 7}", padding)]) for n in range(5000)]
    )
    with serving("--max-size", "5000") as running:
        status, _ = running.request("POST", "/v1/traces", body=body, headers=PROTOBUF)
        assert status == 200
        rss_before = running.rss_bytes()
        readers = []
        statuses = []
        try:
            for _ in range(30):
                sock = _connect(running)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.sendall(b"GET /api/events?limit=10000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                statuses.append(sock.recv(12)[9:12])  # the status line only, then no more
                readers.append(sock)
            small_status, _ = running.request("GET", "/api/events?limit=10")
            growth = running.rss_bytes() - rss_before
        finally:
            for sock in readers:
                sock.close()

    assert b"200" in statuses
    assert b"503" in statuses
    assert small_status == 200
    # Thirty unread pages of about 10 MB each would hold 300 MB.
    assert growth < 200 * 1024 * 1024
