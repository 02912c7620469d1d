"""``OTEL_TRACES_EXPORTER=flagscope`` and ``OTEL_LOGS_EXPORTER=flagscope``.

OpenTelemetry's auto-configuration (``opentelemetry-instrument``, from
``opentelemetry-distro``) picks exporters by name from the
``opentelemetry_traces_exporter`` / ``opentelemetry_logs_exporter`` entry points
and builds them with no arguments. The two classes here are those exporters:

    OTEL_TRACES_EXPORTER=flagscope opentelemetry-instrument python app.py

The first one built starts the in-process dashboard (``serve_in_background``) on
``FLAGSCOPE_HOST`` (default ``127.0.0.1``) and ``FLAGSCOPE_PORT`` (default 4318,
a free port when that is taken), and prints its URL once on stderr. Both record
into that server's collector. When the last of them shuts down (the SDK shuts
its providers down at exit, after the final export), the terminal report is
printed on stderr; ``FLAGSCOPE_REPORT=0`` turns it off.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Final

from flagscope._telemetry.exporter import FlagEvaluationSpanExporter
from flagscope._telemetry.log_exporter import FlagEvaluationLogExporter
from flagscope.server._runner import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    BackgroundServer,
    PortInUseError,
    serve_in_background,
)

__all__ = ["FlagscopeLogExporter", "FlagscopeSpanExporter", "shared_server"]

_HOST_VARIABLE: Final = "FLAGSCOPE_HOST"
_PORT_VARIABLE: Final = "FLAGSCOPE_PORT"
_REPORT_VARIABLE: Final = "FLAGSCOPE_REPORT"
_OFF: Final = frozenset({"0", "false", "no", "off"})

_logger = logging.getLogger("flagscope")
_lock = threading.Lock()
_server: BackgroundServer | None = None
_open_exporters = 0


def _port_from_environment() -> int:
    text = os.environ.get(_PORT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_PORT
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"{_PORT_VARIABLE} must be a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{_PORT_VARIABLE} must be between 0 and 65535, got {port}")
    return port


def shared_server() -> BackgroundServer:
    """Return the process's flagscope server, starting it on first use.

    Raises:
        ValueError: ``FLAGSCOPE_PORT`` is not a port number, or ``FLAGSCOPE_HOST`` is empty.
    """
    global _server
    with _lock:
        if _server is None:
            host = os.environ.get(_HOST_VARIABLE, "").strip() or DEFAULT_HOST
            port = _port_from_environment()
            try:
                server = serve_in_background(host=host, port=port)
            except PortInUseError:
                server = serve_in_background(host=host, port=0)
            print(
                f"flagscope: dashboard at {server.url}/ (flag evaluations of this process)",
                file=sys.stderr,
                flush=True,
            )
            _server = server
        return _server


def _opened() -> None:
    global _open_exporters
    with _lock:
        _open_exporters += 1


def _closed() -> None:
    """Print the report when the last exporter of the process shuts down."""
    global _open_exporters
    with _lock:
        _open_exporters -= 1
        last = _open_exporters == 0
        server = _server
    if not last or server is None:
        return
    if os.environ.get(_REPORT_VARIABLE, "").strip().lower() in _OFF:
        return
    try:
        _print_report(server)
    except Exception:
        # shutdown() must never raise: it would propagate out of the provider's shutdown.
        _logger.exception("flagscope: could not print the report")


def _print_report(server: BackgroundServer) -> None:
    from rich.console import Console

    from flagscope._cli.main import render_table

    console = Console(file=sys.stderr, width=140 if not sys.stderr.isatty() else None)
    summaries = [summary.to_dict() for summary in server.collector.query.summaries()]
    if not summaries:
        console.print("flagscope: no flag evaluations recorded", markup=False, highlight=False)
        return
    total = sum(int(summary["count"]) for summary in summaries)
    console.print(
        render_table(summaries, title=f"flagscope: {total} evaluations of {len(summaries)} flags")
    )


class FlagscopeSpanExporter(FlagEvaluationSpanExporter):
    """The span exporter ``OTEL_TRACES_EXPORTER=flagscope`` selects; takes no arguments.

    Records into the process's shared server (``shared_server``).
    """

    def __init__(self) -> None:
        super().__init__(shared_server().collector)
        self._closed = False
        _opened()

    def shutdown(self) -> None:
        """Stop recording; the last flagscope exporter to shut down prints the report."""
        super().shutdown()
        if not self._closed:
            self._closed = True
            _closed()


class FlagscopeLogExporter(FlagEvaluationLogExporter):
    """The log exporter ``OTEL_LOGS_EXPORTER=flagscope`` selects; takes no arguments.

    Records log-based flag events into the process's shared server.
    """

    def __init__(self) -> None:
        super().__init__(shared_server().collector)
        self._closed = False
        _opened()

    def shutdown(self) -> None:
        """Stop recording; the last flagscope exporter to shut down prints the report."""
        super().shutdown()
        if not self._closed:
            self._closed = True
            _closed()
