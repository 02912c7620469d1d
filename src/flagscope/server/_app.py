"""The ASGI application: OTLP receiver, JSON API and dashboard on one port."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import version
from pathlib import Path
from typing import Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flagscope._query.collector import InMemoryAnalyticsCollector
from flagscope._query.rollup import Rollups
from flagscope._telemetry.exporter import check_value_decoding
from flagscope._telemetry.mapping import ValueDecoding
from flagscope.server._api import JsonApi
from flagscope.server._body import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_MAX_BODY_BYTES,
    check_max_body_bytes,
    check_seconds,
)
from flagscope.server._hosts import HostGuard, check_allowed_hosts
from flagscope.server._receiver import OtlpReceiver
from flagscope.server._responses import ResponseBudget

__all__ = ["DEFAULT_MAX_BYTES", "STATIC_DIR", "create_app"]

# What the server's collector may hold by default, as the collector estimates it.
DEFAULT_MAX_BYTES: Final = 256 * 1024 * 1024

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"

# The page shows attacker-controlled text (flag keys, values): besides escaping it,
# forbid every script, style and image source but our own files.
_SECURITY_HEADERS: Final = (
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


class _SecurityHeaders:
    """Adds ``_SECURITY_HEADERS`` to every HTTP response (a pure ASGI middleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *_SECURITY_HEADERS]
            await send(message)

        await self._app(scope, receive, send_with_headers)


def _index(_: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers={"cache-control": "no-cache"})


async def _http_error(request: Request, error: Exception) -> Response:
    """Starlette's own refusals (no such route, a method not allowed): JSON under ``/api``.

    Every other answer of the JSON API is ``{"error": ...}``; elsewhere (the OTLP
    paths, the page) the text Starlette gives.
    """
    if not isinstance(error, HTTPException):  # registered for it alone
        raise error
    path = request.url.path
    if path == "/api" or path.startswith("/api/"):
        return JSONResponse(
            {"error": error.detail}, status_code=error.status_code, headers=error.headers
        )
    return PlainTextResponse(error.detail, status_code=error.status_code, headers=error.headers)


def create_app(
    collector: InMemoryAnalyticsCollector | None = None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_size: int = 10_000,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    value_decoding: ValueDecoding = "auto",
    allowed_hosts: Iterable[str] = (),
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
) -> Starlette:
    """Build the ASGI app: ``/v1/{traces,logs,metrics}``, ``/api/...`` and the dashboard at ``/``.

    Mount it in your own ASGI application, or serve it with any ASGI server. The
    collector is at ``app.state.collector``, the receiver at ``app.state.receiver``.

    Args:
        collector: The collector to record into and read; a new one when ``None``.
        max_body_bytes: The largest OTLP request body, on the wire and after
            decompression (default 16 MiB); larger ones get 413.
        max_size: The new collector's size, when ``collector`` is ``None``.
        max_bytes: The new collector's byte budget (default 256 MiB; ``None``: none).
            Any collector gets summaries kept current (``flagscope._query.rollup.Rollups``),
            so the dashboard's polling costs the same at a million records as at ten.
        value_decoding: ``"auto"`` (per producer), ``"json"`` or ``"raw"``, as for the exporters.
        allowed_hosts: Host names to answer besides the loopback names
            (``localhost``, ``127.0.0.1``, ``::1``); any other ``Host`` or
            ``Origin`` gets 403, which stops DNS rebinding.
        body_timeout: Seconds a request body may take to arrive (408 after).

    Raises:
        TypeError: ``collector`` is not an ``InMemoryAnalyticsCollector``, or a limit
            is not an int.
        ValueError: A limit is below 1, or ``value_decoding`` or a host name is wrong.
    """
    max_body_bytes = check_max_body_bytes(max_body_bytes)
    value_decoding = check_value_decoding(value_decoding)
    body_timeout = check_seconds("body_timeout", body_timeout)
    allowed_hosts = check_allowed_hosts(allowed_hosts)
    if collector is None:
        collector = InMemoryAnalyticsCollector(max_size, max_bytes=max_bytes, summary_rollups=True)
    elif not isinstance(collector, InMemoryAnalyticsCollector):
        raise TypeError(
            "collector must be a flagscope.InMemoryAnalyticsCollector (the API queries it), "
            f"got {type(collector).__name__}"
        )
    if not collector.summary_rollups:
        # The dashboard polls every summary: attach rollups (they roll up what is stored
        # now), so each poll costs distinct values, not records, at any size.
        Rollups(collector)
    receiver = OtlpReceiver(
        collector,
        max_body_bytes=max_body_bytes,
        value_decoding=value_decoding,
        body_timeout=body_timeout,
    )
    api = JsonApi(collector, receiver, version("flagscope"))
    app = Starlette(
        routes=[
            Route("/v1/traces", receiver.traces, methods=["POST"]),
            Route("/v1/logs", receiver.logs, methods=["POST"]),
            Route("/v1/metrics", receiver.metrics, methods=["POST"]),
            Route("/api/health", api.health),
            Route("/api/events", api.events),
            Route("/api/flags", api.flags),
            # Before the flag's own route, whose path parameter would swallow "/impact".
            Route("/api/flags/{flag_key:path}/impact", api.impact),
            Route("/api/flags/{flag_key:path}", api.flag),
            # The same two with the key in the query: any key, ".." and ".../impact" too.
            Route("/api/flag", api.flag_by_query),
            Route("/api/flag/impact", api.impact_by_query),
            Route("/api/buckets", api.buckets),
            Route("/api/metrics", api.metrics),
            Route("/", _index),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    app.add_middleware(ResponseBudget)
    app.add_middleware(HostGuard, allowed_hosts=allowed_hosts)
    app.add_middleware(_SecurityHeaders)
    app.state.collector = collector
    app.state.receiver = receiver
    return app
