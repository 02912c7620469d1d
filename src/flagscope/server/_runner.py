"""Running the app with uvicorn: in the foreground, or on a background thread."""

from __future__ import annotations

import atexit
import errno
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Final

import uvicorn
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from starlette.applications import Starlette

from flagscope._query.collector import InMemoryAnalyticsCollector
from flagscope._telemetry.exporter import BaseFlagExporter, FlagEvaluationSpanExporter
from flagscope._telemetry.log_exporter import FlagEvaluationLogExporter
from flagscope._validate import check_int, check_optional_int
from flagscope.server._app import DEFAULT_MAX_BYTES, create_app
from flagscope.server._body import DEFAULT_MAX_BODY_BYTES, check_seconds
from flagscope.server._connections import DEFAULT_HEADER_TIMEOUT, guarded_protocol

__all__ = [
    "BackgroundServer",
    "PortInUseError",
    "bind",
    "make_server",
    "serve_in_background",
]

if TYPE_CHECKING:
    from flagscope.server._grpc_receiver import GrpcReceiver

_logger = logging.getLogger("flagscope")

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 4318  # OTLP/HTTP's registered port: exporters send here by default.
_START_TIMEOUT: Final = 10.0
# uvicorn's own limits: an idle keep-alive connection closes after this many seconds,
# and a stop waits at most this long for requests in flight before cancelling them.
KEEP_ALIVE_TIMEOUT: Final = 5
GRACEFUL_SHUTDOWN_TIMEOUT: Final = 3


class PortInUseError(OSError):
    """The address is already taken by another process."""


def _check_port(port: object) -> int:
    return check_int("port", port, minimum=0, maximum=65535)


def bind(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> socket.socket:
    """Bind a listening TCP socket; port 0 picks a free one.

    Binding here, before uvicorn starts, turns a busy port into one clear error.

    Raises:
        PortInUseError: Something else listens on ``host:port``.
        OSError: The address cannot be bound for another reason.
        TypeError: ``host`` is not a str or ``port`` not an int.
        ValueError: ``host`` is empty or ``port`` out of range.
    """
    port = _check_port(port)
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, got {type(host).__name__}")
    if not host:
        raise ValueError("host must not be empty")
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # As uvicorn does: restart at once after a stop, without stealing a live port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise PortInUseError(
                errno.EADDRINUSE,
                f"{host}:{port} is already in use; stop the other server or pick another "
                "port (--port, or port=0 for any free port)",
            ) from None
        raise
    sock.set_inheritable(True)
    return sock


def make_server(
    app: Starlette,
    *,
    log_level: str = "warning",
    max_connections: int | None = None,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
) -> uvicorn.Server:
    """Return a uvicorn server for ``app`` (quiet: no access log, no lifespan), hardened.

    uvicorn's own settings bound what it can: idle keep-alive connections close after
    ``KEEP_ALIVE_TIMEOUT`` seconds, more than ``max_connections`` busy connections get
    503 (``limit_concurrency``), and a stop waits at most
    ``GRACEFUL_SHUTDOWN_TIMEOUT`` seconds. Its h11 protocol is extended with a
    header timeout, a write timeout and idle shedding
    (``flagscope.server._connections``).

    Args:
        app: The ASGI app.
        log_level: uvicorn's log level.
        max_connections: The connection cap; by default below the file-descriptor
            limit, at most 1000.
        header_timeout: Seconds a connection has to send each request's headers.

    Raises:
        TypeError: A limit of the wrong type.
        ValueError: A limit out of range.
    """
    header_timeout = check_seconds("header_timeout", header_timeout)
    max_connections = check_optional_int("max_connections", max_connections, minimum=1)
    protocol = guarded_protocol(max_connections=max_connections, header_timeout=header_timeout)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        server_header=False,
        proxy_headers=False,
        http=protocol,
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
        limit_concurrency=protocol.max_connections + 1,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_TIMEOUT,
    )
    return uvicorn.Server(config)


def url_of(sock: socket.socket) -> str:
    """Return ``http://host:port`` for a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class BackgroundServer:
    """A flagscope server running on a daemon thread; ``stop()`` ends it.

    Also a context manager. It stops by itself when the process exits.

    Attributes:
        app: The ASGI app.
        collector: Where evaluations are recorded.
        url: The base URL, e.g. ``http://127.0.0.1:4318`` (the dashboard is at ``/``).
        port: The port it listens on.
        grpc_port: The OTLP/gRPC port, when it listens for gRPC too (else ``None``).
    """

    def __init__(self, app: Starlette, sock: socket.socket) -> None:
        self.app = app
        self.collector: InMemoryAnalyticsCollector = app.state.collector
        self.url = url_of(sock)
        self.port: int = sock.getsockname()[1]
        self._sock = sock
        self._server = make_server(app)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="flagscope-server", daemon=True)
        self._stop_lock = threading.Lock()
        self._stopped = False
        # Exporters feeding ``collector`` from a provider, which cannot drop them: stopped
        # with the server, so the application stops paying for records nobody serves.
        self._exporters: list[BaseFlagExporter[Any, Any]] = []
        self._grpc: GrpcReceiver | None = None
        self.grpc_port: int | None = None

    def _serve_grpc(self, host: str, port: int, max_body_bytes: int) -> None:
        """Also listen for OTLP/gRPC on ``host:port``, stopped with the server."""
        # grpcio takes a while to import: only servers that listen for gRPC pay for it.
        from flagscope.server._grpc_receiver import GrpcReceiver

        grpc_receiver = GrpcReceiver(self.app.state.receiver, max_body_bytes=max_body_bytes)
        self._grpc = grpc_receiver
        self.grpc_port = grpc_receiver.start(host, port)

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except (Exception, SystemExit) as error:
            # A thread cannot raise to its starter: start() reports it.
            self._failure = error
            _logger.exception("flagscope: the server thread stopped")

    def start(self) -> BackgroundServer:
        """Start serving and wait until requests are accepted.

        Raises:
            RuntimeError: The server did not start.
        """
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                failure = self._failure
                self.stop()
                raise RuntimeError(f"flagscope server did not start: {failure!r}")
            time.sleep(0.01)
        atexit.register(self.stop)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving (idempotent); open connections get ``timeout`` seconds to finish.

        An exporter ``serve_in_background`` attached to a tracer provider is shut
        down too: spans that end afterwards are no longer recorded.
        """
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        for exporter in self._exporters:
            exporter.shutdown()
        if self._grpc is not None:
            self._grpc.stop()
        if self._thread.ident is not None:  # started
            self._server.should_exit = True
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout)
        self._sock.close()
        atexit.unregister(self.stop)

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"BackgroundServer(url={self.url!r}, collector={self.collector!r})"


def serve_in_background(
    tracer_provider: TracerProvider | None = None,
    *,
    collector: InMemoryAnalyticsCollector | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    max_size: int = 10_000,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    logger_provider: LoggerProvider | None = None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    grpc_port: int | None = None,
) -> BackgroundServer:
    """Serve the dashboard, JSON API and OTLP receiver from a background thread.

    With a ``tracer_provider``, a ``FlagEvaluationSpanExporter`` is attached to it
    (through a ``SimpleSpanProcessor``: records show up as spans end), so this one
    call gives an application its own dashboard; a ``logger_provider`` gets a
    ``FlagEvaluationLogExporter`` the same way, for log-based flag events. The
    thread is a daemon and the server stops when the process exits, or on
    ``stop()``, which also shuts those exporters down (a provider cannot remove a
    processor).

    Args:
        tracer_provider: An SDK ``TracerProvider`` to attach the exporter to.
        collector: Where evaluations go; a new one of ``max_size`` when ``None``.
        host: The address to listen on; loopback unless you mean otherwise.
        port: The port; 0 picks a free one (see ``.url``).
        max_size: The new collector's size.
        max_body_bytes: The largest OTLP request body accepted.
        logger_provider: An SDK ``LoggerProvider`` to attach the log exporter to.
        max_bytes: The new collector's byte budget (``None``: none).
        grpc_port: Also receive OTLP/gRPC on this port (0: a free one; ``None``,
            the default: no gRPC).

    Returns:
        The running server: ``.url``, ``.collector``, ``.stop()``.

    Raises:
        PortInUseError: The port is taken.
        OSError: The gRPC port cannot be bound.
        TypeError: A wrong argument type.
        ValueError: An argument out of range.
    """
    if tracer_provider is not None and not isinstance(tracer_provider, TracerProvider):
        raise TypeError(
            "tracer_provider must be an opentelemetry.sdk.trace.TracerProvider, "
            f"got {type(tracer_provider).__name__}"
        )
    if logger_provider is not None and not isinstance(logger_provider, LoggerProvider):
        raise TypeError(
            "logger_provider must be an opentelemetry.sdk._logs.LoggerProvider, "
            f"got {type(logger_provider).__name__}"
        )
    # Requests naming the address it listens on are answered, besides loopback names.
    app = create_app(
        collector,
        max_body_bytes=max_body_bytes,
        max_size=max_size,
        max_bytes=max_bytes,
        allowed_hosts=(host,) if isinstance(host, str) and host else (),
    )
    sock = bind(host, port)
    server = BackgroundServer(app, sock).start()
    if grpc_port is not None:
        try:
            server._serve_grpc(host, _check_port(grpc_port), max_body_bytes)
        except BaseException:
            server.stop()
            raise
    if tracer_provider is not None:
        span_exporter = FlagEvaluationSpanExporter(server.collector)
        server._exporters.append(span_exporter)
        tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    if logger_provider is not None:
        log_exporter = FlagEvaluationLogExporter(server.collector)
        server._exporters.append(log_exporter)
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    return server
