"""OTLP/gRPC end to end: ``flagscope serve`` in its own process, the SDK's gRPC exporters send."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc  # type: ignore[import-untyped]
import httpx
import pytest
from grpc import Compression
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flagscope._telemetry import semconv
from flagscope.server import create_app, serve_in_background
from flagscope.server._grpc_receiver import GrpcReceiver
from serve_process import FLAGSCOPE, ServeProcess, serving

_GRPC = re.compile(r"and http://127\.0\.0\.1:(\d+) \(OTLP/gRPC\)")


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ServeProcess, int]]:
    with serving() as server:
        match = _GRPC.search(server.banner)
        assert match, server.banner
        yield server, int(match.group(1))


def _stats(server: ServeProcess) -> dict[str, int]:
    receiver: dict[str, int] = server.get_json("/api/health")["receiver"]
    return receiver


def _events(server: ServeProcess, flag_key: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = server.get_json(f"/api/events?flag_key={flag_key}")["events"]
    return events


def _tracer_provider(exporter: Any) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "grpc-shop"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def test_gzip_spans_over_grpc_are_recorded_with_a_partial_success_for_the_unmappable(
    served: tuple[ServeProcess, int],
) -> None:
    server, grpc_port = served
    before = _stats(server)
    exporter = OTLPSpanExporter(
        endpoint=f"http://127.0.0.1:{grpc_port}", insecure=True, compression=Compression.Gzip
    )
    provider = _tracer_provider(exporter)
    with provider.get_tracer("t").start_as_current_span("GET /checkout") as span:
        span.add_event(
            semconv.EVENT_NAME,
            {
                semconv.KEY: "grpc-checkout",
                semconv.RESULT_VARIANT: "on",
                semconv.RESULT_VALUE: "true",
                semconv.RESULT_REASON: "STATIC",
                semconv.CONTEXT_ID: "user-1",
            },
        )
        span.add_event(semconv.EVENT_NAME, {semconv.RESULT_VARIANT: "no key"})
    provider.shutdown()

    (event,) = _events(server, "grpc-checkout")
    assert (event["variant"], event["value"], event["reason"], event["targeting_key"]) == (
        "on",
        True,
        "static",
        "user-1",
    )
    assert event["service_name"] == "grpc-shop"
    after = _stats(server)
    assert after["requests"] - before["requests"] == 1
    assert after["spans_received"] - before["spans_received"] == 1
    assert after["events_recorded"] - before["events_recorded"] == 1
    assert after["rejected"] - before["rejected"] == 1


def test_log_based_flag_events_over_grpc_are_recorded(served: tuple[ServeProcess, int]) -> None:
    server, grpc_port = served
    provider = LoggerProvider(resource=Resource.create({"service.name": "grpc-logs"}))
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(
            OTLPLogExporter(endpoint=f"http://127.0.0.1:{grpc_port}", insecure=True)
        )
    )
    provider.get_logger("t").emit(
        LogRecord(
            event_name=semconv.EVENT_NAME,
            attributes={semconv.KEY: "grpc-log-flag", semconv.RESULT_VARIANT: "blue"},
        )
    )
    provider.shutdown()

    (event,) = _events(server, "grpc-log-flag")
    assert (event["variant"], event["service_name"]) == ("blue", "grpc-logs")


def test_metrics_over_grpc_are_acknowledged_and_flag_counters_counted(
    served: tuple[ServeProcess, int],
) -> None:
    server, grpc_port = served
    before = _stats(server)
    exporter = OTLPMetricExporter(
        endpoint=f"http://127.0.0.1:{grpc_port}", insecure=True, compression=Compression.Gzip
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("js.openfeature.dev")
    success = meter.create_counter("feature_flag.evaluation_success_total")
    for variant in ("on", "on", "off"):
        success.add(
            1,
            {
                semconv.KEY: "grpc-metric-flag",
                semconv.RESULT_VARIANT: variant,
                semconv.RESULT_REASON: "TARGETING_MATCH",
            },
        )
    meter.create_histogram("http.server.duration").record(12.5)
    assert provider.force_flush()
    # Counters are cumulative: a second export of the same totals changes nothing.
    assert provider.force_flush()
    provider.shutdown()

    (counts,) = server.get_json("/api/metrics?flag_key=grpc-metric-flag")["flags"]
    assert counts["by_variant"] == {"on": 2, "off": 1}
    assert counts["by_reason"] == {"targeting_match": 3}
    assert counts["evaluations"] == 3
    after = _stats(server)
    assert after["data_points_received"] - before["data_points_received"] >= 3
    assert after["bad_requests"] == before["bad_requests"]


def test_an_oversized_grpc_message_is_refused_and_nothing_of_it_is_stored() -> None:
    with serving("--max-body-bytes", "100000") as server:
        grpc_port = int(_GRPC.search(server.banner).group(1))  # type: ignore[union-attr]
        memory = InMemorySpanExporter()
        provider = _tracer_provider(memory)
        with provider.get_tracer("t").start_as_current_span("big") as span:
            span.set_attribute("padding", "x" * 300_000)
            span.add_event(semconv.EVENT_NAME, {semconv.KEY: "too-big-flag"})
        for compression in (Compression.NoCompression, Compression.Gzip):
            exporter = OTLPSpanExporter(
                endpoint=f"http://127.0.0.1:{grpc_port}",
                insecure=True,
                compression=compression,
                timeout=5,
            )
            # grpcio answers RESOURCE_EXHAUSTED, which the SDK retries until its timeout.
            assert exporter.export(memory.get_finished_spans()) is SpanExportResult.FAILURE
            exporter.shutdown()
        assert _events(server, "too-big-flag") == []
        assert server.get_json("/api/health")["status"] == "ok"


def test_a_malformed_grpc_message_is_invalid_argument_and_counted(
    served: tuple[ServeProcess, int],
) -> None:
    server, grpc_port = served
    before = _stats(server)
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=None,
        )
        with pytest.raises(grpc.RpcError) as raised:
            export(b"\xff\xff\xff not protobuf", timeout=10)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert _stats(server)["bad_requests"] - before["bad_requests"] == 1


def test_serve_without_grpc_names_only_the_http_endpoint() -> None:
    with serving("--no-grpc") as server:
        assert "OTLP/gRPC" not in server.banner
        assert "(OTLP/HTTP)" in server.banner


def test_a_busy_grpc_port_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [FLAGSCOPE, "serve", "--port", "0", "--grpc-port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert "--grpc-port" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_in_background_can_listen_for_grpc_too() -> None:
    with serve_in_background(port=0, grpc_port=0) as server:
        assert server.grpc_port
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{server.grpc_port}", insecure=True)
        provider = _tracer_provider(exporter)
        with provider.get_tracer("t").start_as_current_span("GET /"):
            from opentelemetry import trace

            trace.get_current_span().add_event(semconv.EVENT_NAME, {semconv.KEY: "bg-grpc"})
        provider.shutdown()
        assert [event.flag_key for event in server.collector.events()] == ["bg-grpc"]
        response = httpx.get(f"{server.url}/api/health")
        assert response.json()["receiver"]["spans_received"] == 1


def test_serve_in_background_on_a_busy_grpc_port_raises_and_leaves_nothing_running() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="OTLP/gRPC"):
            serve_in_background(port=0, grpc_port=taken.getsockname()[1])
    assert not [t for t in threading.enumerate() if t.name == "flagscope-server"]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"max_body_bytes": 0}, ValueError),
        ({"max_body_bytes": "1"}, TypeError),
        ({"max_body_bytes": 10, "max_workers": 0}, ValueError),
        ({"max_body_bytes": 10, "max_pending": 1.5}, TypeError),
        ({"max_body_bytes": 10, "body_timeout": 0}, ValueError),
        ({"max_body_bytes": 10, "body_timeout": float("nan")}, ValueError),
        ({"max_body_bytes": 10, "body_timeout": "1"}, TypeError),
    ],
)
def test_grpc_receiver_rejects_bad_configuration(
    options: dict[str, Any], error: type[Exception]
) -> None:
    app = create_app()
    with pytest.raises(error):
        GrpcReceiver(app.state.receiver, **options)


def test_grpc_receiver_needs_an_otlp_receiver() -> None:
    with pytest.raises(TypeError, match="OtlpReceiver"):
        GrpcReceiver(object(), max_body_bytes=10)  # type: ignore[arg-type]


# -- calls that stall, and more calls than are taken ---------------------------------------

_TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@contextmanager
def _running(**options: Any) -> Iterator[tuple[GrpcReceiver, Any]]:
    """A started receiver and the HTTP receiver whose counters it shares; stopped after."""
    app = create_app()
    receiver = GrpcReceiver(app.state.receiver, **options)
    receiver.start("127.0.0.1", 0)
    try:
        yield receiver, app.state.receiver
    finally:
        receiver.stop(0.5)


def _eventually(condition: Callable[[], bool], seconds: float = 5) -> None:
    """Wait until ``condition()`` holds, or ``seconds`` pass (the caller asserts it)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.fixture
def small_receiver() -> Iterator[tuple[GrpcReceiver, Any]]:
    """A receiver taking 2 calls at once, giving a message 1 s to arrive."""
    with _running(max_body_bytes=1 << 20, max_pending=2, body_timeout=1.0) as running:
        yield running


class _Stalled:
    """A call whose headers are sent and whose one message never is, until released."""

    def __init__(self, port: int) -> None:
        self._release = threading.Event()
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        call = self._channel.stream_unary(_TRACES)
        self.future = call.future(self._never(), timeout=60)

    def _never(self) -> Iterator[bytes]:
        self._release.wait(60)
        yield from ()

    def close(self) -> None:
        self._release.set()
        self.future.cancel()
        self._channel.close()


def _export(port: int, body: bytes, timeout: float = 10) -> Any:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return channel.unary_unary(_TRACES)(body, timeout=timeout)


def _one_span() -> bytes:
    memory = InMemorySpanExporter()
    provider = _tracer_provider(memory)
    with provider.get_tracer("t").start_as_current_span("GET /") as span:
        span.add_event(semconv.EVENT_NAME, {semconv.KEY: "grpc-stall", semconv.RESULT_VALUE: 1})
    from otlp_payloads import traces_protobuf

    return traces_protobuf(memory.get_finished_spans())


def test_a_stalled_call_does_not_keep_a_normal_export_waiting(
    small_receiver: tuple[GrpcReceiver, Any],
) -> None:
    # Before: grpcio waited for each call's message on one of 2 decoding threads, with
    # no time limit, so two stalled senders locked every other one out.
    receiver, http = small_receiver
    assert receiver.port is not None
    stalled = _Stalled(receiver.port)
    try:
        _export(receiver.port, _one_span(), timeout=5)
        assert http.stats.events_recorded == 1
    finally:
        stalled.close()


def test_a_message_that_never_arrives_is_given_up_on_and_counted_timed_out(
    small_receiver: tuple[GrpcReceiver, Any],
) -> None:
    receiver, http = small_receiver
    assert receiver.port is not None
    stalled = _Stalled(receiver.port)
    try:
        with pytest.raises(grpc.RpcError) as error:
            stalled.future.result(timeout=10)
        assert error.value.code() == grpc.StatusCode.CANCELLED
        # The server counts it as its read wakes, a moment after the client hears.
        _eventually(lambda: http.stats.timed_out > 0)
        assert (http.stats.timed_out, http.stats.requests) == (1, 1)
        # Its thread is free again: both may be taken.
        _export(receiver.port, _one_span())
    finally:
        stalled.close()


def test_calls_past_those_taken_are_answered_unavailable_and_counted_busy(
    small_receiver: tuple[GrpcReceiver, Any],
) -> None:
    # OTLP/gRPC's throttling answer is UNAVAILABLE, which exporters retry; grpcio's own
    # limit answered RESOURCE_EXHAUSTED, which OTLP says not to retry without RetryInfo.
    receiver, http = small_receiver
    assert receiver.port is not None
    stalled = [_Stalled(receiver.port) for _ in range(2)]
    try:
        with pytest.raises(grpc.RpcError) as error:
            _export(receiver.port, _one_span(), timeout=5)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "retry later" in error.value.details()
        assert (http.stats.busy, http.stats.events_recorded) == (1, 0)
    finally:
        for call in stalled:
            call.close()


def test_a_call_without_its_message_is_invalid_and_counted(
    small_receiver: tuple[GrpcReceiver, Any],
) -> None:
    receiver, http = small_receiver
    assert receiver.port is not None
    with grpc.insecure_channel(f"127.0.0.1:{receiver.port}") as channel:
        call = channel.stream_unary(_TRACES)
        with pytest.raises(grpc.RpcError) as error:
            call(iter(()), timeout=5)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "had none" in error.value.details()
    assert (http.stats.requests, http.stats.bad_requests) == (1, 1)
    assert http.stats.events_recorded == 0


def test_a_message_over_the_size_limit_is_grpcios_refusal_and_not_counted() -> None:
    with _running(max_body_bytes=1000) as (receiver, http):
        assert receiver.port is not None
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as error:
                _export(receiver.port, b"\x0a" + bytes(4000))
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # As docs/server.md says: grpcio refuses it before flagscope sees it. Taking
        # the call first, flagscope read it as one without a message, some of the time.
        assert (http.stats.requests, http.stats.bad_requests) == (0, 0)


def test_stop_ends_every_thread_the_receiver_started(
    small_receiver: tuple[GrpcReceiver, Any],
) -> None:
    receiver, http = small_receiver
    assert receiver.port is not None
    stalled = [_Stalled(receiver.port) for _ in range(2)]
    try:
        with pytest.raises(grpc.RpcError):
            _export(receiver.port, _one_span(), timeout=5)  # refused: on the busy thread
        assert http.stats.busy == 1
    finally:
        for call in stalled:
            call.close()
    receiver.stop(0.5)
    _eventually(lambda: not any(t.name.startswith("flagscope-grpc") for t in threading.enumerate()))
    assert [t.name for t in threading.enumerate() if t.name.startswith("flagscope-grpc")] == []


def test_a_body_timeout_beyond_what_a_thread_can_wait_means_no_limit() -> None:
    errors: list[Any] = []
    previous = threading.excepthook
    threading.excepthook = errors.append
    try:
        with _running(max_body_bytes=1 << 20, body_timeout=1e12) as (receiver, http):
            assert receiver.port is not None
            _export(receiver.port, _one_span())
            assert http.stats.events_recorded == 1
    finally:
        threading.excepthook = previous
    assert errors == []


def test_every_stalled_call_is_given_up_on_in_its_turn(
    small_receiver: tuple[GrpcReceiver, Any],
) -> None:
    # One watchdog for every call: the second deadline is kept while it waits for
    # the first, and a normal call between them is left alone.
    receiver, http = small_receiver
    assert receiver.port is not None
    first = _Stalled(receiver.port)
    time.sleep(0.3)
    second = _Stalled(receiver.port)
    try:
        for stalled in (first, second):
            with pytest.raises(grpc.RpcError) as error:
                stalled.future.result(timeout=10)
            assert error.value.code() == grpc.StatusCode.CANCELLED
        _eventually(lambda: http.stats.timed_out >= 2)
        assert http.stats.timed_out == 2
        _export(receiver.port, _one_span())
        assert http.stats.events_recorded == 1
    finally:
        first.close()
        second.close()
