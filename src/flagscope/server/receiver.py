"""The OTLP/HTTP receiver: ``POST /v1/traces`` and ``POST /v1/logs``.

Each request is read under the size limit, decoded completely and mapped, and
only then recorded: a malformed request changes nothing stored. Answers follow
OTLP/HTTP: the response message (with ``partial_success`` when evaluations were
skipped) or a ``google.rpc.Status``, in the request's own encoding.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Final

from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from flagscope.exporter import EventSink
from flagscope.mapping import ValueDecoding
from flagscope.otlp import (
    Encoding,
    OtlpBatch,
    OtlpDecodeError,
    encoding_for,
    language_from_user_agent,
    logs_response,
    media_type,
    read_logs,
    read_traces,
    traces_response,
)
from flagscope.server.body import BodyError, read_body

__all__ = ["OtlpReceiver", "ReceiverStats"]

_logger = logging.getLogger("flagscope")

# Bigger bodies are decoded on a worker thread so the dashboard stays responsive.
_INLINE_DECODE_BYTES: Final = 256 * 1024
# google.rpc.Code INVALID_ARGUMENT and INTERNAL.
_RPC_INVALID_ARGUMENT: Final = 3
_RPC_INTERNAL: Final = 13


@dataclass(frozen=True, slots=True)
class ReceiverStats:
    """What the receiver has been sent since it started.

    Attributes:
        requests: OTLP requests received, good or bad.
        spans_received: Spans in the requests that were decoded.
        log_records_received: Log records in the requests that were decoded.
        events_recorded: Flag evaluations recorded into the collector.
        rejected: Spans or log records with flag telemetry that could not be mapped.
        bad_requests: Requests answered 400 (malformed, corrupt, truncated, or
            abandoned by the client mid-body).
        too_large: Requests answered 413.
        unsupported: Requests answered 415 (content type or encoding).
    """

    requests: int = 0
    spans_received: int = 0
    log_records_received: int = 0
    events_recorded: int = 0
    rejected: int = 0
    bad_requests: int = 0
    too_large: int = 0
    unsupported: int = 0

    def to_dict(self) -> dict[str, int]:
        """Return the counters as plain data."""
        return {name: getattr(self, name) for name in self.__slots__}


class _Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(ReceiverStats.__slots__, 0)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, count in counts.items():
                self._values[name] += count

    def snapshot(self) -> ReceiverStats:
        with self._lock:
            return ReceiverStats(**self._values)


_FAILURE_COUNTER: Final = {400: "bad_requests", 413: "too_large", 415: "unsupported"}


def _status_body(status: int, message: str, encoding: Encoding | None) -> Response:
    code = _RPC_INTERNAL if status >= 500 else _RPC_INVALID_ARGUMENT
    if encoding == "protobuf":
        body = Status(code=code, message=message).SerializeToString()
    else:
        body = json.dumps({"code": code, "message": message}).encode()
    return Response(body, status_code=status, media_type=media_type(encoding or "json"))


class OtlpReceiver:
    """Handles OTLP/HTTP export requests and records what they carry.

    Args:
        collector: Where the evaluations go (anything with ``record_many``).
        max_body_bytes: The largest body accepted, on the wire and decompressed.
        value_decoding: ``"auto"``, ``"json"`` or ``"raw"``, as for the exporters.
    """

    def __init__(
        self, collector: EventSink, *, max_body_bytes: int, value_decoding: ValueDecoding = "auto"
    ) -> None:
        self._collector = collector
        self._max_body_bytes = max_body_bytes
        self._value_decoding: ValueDecoding = value_decoding
        self._counters = _Counters()

    @property
    def stats(self) -> ReceiverStats:
        """A snapshot of the receiver's counters."""
        return self._counters.snapshot()

    async def traces(self, request: Request) -> Response:
        """``POST /v1/traces``."""
        return await self._handle(request, read_traces, traces_response, "spans_received")

    async def logs(self, request: Request) -> Response:
        """``POST /v1/logs``."""
        return await self._handle(request, read_logs, logs_response, "log_records_received")

    async def _handle(
        self,
        request: Request,
        read: Callable[..., OtlpBatch],
        respond: Callable[[OtlpBatch, Encoding], bytes],
        received_counter: str,
    ) -> Response:
        self._counters.add(requests=1)
        encoding = encoding_for(request.headers.get("content-type"))
        if encoding is None:
            return self._fail(
                415,
                "Content-Type must be application/x-protobuf or application/json, got "
                f"{request.headers.get('content-type')!r}",
                None,
            )
        try:
            body = await read_body(
                request.stream(),
                content_length=request.headers.get("content-length"),
                content_encoding=request.headers.get("content-encoding"),
                limit=self._max_body_bytes,
            )
            decode = partial(
                read,
                body,
                encoding,
                value_decoding=self._value_decoding,
                default_language=language_from_user_agent(request.headers.get("user-agent")),
            )
            if len(body) > _INLINE_DECODE_BYTES:
                batch = await run_in_threadpool(decode)
            else:
                batch = decode()
        except ClientDisconnect:
            # The sender went away mid-body: nobody reads this answer, and nothing is stored.
            return self._fail(400, "the client disconnected before the body ended", encoding)
        except BodyError as error:
            return self._fail(error.status, error.message, encoding)
        except OtlpDecodeError as error:
            return self._fail(400, str(error), encoding)
        try:
            if batch.events:
                self._collector.record_many(batch.events)
        except Exception:
            _logger.exception(
                "flagscope: the collector refused %d evaluation(s)", len(batch.events)
            )
            return _status_body(500, "the collector refused the evaluations", encoding)
        self._counters.add(
            **{received_counter: batch.received},
            events_recorded=len(batch.events),
            rejected=batch.rejected,
        )
        return Response(respond(batch, encoding), media_type=media_type(encoding))

    def _fail(self, status: int, message: str, encoding: Encoding | None) -> Response:
        self._counters.add(**{_FAILURE_COUNTER[status]: 1})
        return _status_body(status, message, encoding)
