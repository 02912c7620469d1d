"""The ``flagscope`` command: serve, report and demo, run as a user runs them."""

from __future__ import annotations

import contextlib
import csv
import gc
import http.server
import io
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from flagscope import __version__
from flagscope._cli import main as cli_main
from flagscope._cli.main import cli
from flagscope._telemetry import semconv
from flagscope.server import BackgroundServer, serve_in_background
from flagscope.server import _runner as runner_module
from otlp_payloads import traces_protobuf
from producers import flag_event, readable_span

FLAGSCOPE = str(Path(sys.executable).with_name("flagscope"))
HOSTILE_KEY = "\x1b[2J[bold red]pwn[/bold red]"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Child:
    """A ``flagscope`` process whose stdout lines are read on a thread as they come."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [FLAGSCOPE, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # A shell starting the test run in the background (as CI harnesses may) leaves
            # SIGINT ignored, and Python then installs no KeyboardInterrupt handler: give
            # the child the terminal's default, as a user pressing Ctrl-C would have.
            preexec_fn=_default_sigint,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self._stderr_pump = threading.Thread(target=self._pump_stderr, daemon=True)
        self._stderr_pump.start()

    def _pump_stderr(self) -> None:
        assert self.process.stderr is not None
        self._stderr.append(self.process.stderr.read())

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def read_until(self, marker: str, timeout: float = 60.0) -> list[str]:
        """Return the stdout lines up to the first one containing ``marker``."""
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            lines.append(line)
            if marker in line:
                return lines
        self.process.kill()
        raise AssertionError(f"{marker!r} never printed; got {lines}")

    def interrupt(self) -> tuple[int, str]:
        """Press Ctrl-C; return the exit code and stderr."""
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("flagscope did not stop on Ctrl-C within 60 s") from None
        self._stderr_pump.join(timeout=10)
        return code, "".join(self._stderr)


@pytest.fixture
def loaded_server() -> Iterator[BackgroundServer]:
    running = serve_in_background(port=0)
    events = [
        flag_event("checkout", {semconv.RESULT_VARIANT: "on", semconv.CONTEXT_ID: "a"}),
        flag_event("checkout", {semconv.RESULT_VARIANT: "on", semconv.CONTEXT_ID: "b"}),
        flag_event("checkout", {semconv.RESULT_VARIANT: "off", semconv.CONTEXT_ID: "c"}),
        flag_event("missing", {semconv.ERROR_TYPE: "flag_not_found"}),
        flag_event(HOSTILE_KEY, {semconv.RESULT_VARIANT: "[link=http://x]v[/link]"}),
    ]
    response = httpx.post(
        f"{running.url}/v1/traces",
        content=traces_protobuf([readable_span(events=events)]),
        headers={"content-type": "application/x-protobuf"},
    )
    assert response.status_code == 200
    try:
        yield running
    finally:
        running.stop()


# -- serve --------------------------------------------------------------------------------------


def test_serve_receives_otlp_and_stops_cleanly_on_ctrl_c() -> None:
    child = Child("serve", "--port", "0", "--max-size", "7")
    try:
        lines = child.read_until("OTEL_EXPORTER_OTLP_ENDPOINT=")
        url = lines[-1].split("=", 1)[1]
        body = traces_protobuf([readable_span(events=[flag_event("from-cli")])])

        posted = httpx.post(
            f"{url}/v1/traces", content=body, headers={"content-type": "application/x-protobuf"}
        )
        health = httpx.get(f"{url}/api/health").json()
    finally:
        code, stderr = child.interrupt()

    # The startup line names both endpoints: OTLP/HTTP (with the dashboard) and OTLP/gRPC.
    assert lines[0].startswith(
        f"flagscope {__version__} listening on {url} (OTLP/HTTP) and http://127.0.0.1:"
    )
    assert lines[0].endswith(" (OTLP/gRPC)")
    assert url.startswith("http://127.0.0.1:")
    assert posted.status_code == 200
    assert (health["stored"], health["max_size"]) == (1, 7)
    assert code == 0
    assert "flagscope stopped" in stderr
    assert "Traceback" not in stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/api/health")


def test_serve_on_a_busy_port_says_so_and_exits_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = subprocess.run(
            [FLAGSCOPE, "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert result.returncode == 1
    assert f"Error: 127.0.0.1:{port} is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_on_an_unknown_host_says_so_and_exits_1() -> None:
    result = CliRunner().invoke(cli, ["serve", "--host", "no-such-host.invalid", "--port", "0"])

    assert result.exit_code == 1
    assert "cannot listen on no-such-host.invalid:0" in result.output


def test_serve_on_an_empty_host_says_so_and_exits_1() -> None:
    result = CliRunner().invoke(cli, ["serve", "--host", "", "--port", "0"])

    assert result.exit_code == 1
    assert result.output.strip() == "Error: cannot listen on :0: host must not be empty"


def test_serve_freezes_what_a_large_body_decoding_made(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[Any] = []

    class NotServing:
        def run(self, sockets: Any) -> None:
            served.append(sockets)

    def make_server(app: Any, **options: Any) -> NotServing:
        served.append(app)
        return NotServing()

    # The process-wide settings serve makes for itself, kept out of the test process.
    monkeypatch.setattr(runner_module, "make_server", make_server)
    monkeypatch.setattr(cli_main, "_start_freezing", lambda: None)
    monkeypatch.setattr(sys, "setswitchinterval", lambda interval: None)

    result = CliRunner().invoke(cli, ["serve", "--port", "0", "--no-grpc"])

    assert result.exit_code == 0, result.output
    app = served[0]
    assert app.state.receiver.after_worker_decode is cli_main._freeze_now
    before = gc.get_freeze_count()
    try:
        cli_main._freeze_now()
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()


def test_version_option_prints_the_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])

    assert result.exit_code == 0
    assert __version__ in result.output


# -- report -------------------------------------------------------------------------------------


def _report(*args: str) -> Any:
    return CliRunner().invoke(cli, ["report", *args], catch_exceptions=False)


def test_report_prints_a_table_row_per_flag(loaded_server: BackgroundServer) -> None:
    result = _report("--url", loaded_server.url)

    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].strip() == "5 evaluations of 3 flags"
    (checkout,) = [line for line in lines if "checkout" in line]
    assert [cell.strip() for cell in checkout.split("│")[1:-1]][:6] == [
        "checkout",
        "3",
        "on 67% · off 33%",
        "unknown 100%",
        "0",
        "3",
    ]
    (missing,) = [line for line in lines if "missing" in line]
    assert "1 (100%)" in missing
    assert f"dashboard: {loaded_server.url}/" in result.output


def test_report_prints_hostile_keys_as_inert_text(loaded_server: BackgroundServer) -> None:
    result = _report("--url", loaded_server.url)

    assert "\x1b" not in result.output
    assert "\\x1b[2J[bold red]pwn[/bold red]" in result.output
    assert "[link=http://x]v[/link]" in result.output


def test_report_json_is_what_the_api_gives(loaded_server: BackgroundServer) -> None:
    result = _report("--url", loaded_server.url, "--format", "json")

    api = httpx.get(f"{loaded_server.url}/api/flags").json()["flags"]
    assert json.loads(result.output) == api


def test_report_csv_has_one_row_per_flag(loaded_server: BackgroundServer) -> None:
    result = _report("--url", loaded_server.url, "--format", "csv")

    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert sorted(row["flag_key"] for row in rows) == sorted([HOSTILE_KEY, "checkout", "missing"])
    checkout = next(row for row in rows if row["flag_key"] == "checkout")
    assert checkout["count"] == "3"
    assert json.loads(checkout["by_variant"]) == {"on": 2, "off": 1}


def test_report_flag_option_keeps_only_those_flags(loaded_server: BackgroundServer) -> None:
    result = _report("--url", loaded_server.url, "--flag", "missing", "--format", "json")

    assert [flag["flag_key"] for flag in json.loads(result.output)] == ["missing"]


def test_report_goes_straight_to_the_server_whatever_proxy_is_set(
    loaded_server: BackgroundServer,
) -> None:
    dead_proxy = "http://127.0.0.1:9"
    runner = CliRunner(env={"http_proxy": dead_proxy, "HTTP_PROXY": dead_proxy, "no_proxy": ""})

    result = runner.invoke(cli, ["report", "--url", loaded_server.url, "--format", "json"])

    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)) == 3


def test_report_with_no_server_explains_and_exits_1() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]

    result = CliRunner().invoke(cli, ["report", "--url", f"http://127.0.0.1:{port}"])

    assert result.exit_code == 1
    assert f"no flagscope server at http://127.0.0.1:{port}" in result.output
    assert "flagscope serve" in result.output


@pytest.mark.parametrize(
    "url", ["localhost:4318", "ftp://127.0.0.1", "http://[::1", "http://h:99999"]
)
def test_report_with_a_url_that_is_not_http_is_a_usage_error(url: str) -> None:
    result = CliRunner().invoke(cli, ["report", "--url", url])

    assert result.exit_code == 2
    assert "Invalid value for '--url': must be an http:// or https:// URL" in result.output


def test_report_on_an_empty_server_says_so() -> None:
    with serve_in_background(port=0) as empty:
        result = _report("--url", empty.url)

    assert result.output.strip() == f"no flag evaluations stored at {empty.url} yet"


# -- demo ---------------------------------------------------------------------------------------


def test_demo_runs_without_a_terminal_and_reports_everything_it_sent() -> None:
    # The demo's port is taken: it must pick another and say so, not fail.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [FLAGSCOPE, "demo", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            env={**os.environ, "TERM": "dumb"},
        )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"port {port} is taken; using ")
    (tally,) = [line for line in lines if line.startswith("the shop made")]
    made, stored = (int(word) for word in tally.split() if word.isdigit())
    assert made == stored > 0
    for flag in ("new-checkout", "banner-color", "gift-wrap", "weekly-digest"):
        assert any(line.startswith(f"│ {flag} ") for line in lines), flag
    assert any(line.startswith("dashboard: http://127.0.0.1:") for line in lines)


def test_ctrl_c_in_the_middle_of_the_demo_stops_the_shop_before_the_server() -> None:
    child = Child("demo", "--port", "0")
    line = child.read_until("running the demo shop")[-1]
    url = line.split()[3].rstrip(";/")
    # Interrupt only once the shop's exports are arriving, so its exporters hold work.
    deadline = time.monotonic() + 30
    while httpx.get(f"{url}/api/health").json()["total_recorded"] == 0:
        assert time.monotonic() < deadline, "the demo shop never exported"
        time.sleep(0.05)
    code, stderr = child.interrupt()

    # The shop's exporters had nobody to retry against: no "Transient error" retries.
    assert code == 1, stderr
    assert "Aborted!" in stderr
    assert "Transient error" not in stderr


def test_demo_serve_keeps_the_dashboard_up_with_live_traffic_until_ctrl_c() -> None:
    child = Child("demo", "--port", "0", "--serve")
    try:
        line = child.read_until("live traffic")[-1]
        url = line.split()[1].rstrip("/")
        first = httpx.get(f"{url}/api/health").json()["total_recorded"]
        page = httpx.get(f"{url}/")
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/api/health").json()["total_recorded"] == first:
            assert time.monotonic() < deadline, "no live traffic"
            time.sleep(0.2)
    finally:
        code, stderr = child.interrupt()

    assert page.status_code == 200
    assert code == 0, stderr
    assert "Traceback" not in stderr


# -- the report against servers that are not what they seem ---------------------------------


class _FakeServer:
    """An HTTP server on a thread, answering every GET with ``answer(handler)``."""

    def __init__(self, answer: Any) -> None:
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.requests.append(self.path)
                with contextlib.suppress(OSError):
                    answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.requests: list[str] = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _answer(status: int, body: bytes, **headers: str) -> Any:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in {"content-length": str(len(body)), **headers}.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.end_headers()
        handler.wfile.write(body)

    return answer


def _report_process(url: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLAGSCOPE, "report", "--url", url, *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: ")
    return line


def test_report_refuses_an_answer_larger_than_its_cap_before_reading_it() -> None:
    def huge(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("content-length", str(7 * 1024**3))
        handler.end_headers()
        while True:
            handler.wfile.write(bytes(1024 * 1024))

    with _FakeServer(huge) as fake:
        line = _one_line_error(_report_process(fake.url))
    assert "more than the 67108864" in line


def test_report_stops_reading_an_endless_answer_at_its_cap() -> None:
    def endless(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.end_headers()  # no length: read until the server closes
        while True:
            handler.wfile.write(b"[" * (1024 * 1024))

    with _FakeServer(endless) as fake:
        line = _one_line_error(_report_process(fake.url))
    assert "more than the 67108864 bytes" in line


def test_report_gives_up_on_a_server_that_drips_at_its_deadline() -> None:
    stop = threading.Event()

    def drip(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("content-length", "1000000")
        handler.end_headers()
        while not stop.wait(0.2):
            handler.wfile.write(b" ")
            handler.wfile.flush()

    with _FakeServer(drip) as fake:
        try:
            line = _one_line_error(_report_process(fake.url, "--timeout", "1"))
        finally:
            stop.set()
    assert line == f"Error: {fake.url} did not answer within 1 s"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "did not answer JSON"),
        (b"<html>hello</html>", "did not answer JSON"),
        (b"[" * 100_000, "did not answer JSON"),
        (b'{"flags": [1, 2]}', "a summary that is a int"),
        (b'{"flags": [{"flag_key": "x", "count": "many"}]}', "count 'many', not a count"),
        (b'{"flags": [{"flag_key": "x", "count": 1, "by_variant": ["a"]}]}', "by_variant"),
        (b'{"flags": {"a": 1}}', "did not answer a flags list"),
    ],
)
def test_report_says_in_one_line_when_the_answer_is_not_flagscope_s(
    body: bytes, message: str
) -> None:
    with _FakeServer(_answer(200, body, content_type="application/json")) as fake:
        line = _one_line_error(_report_process(fake.url))
    assert message in line


def test_report_does_not_follow_a_redirect_to_another_host() -> None:
    with _FakeServer(_answer(302, b"", location="http://other.example/api/flags")) as fake:
        line = _one_line_error(_report_process(fake.url))
    assert "redirected to http://other.example/api/flags" in line
    assert "not followed" in line
    assert fake.requests == ["/api/flags"]


def test_report_follows_a_redirect_on_the_same_host() -> None:
    flags = json.dumps({"flags": []}).encode()

    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        if handler.path.startswith("/moved"):
            _answer(200, flags, content_type="application/json")(handler)
        else:
            _answer(307, b"", location="/moved/api/flags")(handler)

    with _FakeServer(answer) as fake:
        result = _report_process(fake.url)
    assert result.returncode == 0, result.stderr
    assert "no flag evaluations stored" in result.stdout


def test_report_error_messages_from_the_server_are_one_inert_line() -> None:
    error = json.dumps({"error": "bad\n\x1b[2Jthings\r\nhappened"}).encode()
    with _FakeServer(_answer(400, error, content_type="application/json")) as fake:
        line = _one_line_error(_report_process(fake.url))
    assert "\x1b" not in line
    assert "400 bad \\x1b[2Jthings happened" in line


def test_report_escapes_every_cell() -> None:
    hostile = HOSTILE_KEY + "\x07"
    summary = {
        "flag_key": hostile,
        "count": 2,
        "error_count": 1,
        "error_rate": 0.5,
        "by_variant": {hostile: 2},
        "by_reason": {"\x1b]0;title\x07": 2},
        "distinct_targeting_keys": 1,
        "last_seen": "\x1b[31mnot a time",
    }
    counters = dict(
        _COUNTERS, flag_key=hostile, by_variant={hostile: 2}, by_reason={"\x1b]0;title\x07": 2}
    )
    with _FakeServer(_json_api([summary], counters=[counters])) as fake:
        result = _report_process(fake.url)
    assert result.returncode == 0, result.stderr
    assert "flag evaluation metrics" in result.stdout
    assert "\x1b" not in result.stdout
    assert "\x07" not in result.stdout
    assert "\\x1b" in result.stdout  # shown, inert
    assert "pwn" in result.stdout


# -- issue 11: env vars, did you mean, metrics, python -m, missing extra -----------------------

METRICS_RUN = Path(__file__).parent / "fixtures" / "otlp-js-metrics" / "json"


def test_report_on_a_flag_that_is_not_stored_suggests_the_close_ones(
    loaded_server: BackgroundServer,
) -> None:
    line = _one_line_error(_report_process(loaded_server.url, "--flag", "chekout"))
    assert "no evaluations of chekout stored" in line
    assert "did you mean checkout?" in line


def test_report_reads_the_server_url_from_flagscope_url(loaded_server: BackgroundServer) -> None:
    result = subprocess.run(
        [FLAGSCOPE, "report", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "FLAGSCOPE_URL": loaded_server.url},
    )
    assert result.returncode == 0, result.stderr
    assert "checkout" in [flag["flag_key"] for flag in json.loads(result.stdout)]


def test_report_prints_flag_counters_received_as_metrics(loaded_server: BackgroundServer) -> None:
    for request in json.loads((METRICS_RUN / "requests.json").read_text()):
        response = httpx.post(
            loaded_server.url + request["path"],
            content=(METRICS_RUN / request["file"]).read_bytes(),
            headers={"content-type": request["content_type"]},
        )
        assert response.status_code == 200

    result = _report("--url", loaded_server.url)

    assert result.exit_code == 0
    head, counters = result.output.split("flag evaluation metrics", 1)
    assert "checkout" in head
    (row,) = [line for line in counters.splitlines() if "new-checkout" in line]
    assert [cell.strip() for cell in row.split("│")[1:-1]] == [
        "new-checkout",
        "5",
        "off 60% · on 40%",
        "targeting_match 100%",
        "0",
    ]


def test_serve_reads_host_and_port_from_the_environment() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [FLAGSCOPE, "serve", "--no-grpc"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "FLAGSCOPE_PORT": str(port), "FLAGSCOPE_HOST": "127.0.0.1"},
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert f"listening on http://127.0.0.1:{port} (OTLP/HTTP)" in banner
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def test_python_dash_m_flagscope_runs_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flagscope", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_without_the_server_extra_the_command_says_so_in_one_line(tmp_path: Path) -> None:
    # Shadow the server extra's packages with modules that fail to import, as when absent.
    for name in ("click", "rich"):
        (tmp_path / f"{name}.py").write_text(f"raise ModuleNotFoundError(name={name!r})\n")
    result = subprocess.run(
        [sys.executable, "-m", "flagscope", "report"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("flagscope: ")
    assert "pip install 'flagscope[server]'" in line


# -- the report's output and errors, whatever the input or the server ----------------------

_SUMMARY = {
    "flag_key": "a",
    "count": 1,
    "by_variant": {"on": 1},
    "by_reason": {"static": 1},
    "error_count": 0,
    "error_rate": 0.0,
    "distinct_targeting_keys": 1,
    "last_seen": None,
}
_COUNTERS = {
    "flag_key": "a",
    "evaluations": 2,
    "successes": 2,
    "errors": 0,
    "by_variant": {"on": 2},
    "by_reason": {"static": 2},
}
_VARIANT = {"variant": "on", "requests": 1, "verdict": "baseline"}


def _impact(key: str, *variants: dict[str, Any]) -> dict[str, Any]:
    return {
        "flag_key": key,
        "baseline": "on",
        "scope": "request",
        "variants": list(variants) or [_VARIANT],
    }


def _json_api(
    flags: list[dict[str, Any]],
    *,
    impacts: dict[str, Any] | None = None,
    counters: list[dict[str, Any]] | None = None,
    delays: dict[str, float] | None = None,
    refusals: dict[str, str] | None = None,
) -> Any:
    """Answer as a flagscope server would: ``/api/flags``, ``/impact`` and ``/api/metrics``.

    ``impacts`` maps a flag key to its impact document (missing: 404); ``refusals`` a
    flag key to the error its ``/impact`` answers with 400; ``delays`` maps ``flags``,
    ``impact`` or ``metrics`` to seconds to wait before answering.
    """

    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        path, _, query = handler.path.partition("?")
        if path == "/api/flag/impact":
            kind = "impact"
            (key,) = urllib.parse.parse_qs(query, keep_blank_values=True)["flag_key"]
            impact = (impacts or {}).get(key)
            refusal = (refusals or {}).get(key)
            document: Any
            if refusal is not None:
                status, document = 400, {"error": refusal}
            elif impact is not None:
                status, document = 200, impact
            else:
                status, document = 404, {"error": "gone"}
        elif path.endswith("/api/metrics"):
            kind, status, document = "metrics", 200, {"flags": counters or []}
        else:
            kind, status, document = "flags", 200, {"flags": flags}
        time.sleep((delays or {}).get(kind, 0.0))
        _answer(status, json.dumps(document).encode(), content_type="application/json")(handler)

    return answer


_STORED_KEYS = [
    "bel\x07key",
    "bs\x08key",
    "vt\x0bkey",
    "ff\x0ckey",
    "tab\tkey",
    "cr\rkey",
    "\x1b[2Jesc",
]


def test_report_csv_gives_every_cell_exactly_as_stored() -> None:
    flags = [dict(_SUMMARY, flag_key=key) for key in _STORED_KEYS]
    with _FakeServer(_json_api(flags)) as fake:
        result = _report("--url", fake.url, "--format", "csv")

    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    assert [row["flag_key"] for row in rows] == _STORED_KEYS


def test_report_impact_csv_gives_every_cell_exactly_as_stored() -> None:
    impacts = {key: _impact(key, dict(_VARIANT, variant="v\t1\x07")) for key in _STORED_KEYS}
    flags = [dict(_SUMMARY, flag_key=key) for key in _STORED_KEYS]
    with _FakeServer(_json_api(flags, impacts=impacts)) as fake:
        result = _report("--url", fake.url, "--impact", "--format", "csv")

    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    assert [(row["flag_key"], row["variant"]) for row in rows] == [
        (key, "v\t1\x07") for key in _STORED_KEYS
    ]


def test_report_impact_skips_a_flag_evicted_after_the_listing() -> None:
    flags = [dict(_SUMMARY, flag_key=key) for key in ("a", "gone", "b")]
    impacts = {"a": _impact("a"), "b": _impact("b")}
    with _FakeServer(_json_api(flags, impacts=impacts)) as fake:
        result = _report("--url", fake.url, "--impact", "--format", "csv")

    assert result.exit_code == 0, result.output
    assert [row["flag_key"] for row in csv.DictReader(io.StringIO(result.stdout))] == ["a", "b"]
    assert result.stderr == (
        f"skipped flag 'gone': {fake.url} no longer stores it "
        "(evicted since the flags were listed)\n"
    )


def test_report_impact_on_a_given_flag_that_is_not_stored_is_an_error() -> None:
    with _FakeServer(_json_api([], impacts={"a": _impact("a")})) as fake:
        line = _one_line_error(_report_process(fake.url, "--impact", "--flag", "a", "--flag", "x"))
    assert line == f"Error: {fake.url}/api/flag/impact?flag_key=x&scope=request: 404 gone"


def test_report_impact_asks_once_for_a_flag_given_twice() -> None:
    with _FakeServer(_json_api([], impacts={"co": _impact("co")})) as fake:
        result = _report(
            "--url", fake.url, "--impact", "--flag", "co", "--flag", "co", "--format", "csv"
        )

    assert result.exit_code == 0, result.output
    assert len(list(csv.DictReader(io.StringIO(result.stdout)))) == 1
    assert [path for path in fake.requests if "/impact" in path] == [
        "/api/flag/impact?flag_key=co&scope=request"
    ]


def test_report_impact_timeout_is_for_the_whole_report() -> None:
    # Each answer comes well within --timeout; all five together do not.
    keys = [f"f{n}" for n in range(5)]
    api = _json_api(
        [dict(_SUMMARY, flag_key=key) for key in keys],
        impacts={key: _impact(key) for key in keys},
        delays={"impact": 0.5},
    )
    with _FakeServer(api) as fake:
        line = _one_line_error(_report_process(fake.url, "--impact", "--timeout", "1.2"))
    assert line == f"Error: {fake.url} did not answer within 1.2 s"
    assert len([path for path in fake.requests if "/impact" in path]) < 5


def test_report_timeout_is_for_all_its_requests() -> None:
    api = _json_api([_SUMMARY], counters=[_COUNTERS], delays={"flags": 0.7, "metrics": 0.7})
    with _FakeServer(api) as fake:
        line = _one_line_error(_report_process(fake.url, "--timeout", "1"))
    assert line == f"Error: {fake.url} did not answer within 1 s"


@pytest.mark.parametrize(
    "options",
    [
        ("--flag", "\udcff"),
        ("--flag", "ok", "--flag", "x\udcff", "--impact"),
        ("--impact", "--baseline", "\udcff"),
    ],
)
def test_report_refuses_arguments_that_are_not_utf8_text(options: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, ["report", "--url", "http://127.0.0.1:9", *options])

    assert result.exit_code == 2
    assert "is not UTF-8 text" in result.output
    assert "\\xff" in result.output


def test_report_percent_encodes_a_url_path_that_is_not_ascii() -> None:
    with _FakeServer(_json_api([_SUMMARY])) as fake:
        result = _report("--url", f"{fake.url}/é ü", "--format", "json")

    assert result.exit_code == 0, result.output
    assert fake.requests[0] == "/%C3%A9%20%C3%BC/api/flags"


def test_report_refuses_a_url_that_is_not_text() -> None:
    result = CliRunner().invoke(cli, ["report", "--url", "http://127.0.0.1:9/\udcff"])

    assert result.exit_code == 2
    assert "Invalid value for '--url': http://127.0.0.1:9/\\xff is not a URL" in result.output


def test_report_says_in_one_line_when_a_redirect_is_not_ascii() -> None:
    with _FakeServer(_answer(302, b"", location="/\u00e9")) as fake:
        line = _one_line_error(_report_process(fake.url))
    assert "cannot be asked" in line


@pytest.mark.parametrize(
    "arguments",
    [
        ["report", "--timeout", "nan"],
        ["serve", "--body-timeout", "NaN"],
        ["serve", "--header-timeout", "nan"],
    ],
)
def test_timeouts_refuse_nan(arguments: list[str]) -> None:
    result = CliRunner().invoke(cli, arguments)

    assert result.exit_code == 2
    assert "is not a number of seconds" in result.output


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("options", [(), ("--format", "json"), ("--impact", "--format", "csv")])
def test_report_to_a_full_disk_says_so_in_one_line(options: tuple[str, ...]) -> None:
    with (
        _FakeServer(_json_api([_SUMMARY], impacts={"a": _impact("a")})) as fake,
        Path("/dev/full").open("w") as full,
    ):
        result = subprocess.run(
            [FLAGSCOPE, "report", "--url", fake.url, *options],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr == (
        "Error: cannot write the report to standard output: No space left on device\n"
    )


@pytest.mark.parametrize("output", ["table", "csv"])
def test_report_into_a_closed_pipe_exits_1_quietly(output: str) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # before the report starts: its every write finds no reader
    try:
        with _FakeServer(_json_api([_SUMMARY])) as fake:
            result = subprocess.run(
                [FLAGSCOPE, "report", "--url", fake.url, "--format", output],
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
                check=False,
            )
    finally:
        os.close(write_end)
    assert result.returncode == 1
    assert result.stderr == ""


def test_report_says_in_one_line_what_it_cannot_encode() -> None:
    with _FakeServer(_json_api([dict(_SUMMARY, flag_key="caf\u00e9")])) as fake:
        result = subprocess.run(
            [FLAGSCOPE, "report", "--url", fake.url, "--format", "csv"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "PYTHONIOENCODING": "ascii"},
        )
    line = _one_line_error(result)
    assert line == (
        "Error: cannot write '\u00e9' to standard output (ascii); "
        "PYTHONIOENCODING=utf-8 would write it"
    )


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ({"error_rate_interval": 5}, "error_rate_interval 5, not a pair of numbers"),
        ({"error_rate_interval": {"x": 1, "y": 2}}, "error_rate_interval {'x': 1, 'y': 2}, not"),
        ({"error_rate_interval": [0.1]}, "error_rate_interval [0.1], not a pair of numbers"),
        ({"requests": "many"}, "requests 'many', not a count"),
        ({"duration_p50_ms": float("nan")}, "duration_p50_ms nan, not a number"),
        ({"variant": None}, "variant None, not a name"),
    ],
)
def test_report_impact_says_in_one_line_which_field_is_malformed(
    variant: dict[str, Any], message: str
) -> None:
    impacts = {"a": _impact("a", dict(_VARIANT, **variant))}
    with _FakeServer(_json_api([_SUMMARY], impacts=impacts)) as fake:
        line = _one_line_error(_report_process(fake.url, "--impact", "--format", "csv"))
    assert f"{fake.url}/api/flag/impact for flag 'a' answered {message}" in line


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"flags": {"a": 1}}, "/api/flags did not answer a flags list"),
        ([], "/api/flags did not answer a flags list"),
    ],
)
def test_report_impact_says_in_one_line_when_the_listing_is_malformed(
    answer: Any, message: str
) -> None:
    body = json.dumps(answer).encode()
    with _FakeServer(_answer(200, body, content_type="application/json")) as fake:
        line = _one_line_error(_report_process(fake.url, "--impact"))
    assert message in line


@pytest.mark.parametrize(
    ("counters", "message"),
    [
        ({"by_variant": {"on": "many"}}, "by_variant {'on': 'many'}, not counts by name"),
        ({"errors": 1.5}, "errors 1.5, not a count"),
        ({"flag_key": 3}, "an entry without a flag_key"),
    ],
)
def test_report_says_in_one_line_which_metrics_count_is_malformed(
    counters: dict[str, Any], message: str
) -> None:
    with _FakeServer(_json_api([_SUMMARY], counters=[dict(_COUNTERS, **counters)])) as fake:
        line = _one_line_error(_report_process(fake.url))
    assert f"{fake.url}/api/metrics answered {message}" in line


def test_report_shows_a_last_seen_past_year_9999_in_utc_as_given() -> None:
    summary = dict(_SUMMARY, last_seen="9999-12-31T23:59:59-14:00")
    with _FakeServer(_json_api([summary])) as fake:
        result = _report_process(fake.url)
    assert result.returncode == 0, result.stderr
    assert "9999-12-31T23:59:59-14:00" in result.stdout.replace("\n", "")


def test_report_impact_skips_a_long_flag_key_that_never_served_the_baseline() -> None:
    # The skip read the server's error as the report shows it, cut to 200 characters:
    # past them, the words that mark a baseline never served were gone.
    long_key = "checkout-" + "x" * 190
    flags = [dict(_SUMMARY, flag_key=key) for key in ("short", long_key)]
    never = f"baseline 'control' of flag {long_key!r} was never served; served: 'a', 'b'"
    impacts = {"short": _impact("short")}
    with _FakeServer(_json_api(flags, impacts=impacts, refusals={long_key: never})) as fake:
        result = _report("--url", fake.url, "--impact", "--baseline", "control", "--format", "csv")

    assert result.exit_code == 0, result.output
    assert [row["flag_key"] for row in csv.DictReader(io.StringIO(result.stdout))] == ["short"]
    assert "it never served the baseline 'control'" in result.stderr
