"""The OTLP/HTTP receiver: ``POST /v1/traces``, ``POST /v1/logs`` and ``POST /v1/metrics``.

Each request is read under the size limit, decoded completely and mapped, and
only then recorded: a malformed request changes nothing stored. Answers follow
OTLP/HTTP: the response message (with ``partial_success`` when evaluations were
skipped) or a ``google.rpc.Status``, in the request's own encoding. Metrics are
acknowledged and counted; flag evaluation counters are kept in ``flag_metrics``.
The gRPC receiver (``flagscope.server._grpc_receiver``) shares the counters,
``record`` and the flag metrics of one ``OtlpReceiver``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Final

from google.rpc.status_pb2 import Status
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from flagscope._telemetry.exporter import EventSink
from flagscope._telemetry.flag_metrics import FlagMetricsStore
from flagscope._telemetry.mapping import ValueDecoding
from flagscope._telemetry.otlp import (
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
from flagscope._telemetry.otlp_metrics import MetricsBatch, metrics_response, read_metrics
from flagscope.server._body import (
    DEFAULT_BODY_TIMEOUT,
    BodyBudget,
    BodyError,
    check_encoding,
    inflate,
    receive_body,
)

__all__ = ["OtlpReceiver", "ReceiverStats"]

_logger = logging.getLogger("flagscope")

# Bigger bodies, and every compressed one (a small one may inflate to the limit), are
# inflated and decoded on a worker thread, so no request waits long on another's
# decoding. Smaller ones decode on the loop: about 30 us a KiB of protobuf and 20 us a
# KiB of JSON here, so at most about 4 to 5 ms (docs/performance.md), a tenth of the
# health figure's 50 ms, where handing a body to a thread cost protobuf a tenth of its
# throughput in GIL hand-offs with the loop.
_INLINE_DECODE_BYTES: Final[Mapping[Encoding, int]] = {
    "protobuf": 128 * 1024,
    "json": 256 * 1024,
}
# How many bodies are inflated and decoded at once: each may take several times its
# size in Python objects while it is decoded.
_DECODE_SLOTS: Final = 2
_IDENTITY: Final = frozenset({"", "identity"})
# Evaluations recorded per hold of the collector's lock: readers wait at most that long.
_RECORD_SLICE: Final = 2000
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
        data_points_received: Metric data points in the requests that were decoded.
        events_recorded: Flag evaluations recorded into the collector.
        rejected: Spans or log records with flag telemetry that could not be mapped.
        bad_requests: Requests answered 400 (malformed, corrupt, truncated, or
            abandoned by the client mid-body).
        too_large: Requests answered 413.
        unsupported: Requests answered 415 (content type or encoding).
        timed_out: Requests answered 408: the body did not arrive in time.
        busy: Requests answered 503: too many bodies were being received at once.
    """

    requests: int = 0
    spans_received: int = 0
    log_records_received: int = 0
    data_points_received: int = 0
    events_recorded: int = 0
    rejected: int = 0
    bad_requests: int = 0
    too_large: int = 0
    unsupported: int = 0
    timed_out: int = 0
    busy: int = 0

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


_FAILURE_COUNTER: Final = {
    400: "bad_requests",
    408: "timed_out",
    413: "too_large",
    415: "unsupported",
    503: "busy",
}
# google.rpc.Code UNAVAILABLE and DEADLINE_EXCEEDED.
_RPC_CODES: Final = {503: 14, 408: 4}


def _status_body(
    status: int, message: str, encoding: Encoding | None, *, close: bool = False
) -> Response:
    code = _RPC_CODES.get(status, _RPC_INTERNAL if status >= 500 else _RPC_INVALID_ARGUMENT)
    if encoding == "protobuf":
        body = Status(code=code, message=message).SerializeToString()
    else:
        body = json.dumps({"code": code, "message": message}).encode()
    # A body left unread (too slow, too large, over the budget) ends the connection:
    # what the client still sends is then never buffered.
    headers = {"connection": "close"} if close else None
    return Response(
        body, status_code=status, media_type=media_type(encoding or "json"), headers=headers
    )


class _RecordRefusedError(Exception):
    """The collector raised while recording a decoded batch."""


class _DecodeSlots:
    """An ``asyncio.Semaphore`` of ``_DECODE_SLOTS``, made on the loop that uses it."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._semaphore = asyncio.Semaphore(_DECODE_SLOTS)

    def get(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._semaphore = asyncio.Semaphore(_DECODE_SLOTS)
        return self._semaphore


def _decode(
    read: Callable[..., OtlpBatch],
    value_decoding: ValueDecoding,
    language: str | None,
    body: bytes,
    encoding: Encoding,
) -> OtlpBatch:
    return read(body, encoding, value_decoding=value_decoding, default_language=language)


class OtlpReceiver:
    """Handles OTLP/HTTP export requests and records what they carry.

    Args:
        collector: Where the evaluations go (anything with ``record_batch``).
        max_body_bytes: The largest body accepted, on the wire and decompressed.
        value_decoding: ``"auto"``, ``"json"`` or ``"raw"``, as for the exporters.
        body_timeout: Seconds a whole body may take to arrive (408 after).
        max_receiving_bytes: The most bytes of bodies held at once across requests
            (503 past it); four bodies of the largest size by default.
        flag_metrics: Where flag evaluation counters received as metrics go; a new
            store when ``None`` (``.flag_metrics``).

    Attributes:
        after_worker_decode: Called (no arguments) on the worker thread once a body
            too large to decode on the event loop is decoded, before its records are
            stored; ``None`` by default. ``flagscope serve`` freezes the objects the
            decoding made (``gc.freeze``). An exception from it is logged.
    """

    def __init__(
        self,
        collector: EventSink,
        *,
        max_body_bytes: int,
        value_decoding: ValueDecoding = "auto",
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        max_receiving_bytes: int | None = None,
        flag_metrics: FlagMetricsStore | None = None,
    ) -> None:
        self._collector = collector
        self.flag_metrics = flag_metrics if flag_metrics is not None else FlagMetricsStore()
        self._max_body_bytes = max_body_bytes
        self._value_decoding: ValueDecoding = value_decoding
        self._body_timeout = body_timeout
        self._budget = BodyBudget(
            max_receiving_bytes if max_receiving_bytes is not None else 4 * max_body_bytes
        )
        self._decode_slots = _DecodeSlots()
        self._counters = _Counters()
        # Called on the worker thread once a body too large to decode on the loop is
        # decoded, before its records are stored: ``flagscope serve``, a process of its
        # own, freezes what the decoding made, so no full collection walks it then. Not
        # for small compressed bodies: a collection per request would cost more.
        self.after_worker_decode: Callable[[], object] | None = None

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

    async def metrics(self, request: Request) -> Response:
        """``POST /v1/metrics``: every payload that decodes is acknowledged."""
        return await self._handle(request, read_metrics, metrics_response, "data_points_received")

    @property
    def value_decoding(self) -> ValueDecoding:
        """How flag values are decoded (``"auto"``, ``"json"`` or ``"raw"``)."""
        return self._value_decoding

    @property
    def body_timeout(self) -> float:
        """Seconds a whole request body may take to arrive."""
        return self._body_timeout

    def count(self, **counts: int) -> None:
        """Add to the counters (``ReceiverStats`` field names); for other transports."""
        self._counters.add(**counts)

    def record(self, batch: OtlpBatch) -> None:
        """Record a decoded batch as a request's would be (evaluations, flag counters).

        Raises:
            RuntimeError: The collector raised (logged); nothing more is recorded.
        """
        try:
            self._record(batch)
        except _RecordRefusedError:
            raise RuntimeError("the collector refused the evaluations") from None

    async def _handle(
        self,
        request: Request,
        read: Callable[..., OtlpBatch],
        respond: Callable[[OtlpBatch, Encoding], bytes],
        received_counter: str,
    ) -> Response:
        self._counters.add(requests=1)
        # The exporter's User-Agent stands in for a resource without telemetry.sdk.language.
        decode = partial(
            _decode,
            read,
            self._value_decoding,
            language_from_user_agent(request.headers.get("user-agent")),
        )
        encoding = encoding_for(request.headers.get("content-type"))
        if encoding is None:
            return self._fail(
                415,
                "Content-Type must be application/x-protobuf or application/json, got "
                f"{request.headers.get('content-type')!r}",
                None,
            )
        content_encoding = request.headers.get("content-encoding")
        try:
            check_encoding(content_encoding)
            batch = await self._receive_and_decode(
                request.stream(),
                request.headers.get("content-length"),
                content_encoding,
                encoding,
                decode,
            )
        except ClientDisconnect:
            # The sender went away mid-body: nobody reads this answer, and nothing is stored.
            return self._fail(400, "the client disconnected before the body ended", encoding)
        except BodyError as error:
            return self._fail(error.status, error.message, encoding, close=error.status != 415)
        except OtlpDecodeError as error:
            return self._fail(400, str(error), encoding)
        except _RecordRefusedError:
            return _status_body(500, "the collector refused the evaluations", encoding)
        self._counters.add(
            **{received_counter: batch.received},
            events_recorded=len(batch.events),
            rejected=batch.rejected,
        )
        return Response(respond(batch, encoding), media_type=media_type(encoding))

    async def _receive_and_decode(
        self,
        stream: AsyncIterator[bytes],
        content_length: str | None,
        content_encoding: str | None,
        encoding: Encoding,
        decode: Callable[[bytes, Encoding], OtlpBatch],
    ) -> OtlpBatch:
        """Read the body on the loop; inflate, decode and record it on a worker thread if large.

        Raises:
            BodyError, OtlpDecodeError: The body is refused; nothing is recorded.
            _RecordRefusedError: The collector raised (logged).
        """
        body = await receive_body(
            stream,
            content_length=content_length,
            limit=self._max_body_bytes,
            timeout=self._body_timeout,
            budget=self._budget,
        )
        size = len(body)
        try:
            identity = (content_encoding or "").strip().lower() in _IDENTITY
            if identity and size <= _INLINE_DECODE_BYTES[encoding]:
                batch = decode(body, encoding)
                self._record(batch)
                return batch
            async with self._decode_slots.get():
                return await run_in_threadpool(
                    self._inflate_decode_and_record, body, content_encoding, encoding, decode
                )
        finally:
            del body
            self._budget.give(size)

    def _inflate_decode_and_record(
        self,
        body: bytes,
        content_encoding: str | None,
        encoding: Encoding,
        decode: Callable[[bytes, Encoding], OtlpBatch],
    ) -> OtlpBatch:
        plain = inflate(body, content_encoding, self._max_body_bytes)
        size = len(plain)
        batch = decode(plain, encoding)
        del plain
        hook = self.after_worker_decode
        if hook is not None and size > _INLINE_DECODE_BYTES[encoding]:
            try:
                hook()
            except Exception:
                # The hook only tends the process: the batch is stored all the same.
                _logger.exception("flagscope: the receiver's after_worker_decode hook raised")
        self._record(batch)
        return batch

    def _record(self, batch: OtlpBatch) -> None:
        """Record the batch's evaluations, a slice per hold of the collector's lock.

        Raises:
            _RecordRefusedError: The collector raised (logged).
        """
        if isinstance(batch, MetricsBatch):
            self.flag_metrics.add(batch.series)
            return
        events = batch.events
        try:
            for start in range(0, len(events), _RECORD_SLICE):
                self._collector.record_batch(list(events[start : start + _RECORD_SLICE]))
        except Exception:
            _logger.exception("flagscope: the collector refused %d evaluation(s)", len(events))
            raise _RecordRefusedError from None
        record_outcomes = getattr(self._collector, "record_outcomes", None)
        if batch.outcomes and record_outcomes is not None:
            try:
                record_outcomes(batch.outcomes)
            except Exception:
                # The evaluations are stored; only what explains them is lost.
                _logger.exception(
                    "flagscope: the collector refused %d outcome(s)", len(batch.outcomes)
                )

    def _fail(
        self, status: int, message: str, encoding: Encoding | None, *, close: bool = False
    ) -> Response:
        self._counters.add(**{_FAILURE_COUNTER[status]: 1})
        return _status_body(status, message, encoding, close=close)
