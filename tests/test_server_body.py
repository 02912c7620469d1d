"""Bad input: size limits, gzip bombs, corrupt and truncated payloads, wrong content types.

Each is answered with the right status, and nothing already stored is lost.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flagscope._telemetry.limits import DROPPED_ATTRIBUTES_KEY
from flagscope.server import DEFAULT_MAX_BODY_BYTES, BackgroundServer, serve_in_background
from flagscope.server._body import BodyError, Inflater, read_body
from otlp_payloads import traces_json, traces_protobuf
from producers import flag_event, readable_span
from serve_process import ServeProcess, serving

LIMIT = 64 * 1024
PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    running = serve_in_background(port=0, max_body_bytes=LIMIT)
    # Something stored before the bad requests arrive: it must survive them.
    response = httpx.post(
        f"{running.url}/v1/traces",
        content=traces_protobuf([readable_span(events=[flag_event("kept")])]),
        headers=PROTOBUF,
    )
    assert response.status_code == 200
    try:
        yield running
    finally:
        running.stop()


def _stored(server: BackgroundServer) -> list[str]:
    return [event.flag_key for event in server.collector.events()]


def _post(server: BackgroundServer, content: Any, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/traces", content=content, headers=headers)


def _bomb(size: int) -> bytes:
    # Zeros compress about 1000:1, so this is a small body that inflates to ``size``.
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1024 * 1024)
    parts = [compressor.compress(chunk) for _ in range(size // len(chunk))]
    return b"".join([*parts, compressor.flush()])


def _big_valid_body() -> bytes:
    events = [flag_event(f"flag-{n}", {"padding": "x" * 200}) for n in range(400)]
    body = traces_protobuf([readable_span(events=events)])
    assert len(body) > LIMIT
    return body


# -- over HTTP --------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413(server: BackgroundServer) -> None:
    response = _post(server, _big_valid_body(), PROTOBUF)

    assert response.status_code == 413
    assert f"exceeds the limit of {LIMIT} bytes" in Status.FromString(response.content).message
    assert _stored(server) == ["kept"]


def test_a_streamed_body_without_content_length_over_the_limit_is_413(
    server: BackgroundServer,
) -> None:
    body = _big_valid_body()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    response = _post(server, chunks(), PROTOBUF)

    assert response.status_code == 413
    assert _stored(server) == ["kept"]


def test_a_gzip_bomb_is_413_not_inflated(server: BackgroundServer) -> None:
    bomb = _bomb(64 * 1024 * 1024)
    assert len(bomb) < LIMIT

    response = _post(server, bomb, {**PROTOBUF, "content-encoding": "gzip"})

    assert response.status_code == 413
    assert "after decompression" in Status.FromString(response.content).message
    assert _stored(server) == ["kept"]
    assert server.app.state.receiver.stats.too_large == 1


def test_a_gzipped_body_within_the_limit_is_accepted(server: BackgroundServer) -> None:
    body = traces_protobuf([readable_span(events=[flag_event("zipped")])])

    response = _post(server, gzip.compress(body), {**PROTOBUF, "content-encoding": "gzip"})

    assert response.status_code == 200
    assert _stored(server) == ["kept", "zipped"]


def test_small_plain_bodies_decode_on_the_loop_large_or_compressed_ones_on_a_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running = serve_in_background(port=0)
    threads: dict[str, str] = {}
    record_batch = running.collector.record_batch

    def noting_thread(events: Any) -> Any:
        threads[events[0].flag_key] = threading.current_thread().name
        return record_batch(events)

    monkeypatch.setattr(running.collector, "record_batch", noting_thread)
    # What was stored each time the receiver called the hook a worker thread runs.
    stored_at_hook: list[int] = []
    running.app.state.receiver.after_worker_decode = lambda: stored_at_hook.append(
        len(running.collector)
    )

    def body(flag_key: str, padding: int, encode: Any) -> bytes:
        events = [flag_event(flag_key, {"padding": "x" * padding}) for _ in range(100)]
        return bytes(encode([readable_span(events=events)]))

    small_protobuf = body("small-protobuf", 1000, traces_protobuf)
    large_protobuf = body("large-protobuf", 1400, traces_protobuf)
    # JSON takes more bytes for the same spans, and less time a byte to decode.
    json_between = body("json-between", 1600, traces_json)
    large_json = body("large-json", 2700, traces_json)
    zipped = gzip.compress(body("zipped", 10, traces_protobuf))
    assert len(small_protobuf) < 128 * 1024 < len(large_protobuf) < len(json_between)
    assert len(json_between) < 256 * 1024 < len(large_json)
    try:
        for content, headers in [
            (small_protobuf, PROTOBUF),
            (large_protobuf, PROTOBUF),
            (json_between, JSON),
            (large_json, JSON),
            (zipped, {**PROTOBUF, "content-encoding": "gzip"}),
        ]:
            assert _post(running, content, headers).status_code == 200
    finally:
        running.stop()

    worker = "AnyIO worker thread"
    assert threads["small-protobuf"] != worker
    assert threads["json-between"] == threads["small-protobuf"]
    assert threads["large-protobuf"] == worker
    assert threads["large-json"] == worker
    assert threads["zipped"] == worker
    # Once for each body too large for the loop, before its records were stored; not
    # for a small compressed one.
    assert stored_at_hook == [100, 300]


def test_truncated_protobuf_is_400_and_stores_nothing(server: BackgroundServer) -> None:
    body = traces_protobuf([readable_span(events=[flag_event("a"), flag_event("b")])])

    response = _post(server, body[:-5], PROTOBUF)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/x-protobuf"
    assert "invalid OTLP protobuf" in Status.FromString(response.content).message
    assert _stored(server) == ["kept"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # A gzip header, then a deflate block of the reserved type 3.
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\xff" * 20, "corrupt compressed body"),
        (gzip.compress(b"x" * 1000)[:-20], "truncated compressed body"),
    ],
)
def test_corrupt_or_truncated_gzip_is_400(
    server: BackgroundServer, content: bytes, message: str
) -> None:
    response = _post(server, content, {**JSON, "content-encoding": "gzip"})

    assert response.status_code == 400
    assert message in response.json()["message"]
    assert _stored(server) == ["kept"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
def test_a_wrong_content_type_is_415(server: BackgroundServer, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    body = traces_protobuf([readable_span(events=[flag_event("a")])])

    response = _post(server, body, headers)

    assert response.status_code == 415
    assert "application/x-protobuf or application/json" in response.json()["message"]
    assert _stored(server) == ["kept"]


def test_an_unknown_content_encoding_is_415(server: BackgroundServer) -> None:
    response = _post(server, b"...", {**PROTOBUF, "content-encoding": "br"})

    assert response.status_code == 415
    assert Status.FromString(response.content).message == (
        "unsupported Content-Encoding 'br'; use gzip, deflate or none"
    )


@pytest.mark.parametrize(
    "document",
    [
        {"resourceSpans": {"not": "a list"}},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"events": "many"}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": [1]}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 42}]}]}]},
    ],
)
def test_json_with_wrong_types_is_400_in_json(
    server: BackgroundServer, document: dict[str, Any]
) -> None:
    response = _post(server, json.dumps(document), JSON)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == 3
    assert "invalid OTLP JSON" in response.json()["message"]
    assert _stored(server) == ["kept"]


def test_one_bad_request_among_good_ones_loses_nothing(server: BackgroundServer) -> None:
    good = traces_json([readable_span(events=[flag_event("after")])])

    bad = _post(server, b'{"resourceSpans": [', JSON)
    ok = _post(server, good, JSON)

    assert (bad.status_code, ok.status_code) == (400, 200)
    assert _stored(server) == ["kept", "after"]
    assert server.app.state.receiver.stats.bad_requests == 1


def test_a_client_that_hangs_up_mid_body_is_a_bad_request_not_a_server_error(
    server: BackgroundServer,
) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\n"
            + traces_protobuf([readable_span(events=[flag_event("half")])])[:20]
        )
    deadline = time.monotonic() + 10
    while server.app.state.receiver.stats.bad_requests == 0:
        assert time.monotonic() < deadline, "the receiver never finished the abandoned request"
        time.sleep(0.01)

    assert _stored(server) == ["kept"]


def test_other_methods_are_not_allowed(server: BackgroundServer) -> None:
    assert httpx.get(f"{server.url}/v1/traces").status_code == 405


# -- the limits themselves ----------------------------------------------------------------------


def _feed_in_chunks(inflater: Inflater, body: bytes) -> None:
    for start in range(0, len(body), 16384):
        inflater.feed(body[start : start + 16384])


def test_the_inflater_never_holds_much_more_than_the_limit() -> None:
    bomb = _bomb(64 * 1024 * 1024)
    inflater = Inflater("gzip", 1024 * 1024)

    tracemalloc.start()
    try:
        with pytest.raises(BodyError) as caught:
            _feed_in_chunks(inflater, bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert caught.value.status == 413
    # Inflating the whole bomb would take 64 MiB.
    assert peak < 8 * 1024 * 1024


def test_concatenated_gzip_members_are_one_body() -> None:
    inflater = Inflater("gzip", 100)
    inflater.feed(gzip.compress(b"hello ") + gzip.compress(b"world"))

    assert inflater.finish() == b"hello world"


@pytest.mark.parametrize("encoding", [None, "", "identity", "IDENTITY "])
def test_identity_bodies_pass_through(encoding: str | None) -> None:
    inflater = Inflater(encoding, 10)
    inflater.feed(b"12345")
    inflater.feed(b"67890")

    assert inflater.finish() == b"1234567890"
    with pytest.raises(BodyError, match="exceeds the limit of 10 bytes"):
        inflater.feed(b"!")


def test_deflate_is_understood_too() -> None:
    inflater = Inflater("deflate", 100)
    inflater.feed(zlib.compress(b"deflated"))

    assert inflater.finish() == b"deflated"


async def _stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


@pytest.mark.parametrize(
    ("content_length", "status", "message"),
    [("11", 413, "exceeds the limit"), ("ten", 400, "invalid Content-Length")],
)
def test_read_body_checks_the_declared_length_before_reading(
    content_length: str, status: int, message: str
) -> None:
    with pytest.raises(BodyError, match=message) as caught:
        asyncio.run(
            read_body(_stream(b"x"), content_length=content_length, content_encoding=None, limit=10)
        )

    assert caught.value.status == status


# -- memory by bytes, against a real serve process ----------------------------------------------


def _million_attribute_body(count: int = 1_200_000) -> bytes:
    """One flag event with ``count`` tiny attributes (keys only): about 10.9 MB."""
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    span.span_id = bytes.fromhex("b7ad6b7169203331")
    event = span.events.add()
    event.name = "feature_flag.evaluation"
    event.time_unix_nano = 1_700_000_000_000_000_000
    flag = event.attributes.add()
    flag.key = "feature_flag.key"
    flag.value.string_value = "huge"
    # Encoded by hand (field 3, a KeyValue with only its key): building 1.2 million
    # messages one by one would take most of the test's time.
    parts = []
    for n in range(count):
        key = format(n, "x").encode()
        parts.append(b"\x1a" + bytes([len(key) + 2, 0x0A, len(key)]) + key)
    event.MergeFromString(b"".join(parts))
    return request.SerializeToString()


def test_a_request_of_1_2_million_attributes_takes_no_more_than_its_share() -> None:
    body = _million_attribute_body()
    assert 10_000_000 < len(body) < DEFAULT_MAX_BODY_BYTES
    with serving("--max-bytes", "50000") as running:
        statuses = []
        rss = []
        for _ in range(3):
            status, _ = running.request("POST", "/v1/traces", body=body, headers=PROTOBUF)
            statuses.append(status)
            rss.append(running.rss_bytes())
        health = running.get_json("/api/health")
        (event, *_) = running.get_json("/api/events?newest_first=true")["events"]

    assert statuses == [200, 200, 200]
    # Each record is cut to its share and says so; the budget holds what is stored.
    assert event["flag_key"] == "huge"
    assert len(event["attributes"]) <= 130
    assert event["attributes"][DROPPED_ATTRIBUTES_KEY] > 1_199_000
    assert health["stored_bytes"] <= 50_000
    assert health["stored"] == 2
    assert health["evicted"] == 1
    # Before, each such request kept about 105 MiB: two more must not add that much.
    assert rss[-1] - rss[0] < 100 * 1024 * 1024


def test_past_the_receiving_budget_uploads_are_refused_503_not_buffered() -> None:
    limit = 100_000
    with serving("--max-body-bytes", str(limit)) as running:
        uploads = []
        try:
            # Six stalled uploads of almost the limit: past four bodies' worth, 503.
            for _ in range(6):
                sock = socket.create_connection(("127.0.0.1", running.port), timeout=15)
                sock.sendall(
                    b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/x-protobuf\r\n"
                    + f"Content-Length: {limit}\r\n\r\n".encode()
                    + bytes(limit - 1000)
                )
                uploads.append(sock)
            deadline = time.monotonic() + 15
            while running.get_json("/api/health")["receiver"]["busy"] == 0:
                assert time.monotonic() < deadline, "no upload was refused"
            assert _post_ok(running)
        finally:
            for sock in uploads:
                sock.close()


def _post_ok(running: ServeProcess) -> bool:
    body = traces_protobuf([readable_span(events=[flag_event("small")])])
    status, _ = running.request("POST", "/v1/traces", body=body, headers=PROTOBUF)
    return status == 200


def test_many_concatenated_gzip_members_are_refused_without_inflating_them_all() -> None:
    inflater = Inflater("gzip", DEFAULT_MAX_BODY_BYTES)
    with pytest.raises(BodyError, match="more than 1024 concatenated gzip members") as caught:
        inflater.feed(gzip.compress(b"") * 800_000)
    assert caught.value.status == 400


def test_a_thousand_members_are_still_one_body() -> None:
    inflater = Inflater("gzip", DEFAULT_MAX_BODY_BYTES)
    inflater.feed(gzip.compress(b"ab") * 1000)
    assert inflater.finish() == b"ab" * 1000


def test_an_800_000_member_gzip_body_is_a_400_and_the_server_answers_on() -> None:
    with serving() as running:
        status, _ = running.request(
            "POST",
            "/v1/traces",
            body=gzip.compress(b"") * 800_000,
            headers={**PROTOBUF, "content-encoding": "gzip"},
        )
        assert status == 400
        assert running.get_json("/api/health")["receiver"]["bad_requests"] == 1
