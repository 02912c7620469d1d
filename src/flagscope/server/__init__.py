"""flagscope's local server: OTLP/HTTP receiver, JSON API and web dashboard.

Needs the ``server`` extra: ``pip install 'flagscope[server]'``.
"""

from __future__ import annotations

from flagscope._extras import missing_extra

try:
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
    from google.rpc import status_pb2  # noqa: F401
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise missing_extra(error, "flagscope.server", "server") from error

from flagscope.server._app import create_app
from flagscope.server._body import DEFAULT_MAX_BODY_BYTES
from flagscope.server._receiver import ReceiverStats
from flagscope.server._runner import BackgroundServer, PortInUseError, serve_in_background

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "BackgroundServer",
    "PortInUseError",
    "ReceiverStats",
    "create_app",
    "serve_in_background",
]
