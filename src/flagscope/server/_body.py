"""Request bodies under a size limit, before and after decompression."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from typing import Final

from flagscope import _validate
from flagscope._validate import check_int

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_MAX_BODY_BYTES",
    "BodyBudget",
    "BodyError",
    "Inflater",
    "check_encoding",
    "check_max_body_bytes",
    "check_seconds",
    "inflate",
    "read_body",
    "receive_body",
]

DEFAULT_MAX_BODY_BYTES: Final = 16 * 1024 * 1024
# A whole body must arrive within this many seconds, and no gap between two pieces of
# it may last longer than _IDLE_SECONDS: a stalled upload is dropped and its memory freed.
DEFAULT_BODY_TIMEOUT: Final = 60.0
_IDLE_SECONDS: Final = 10.0

# Compressed input is fed to zlib this many bytes at a time: when a gzip member ends,
# zlib copies the rest of its input into ``unused_data``, so one large feed of many
# small members would cost time quadratic in the body's size.
_WINDOW: Final = 2048
# Concatenated gzip members are valid gzip, but no exporter sends more than one: a body
# of hundreds of thousands of empty members is only a way to burn CPU.
MAX_GZIP_MEMBERS: Final = 1024

# zlib's wbits: a gzip wrapper, or a zlib wrapper (HTTP's "deflate").
_WBITS: Final = {
    "gzip": 16 + zlib.MAX_WBITS,
    "x-gzip": 16 + zlib.MAX_WBITS,
    "deflate": zlib.MAX_WBITS,
}


class BodyError(Exception):
    """A body the receiver refuses, with the HTTP status to answer.

    Attributes:
        status: 413 (too large), 415 (unsupported encoding) or 400 (corrupt).
        message: What went wrong, for the response.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_max_body_bytes(value: object) -> int:
    """Return ``value`` if it is a positive int.

    Raises:
        TypeError: It is not an int.
        ValueError: It is below 1.
    """
    return check_int("max_body_bytes", value, minimum=1)


def check_seconds(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a positive, finite number of seconds.

    Raises:
        TypeError: It is not a number.
        ValueError: It is not above 0, or not finite.
    """
    return _validate.check_seconds(name, value)


def check_encoding(content_encoding: str | None) -> None:
    """Refuse a ``Content-Encoding`` the receiver cannot inflate, before reading the body.

    Raises:
        BodyError: 415 for an encoding it does not know.
    """
    Inflater(content_encoding, 1)


class BodyBudget:
    """The bytes of request bodies being received at once, across every request.

    Each request takes what it reads and gives it back when it is done with the
    body; past the budget a request is refused with 503 (which OTLP exporters
    retry later), so many slow uploads at once cannot pin the memory of many full
    bodies. Used from the event loop only.

    Args:
        limit: The most bytes held at once.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> None:
        """Count ``size`` more bytes as held.

        Raises:
            BodyError: 503 when that would pass the budget.
        """
        if self.held + size > self.limit:
            raise BodyError(
                503, "the server is receiving too many request bodies at once; retry later"
            )
        self.held += size

    def give(self, size: int) -> None:
        """Give back ``size`` bytes taken before."""
        self.held -= size


def _too_large(limit: int, what: str) -> BodyError:
    where = f" {what}" if what else ""
    return BodyError(413, f"request body{where} exceeds the limit of {limit} bytes")


class Inflater:
    """Decompresses a body chunk by chunk, never producing more than ``limit`` bytes.

    Each ``feed`` asks zlib for at most what is left of the limit plus one byte,
    so a gzip bomb stops at the limit instead of filling memory.

    Args:
        content_encoding: The ``Content-Encoding`` header (``gzip``, ``deflate``,
            ``identity`` or empty).
        limit: The most bytes the decompressed body may hold.

    Raises:
        BodyError: 415 for an encoding it does not know.
    """

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        encoding = (content_encoding or "identity").strip().lower()
        self._limit = limit
        self._size = 0
        self._parts: list[bytes] = []
        self._wbits: int | None = None
        self._members = 1
        if encoding not in ("", "identity"):
            wbits = _WBITS.get(encoding)
            if wbits is None:
                raise BodyError(
                    415, f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or none"
                )
            self._wbits = wbits
        self._inflater = zlib.decompressobj(self._wbits) if self._wbits is not None else None

    def feed(self, chunk: bytes) -> None:
        """Add the next piece of the body as it came off the wire.

        Raises:
            BodyError: 413 past the limit, 400 for corrupt compressed data.
        """
        if self._inflater is None:
            self._keep(chunk)
            return
        if len(chunk) <= _WINDOW:
            self._feed(chunk)
            return
        view = memoryview(chunk)
        for start in range(0, len(view), _WINDOW):
            self._feed(view[start : start + _WINDOW])

    def _feed(self, data: bytes | memoryview) -> None:
        assert self._inflater is not None
        while data:
            room = self._limit - self._size
            try:
                out = self._inflater.decompress(data, room + 1)
            except zlib.error as error:
                raise BodyError(400, f"corrupt compressed body: {error}") from None
            self._keep(out)
            data = self._inflater.unconsumed_tail
            if self._inflater.eof:
                # A second gzip member follows (concatenated streams are valid gzip).
                data = self._inflater.unused_data + data
                if data:
                    self._members += 1
                    if self._members > MAX_GZIP_MEMBERS:
                        raise BodyError(
                            400, f"more than {MAX_GZIP_MEMBERS} concatenated gzip members"
                        )
                    self._inflater = zlib.decompressobj(self._wbits)  # type: ignore[arg-type]

    def _keep(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            raise _too_large(self._limit, "after decompression" if self._wbits else "")
        if data:
            self._parts.append(data)

    def finish(self) -> bytes:
        """Return the whole decompressed body.

        Raises:
            BodyError: 400 when a compressed body ends mid-stream.
        """
        if self._inflater is not None and not self._inflater.eof:
            raise BodyError(400, "truncated compressed body")
        return b"".join(self._parts)


def inflate(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Decompress a whole body under ``limit`` (synchronous: run it off the event loop).

    Raises:
        BodyError: 413 past the limit, 415 unknown encoding, 400 corrupt or truncated.
    """
    inflater = Inflater(content_encoding, limit)
    inflater.feed(body)
    return inflater.finish()


def _declared_length(content_length: str | None, limit: int) -> None:
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise BodyError(400, f"invalid Content-Length {content_length!r}") from None
        if declared > limit:
            raise _too_large(limit, "")


async def receive_body(
    stream: AsyncIterator[bytes],
    *,
    content_length: str | None,
    limit: int,
    timeout: float = DEFAULT_BODY_TIMEOUT,
    budget: BodyBudget | None = None,
) -> bytes:
    """Read a body as it came off the wire (still compressed), under ``limit`` and in time.

    Args:
        stream: The body's chunks.
        content_length: The ``Content-Length`` header, checked before reading.
        limit: The most bytes on the wire.
        timeout: Seconds the whole body may take; a gap of more than ten seconds (or
            ``timeout``, if shorter) between two chunks ends it too.
        budget: Where the bytes read are counted across requests. On success the
            caller gives back ``len(body)`` once it is done with the body; on
            failure they are given back here.

    Raises:
        BodyError: 413 too large, 400 a bad Content-Length, 408 too slow, 503 over
            the budget.
    """
    _declared_length(content_length, limit)
    parts: list[bytes] = []
    received = 0
    idle = min(_IDLE_SECONDS, timeout)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    chunks = stream.__aiter__()
    taken = 0
    try:
        while True:
            try:
                async with asyncio.timeout_at(min(deadline, loop.time() + idle)):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise BodyError(408, "the request body did not arrive in time") from None
            received += len(chunk)
            if received > limit:
                raise _too_large(limit, "")
            if budget is not None:
                budget.take(len(chunk))
                taken += len(chunk)
            if chunk:
                parts.append(chunk)
    except BaseException:
        if budget is not None:
            budget.give(taken)
        raise
    return b"".join(parts)


async def read_body(
    stream: AsyncIterator[bytes],
    *,
    content_length: str | None,
    content_encoding: str | None,
    limit: int,
) -> bytes:
    """Read and decompress a request body, refusing it as soon as it passes ``limit``.

    Both the bytes on the wire and the decompressed bytes must stay within ``limit``.

    Raises:
        BodyError: 413 too large, 415 unknown encoding, 400 corrupt or truncated.
    """
    _declared_length(content_length, limit)
    inflater = Inflater(content_encoding, limit)
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > limit:
            raise _too_large(limit, "")
        inflater.feed(chunk)
    return inflater.finish()
