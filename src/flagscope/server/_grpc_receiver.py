"""The OTLP/gRPC receiver: the trace, logs and metrics services on one port (4317).

Built on ``grpcio`` and the service definitions ``opentelemetry-proto`` ships
(``*_service_pb2``): the method names come from their descriptors, and requests
are parsed into their ``Export*ServiceRequest`` messages here rather than by
grpcio, so a malformed message is answered ``INVALID_ARGUMENT`` and counted like
a malformed HTTP body. Decoded requests go through the same mapper
(``map_traces`` / ``map_logs`` / ``map_metrics``), the same ``OtlpReceiver.record``
and counters, and get the same partial-success answers as OTLP/HTTP.

Limits: grpcio itself refuses a message larger than ``max_body_bytes`` on the
wire or after decompression (``RESOURCE_EXHAUSTED``, before any of this code
runs, so the ``too_large`` counter cannot see it); at most ``max_workers``
requests are decoded at once and ``max_pending`` more wait, past which grpcio
answers ``RESOURCE_EXHAUSTED`` too. gzip is grpcio's own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import grpc  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from flagscope._telemetry.otlp import (
    OtlpBatch,
    language_from_user_agent,
    logs_response,
    map_logs,
    map_traces,
    traces_response,
)
from flagscope._telemetry.otlp_metrics import map_metrics, metrics_response
from flagscope._validate import check_int
from flagscope.server._body import check_max_body_bytes
from flagscope.server._receiver import OtlpReceiver

__all__ = ["DEFAULT_GRPC_PORT", "GrpcReceiver"]

_logger = logging.getLogger("flagscope")

DEFAULT_GRPC_PORT: Final = 4317  # OTLP/gRPC's registered port.
_STOP_GRACE: Final = 3.0


class _Malformed:
    """What the request deserializer returns for bytes that are not the message."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _parser(message_class: Any) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        message = message_class()
        try:
            message.ParseFromString(data)
        except (DecodeError, RecursionError, ValueError) as error:
            return _Malformed(f"invalid OTLP protobuf message: {error}")
        return message

    return parse


def _identity(data: bytes) -> bytes:
    return data


class GrpcReceiver:
    """An OTLP/gRPC server feeding an ``OtlpReceiver``; ``start()`` it, ``stop()`` it.

    Args:
        receiver: The HTTP receiver whose mapper options, collector, counters and
            flag metrics this one shares.
        max_body_bytes: The largest message accepted, on the wire and decompressed.
        max_workers: Requests decoded at once.
        max_pending: Requests in flight at most (decoding or waiting to).

    Raises:
        TypeError: ``receiver`` is not an ``OtlpReceiver``, or a limit is not an int.
        ValueError: A limit is below 1.
    """

    def __init__(
        self,
        receiver: OtlpReceiver,
        *,
        max_body_bytes: int,
        max_workers: int = 2,
        max_pending: int = 16,
    ) -> None:
        if not isinstance(receiver, OtlpReceiver):
            raise TypeError(f"receiver must be an OtlpReceiver, got {type(receiver).__name__}")
        max_body_bytes = check_max_body_bytes(max_body_bytes)
        check_int("max_workers", max_workers, minimum=1)
        check_int("max_pending", max_pending, minimum=1)
        self._receiver = receiver
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="flagscope-grpc")
        self._server = grpc.server(
            self._executor,
            handlers=[self._handlers()],
            options=[
                ("grpc.max_receive_message_length", max_body_bytes),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=max_pending,
        )
        self._lock = threading.Lock()
        self._started = False
        self._stopped = False
        self.port: int | None = None

    def _handlers(self) -> Any:
        services = (
            (trace_service_pb2, "TraceService", "ExportTraceServiceRequest", self._traces),
            (logs_service_pb2, "LogsService", "ExportLogsServiceRequest", self._logs),
            (metrics_service_pb2, "MetricsService", "ExportMetricsServiceRequest", self._metrics),
        )
        handlers: dict[str, Any] = {}
        for module, service, request_name, behaviour in services:
            descriptor = module.DESCRIPTOR.services_by_name[service]
            handlers[f"/{descriptor.full_name}/Export"] = grpc.unary_unary_rpc_method_handler(
                behaviour,
                request_deserializer=_parser(getattr(module, request_name)),
                response_serializer=_identity,
            )
        return _Handlers(handlers)

    def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: a free port) and start serving.

        Returns:
            The port it listens on.

        Raises:
            OSError: The address cannot be bound (taken, or not local).
            RuntimeError: Started before.
        """
        with self._lock:
            if self._started:
                raise RuntimeError("the gRPC receiver was started before")
            self._started = True
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            bound = self._server.add_insecure_port(address)
        except RuntimeError as error:
            raise OSError(f"cannot listen for OTLP/gRPC on {address}: {error}") from None
        if bound == 0:
            raise OSError(f"cannot listen for OTLP/gRPC on {address} (in use?)")
        self._server.start()
        self.port = bound
        return int(bound)

    def stop(self, grace: float = _STOP_GRACE) -> None:
        """Stop serving (idempotent); requests in flight get ``grace`` seconds."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._server.stop(grace).wait(grace + 1)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _traces(self, request: Any, context: Any) -> bytes:
        return self._handle(request, context, map_traces, traces_response, "spans_received")

    def _logs(self, request: Any, context: Any) -> bytes:
        return self._handle(request, context, map_logs, logs_response, "log_records_received")

    def _metrics(self, request: Any, context: Any) -> bytes:
        return self._handle(
            request,
            context,
            lambda message, **_: map_metrics(message),
            metrics_response,
            "data_points_received",
        )

    def _handle(
        self,
        request: Any,
        context: Any,
        map_request: Callable[..., OtlpBatch],
        respond: Callable[[OtlpBatch, Any], bytes],
        received_counter: str,
    ) -> bytes:
        receiver = self._receiver
        receiver.count(requests=1)
        if isinstance(request, _Malformed):
            receiver.count(bad_requests=1)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        user_agent = dict(context.invocation_metadata()).get("user-agent")
        batch = map_request(
            request,
            value_decoding=receiver.value_decoding,
            default_language=language_from_user_agent(user_agent),
        )
        try:
            receiver.record(batch)
        except RuntimeError as error:
            context.abort(grpc.StatusCode.INTERNAL, str(error))
        receiver.count(
            **{received_counter: batch.received},
            events_recorded=len(batch.events),
            rejected=batch.rejected,
        )
        return respond(batch, "protobuf")


class _Handlers(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Looks a method's handler up by its full name."""

    def __init__(self, handlers: dict[str, Any]) -> None:
        self._handlers = handlers

    def service(self, handler_call_details: Any) -> Any:
        return self._handlers.get(handler_call_details.method)
