"""Connection limits uvicorn does not have: a header timeout, a write timeout, idle shedding.

uvicorn gives an idle keep-alive timeout (``timeout_keep_alive``), a cap on
connections and tasks (``limit_concurrency``, answered 503) and a bounded graceful
shutdown (``timeout_graceful_shutdown``); ``make_server`` sets all three. What it
lacks, this subclass of its h11 protocol adds:

- a **header timeout**: a connection must complete each request's headers within
  ``header_timeout`` seconds of opening or of its previous response, so a socket that
  never sends, or trickles a header a byte at a time, is closed (uvicorn's keep-alive
  timer stops at the first byte);
- a **write timeout**: a client that stops reading its response for
  ``write_timeout`` seconds is cut off, so unread responses cannot pile up in memory;
- **idle shedding**: past ``max_connections``, opening a connection closes the
  connections that have been idle longest (between requests, or silent for a
  second in the middle of a body), so a flood of idle sockets never locks out a
  normal request and never reaches the file-descriptor limit;
- a **prompt shutdown**: uploads still arriving and responses nobody reads are cut
  at once when the server stops, instead of holding it until the grace period ends.

It relies on the protocol's own attributes (``cycle``, ``connections``, ``flow``,
``transport``, ``loop``), as uvicorn 0.29 to 0.54 define them.
"""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any, Final

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["GuardedH11Protocol", "default_max_connections", "guarded_protocol"]

DEFAULT_HEADER_TIMEOUT: Final = 10.0
DEFAULT_WRITE_TIMEOUT: Final = 10.0
# A body silent this long counts as idle when connections must be shed.
_STALLED_BODY_SECONDS: Final = 1.0
# File descriptors left for everything else (the listening socket, logs, pipes) and for
# connections asyncio has accepted but not yet handed over: it accepts up to 100 per
# turn of the loop, before any of them can shed an idle one.
_SPARE_DESCRIPTORS: Final = 192


def default_max_connections() -> int:
    """Return a connection cap below the process's file-descriptor limit (at most 1000)."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):  # pragma: no cover - no such limit on this platform
        soft = 1024
    if soft == resource.RLIM_INFINITY:  # pragma: no cover - depends on the machine
        soft = 65536
    return max(8, min(1000, soft - _SPARE_DESCRIPTORS))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header and write timeouts and idle shedding.

    The limits are class attributes: ``guarded_protocol`` makes a subclass with a
    server's own, since uvicorn builds one protocol object per connection.
    """

    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    write_timeout: float = DEFAULT_WRITE_TIMEOUT
    max_connections: int = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._last_active = time.monotonic()
        self._seen_cycle: object = None

    # -- uvicorn's callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the header clock; shed idle connections past the cap."""
        super().connection_made(transport)
        self._last_active = time.monotonic()
        self._arm_header_timer()
        if len(self.connections) > self.max_connections:
            self._shed_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clocks."""
        self._cancel_header_timer()
        self._cancel_write_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Note the activity; a request whose headers are complete stops the header clock."""
        self._last_active = time.monotonic()
        super().data_received(data)
        self._note_new_request()

    def on_response_complete(self) -> None:
        """Between two requests, the next request's headers are on the clock again."""
        super().on_response_complete()
        self._last_active = time.monotonic()
        if not self._note_new_request() and not self.transport.is_closing():
            self._arm_header_timer()

    def pause_writing(self) -> None:
        """The client stopped reading: it has ``write_timeout`` seconds to resume."""
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.write_timeout, self._write_stalled)

    def resume_writing(self) -> None:
        """The client reads again."""
        super().resume_writing()
        self._cancel_write_timer()

    def shutdown(self) -> None:
        """Stop now what would hold the shutdown: uploads arriving, responses unread."""
        cycle = self.cycle
        if (
            cycle is not None
            and not cycle.response_complete
            and (cycle.more_body or self.flow.write_paused)
        ):
            self.transport.abort()
            return
        super().shutdown()

    # -- the guards ---------------------------------------------------------------------

    def _note_new_request(self) -> bool:
        cycle = self.cycle
        if cycle is not None and cycle is not self._seen_cycle and not cycle.response_complete:
            self._seen_cycle = cycle
            self._cancel_header_timer()
            return True
        return False

    def _idle(self, now: float) -> bool:
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return True
        return cycle.more_body and now - self._last_active >= _STALLED_BODY_SECONDS

    def _shed_idle(self) -> None:
        now = time.monotonic()
        idle = sorted(
            (
                connection
                for connection in self.connections
                if connection is not self
                and isinstance(connection, GuardedH11Protocol)
                and connection._idle(now)
            ),
            key=lambda connection: connection._last_active,
        )
        for connection in idle[: len(self.connections) - self.max_connections]:
            connection.transport.abort()

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _cancel_write_timer(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _write_stalled(self) -> None:
        self._write_timer = None
        self.transport.abort()


def guarded_protocol(
    *,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    write_timeout: float = DEFAULT_WRITE_TIMEOUT,
    max_connections: int | None = None,
) -> type[GuardedH11Protocol]:
    """Return a ``GuardedH11Protocol`` subclass with these limits, for ``uvicorn.Config``."""
    limits = {
        "header_timeout": header_timeout,
        "write_timeout": write_timeout,
        "max_connections": max_connections or default_max_connections(),
    }
    return type("FlagscopeH11Protocol", (GuardedH11Protocol,), limits)
