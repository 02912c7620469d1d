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
runs, so the ``too_large`` counter cannot see it). At most ``max_pending`` calls
are taken at once, each on a thread of its own while its message arrives, and
``max_workers`` of them are mapped and recorded at a time (grpcio parses each
message on its own thread first); a call past ``max_pending`` is answered
``UNAVAILABLE`` (OTLP's "retry later", counted ``busy``). A message that has not
arrived ``body_timeout`` seconds after its call began (a sender that stalls after
the headers) is cancelled and counted ``timed_out``: a stalled call holds its
place that long at most, and fewer stalled calls than ``max_pending`` keep no
other sender waiting. gzip is grpcio's own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
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
from flagscope._validate import check_int, check_seconds
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
        max_workers: Requests mapped and recorded at once.
        max_pending: Calls taken at once (their messages arriving, waiting to be
            decoded, or decoded); more are answered ``UNAVAILABLE``.
        body_timeout: Seconds a call's message may take to arrive (default: the
            HTTP receiver's body timeout).

    Raises:
        TypeError: ``receiver`` is not an ``OtlpReceiver``, a limit is not an int, or
            ``body_timeout`` is not a number.
        ValueError: A limit is below 1, or ``body_timeout`` is not above 0 and finite.
    """

    def __init__(
        self,
        receiver: OtlpReceiver,
        *,
        max_body_bytes: int,
        max_workers: int = 2,
        max_pending: int = 16,
        body_timeout: float | None = None,
    ) -> None:
        if not isinstance(receiver, OtlpReceiver):
            raise TypeError(f"receiver must be an OtlpReceiver, got {type(receiver).__name__}")
        max_body_bytes = check_max_body_bytes(max_body_bytes)
        check_int("max_workers", max_workers, minimum=1)
        check_int("max_pending", max_pending, minimum=1)
        self._body_timeout = check_seconds(
            "body_timeout", receiver.body_timeout if body_timeout is None else body_timeout
        )
        self._receiver = receiver
        self._max_pending = max_pending
        self._taken = 0  # calls taken and not yet answered, under _lock
        self._decoding = threading.BoundedSemaphore(max_workers)
        # A thread a call: a call waits on its own for its message to arrive.
        self._executor = ThreadPoolExecutor(max_pending, thread_name_prefix="flagscope-grpc")
        # Refusals run on a thread of their own, so they are answered at once even
        # while every call thread is taken.
        self._refusals = ThreadPoolExecutor(1, thread_name_prefix="flagscope-grpc-busy")
        self._watchdog = _Watchdog()
        self._server = grpc.server(
            self._executor,
            handlers=[self._handlers()],
            options=[
                ("grpc.max_receive_message_length", max_body_bytes),
                ("grpc.so_reuseport", 0),
            ],
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
            # Request-streaming on this side (the wire is the same as a unary call's):
            # the call reaches this code at once, not once grpcio has its message, so a
            # message that never comes can be given up on (``_call``).
            handlers[f"/{descriptor.full_name}/Export"] = grpc.stream_unary_rpc_method_handler(
                partial(self._call, behaviour),
                request_deserializer=_parser(getattr(module, request_name)),
                response_serializer=_identity,
            )
        refuse = _Refusal(self._refuse, self._refusals)
        busy = grpc.stream_unary_rpc_method_handler(refuse, response_serializer=_identity)
        return _Handlers(handlers, self._take, busy)

    def _take(self) -> bool:
        """Take a call if fewer than ``max_pending`` are taken (``_call`` gives it back)."""
        with self._lock:
            if self._taken >= self._max_pending:
                return False
            self._taken += 1
            return True

    def _refuse(self, requests: Iterator[Any], context: Any) -> bytes:
        self._receiver.count(requests=1, busy=1)
        context.abort(
            grpc.StatusCode.UNAVAILABLE,
            f"flagscope is taking {self._max_pending} OTLP/gRPC calls already; retry later",
        )
        return b""  # pragma: no cover - abort raises

    def _call(self, behaviour: Callable[[Any, Any], bytes], requests: Any, context: Any) -> bytes:
        """Read the call's one message within ``body_timeout``, then answer it."""
        try:
            request = self._one_message(requests, context)
            with self._decoding:
                return behaviour(request, context)
        finally:
            with self._lock:
                self._taken -= 1

    def _timed_out(self) -> None:
        self._receiver.count(requests=1, timed_out=1)
        _logger.info(
            "flagscope: an OTLP/gRPC message did not arrive within %g s; the call was cancelled",
            self._body_timeout,
        )

    def _one_message(self, requests: Any, context: Any) -> Any:
        late = threading.Event()

        def give_up() -> None:
            late.set()
            context.cancel()  # wakes the read below, which then raises

        watch = self._watchdog.watch(self._body_timeout, give_up)
        try:
            # The first message only: waiting for the end of the stream as well (a
            # unary sender half-closes with its message) cost a seventh of the calls a
            # second in calls of one span.
            request = next(requests, None)
        except grpc.RpcError:
            if late.is_set():
                self._timed_out()
            raise
        finally:
            self._watchdog.forget(watch)
        if late.is_set():
            # The cancelled call's read may also end as if the sender had finished.
            self._timed_out()
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the message did not arrive in time")
        if request is None and _ended_by_grpcio(context):
            # A message over the size limit: grpcio's own RESOURCE_EXHAUSTED, which the
            # docs say flagscope does not count.
            context.abort(grpc.StatusCode.CANCELLED, "the call ended before its message")
        if request is None:
            self._receiver.count(requests=1, bad_requests=1)
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "an OTLP Export call carries one request message; this one had none",
            )
        return request

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
        self._refusals.shutdown(wait=False, cancel_futures=True)
        self._watchdog.stop()

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


# How long a call that ended its reading without a message is given to turn out
# ended by grpcio (which reads it so when it refused the message) before it counts as
# a call without one: grpcio ends it a moment after the read, on its own thread.
_ENDING_WAIT: Final = 0.2


def _ended_by_grpcio(context: Any) -> bool:
    """Whether grpcio ends the call (within ``_ENDING_WAIT``) without flagscope's answer."""
    ended = threading.Event()
    if not context.add_callback(ended.set):
        return True  # already over
    return ended.wait(_ENDING_WAIT)


class _Watchdog:
    """Gives up on calls whose message has not arrived in time: one thread for them all.

    A timer thread a call cost a third of the receiver's throughput in small calls.
    At most ``max_pending`` calls are watched at once, so finding the next deadline
    is a look at a few entries.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._watched: dict[int, tuple[float, Callable[[], None]]] = {}
        self._next_key = 0
        self._thread: threading.Thread | None = None
        self._stopped = False

    def watch(self, seconds: float, give_up: Callable[[], None]) -> int:
        """Call ``give_up`` (on the watchdog's thread) ``seconds`` from now, unless forgotten."""
        with self._condition:
            key = self._next_key
            self._next_key += 1
            # Beyond what a thread can wait for (about 292 years): never.
            if seconds < threading.TIMEOUT_MAX:
                self._watched[key] = (time.monotonic() + seconds, give_up)
                if self._thread is None and not self._stopped:
                    self._thread = threading.Thread(
                        target=self._run, name="flagscope-grpc-watchdog", daemon=True
                    )
                    self._thread.start()
                if len(self._watched) == 1:
                    # The thread waits without a deadline only when nothing is watched;
                    # one receiver's deadlines come in order, so a later call's never
                    # comes before those it waits for (a wake-up a call cost a thread
                    # switch a call).
                    self._condition.notify()
            return key

    def forget(self, key: int) -> None:
        """Forget a call watched (its message came, or the call ended)."""
        with self._condition:
            self._watched.pop(key, None)

    def stop(self) -> None:
        """End the watchdog's thread; nothing watched is given up on."""
        with self._condition:
            self._stopped = True
            self._watched.clear()
            self._condition.notify()
            thread = self._thread
        if thread is not None:
            thread.join(1.0)

    def _run(self) -> None:
        while True:
            with self._condition:
                if self._stopped:
                    return
                now = time.monotonic()
                due = [key for key, (deadline, _) in self._watched.items() if deadline <= now]
                late = [self._watched.pop(key)[1] for key in due]
                if not late:
                    earliest = min((d for d, _ in self._watched.values()), default=None)
                    self._condition.wait(None if earliest is None else earliest - now)
                    continue
            for give_up in late:
                try:
                    give_up()
                except Exception:  # a cancel racing the call's own end
                    _logger.debug("flagscope: could not give up on a gRPC call", exc_info=True)


class _Refusal:
    """A behaviour grpcio runs on a thread pool of its own (``experimental_thread_pool``)."""

    def __init__(self, behaviour: Callable[[Any, Any], bytes], pool: ThreadPoolExecutor) -> None:
        self._behaviour = behaviour
        self.experimental_thread_pool = pool

    def __call__(self, requests: Any, context: Any) -> bytes:
        return self._behaviour(requests, context)


class _Handlers(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Looks a method's handler up by its full name; the busy one past the limit."""

    def __init__(self, handlers: dict[str, Any], take: Callable[[], bool], busy: Any) -> None:
        self._handlers = handlers
        self._take = take
        self._busy = busy

    def service(self, handler_call_details: Any) -> Any:
        handler = self._handlers.get(handler_call_details.method)
        if handler is None:
            return None
        # Taken here, in grpcio's own thread, before the call waits for a thread.
        return handler if self._take() else self._busy
