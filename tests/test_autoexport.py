"""``OTEL_TRACES_EXPORTER=flagscope`` and ``OTEL_LOGS_EXPORTER=flagscope`` at work.

A small OpenFeature application runs in a subprocess under the real auto-configuration
(``opentelemetry-distro``); it reads the in-process dashboard's JSON API before it exits.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

INSTRUMENT = str(Path(sys.executable).with_name("opentelemetry-instrument"))
APP = """
import json, urllib.request

from openfeature import api
from openfeature.contrib.hook.opentelemetry import TracingHook
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider
from opentelemetry import trace
from opentelemetry._logs import LogRecord, get_logger_provider

from flagscope.server._autoexport import shared_server

api.set_provider(
    InMemoryProvider({"new-checkout": InMemoryFlag("on", {"on": True, "off": False})})
)
api.add_hooks([TracingHook()])
client = api.get_client()
tracer = trace.get_tracer("app")
for _ in range(3):
    with tracer.start_as_current_span("GET /checkout"):
        client.get_boolean_value("new-checkout", False)
get_logger_provider().get_logger("app").emit(
    LogRecord(event_name="feature_flag.evaluation", attributes={"feature_flag.key": "log-flag"})
)
trace.get_tracer_provider().force_flush()
get_logger_provider().force_flush()
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(shared_server().url + "/api/flags") as response:
    print(json.dumps(sorted(f["flag_key"] for f in json.load(response)["flags"])), flush=True)
"""


def _run(tmp_path: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "app.py").write_text(APP)
    env = {
        **os.environ,
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "instrumented-app",
        "FLAGSCOPE_PORT": "0",
        **environment,
    }
    return subprocess.run(
        [INSTRUMENT, sys.executable, "app.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _flags(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_otel_traces_exporter_flagscope_serves_the_dashboard_and_reports_at_exit(
    tmp_path: Path,
) -> None:
    result = _run(tmp_path, OTEL_TRACES_EXPORTER="flagscope", OTEL_LOGS_EXPORTER="none")

    assert _flags(result) == ["new-checkout"]
    urls = re.findall(r"^flagscope: dashboard at (http://127\.0\.0\.1:\d+/)", result.stderr, re.M)
    assert len(urls) == 1
    assert "flagscope: 3 evaluations of 1 flags" in result.stderr
    assert "new-checkout" in result.stderr.split("dashboard at", 1)[1]


def test_traces_and_logs_exporters_share_one_server_and_print_one_report(tmp_path: Path) -> None:
    result = _run(tmp_path, OTEL_TRACES_EXPORTER="flagscope", OTEL_LOGS_EXPORTER="flagscope")

    assert _flags(result) == ["log-flag", "new-checkout"]
    assert result.stderr.count("flagscope: dashboard at") == 1
    assert result.stderr.count("evaluations of 2 flags") == 1


def test_a_taken_flagscope_port_falls_back_to_a_free_one(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run(
            tmp_path,
            OTEL_TRACES_EXPORTER="flagscope",
            OTEL_LOGS_EXPORTER="none",
            FLAGSCOPE_PORT=str(port),
            FLAGSCOPE_REPORT="0",
        )
    assert _flags(result) == ["new-checkout"]
    (url,) = re.findall(r"dashboard at http://127\.0\.0\.1:(\d+)/", result.stderr)
    assert int(url) != port
    assert "evaluations of 1 flags" not in result.stderr


@pytest.mark.parametrize("value", ["http", "70000"])
def test_a_bad_flagscope_port_is_a_clear_error(tmp_path: Path, value: str) -> None:
    result = _run(
        tmp_path, OTEL_TRACES_EXPORTER="flagscope", OTEL_LOGS_EXPORTER="none", FLAGSCOPE_PORT=value
    )
    assert "FLAGSCOPE_PORT must be" in result.stderr
