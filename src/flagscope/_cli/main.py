"""The ``flagscope`` command: ``serve``, ``report`` and ``demo``.

Needs the ``server`` extra (``demo`` needs the ``demo`` extra).
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import gc
import http.client
import json
import math
import os
import signal
import socket
import string
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, Final

from flagscope._extras import missing_extra
from flagscope._query.export import to_csv, to_json

try:
    import click
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise missing_extra(error, "the flagscope command", "server") from error

if TYPE_CHECKING:
    from flagscope._cli.demo import DemoShop

__all__ = [
    "cli",
    "fetch_flag_metrics",
    "fetch_flags",
    "main",
    "render_metrics_table",
    "render_table",
]

DEFAULT_URL: Final = "http://127.0.0.1:4318"
_DEFAULT_GRPC_PORT: Final = 4317
_SHOWN_PER_CELL: Final = 3
# Each socket operation of the report waits at most this long; the whole exchange,
# DEFAULT_REPORT_TIMEOUT; the answer may hold MAX_RESPONSE_BYTES (a million flags'
# summaries take far less).
_FETCH_TIMEOUT: Final = 10.0
DEFAULT_REPORT_TIMEOUT: Final = 30.0
MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024
_MAX_REDIRECTS: Final = 3
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
# Without a terminal (a pipe, make, CI) rich would assume 80 columns and fold every cell.
_PIPE_WIDTH: Final = 140


# -- report ---------------------------------------------------------------------------------


class ReportError(click.ClickException):
    """The report could not be fetched (or written).

    Attributes:
        status: The HTTP status the server answered, when that was the error.
        server_error: The server's own ``error`` text, whole (the message shows
            it on one line, shortened).
    """

    def __init__(
        self, message: str, status: int | None = None, server_error: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.server_error = server_error


def _one_line(text: object, width: int = 200) -> str:
    """Return ``text`` printable, on one line and at most ``width`` characters."""
    line = _printable(" ".join(str(text).split()))
    return line if len(line) <= width else line[: width - 3] + "..."


def _same_origin(first: str, second: str) -> bool:
    a, b = urllib.parse.urlsplit(first), urllib.parse.urlsplit(second)
    default = {"http": 80, "https": 443}
    return (
        a.scheme == b.scheme
        and a.hostname == b.hostname
        and (a.port or default.get(a.scheme)) == (b.port or default.get(b.scheme))
    )


def _abort(sock: socket.socket) -> None:
    # The deadline passed: unblock whatever read or write is waiting on the socket.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _get(
    target: str, deadline: float, max_bytes: int
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """GET ``target`` once (no redirects, no proxy), reading at most ``max_bytes``.

    Raises:
        ReportError: The answer is larger than ``max_bytes``.
        TimeoutError: ``deadline`` (``time.monotonic``) passed.
        OSError, http.client.HTTPException: The connection failed.
    """
    parts = urllib.parse.urlsplit(target)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(
        parts.hostname or "", parts.port, timeout=min(remaining, _FETCH_TIMEOUT)
    )
    # Socket timeouts bound each read, not the whole answer: a server dripping a byte at
    # a time would hold the report for ever. At the deadline, the socket is shut down
    # (the one connected now: the connection forgets it once an HTTP/1.0 answer starts).
    watchdog: threading.Timer | None = None
    try:
        connection.connect()
        sock = connection.sock
        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _abort, (sock,))
        watchdog.daemon = True
        watchdog.start()
        path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        connection.request("GET", path, headers={"accept": "application/json"})
        response = connection.getresponse()
        declared = response.getheader("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
            raise ReportError(
                f"{target} answered {int(declared)} bytes, more than the {max_bytes} a "
                "flagscope report reads: is it a flagscope server?"
            )
        chunks = []
        size = 0
        while chunk := response.read1(65536):
            size += len(chunk)
            if size > max_bytes:
                raise ReportError(
                    f"{target} answered more than the {max_bytes} bytes a flagscope report "
                    "reads: is it a flagscope server?"
                )
            chunks.append(chunk)
        if time.monotonic() >= deadline:
            raise TimeoutError
        return response.status, response.headers, b"".join(chunks)
    except OSError:
        if time.monotonic() >= deadline:
            raise TimeoutError from None
        raise
    finally:
        if watchdog is not None:
            watchdog.cancel()
        connection.close()


def fetch_json(
    url: str,
    path: str,
    params: Sequence[tuple[str, str]] = (),
    *,
    timeout: float = DEFAULT_REPORT_TIMEOUT,
    deadline: float | None = None,
) -> Any:
    """GET ``url + path`` from a flagscope server and return the decoded JSON.

    The whole exchange must end within ``timeout`` seconds and the answer stay within
    ``MAX_RESPONSE_BYTES``; redirects are followed only on the same scheme, host and
    port. Proxies are never used: the server is usually on loopback, and an
    HTTP(S)_PROXY set for the outside world must not catch these requests.

    Args:
        url: The server, as ``--url`` gives it.
        path: The endpoint, such as ``/api/flags``.
        params: The query string's parameters.
        timeout: Seconds the exchange may take; with ``deadline``, the seconds the
            whole report may take (for the message when they run out).
        deadline: A ``time.monotonic()`` instant by which the exchange must end
            instead, shared by every request of one report.

    Raises:
        ReportError: No server there, it answered with an error or not as a flagscope
            server does, or too slowly; the message is one line. Its ``status`` is the
            HTTP status when the server answered an error.
    """
    query = f"?{urllib.parse.urlencode(list(params))}" if params else ""
    target = url.rstrip("/") + path + query
    if deadline is None:
        deadline = time.monotonic() + timeout
    try:
        for _ in range(_MAX_REDIRECTS + 1):
            status, headers, body = _get(target, deadline, MAX_RESPONSE_BYTES)
            if status not in _REDIRECTS:
                break
            location = headers.get("location")
            if not location:
                raise ReportError(f"{target}: {status} redirect without a Location")
            following = urllib.parse.urljoin(target, location)
            if not _same_origin(following, url):
                raise ReportError(
                    f"{target} redirected to {_one_line(following)}, off {url}: not followed"
                )
            target = following
        else:
            raise ReportError(f"{url}: more than {_MAX_REDIRECTS} redirects: not followed")
    except TimeoutError:
        raise ReportError(f"{url} did not answer within {timeout:g} s") from None
    except UnicodeError as error:
        # A redirect to a Location that is not ASCII, or a host name IDNA refuses:
        # http.client and the socket module raise these, not OSError.
        raise ReportError(f"{_one_line(target)} cannot be asked: {_one_line(error)}") from None
    except (OSError, http.client.HTTPException) as error:
        reason = _one_line(getattr(error, "reason", None) or error or type(error).__name__)
        raise ReportError(
            f"no flagscope server at {url} ({reason}); start one with `flagscope serve`"
        ) from None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        document = None
        if status == 200:
            raise ReportError(f"{target} did not answer JSON: is it a flagscope server?") from None
    if status != 200:
        message = document.get("error") if isinstance(document, dict) else None
        raise ReportError(
            f"{target}: {status} {_one_line(message or http.client.responses.get(status, ''))}",
            status=status,
            server_error=message if isinstance(message, str) else None,
        )
    return document


_SUMMARY_NUMBERS: Final = ("count", "error_count", "distinct_targeting_keys")


def _check_summary(flag: object) -> str | None:
    """Say what is wrong with one ``/api/flags`` summary, or ``None`` if it can be shown."""
    if not isinstance(flag, dict):
        return f"a summary that is a {type(flag).__name__}, not an object"
    if not isinstance(flag.get("flag_key"), str):
        return "a summary without a flag_key"
    for name in _SUMMARY_NUMBERS:
        value = flag.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{name} {_one_line(repr(value), 40)}, not a count"
    rate = flag.get("error_rate", 0.0)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate):
        return f"error_rate {_one_line(repr(rate), 40)}, not a number"
    for name in ("by_variant", "by_reason"):
        counts = flag.get(name) or {}
        if not isinstance(counts, dict) or not all(
            isinstance(n, int) and not isinstance(n, bool) for n in counts.values()
        ):
            return f"{name} that is not counts by name"
    last_seen = flag.get("last_seen")
    if last_seen is not None and not isinstance(last_seen, str):
        return "last_seen that is not a time"
    return None


def fetch_flags(
    url: str,
    flag_keys: Sequence[str] = (),
    *,
    timeout: float = DEFAULT_REPORT_TIMEOUT,
    deadline: float | None = None,
) -> list[dict[str, Any]]:
    """Return the per-flag summaries of the server at ``url`` (``/api/flags``).

    ``timeout`` and ``deadline`` are as for ``fetch_json``.

    Raises:
        ReportError: As ``fetch_json``, or the answer is not flagscope's summaries.
    """
    params = [("flag_key", key) for key in flag_keys]
    body = fetch_json(url, "/api/flags", params, timeout=timeout, deadline=deadline)
    flags = body.get("flags") if isinstance(body, dict) else None
    if not isinstance(flags, list):
        raise ReportError(f"{url}/api/flags did not answer a flags list: is it a flagscope server?")
    for flag in flags:
        problem = _check_summary(flag)
        if problem is not None:
            raise ReportError(f"{url}/api/flags answered {problem}: is it a flagscope server?")
    return flags


def _printable(text: object) -> str:
    # Flag keys and values are whatever the telemetry said: never let them drive the
    # terminal (escape sequences) or rich (markup is not parsed from Text, but controls are
    # kept).
    value = str(text)
    if value.isprintable():
        return value
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in value)


def _split(counts: Mapping[str, int], total: int) -> str:
    if not counts or total <= 0:
        return "-"
    items = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    shown = [
        f"{_printable(name)} {count * 100 / total:.0f}%" for name, count in items[:_SHOWN_PER_CELL]
    ]
    more = len(items) - _SHOWN_PER_CELL
    return " · ".join(shown) + (f" +{more} more" if more > 0 else "")


def _when(stamp: str | None) -> str:
    if not stamp:
        return "-"
    try:
        moment = datetime.fromisoformat(stamp).astimezone(UTC)
    except (ValueError, OverflowError):
        # Not a time, or one past year 9999 in UTC (9999-12-31T23:59-14:00): shown as
        # the server gave it, as any other cell.
        return _printable(stamp)
    if moment.date() == datetime.now(UTC).date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M")


def render_table(flags: Sequence[Mapping[str, Any]], *, title: str | None = None) -> Table:
    """Return a rich table of per-flag summaries (as ``/api/flags`` gives them)."""
    table = Table(title=title, title_justify="left")
    table.add_column("flag", overflow="fold")
    table.add_column("evals", justify="right")
    table.add_column("variants")
    table.add_column("reasons")
    table.add_column("errors", justify="right")
    table.add_column("contexts", justify="right")
    table.add_column("last seen (UTC)")
    # Every cell is made printable: whatever the server answered (fetch_flags checks
    # the types) comes from telemetry anyone could send.
    for flag in flags:
        count = int(flag.get("count", 0))
        errors = int(flag.get("error_count", 0))
        rate = float(flag.get("error_rate", 0.0))
        error_cell = Text(_printable(f"{errors} ({rate:.0%})") if errors else "0")
        if errors:
            error_cell.stylize("red")
        table.add_row(
            Text(_printable(flag.get("flag_key")), style="bold"),
            Text(_printable(count)),
            Text(_split(flag.get("by_variant") or {}, count)),
            Text(_split(flag.get("by_reason") or {}, count)),
            error_cell,
            Text(_printable(flag.get("distinct_targeting_keys", 0))),
            Text(_printable(_when(flag.get("last_seen")))),
        )
    return table


def make_console() -> Console:
    """Return a console for reports: the terminal's width, or a wide page when piped."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=_PIPE_WIDTH)
    return console


def write_text(text: str) -> None:
    """Write ``text`` to standard output exactly, ending it with a newline.

    Machine-readable output goes straight to ``sys.stdout``: rich drops control
    characters and expands tabs, and ``click.echo`` strips ANSI escapes when piped,
    but csv and json must give every cell as stored.
    """
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def print_report(
    console: Console, url: str, flags: Sequence[Mapping[str, Any]], output: str
) -> None:
    """Print summaries as a table (``table``), JSON (``json``) or CSV (``csv``).

    The table goes through ``console``; JSON and CSV straight to ``sys.stdout``.
    """
    if output == "json":
        write_text(to_json(list(flags)))
    elif output == "csv":
        write_text(to_csv(list(flags)))
    elif not flags:
        console.print(f"no flag evaluations stored at {url} yet", markup=False, highlight=False)
    else:
        total = sum(int(flag.get("count", 0)) for flag in flags)
        console.print(render_table(flags, title=f"{total} evaluations of {len(flags)} flags"))
        console.print(f"dashboard: {url.rstrip('/')}/", markup=False, highlight=False)


def _not_stored(url: str, flags: Sequence[str], timeout: float, deadline: float) -> str:
    """Say that no asked-for flag is stored, and which stored keys are close."""
    stored = [
        str(flag["flag_key"]) for flag in fetch_flags(url, timeout=timeout, deadline=deadline)
    ]
    stored += [
        str(flag["flag_key"])
        for flag in fetch_flag_metrics(url, timeout=timeout, deadline=deadline)
        if flag["flag_key"] not in stored
    ]
    asked = ", ".join(_one_line(flag, 80) for flag in flags)
    close = dict.fromkeys(
        match for flag in flags for match in difflib.get_close_matches(flag, stored, n=3)
    )
    hint = f"; did you mean {', '.join(_one_line(key, 80) for key in close)}?" if close else ""
    what = f"{len(stored)} other flag(s) are" if stored else "nothing is"
    return f"no evaluations of {asked} stored at {url} ({what} stored){hint}"


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_counters(flag: object) -> str | None:
    """Say what is wrong with one ``/api/metrics`` entry, or ``None`` if it can be shown."""
    if not isinstance(flag, dict):
        return f"an entry that is a {type(flag).__name__}, not an object"
    if not isinstance(flag.get("flag_key"), str):
        return "an entry without a flag_key"
    for name in ("evaluations", "successes", "errors"):
        if not _is_count(flag.get(name)):
            return f"{name} {_one_line(repr(flag.get(name)), 40)}, not a count"
    for name in ("by_variant", "by_reason"):
        counts = flag.get(name)
        if not isinstance(counts, dict) or not all(_is_count(n) for n in counts.values()):
            return f"{name} {_one_line(repr(counts), 60)}, not counts by name"
    return None


def fetch_flag_metrics(
    url: str,
    flag_keys: Sequence[str] = (),
    *,
    timeout: float = DEFAULT_REPORT_TIMEOUT,
    deadline: float | None = None,
) -> list[dict[str, Any]]:
    """Return the flag evaluation counts a server received as metrics (``/api/metrics``).

    A server without ``/api/metrics`` (404: older) has none: the answer is empty.
    ``timeout`` and ``deadline`` are as for ``fetch_json``.

    Raises:
        ReportError: As ``fetch_json``, or the answer is not flagscope's counters.
    """
    params = [("flag_key", key) for key in flag_keys]
    try:
        body = fetch_json(url, "/api/metrics", params, timeout=timeout, deadline=deadline)
    except ReportError as error:
        if error.status == 404:
            return []
        raise
    flags = body.get("flags") if isinstance(body, dict) else None
    if not isinstance(flags, list):
        raise ReportError(
            f"{url}/api/metrics did not answer a flags list: is it a flagscope server?"
        )
    for flag in flags:
        problem = _check_counters(flag)
        if problem is not None:
            raise ReportError(f"{url}/api/metrics answered {problem}: is it a flagscope server?")
    return flags


def render_metrics_table(flags: Sequence[Mapping[str, Any]]) -> Table:
    """Return a rich table of flag evaluation counts received as metrics (``/api/metrics``)."""
    table = Table(
        title="flag evaluation metrics (OpenFeature MetricsHook counters)", title_justify="left"
    )
    table.add_column("flag", overflow="fold")
    table.add_column("evals", justify="right")
    table.add_column("variants")
    table.add_column("reasons")
    table.add_column("errors", justify="right")
    for flag in flags:
        count = int(flag.get("evaluations", 0))
        errors = int(flag.get("errors", 0))
        error_cell = Text(_printable(errors))
        if errors:
            error_cell.stylize("red")
        table.add_row(
            Text(_printable(flag.get("flag_key")), style="bold"),
            Text(_printable(count)),
            Text(_split(flag.get("by_variant") or {}, int(flag.get("successes", 0)))),
            Text(_split(flag.get("by_reason") or {}, count)),
            error_cell,
        )
    return table


# -- the command ------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version("flagscope"), prog_name="flagscope")
def cli() -> None:
    """See every feature-flag evaluation your applications make, through OpenTelemetry."""


def _port_option(
    help_text: str, envvar: str | None = None
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return click.option(
        "--port",
        default=4318,
        show_default=True,
        type=click.IntRange(0, 65535),
        envvar=envvar,
        show_envvar=envvar is not None,
        help=help_text,
    )


# Kept as they are when a URL is made ASCII: every printable ASCII character but the
# space, so reserved characters and existing %-escapes keep their meaning.
_URL_SAFE: Final = string.punctuation


def _server_url(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        parts = urllib.parse.urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # raises for a port that is not a number in range
    except ValueError:
        valid = False
    if not valid:
        raise click.BadParameter(f"must be an http:// or https:// URL such as {DEFAULT_URL}")
    # http.client sends the request line in ASCII: %-encode the rest of the path and
    # query as UTF-8, as browsers do (http://host/é asks /%C3%A9). A host name must
    # be one IDNA can encode, as the socket module will.
    try:
        (parts.hostname or "").encode("idna")
        path = urllib.parse.quote(parts.path, safe=_URL_SAFE)
        query = urllib.parse.quote(parts.query, safe=_URL_SAFE)
    except UnicodeError:
        raise click.BadParameter(
            f"{_argument(value)} is not a URL that can be asked: its host or path is not valid text"
        ) from None
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, query, parts.fragment))


def _argument(value: str) -> str:
    r"""Show a command-line argument on one line, undecodable bytes as ``\xff``."""
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no undecodable byte gives
        raw = value.encode("utf-8", "backslashreplace")
    return _one_line(raw.decode("utf-8", "backslashreplace"), 80)


def _utf8(
    _ctx: click.Context, _param: click.Parameter, value: str | tuple[str, ...] | None
) -> str | tuple[str, ...] | None:
    r"""Refuse arguments that are not UTF-8 text: they cannot be put in a request.

    Click gives bytes the locale cannot decode as lone surrogates (``$'\xff'`` is
    ``'\udcff'``); the server's keys are UTF-8 text, so no key could match them anyway.
    """
    for text in (value,) if isinstance(value, str) else value or ():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise click.BadParameter(f"{_argument(text)} is not UTF-8 text") from None
    return value


class _Seconds(click.FloatRange):
    """Seconds in (0, 86400], NaN refused.

    ``FloatRange`` lets NaN through: every comparison with it is false.
    """

    def __init__(self) -> None:
        super().__init__(min=0, min_open=True, max=86400)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        seconds = super().convert(value, param, ctx)
        if math.isnan(seconds):
            self.fail(f"{value!r} is not a number of seconds.", param, ctx)
        return seconds


_FREEZE_EVERY: Final = 1.0


def _start_freezing() -> None:
    """Keep CPython's full garbage collections short while millions of records are held.

    Each stored record is one object the cycle collector would walk: at a million, a
    full collection holds the GIL for half a second or more, and under steady
    ingestion one comes every few seconds. Every second, the young generations are
    collected and everything older is frozen (``gc.freeze``): out of the
    collector's walks, still freed by reference counting when evicted. Records,
    and the server's long-lived objects, form no cycles. Only ``flagscope serve``
    does this: it is its own process.

    Every second rather than every 5: the full collections between two freezes walk
    what was stored since the last, about 0.36 ms a 200-span request at 5 s against
    0.17 ms at 1 s. Under load, unfreezing after 10 s of freezing every second found
    no more cyclic garbage than never freezing: nothing in flight is kept by it.
    """

    def run() -> None:
        while True:
            time.sleep(_FREEZE_EVERY)
            _freeze_now()

    threading.Thread(target=run, name="flagscope-gc-freeze", daemon=True).start()


def _freeze_now() -> None:
    """Collect the young generations, then freeze every object left (``gc.freeze``).

    Also called as soon as a large body is decoded (``OtlpReceiver.after_worker_decode``):
    storing a 40,000-span body otherwise set off a full collection that walked all it
    had made, 20 ms of held GIL while ``/api/health`` waited.
    """
    gc.collect(1)
    gc.freeze()


def _reach(host: str, allow_hosts: Sequence[str]) -> str:
    """Say in the startup line who can reach a server not bound to loopback."""
    from flagscope.server._hosts import is_loopback

    if is_loopback(host):
        return ""
    names = ", ".join(dict.fromkeys((host, *allow_hosts, "localhost", "127.0.0.1", "[::1]")))
    return f" (reachable from other machines; answers Host {names})"


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="FLAGSCOPE_HOST",
    show_envvar=True,
    help="Address to listen on.",
)
@_port_option("Port for HTTP (OTLP/HTTP's default); 0 picks a free one.", "FLAGSCOPE_PORT")
@click.option(
    "--grpc-port",
    default=None,
    type=click.IntRange(0, 65535),
    envvar="FLAGSCOPE_GRPC_PORT",
    show_envvar=True,
    help="Port for OTLP/gRPC; 0 picks a free one. "
    "[default: 4317, OTLP/gRPC's; a free one with --port 0]",
)
@click.option(
    "--grpc/--no-grpc",
    "grpc_enabled",
    default=True,
    show_default=True,
    help="Also receive OTLP/gRPC (traces, logs, metrics).",
)
@click.option(
    "--max-size",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Evaluations kept in memory; the oldest are dropped first.",
)
@click.option(
    "--max-bytes",
    default=256 * 1024 * 1024,
    show_default=True,
    type=click.IntRange(min=1),
    help="Memory the stored evaluations may take (estimated); the oldest are dropped first.",
)
@click.option(
    "--max-body-bytes",
    default=16 * 1024 * 1024,
    show_default=True,
    type=click.IntRange(min=1),
    help="Largest OTLP request body, also after decompression.",
)
@click.option(
    "--body-timeout",
    default=60.0,
    show_default=True,
    type=_Seconds(),
    help="Seconds a request body may take to arrive; slower uploads get 408.",
)
@click.option(
    "--header-timeout",
    default=10.0,
    show_default=True,
    type=_Seconds(),
    help="Seconds a connection has to send each request's headers.",
)
@click.option(
    "--max-connections",
    default=None,
    type=click.IntRange(min=1),
    help="Open connections kept; past it the longest idle are closed. "
    "[default: below the file-descriptor limit, at most 1000]",
)
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="NAME",
    help="Also answer requests for this host name (repeatable); others get 403.",
)
def serve(
    host: str,
    port: int,
    grpc_port: int | None,
    grpc_enabled: bool,
    max_size: int,
    max_bytes: int,
    max_body_bytes: int,
    body_timeout: float,
    header_timeout: float,
    max_connections: int | None,
    allow_hosts: tuple[str, ...],
) -> None:
    """Receive OTLP over HTTP and gRPC; serve the dashboard and the JSON API.

    Traces and logs are mapped to flag evaluations; metrics are acknowledged, and
    OpenFeature's flag evaluation counters kept.

    Only requests for loopback names, the --host address and --allow-host names are
    answered (a defence against DNS rebinding). SIGINT (Ctrl-C) and SIGTERM stop it
    within a few seconds, even with uploads in flight.
    """
    from flagscope.server import PortInUseError, create_app
    from flagscope.server._hosts import check_allowed_hosts, is_loopback
    from flagscope.server._runner import bind, make_server, url_of

    try:
        allowed = check_allowed_hosts(allow_hosts)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--allow-host") from None
    with contextlib.suppress(ValueError):
        # The address it listens on, when it is a name a request can carry.
        allowed = (*check_allowed_hosts((host,)), *allowed)
    app = create_app(
        max_size=max_size,
        max_bytes=max_bytes,
        max_body_bytes=max_body_bytes,
        allowed_hosts=allowed,
        body_timeout=body_timeout,
    )
    try:
        sock = bind(host, port)
    except PortInUseError as error:
        raise click.ClickException(str(error.strerror)) from None
    except (OSError, ValueError) as error:  # socket.gaierror is an OSError
        raise click.ClickException(f"cannot listen on {host}:{port}: {error}") from None
    url = url_of(sock)
    grpc_receiver = None
    if grpc_port is None:
        grpc_port = 0 if port == 0 else _DEFAULT_GRPC_PORT
    if grpc_enabled:
        from flagscope.server._grpc_receiver import GrpcReceiver

        grpc_receiver = GrpcReceiver(app.state.receiver, max_body_bytes=max_body_bytes)
        try:
            grpc_port = grpc_receiver.start(host, grpc_port)
        except (OSError, ValueError) as error:
            sock.close()
            raise click.ClickException(
                f"{error}; pick another port (--grpc-port) or turn gRPC off (--no-grpc)"
            ) from None
    grpc_url = url.rsplit(":", 1)[0] + f":{grpc_port}"
    endpoints = f"{url} (OTLP/HTTP)" + (f" and {grpc_url} (OTLP/gRPC)" if grpc_enabled else "")
    click.echo(
        f"flagscope {version('flagscope')} listening on {endpoints}{_reach(host, allow_hosts)}"
    )
    click.echo(f"  dashboard   {url}/")
    click.echo(f"  OTLP/HTTP   POST {url}/v1/traces, /v1/logs, /v1/metrics (protobuf or JSON)")
    if grpc_enabled:
        click.echo(f"  OTLP/gRPC   {grpc_url} (trace, logs and metrics services)")
    click.echo(
        f"  JSON API    {url}/api/flags, /api/events, /api/metrics, /api/buckets, /api/health"
    )
    click.echo(f"point your OTLP exporter here: OTEL_EXPORTER_OTLP_ENDPOINT={url}")
    click.echo(
        "  with OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"
        + (f"; or grpc (the SDKs' default) to {grpc_url}" if grpc_enabled else "")
    )
    if not is_loopback(host):
        click.echo(
            f"warning: listening on {host}, not loopback: anyone who can reach this port and "
            "names an accepted host can read and send flag data",
            err=True,
        )
    click.echo("Ctrl-C to stop", err=True)
    server = make_server(app, max_connections=max_connections, header_timeout=header_timeout)
    # Large bodies are decoded on worker threads, in Python: hand the GIL back to the
    # event loop every millisecond rather than every five, so other requests never
    # wait long behind a decode. This process is only the server.
    sys.setswitchinterval(0.001)
    _start_freezing()
    app.state.receiver.after_worker_decode = _freeze_now
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn shut down gracefully, then re-raised the Ctrl-C it caught.
        pass
    finally:
        if grpc_receiver is not None:
            grpc_receiver.stop()
        sock.close()
    click.echo("flagscope stopped", err=True)


@cli.command()
@click.option(
    "--url",
    default=DEFAULT_URL,
    show_default=True,
    envvar="FLAGSCOPE_URL",
    callback=_server_url,
    help="The flagscope server to ask (also FLAGSCOPE_URL).",
)
@click.option("--flag", "flags", multiple=True, callback=_utf8, help="Only this flag (repeatable).")
@click.option(
    "--format",
    "output",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="Terminal table, or machine-readable output.",
)
@click.option(
    "--timeout",
    default=DEFAULT_REPORT_TIMEOUT,
    show_default=True,
    type=_Seconds(),
    help="Seconds the whole report may take, every request included.",
)
@click.option(
    "--impact",
    "impact",
    is_flag=True,
    help="Per variant: error rate, latency and a verdict against the baseline.",
)
@click.option(
    "--scope",
    type=click.Choice(["request", "span"]),
    default="request",
    show_default=True,
    help="With --impact: judge the request, or the span the evaluation was made in.",
)
@click.option(
    "--baseline",
    default=None,
    callback=_utf8,
    help="With --impact: the variant to compare with (default: the one served by default, "
    "else the most evaluated).",
)
def report(
    url: str,
    flags: tuple[str, ...],
    output: str,
    timeout: float,
    impact: bool,
    scope: str,
    baseline: str | None,
) -> None:
    """Print what a running server has seen, per flag (or, with --impact, per variant)."""
    # One deadline for every request of the report: --timeout is for the whole of it.
    deadline = time.monotonic() + timeout
    flags = tuple(dict.fromkeys(flags))  # --flag a --flag a asks for a once
    if impact:
        from flagscope._cli.impact_report import fetch_impacts, print_impact_report

        skipped: list[str] = []
        impacts = fetch_impacts(
            url,
            flags,
            fetch_json,
            scope=scope,
            baseline=baseline,
            timeout=timeout,
            deadline=deadline,
            skipped=skipped,
        )
        with _writing_output():
            print_impact_report(make_console(), url, impacts, output, skipped=len(skipped))
        return
    summaries = fetch_flags(url, flags, timeout=timeout, deadline=deadline)
    counters = fetch_flag_metrics(url, flags, timeout=timeout, deadline=deadline)
    if flags and not summaries and not counters:
        raise ReportError(_not_stored(url, flags, timeout, deadline))
    with _writing_output():
        console = make_console()
        print_report(console, url, summaries, output)
        if counters and output == "table":
            console.print(render_metrics_table(counters))


def _drop_unwritten_output() -> None:
    # What failed to be written stays buffered, and the interpreter's last flush would
    # fail on it again ("Exception ignored ..."): let it go to the null device instead.
    with contextlib.suppress(OSError, ValueError):  # no file descriptor (CliRunner)
        descriptor = sys.stdout.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, descriptor)
        finally:
            os.close(null)


@contextlib.contextmanager
def _writing_output() -> Iterator[None]:
    """Turn a failure to write the report into a one-line error.

    A closed pipe (``flagscope report | head -1``) is left to click, which exits 1
    without a message, as a command whose reader went away should.

    Raises:
        ReportError: Standard output could not take the report (a full disk, a
            character its encoding cannot write).
    """
    try:
        yield
        sys.stdout.flush()  # here, not at exit, where a failure could only be ignored
    except UnicodeEncodeError as error:
        text = repr(error.object[error.start : error.end])
        utf8 = error.encoding.lower().replace("-", "").replace("_", "") == "utf8"
        hint = "" if utf8 else "; PYTHONIOENCODING=utf-8 would write it"
        raise ReportError(
            _one_line(f"cannot write {text} to standard output ({error.encoding}){hint}")
        ) from None
    except OSError as error:
        _drop_unwritten_output()
        if error.errno == errno.EPIPE:
            raise
        raise ReportError(
            f"cannot write the report to standard output: {error.strerror or error}"
        ) from None


@cli.command()
@_port_option("Port for the server; a free one if this is taken.")
@click.option(
    "--serve",
    "keep_serving",
    is_flag=True,
    help="Keep the dashboard up (with live traffic) until Ctrl-C.",
)
def demo(port: int, keep_serving: bool) -> None:
    """Run a server and an example OpenFeature app exporting OTLP to it; print the report."""
    from flagscope.server import PortInUseError, serve_in_background

    try:
        from flagscope._cli.demo import DemoShop
    except ImportError as error:
        raise click.ClickException(str(error)) from None

    try:
        server = serve_in_background(port=port)
    except PortInUseError:
        server = serve_in_background(port=0)
        click.echo(f"port {port} is taken; using {server.port}")
    try:
        click.echo(f"flagscope server on {server.url}; running the demo shop, exporting OTLP to it")
        shop = DemoShop(server.url)
        # Ctrl-C only asks the shop to stop between requests: a KeyboardInterrupt raised
        # inside a flag evaluation could surface as the flag SDK's own error instead.
        stop = threading.Event()
        previous = signal.signal(signal.SIGINT, lambda number, frame: stop.set())
        try:
            _run_demo(shop, server.url, keep_serving, stop)
        finally:
            signal.signal(signal.SIGINT, previous)
            # Before the server stops, even on Ctrl-C: the shop's exporters deliver what
            # they hold instead of retrying against a closed port for seconds at exit.
            shop.shutdown()
    finally:
        server.stop()


def _run_demo(shop: DemoShop, url: str, keep_serving: bool, stop: threading.Event) -> None:
    sent = shop.run(rounds=8, pause=0.4, stop=stop)
    if stop.is_set():
        raise KeyboardInterrupt  # click says "Aborted!" and exits 1
    stored = fetch_json(url, "/api/health")["stored"]
    click.echo(f"the shop made {sent} flag evaluations; the server stored {stored}")
    console = make_console()
    print_report(console, url, fetch_flags(url), "table")
    from flagscope._cli.impact_report import fetch_impacts, print_impact_report

    # The shop rolled out a worse new checkout: the impact report says so.
    impacts = fetch_impacts(
        url, ["new-checkout"], fetch_json, baseline="off", timeout=DEFAULT_REPORT_TIMEOUT
    )
    print_impact_report(console, url, impacts, "table")
    if keep_serving:
        click.echo(f"dashboard: {url}/ (live traffic every second; Ctrl-C to stop)")
        # Ctrl-C ends the live traffic; the shop, then the server, shut down after.
        shop.run_until(stop, pause=1.0)
    else:
        click.echo(
            "run `flagscope demo --serve` to keep the dashboard up; "
            "examples/quickstart.py shows the exporter in-process, without a server"
        )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``flagscope`` command (the console script's entry point)."""
    cli.main(args=list(argv) if argv is not None else sys.argv[1:], prog_name="flagscope")
