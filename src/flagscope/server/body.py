"""Request bodies under a size limit, before and after decompression."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import Final

__all__ = ["DEFAULT_MAX_BODY_BYTES", "BodyError", "Inflater", "check_max_body_bytes", "read_body"]

DEFAULT_MAX_BODY_BYTES: Final = 16 * 1024 * 1024

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
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_body_bytes must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"max_body_bytes must be at least 1, got {value}")
    return value


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
        data = chunk
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
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise BodyError(400, f"invalid Content-Length {content_length!r}") from None
        if declared > limit:
            raise _too_large(limit, "")
    inflater = Inflater(content_encoding, limit)
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > limit:
            raise _too_large(limit, "")
        inflater.feed(chunk)
    return inflater.finish()
