"""Which ``Host`` and ``Origin`` a request may name: the defence against DNS rebinding.

A web page the developer visits can point its own name at 127.0.0.1 and then talk to
the local server with the page's name as ``Host``: reading every evaluation and
posting fake ones. Requests are answered only when ``Host`` names the server itself
(a loopback name, the address it listens on, or a name it was told to accept), and an
``Origin``, when a browser sends one, names one of those too.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.parse
from collections.abc import Iterable
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["LOOPBACK_HOSTS", "HostGuard", "check_allowed_hosts", "host_of", "is_loopback"]

LOOPBACK_HOSTS: Final = ("localhost", "127.0.0.1", "::1")
_FORBIDDEN_CHARACTERS: Final = frozenset(" \t\r\n/\\?#@")
_IPV6_CHARACTERS: Final = frozenset("0123456789abcdef:.")


def _normal(name: str) -> str:
    name = name.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name.rstrip(".")


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the server to this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_allowed_hosts(hosts: Iterable[str]) -> tuple[str, ...]:
    """Return host names to accept, lowercased, without brackets or a trailing dot.

    Raises:
        TypeError: ``hosts`` is a str, or holds something that is not a str.
        ValueError: A name is empty or holds a port, a path or spaces.
    """
    if isinstance(hosts, str):
        raise TypeError("allowed_hosts must be an iterable of host names, not one str")
    names = []
    for host in hosts:
        if not isinstance(host, str):
            raise TypeError(f"allowed host names must be str, got {type(host).__name__}")
        name = _normal(host)
        if not name or _FORBIDDEN_CHARACTERS.intersection(name):
            raise ValueError(f"not a host name: {host!r} (give a name or address, no port)")
        if ":" in name and not _IPV6_CHARACTERS.issuperset(name):
            raise ValueError(f"not a host name: {host!r} (give a name or address, no port)")
        names.append(name)
    return tuple(dict.fromkeys(names))


def host_of(header: str) -> str | None:
    """Return the host name of a ``Host`` header (no port, lowercased); ``None`` if malformed."""
    text = header.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        name, rest = text[1:end], text[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        return name
    name, colon, port = text.partition(":")
    if colon and not port.isdigit():
        return None
    return name.rstrip(".")


def _origin_host(origin: str) -> str | None:
    try:
        parts = urllib.parse.urlsplit(origin.strip())
        return parts.hostname if parts.scheme in ("http", "https") else None
    except ValueError:
        return None


class HostGuard:
    """Answers 403 to requests whose ``Host`` or ``Origin`` is not an allowed name.

    A pure ASGI middleware. A request without ``Host`` (HTTP/1.0) cannot come from
    a browser and passes; ``Origin: null`` (sandboxed pages, files) does not.

    Args:
        app: The application to guard.
        allowed_hosts: The names to accept besides ``LOOPBACK_HOSTS``.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str] = ()) -> None:
        self._app = app
        self._allowed = frozenset((*LOOPBACK_HOSTS, *check_allowed_hosts(allowed_hosts)))

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """Every host name accepted."""
        return self._allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 403."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        refusal = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = host_of(value.decode("latin-1"))
                if host not in self._allowed:
                    refusal = "this server only answers requests for its own host names"
            elif name == b"origin":
                origin = _origin_host(value.decode("latin-1"))
                if origin not in self._allowed:
                    refusal = "cross-origin requests are refused"
        if refusal is None:
            await self._app(scope, receive, send)
            return
        body = json.dumps(
            {"error": f"{refusal}; start the server with --allow-host NAME to accept a name"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
