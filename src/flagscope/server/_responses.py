"""A budget for response bodies waiting to be read, across every connection.

A client that asks for a large page (``/api/events?limit=10000`` is several MB) and
never reads it leaves the whole body in the server's write buffer until the write
timeout cuts it off; many such clients at once would hold many bodies. Large
responses are counted from the moment they start until their last byte is handed to
the kernel; one that would pass the budget is answered 503 instead, and its body
dropped at once. Small responses (health checks, errors, most summaries) are not
counted: they never wait on the budget.
"""

from __future__ import annotations

import json
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DEFAULT_MAX_SENDING_BYTES", "ResponseBudget"]

DEFAULT_MAX_SENDING_BYTES: Final = 64 * 1024 * 1024
_SMALL: Final = 256 * 1024
_PIECE: Final = 64 * 1024


class ResponseBudget:
    """Answers 503 to a large response that would pass the bytes being sent at once.

    A pure ASGI middleware; used from one event loop.

    Args:
        app: The application.
        limit: The most bytes of large response bodies being sent at once.
    """

    def __init__(self, app: ASGIApp, limit: int = DEFAULT_MAX_SENDING_BYTES) -> None:
        self._app = app
        self._limit = limit
        self.held = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app, counting (or refusing) its response body."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        held = 0
        refused = False

        async def counted_send(message: Message) -> None:
            nonlocal held, refused
            if refused:
                return
            if message["type"] == "http.response.start":
                size = _content_length(message)
                if size > _SMALL:
                    if self.held + size > self._limit:
                        refused = True
                        await _busy(send)
                        return
                    held = size
                    self.held += size
                await send(message)
                return
            if not held:
                await send(message)
                return
            # In pieces: the server waits for each to drain before writing the next, so
            # this returns once the body is with the kernel (or the client is cut off).
            body = memoryview(message.get("body", b""))
            more_body = message.get("more_body", False)
            for start in range(0, len(body), _PIECE):
                piece = bytes(body[start : start + _PIECE])
                last = start + _PIECE >= len(body)
                await send(
                    {
                        "type": "http.response.body",
                        "body": piece,
                        "more_body": more_body or not last,
                    }
                )
            if not body:
                await send(message)
            if not more_body:
                self.held -= held
                held = 0

        try:
            await self._app(scope, receive, counted_send)
        finally:
            if held:
                self.held -= held


def _content_length(message: Message) -> int:
    for name, value in message.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


async def _busy(send: Send) -> None:
    body = json.dumps(
        {"error": "the server is sending too many large answers at once; retry later"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
