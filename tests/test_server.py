"""The server end to end: the OTel SDK's own OTLP/HTTP exporters send, the JSON API answers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from openfeature.evaluation_context import EvaluationContext
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.routing import Mount

from flagscope import FlagEvaluationSpanExporter, InMemoryAnalyticsCollector
from flagscope._telemetry import semconv
from flagscope.server import (
    BackgroundServer,
    PortInUseError,
    create_app,
    serve_in_background,
)
from flagscope.server._runner import bind
from otlp_payloads import json_body, openfeature_client, string_attr, traces_protobuf
from producers import TRACE_HEX, flag_event, readable_span


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    running = serve_in_background(port=0)
    try:
        yield running
    finally:
        running.stop()


def _get(server: BackgroundServer, path: str, **params: Any) -> Any:
    response = httpx.get(server.url + path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _sdk_provider(exporter: Any, service_name: str = "shop") -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _run_openfeature_app(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("shop")
    with openfeature_client() as client:
        for user in ("alice", "bob", "carol"):
            with tracer.start_as_current_span("GET /checkout"):
                context = EvaluationContext(targeting_key=user)
                client.get_boolean_value("new-checkout", False, context)
                client.get_string_value("banner-color", "#000", context)
                client.get_boolean_value("not-declared", False, context)


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_otlp_span_exporter_evaluations_reach_the_json_api_as_the_in_process_exporter_sees_them(
    server: BackgroundServer, compression: Compression
) -> None:
    in_process = InMemoryAnalyticsCollector()
    provider = _sdk_provider(
        OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", compression=compression)
    )
    provider.add_span_processor(SimpleSpanProcessor(FlagEvaluationSpanExporter(in_process)))
    _run_openfeature_app(provider)
    provider.shutdown()

    events = _get(server, "/api/events", limit=1000)["events"]
    flags = {summary["flag_key"]: summary for summary in _get(server, "/api/flags")["flags"]}

    assert events == [event.to_dict() for event in in_process.events()]
    assert len(events) == 9
    assert sorted(flags) == ["banner-color", "new-checkout", "not-declared"]
    assert flags["new-checkout"]["count"] == 3
    assert flags["new-checkout"]["by_variant"] == {"on": 3}
    assert flags["banner-color"]["by_value"] == {'"#c05543"': 3}
    assert flags["not-declared"]["error_rate"] == 1.0
    assert flags["not-declared"]["by_error_type"] == {"flag_not_found": 3}
    assert flags["new-checkout"]["distinct_targeting_keys"] == 3
    assert {event["service_name"] for event in events} == {"shop"}


def test_otlp_log_exporter_log_based_events_reach_the_json_api(server: BackgroundServer) -> None:
    provider = LoggerProvider(resource=Resource.create({"service.name": "worker"}))
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{server.url}/v1/logs"))
    )
    logger = provider.get_logger("worker")
    logger.emit(
        LogRecord(
            event_name=semconv.EVENT_NAME,
            attributes={
                semconv.KEY: "dark-mode",
                semconv.RESULT_VALUE: "true",
                semconv.RESULT_VARIANT: "on",
                semconv.CONTEXT_ID: "dave",
            },
        )
    )
    logger.emit(LogRecord(body="not a flag evaluation"))
    provider.shutdown()

    (event,) = _get(server, "/api/events")["events"]
    health = _get(server, "/api/health")

    assert (event["flag_key"], event["value"], event["variant"]) == ("dark-mode", True, "on")
    assert (event["targeting_key"], event["service_name"]) == ("dave", "worker")
    assert health["receiver"]["log_records_received"] == 2
    assert health["receiver"]["events_recorded"] == 1


def test_a_raw_otlp_json_payload_is_recorded_and_answered_in_json(
    server: BackgroundServer,
) -> None:
    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": [string_attr("service.name", "web")]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE_HEX,
                                "spanId": "00f067aa0ba902b7",
                                "name": "GET /",
                                "events": [
                                    {
                                        "name": "feature_flag.evaluation",
                                        "timeUnixNano": "1700000000000000000",
                                        "attributes": [
                                            string_attr(semconv.KEY, "hero"),
                                            {
                                                "key": semconv.RESULT_VALUE,
                                                "value": {"intValue": "3"},
                                            },
                                        ],
                                    }
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }

    response = httpx.post(
        f"{server.url}/v1/traces",
        content=json_body(document),
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    (event,) = _get(server, "/api/events", trace_id=TRACE_HEX)["events"]
    assert (event["flag_key"], event["value"], event["service_name"]) == ("hero", 3, "web")
    assert event["timestamp"] == "2023-11-14T22:13:20+00:00"


def test_skipped_evaluations_get_an_otlp_partial_success_in_each_encoding(
    server: BackgroundServer,
) -> None:
    spans = [readable_span(events=[flag_event("kept"), flag_event(None)])]

    proto = httpx.post(
        f"{server.url}/v1/traces",
        content=traces_protobuf(spans),
        headers={"content-type": "application/x-protobuf"},
    )
    as_json = httpx.post(
        f"{server.url}/v1/traces",
        content=json.dumps(
            {
                "resourceSpans": [
                    {
                        "scopeSpans": [
                            {
                                "spans": [
                                    {
                                        "name": "x",
                                        "events": [{"name": "feature_flag", "attributes": []}],
                                    }
                                ]
                            }
                        ]
                    }
                ]
            }
        ),
        headers={"content-type": "application/json"},
    )

    assert proto.status_code == 200
    assert proto.headers["content-type"] == "application/x-protobuf"
    partial = ExportTraceServiceResponse.FromString(proto.content).partial_success
    assert partial.rejected_spans == 1
    assert "1 missing_flag_key" in partial.error_message
    assert as_json.status_code == 200
    assert as_json.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert [event["flag_key"] for event in _get(server, "/api/events")["events"]] == ["kept"]
    assert _get(server, "/api/health")["receiver"]["rejected"] == 2


def test_serve_in_background_attaches_the_exporter_to_the_provider() -> None:
    provider = TracerProvider()
    mirror = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(mirror))
    with serve_in_background(provider, port=0, max_size=50) as server:
        _run_openfeature_app(provider)

        stored = _get(server, "/api/health")
        summaries = _get(server, "/api/flags")["flags"]

    assert stored["stored"] == 9
    assert stored["max_size"] == 50
    assert len(server.collector) == 9
    assert [summary["flag_key"] for summary in summaries] == [
        "banner-color",
        "new-checkout",
        "not-declared",
    ]
    # Stopped, the server no longer records what the provider's spans carry.
    _run_openfeature_app(provider)
    assert len(server.collector) == 9
    assert len(mirror.get_finished_spans()) == 6
    provider.shutdown()


def test_serve_in_background_attaches_the_log_exporter_to_a_logger_provider() -> None:
    logger_provider = LoggerProvider()
    logger = logger_provider.get_logger("shop")
    attributes = {semconv.KEY: "new-checkout", semconv.RESULT_VALUE: "true"}
    with serve_in_background(logger_provider=logger_provider, port=0) as server:
        logger.emit(event_name=semconv.EVENT_NAME, attributes=attributes)
        logger.emit(body="an ordinary log line")

        flags = _get(server, "/api/flags")["flags"]

    assert [(flag["flag_key"], flag["by_value"]) for flag in flags] == [
        ("new-checkout", {"true": 1})
    ]
    # Stopped, the server no longer records what the provider's log records carry.
    logger.emit(event_name=semconv.EVENT_NAME, attributes=attributes)
    assert len(server.collector) == 1
    logger_provider.shutdown()


def test_serve_in_background_rejects_a_logger_provider_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="logger_provider must be"):
        serve_in_background(logger_provider=object(), port=0)  # type: ignore[arg-type]


def test_stopping_the_background_server_frees_its_port() -> None:
    server = serve_in_background(port=0)
    port = server.port
    server.stop()
    server.stop()  # idempotent

    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/api/health")
    again = serve_in_background(port=port)
    try:
        assert _get(again, "/api/health")["status"] == "ok"
    finally:
        again.stop()


def test_a_background_server_never_started_stops_cleanly() -> None:
    sock = bind("127.0.0.1", 0)
    with BackgroundServer(create_app(), sock):
        pass

    assert sock.fileno() == -1  # closed


def test_a_busy_port_gives_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(PortInUseError, match=f"127.0.0.1:{port} is already in use"):
            serve_in_background(port=port)
        with pytest.raises(PortInUseError, match="--port"):
            bind("127.0.0.1", port)


def test_the_server_binds_to_loopback_by_default(server: BackgroundServer) -> None:
    assert server.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"collector": []}, TypeError, "InMemoryAnalyticsCollector"),
        ({"max_body_bytes": 0}, ValueError, "max_body_bytes must be at least 1"),
        ({"max_body_bytes": "16M"}, TypeError, "max_body_bytes must be an int"),
        ({"max_size": 0}, ValueError, "max_size"),
        ({"value_decoding": "yaml"}, ValueError, "value_decoding"),
    ],
)
def test_create_app_rejects_bad_configuration(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        create_app(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"port": -1}, ValueError, "port must be between"),
        ({"port": "4318"}, TypeError, "port must be an int"),
        ({"host": ""}, ValueError, "host must not be empty"),
        ({"host": None}, TypeError, "host must be a str"),
        ({"tracer_provider": object()}, TypeError, "TracerProvider"),
    ],
)
def test_serve_in_background_rejects_bad_arguments(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        serve_in_background(**kwargs)


@pytest.mark.asyncio
async def test_the_app_mounts_inside_another_asgi_application() -> None:
    collector = InMemoryAnalyticsCollector()
    # Served under another name than loopback's: that name must be allowed.
    host = Starlette(
        routes=[Mount("/flags", app=create_app(collector, allowed_hosts=["app.test"]))]
    )
    body = traces_protobuf([readable_span(events=[flag_event("mounted")])])

    transport = httpx.ASGITransport(app=host)
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as client:
        posted = await client.post(
            "/flags/v1/traces", content=body, headers={"content-type": "application/x-protobuf"}
        )
        flags = (await client.get("/flags/api/flags")).json()["flags"]
        page = await client.get("/flags/")

    assert posted.status_code == 200
    assert [event.flag_key for event in collector.events()] == ["mounted"]
    assert [summary["flag_key"] for summary in flags] == ["mounted"]
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]


def test_the_core_imports_without_the_server_stack() -> None:
    code = (
        "import sys, flagscope\n"
        "heavy = {'starlette', 'uvicorn', 'click', 'rich', 'google', 'flagscope.server'}\n"
        "print(sorted(m for m in sys.modules if m in heavy or m.split('.')[0] in heavy))"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("blocked", "module", "message"),
    [
        ("starlette", "flagscope.server", "flagscope.server needs the 'server' extra"),
        (
            "google.protobuf",
            "flagscope._telemetry.otlp",
            "flagscope._telemetry.otlp needs the 'server' extra",
        ),
        ("click", "flagscope._cli.main", "the flagscope command needs the 'server' extra"),
        ("openfeature", "flagscope._cli.demo", "flagscope demo needs the 'demo' extra"),
    ],
)
def test_a_missing_extra_names_the_package_and_what_to_install(
    blocked: str, module: str, message: str
) -> None:
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        f"try:\n    import {module}\nexcept ImportError as error:\n    print(error)"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    extra = message.split("'")[1]
    assert result.stdout.strip() == (
        f"{message} ({blocked} is missing): pip install 'flagscope[{extra}]'"
    )


def test_the_documented_collector_config_fans_traces_and_logs_out_to_flagscope() -> None:
    path = Path(__file__).resolve().parent.parent / "docs" / "otel-collector.yaml"
    text = path.read_text()
    config = yaml.safe_load(text)

    pipelines = config["service"]["pipelines"]
    for signal in ("traces", "logs"):
        assert pipelines[signal]["receivers"] == ["otlp"]
        assert set(pipelines[signal]["exporters"]) == {"otlp", "otlphttp/flagscope"}
    flagscope = config["exporters"]["otlphttp/flagscope"]
    port = urlsplit(flagscope["endpoint"]).port
    assert f"flagscope serve --port {port}" in text
    assert port not in {4317, 4318}  # the Collector's own receivers
    assert (flagscope["encoding"], flagscope["compression"]) == ("proto", "gzip")


def test_the_background_server_stops_with_the_process() -> None:
    code = (
        "import urllib.request\n"
        "from flagscope.server import serve_in_background\n"
        "server = serve_in_background(port=0)\n"
        "print(urllib.request.urlopen(server.url + '/api/health').status, flush=True)\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )

    assert (result.returncode, result.stdout.strip()) == (0, "200")
    assert result.stderr == ""
