"""The JSON query API: ``/api/health``, ``/api/events``, ``/api/flags``, ``/api/buckets``.

``/api/metrics`` gives the flag evaluation counts received as OTLP metrics.
``/api/flags/{flag_key}/impact`` judges each variant of a flag by what happened to
the requests that saw it (``CollectorQuery.impact``), with ``baseline`` and ``scope``
beside the filters.

Query-string parameters are the query API's filters (``flagscope._query.filters.FilterArgs``)
spelt as text; bad ones get a 400 with a message naming the parameter. Queries run on
worker threads, four at a time, so a large store never stalls the receiver and many
large pages are never built at once; ``/api/health`` reads counters on the loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import anyio
import anyio.to_thread
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse

from flagscope._query.collector import InMemoryAnalyticsCollector
from flagscope._query.query import CollectorQuery
from flagscope.server._receiver import OtlpReceiver

__all__ = ["JsonApi", "QueryError", "parse_filters"]

_TEXT_FILTERS: Final = (
    "variant",
    "reason",
    "provider_name",
    "error_type",
    "targeting_key",
    "trace_id",
    "span_id",
    "service_name",
)
_TIME_FILTERS: Final = ("since", "until")
_FILTER_NAMES: Final = frozenset(
    {"flag_key", "value", "errors_only", *_TEXT_FILTERS, *_TIME_FILTERS}
)
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})
DEFAULT_EVENTS_LIMIT: Final = 100
MAX_EVENTS_LIMIT: Final = 10_000
# Bucket widths the API picks from when none is asked for, in seconds.
_NICE_WIDTHS: Final = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
_AUTO_BUCKETS: Final = 60
MAX_BUCKETS: Final = 2000
_MAX_WIDTH_SECONDS: Final = 10 * 365 * 86400


class QueryError(ValueError):
    """A query-string parameter the API cannot use."""


def _boolean(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise QueryError(f"{name} must be true or false, got {text!r}")


def _time(name: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise QueryError(f"{name} must be an ISO 8601 time, got {text!r}") from None
    # A bare time from a curl command line means UTC, like every time the API prints.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _value(text: str) -> Any:
    # ``value=true`` is the boolean, ``value="true"`` (quoted) the string, ``value=blue``
    # (not JSON) the string too.
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        # RecursionError: thousands of nested brackets; as text, it matches nothing.
        return text


def _integer(name: str, text: str, low: int, high: int) -> int:
    try:
        number = int(text)
    except ValueError:
        raise QueryError(f"{name} must be an integer, got {text!r}") from None
    if not low <= number <= high:
        raise QueryError(f"{name} must be between {low} and {high}, got {number}")
    return number


def parse_filters(params: QueryParams, *, extra: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Turn query-string parameters into the query API's filter keyword arguments.

    ``flag_key`` may repeat (any of them matches), no other parameter may (the
    endpoint's own, ``extra``, included); ``value`` is read as JSON when
    it parses, else as text; ``since``/``until`` are ISO 8601 (UTC when no offset).

    Args:
        params: The request's query parameters.
        extra: Other parameter names the endpoint reads itself.

    Raises:
        QueryError: An unknown or repeated parameter, or a value of the wrong form.
    """
    names = set(params.keys())
    unknown = sorted(names - _FILTER_NAMES - extra)
    if unknown:
        known = ", ".join(sorted(_FILTER_NAMES | extra))
        raise QueryError(f"unknown query parameter {unknown[0]!r}; known: {known}")
    # Only flag_key means "any of" when repeated; another parameter read once would
    # silently drop the rest (the last one would win).
    repeated = sorted(name for name in names - {"flag_key"} if len(params.getlist(name)) > 1)
    if repeated:
        raise QueryError(f"query parameter {repeated[0]!r} may be given once")
    filters: dict[str, Any] = {}
    keys = params.getlist("flag_key")
    if keys:
        filters["flag_key"] = keys[0] if len(keys) == 1 else keys
    for name in _TEXT_FILTERS:
        if name in params:
            filters[name] = params[name]
    for name in _TIME_FILTERS:
        if name in params:
            filters[name] = _time(name, params[name])
    if "value" in params:
        filters["value"] = _value(params["value"])
    if "errors_only" in params:
        filters["errors_only"] = _boolean("errors_only", params["errors_only"])
    return filters


def _flag_in_query(params: QueryParams) -> tuple[str, QueryParams]:
    """The one ``flag_key`` of ``/api/flag`` and ``/api/flag/impact``, and the other parameters.

    A key in a path cannot be ``.`` or ``..`` (browsers and clients resolve them) nor
    end in ``/impact`` (the impact route's): in the query any key is a key.

    Raises:
        QueryError: ``flag_key`` is missing or given more than once.
    """
    keys = params.getlist("flag_key")
    if len(keys) != 1:
        raise QueryError(
            "flag_key must be given once" if keys else "flag_key is required: ?flag_key=KEY"
        )
    rest = QueryParams(
        [(name, value) for name, value in params.multi_items() if name != "flag_key"]
    )
    return keys[0], rest


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _guarded(handler: Callable[[Request], JSONResponse]) -> Callable[[Request], JSONResponse]:
    def run(request: Request) -> JSONResponse:
        try:
            return handler(request)
        except (QueryError, TypeError, ValueError, OverflowError, RecursionError) as error:
            # The query API raises TypeError/ValueError for filters it cannot use;
            # OverflowError and RecursionError come from values past what it can hold.
            return _error(400, str(error) or type(error).__name__)

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


# Queries answered at once, each on a worker thread: a page of 10,000 events takes tens
# of MB while it is built, so many requests at once must not all build theirs together.
_QUERY_WORKERS: Final = 4


class _Workers:
    """Runs handlers on worker threads, ``_QUERY_WORKERS`` at a time (per event loop)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limiter = anyio.CapacityLimiter(_QUERY_WORKERS)

    def _current(self) -> anyio.CapacityLimiter:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._limiter = anyio.CapacityLimiter(_QUERY_WORKERS)
        return self._limiter

    def run(
        self, handler: Callable[[Request], JSONResponse]
    ) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def endpoint(request: Request) -> JSONResponse:
            return await anyio.to_thread.run_sync(handler, request, limiter=self._current())

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        return endpoint


def _auto_width(first: datetime | None, last: datetime | None) -> timedelta:
    span = (last - first).total_seconds() if first and last else 0.0
    for seconds in _NICE_WIDTHS:
        if span / seconds <= _AUTO_BUCKETS:
            return timedelta(seconds=seconds)
    return timedelta(seconds=max(_NICE_WIDTHS[-1], span / _AUTO_BUCKETS))


class JsonApi:
    """The JSON endpoints over one collector.

    Args:
        collector: The collector to read.
        receiver: The OTLP receiver, whose counters ``/api/health`` reports.
        version: The version string ``/api/health`` reports.
    """

    def __init__(
        self, collector: InMemoryAnalyticsCollector, receiver: OtlpReceiver, version: str
    ) -> None:
        self._collector = collector
        self._query = CollectorQuery(collector)
        self._receiver = receiver
        self._version = version
        self._sync_health = _guarded(self._health)
        self._workers = _Workers()
        self.events = self._workers.run(_guarded(self._events))
        self.flags = self._workers.run(_guarded(self._flags))
        self.flag = self._workers.run(_guarded(self._flag))
        self.buckets = self._workers.run(_guarded(self._buckets))
        self.metrics = self._workers.run(_guarded(self._metrics))
        self.impact = self._workers.run(_guarded(self._impact))
        self.flag_by_query = self._workers.run(_guarded(self._flag_by_query))
        self.impact_by_query = self._workers.run(_guarded(self._impact_by_query))

    async def health(self, request: Request) -> JSONResponse:
        """``GET /api/health``, answered on the event loop itself.

        It reads counters only: no thread hand-off, so it answers even while worker
        threads decode large bodies (and a health check shows what the loop does).
        """
        return self._sync_health(request)

    def _health(self, request: Request) -> JSONResponse:
        parse_filters(request.query_params)
        collector = self._collector
        return JSONResponse(
            {
                "status": "ok",
                "version": self._version,
                "stored": len(collector),
                "max_size": collector.max_size,
                "max_bytes": collector.max_bytes,
                "stored_bytes": collector.stored_bytes,
                "evicted": collector.evicted_count,
                "total_recorded": collector.total_recorded,
                "receiver": self._receiver.stats.to_dict(),
            }
        )

    def _events(self, request: Request) -> JSONResponse:
        params = request.query_params
        filters = parse_filters(params, extra=frozenset({"limit", "offset", "newest_first"}))
        limit = _integer(
            "limit", params.get("limit", str(DEFAULT_EVENTS_LIMIT)), 0, MAX_EVENTS_LIMIT
        )
        offset = _integer("offset", params.get("offset", "0"), 0, 2**62)
        newest_first = _boolean("newest_first", params.get("newest_first", "false"))
        matches = self._query.events(newest_first=newest_first, **filters)
        page = matches[offset : offset + limit]
        return JSONResponse(
            {
                "total": len(matches),
                "offset": offset,
                "limit": limit,
                "newest_first": newest_first,
                "events": [event.to_dict() for event in page],
            }
        )

    def _flags(self, request: Request) -> JSONResponse:
        filters = parse_filters(request.query_params)
        summaries = self._query.summaries(**filters)
        overall = self._query.summary(**filters)
        return JSONResponse(
            {
                "flags": [summary.to_dict() for summary in summaries],
                "overall": overall.to_dict(),
            }
        )

    def _flag(self, request: Request) -> JSONResponse:
        """``GET /api/flags/{flag_key}``: the flag named in the path."""
        return self._flag_summary(request.path_params["flag_key"], request.query_params)

    def _flag_by_query(self, request: Request) -> JSONResponse:
        """``GET /api/flag?flag_key=``: the same, for any key (``/impact``, ``.``, ``..``)."""
        flag_key, params = _flag_in_query(request.query_params)
        return self._flag_summary(flag_key, params)

    def _flag_summary(self, flag_key: str, params: QueryParams) -> JSONResponse:
        filters = parse_filters(params)
        if "flag_key" in filters:
            raise QueryError("flag_key is already in the path")
        summary = self._query.summary(flag_key=flag_key, **filters)
        if summary.count == 0 and self._collector.count(flag_key) == 0:
            return _error(404, f"no stored evaluations of flag {flag_key!r}")
        data = summary.to_dict()
        data["flag_key"] = flag_key
        return JSONResponse(data)

    def _metrics(self, request: Request) -> JSONResponse:
        params = request.query_params
        unknown = sorted(set(params) - {"flag_key"})
        if unknown:
            raise QueryError(f"unknown parameter {unknown[0]!r}; /api/metrics takes flag_key")
        store = self._receiver.flag_metrics
        return JSONResponse(
            {
                "flags": [counts.to_dict() for counts in store.flags(params.getlist("flag_key"))],
                "series": len(store),
                "dropped_points": store.dropped_points,
                "data_points_received": self._receiver.stats.data_points_received,
            }
        )

    def _impact(self, request: Request) -> JSONResponse:
        """``GET /api/flags/{flag_key}/impact``: the flag named in the path."""
        return self._flag_impact(request.path_params["flag_key"], request.query_params)

    def _impact_by_query(self, request: Request) -> JSONResponse:
        """``GET /api/flag/impact?flag_key=``: the same, for any key."""
        flag_key, params = _flag_in_query(request.query_params)
        return self._flag_impact(flag_key, params)

    def _flag_impact(self, flag_key: str, params: QueryParams) -> JSONResponse:
        filters = parse_filters(params, extra=frozenset({"baseline", "scope"}))
        if "flag_key" in filters:
            raise QueryError("flag_key is already in the path")
        if self._collector.count(flag_key) == 0:
            return _error(404, f"no stored evaluations of flag {flag_key!r}")
        impact = self._query.impact(
            flag_key,
            baseline=params.get("baseline"),
            scope=params.get("scope", "request"),
            **filters,
        )
        return JSONResponse(impact.to_dict())

    def _buckets(self, request: Request) -> JSONResponse:
        params = request.query_params
        filters = parse_filters(params, extra=frozenset({"width"}))
        if "width" in params:
            try:
                seconds = float(params["width"])
            except ValueError:
                raise QueryError(
                    f"width must be a number of seconds, got {params['width']!r}"
                ) from None
            if not 0 < seconds <= _MAX_WIDTH_SECONDS:
                raise QueryError(
                    f"width must be above 0 and at most {_MAX_WIDTH_SECONDS} seconds, "
                    f"got {params['width']!r}"
                )
            width = timedelta(seconds=seconds)
        else:
            overall = self._query.summary(**filters)
            width = _auto_width(overall.first_seen, overall.last_seen)
        buckets = self._query.time_buckets(width, max_buckets=MAX_BUCKETS, **filters)
        return JSONResponse(
            {
                "width_seconds": width.total_seconds(),
                "buckets": [bucket.to_dict() for bucket in buckets],
            }
        )
