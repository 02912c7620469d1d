"""Questions about what a collector holds: filtered records, waiting, aggregates.

``collector.query`` (or ``CollectorQuery(collector)``) answers them. Every
method takes the same filter keyword arguments (``flagscope._query.filters.FilterArgs``);
a ``flag_key`` filter reads only those flags' records, never the others'.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Unpack

from flagscope._query.aggregates import (
    FlagSummary,
    InventoryReport,
    TimeBucket,
    check_inventory,
    evaluations_per_trace,
    summarize,
    summarize_by_flag,
    time_buckets,
)
from flagscope._query.filters import EventFilter, FilterArgs, build_filter
from flagscope._query.impact import FlagImpact, check_scope, compute_impact
from flagscope._query.rollup import Rollups
from flagscope._query.waiting import wait_for, wait_for_async
from flagscope._store.records import FlagEvaluationEvent
from flagscope._store.ring import RecordStore
from flagscope._validate import check_bool, check_int, check_optional_int

__all__ = ["CollectorQuery"]


def _check_paging(limit: object, offset: object) -> None:
    check_optional_int("limit", limit, minimum=0)
    check_int("offset", offset, minimum=0)


def _flag_key_of(summary: FlagSummary) -> str:
    return summary.flag_key or ""


class CollectorQuery:
    """Filters, waits and aggregates over one collector (any ``RecordStore``).

    Cheap to create and stateless: every call reads a fresh snapshot. Results
    come in recording order unless a method says otherwise.

    Args:
        collector: The collector to read.

    Raises:
        TypeError: ``collector`` is not an ``InMemoryAnalyticsCollector`` (a
            ``RecordStore``).
    """

    __slots__ = ("_collector",)

    def __init__(self, collector: RecordStore) -> None:
        if not isinstance(collector, RecordStore):
            raise TypeError(
                "CollectorQuery reads an InMemoryAnalyticsCollector, "
                f"got {type(collector).__name__}"
            )
        self._collector = collector

    @property
    def collector(self) -> RecordStore:
        """The collector this query reads."""
        return self._collector

    def matching(self, event_filter: EventFilter) -> list[FlagEvaluationEvent]:
        """Return the stored records that pass a built filter, in recording order."""
        flag_keys = event_filter.flag_keys
        collector = self._collector
        if flag_keys is None:
            events = collector.events()
        elif len(flag_keys) == 1:
            (key,) = flag_keys
            events = collector.events(key)
        elif not flag_keys:
            return []
        else:
            # Several flags: one pass over the records keeps their recording order.
            events = [event for event in collector.events() if event.flag_key in flag_keys]
        return event_filter.apply(events)

    def _rollups(self) -> Rollups | None:
        """The rollups attached to the collector, if any."""
        for hook in self._collector.hooks:
            if isinstance(hook, Rollups):
                return hook
        return None

    # -- records --------------------------------------------------------------------

    def events(
        self,
        *,
        newest_first: bool = False,
        limit: int | None = None,
        offset: int = 0,
        **filters: Unpack[FilterArgs],
    ) -> list[FlagEvaluationEvent]:
        """Return the matching records, oldest first, one page at a time.

        Args:
            newest_first: Newest first instead.
            limit: At most this many; ``None`` means all.
            offset: Skip this many first (after ordering).
            **filters: The filters (``FilterArgs``).

        Raises:
            TypeError: A filter or paging argument (or ``newest_first``) of the wrong type.
            ValueError: A filter or paging argument out of range.
        """
        _check_paging(limit, offset)
        check_bool("newest_first", newest_first)
        events = self.matching(build_filter(**filters))
        if newest_first:
            events.reverse()
        if offset or limit is not None:
            stop = None if limit is None else offset + limit
            events = events[offset:stop]
        return events

    def count(self, **filters: Unpack[FilterArgs]) -> int:
        """Return how many stored records match."""
        event_filter = build_filter(**filters)
        if event_filter.selects_all_of_its_flags:
            if event_filter.flag_keys is None:
                return len(self._collector)
            return sum(self._collector.count(key) for key in event_filter.flag_keys)
        return len(self.matching(event_filter))

    # -- waiting --------------------------------------------------------------------

    def wait_for(
        self, *, count: int = 1, timeout: float | None = 5.0, **filters: Unpack[FilterArgs]
    ) -> list[FlagEvaluationEvent]:
        """Block until at least ``count`` stored records match; return all the matches.

        Wakes whenever the collector records, from any thread. In async code use
        ``wait_for_async``: blocking the loop stops evaluations made on it.

        Args:
            count: How many matches to wait for.
            timeout: Seconds to wait at most; ``None`` waits for ever.
            **filters: The filters (``FilterArgs``).

        Raises:
            TimeoutError: Not enough matches in time; the message says what was seen.
            ValueError: ``count`` is above the collector's ``max_size`` (raised at once).
        """
        return wait_for(self, count=count, timeout=timeout, **filters)

    async def wait_for_async(
        self, *, count: int = 1, timeout: float | None = 5.0, **filters: Unpack[FilterArgs]
    ) -> list[FlagEvaluationEvent]:
        """Wait without blocking the event loop; otherwise as ``wait_for``.

        Raises:
            TimeoutError: Not enough matches in time; the message says what was seen.
            ValueError: ``count`` is above the collector's ``max_size`` (raised at once).
        """
        return await wait_for_async(self, count=count, timeout=timeout, **filters)

    # -- aggregates -----------------------------------------------------------------

    def summary(self, **filters: Unpack[FilterArgs]) -> FlagSummary:
        """Return one summary of every matching record (``flag_key`` is ``None``).

        With one ``flag_key`` (a str) and no other filter, or no filter at all, on a
        collector with rollups attached (``summary_rollups=True``, see
        ``flagscope._query.rollup.Rollups``), the answer comes from the rollup: the same
        figures, without reading the records again.
        """
        rollups = self._rollups() if len(filters) < 2 else None
        if rollups is not None:
            if not filters:
                rolled = rollups.summary(None, label=None)
            else:
                flag_key = filters.get("flag_key")
                rolled = rollups.summary(flag_key, label=None) if type(flag_key) is str else None
            if rolled is not None:
                return rolled
        events = self.matching(build_filter(**filters))
        return summarize(events, flag_key=None, evicted=self._collector.evicted_count)

    def summaries(self, **filters: Unpack[FilterArgs]) -> list[FlagSummary]:
        """Return one summary per flag with matching records, sorted by flag key.

        Without filters, with rollups attached, each flag's summary comes from its
        rollup (see ``summary``); a flag without one is summarised from its records.
        """
        rollups = None if filters else self._rollups()
        if rollups is not None:
            summaries, unrolled = rollups.summaries()
            if unrolled:
                evicted = self._collector.evicted_count
                for key in unrolled:
                    records = self._collector.events(key)
                    if records:
                        summaries.append(summarize(records, flag_key=key, evicted=evicted))
                summaries.sort(key=_flag_key_of)
            return summaries
        events = self.matching(build_filter(**filters))
        return summarize_by_flag(events, evicted=self._collector.evicted_count)

    def evaluations_per_trace(self, **filters: Unpack[FilterArgs]) -> dict[str, int]:
        """Return how many matching records each trace holds, most first.

        A flag evaluated many times in one request shows up as a large count
        with ``flag_key=...``. Records without a trace id are left out.
        """
        return evaluations_per_trace(self.matching(build_filter(**filters)))

    def time_buckets(
        self,
        width: timedelta,
        *,
        fill_empty: bool = True,
        max_buckets: int = 10_000,
        **filters: Unpack[FilterArgs],
    ) -> list[TimeBucket]:
        """Return counts in consecutive time buckets of ``width``, oldest first.

        Buckets are aligned to multiples of ``width`` since the Unix epoch (UTC),
        so the same width always cuts at the same instants.

        Args:
            width: Each bucket's length, a positive ``timedelta``.
            fill_empty: Include empty buckets between the first and the last.
            max_buckets: Refuse (``ValueError``) to build more buckets than this.
            **filters: The filters (``FilterArgs``).

        Raises:
            TypeError: ``width`` is not a ``timedelta``.
            ValueError: ``width`` is not positive, too many buckets would be built, or
                a bucket would end past the year 9999.
        """
        events = self.matching(build_filter(**filters))
        return time_buckets(events, width, fill_empty=fill_empty, max_buckets=max_buckets)

    def impact(
        self,
        flag_key: str,
        /,
        *,
        baseline: str | None = None,
        scope: str = "request",
        **filters: Unpack[FilterArgs],
    ) -> FlagImpact:
        """Judge each variant of ``flag_key`` by what happened to the requests that saw it.

        Per variant: the error rate of the requests (or spans) that evaluated it,
        with its 95% Wilson interval, latency percentiles, and a verdict against
        the baseline from Fisher's exact or the two-proportion test (errors) and
        Mann-Whitney U (durations), Holm-corrected at 1% over all variants, with
        at least ``flagscope._query.impact.MIN_REQUESTS`` requests on each side (see the
        README's "Is the new variant hurting?").

        Args:
            flag_key: The flag.
            baseline: The variant to compare with; by default the one served
                with reason ``default``, else the most evaluated (ties by name).
            scope: ``"request"`` judges the trace's local root (the request as
                the evaluating service received it); ``"span"`` the span each
                evaluation was made in.
            **filters: The filters (``FilterArgs``) other than ``flag_key``.

        Raises:
            TypeError: ``flag_key`` or ``baseline`` not a str, or a bad filter.
            ValueError: An unknown ``scope``, ``flag_key`` among the filters, a
                filter out of range, or a ``baseline`` the flag never served among
                the evaluations judged (``BaselineNotServedError``).
        """
        if not isinstance(flag_key, str):
            raise TypeError(f"flag_key must be a str, got {type(flag_key).__name__}")
        if baseline is not None and not isinstance(baseline, str):
            raise TypeError(f"baseline must be a str or None, got {type(baseline).__name__}")
        checked_scope = check_scope(scope)
        if "flag_key" in filters:
            raise ValueError("impact takes the flag key as its first argument, not as a filter")
        # Without other filters the store joins the flag's records where they lie.
        events = self.matching(build_filter(flag_key=flag_key, **filters)) if filters else None
        return compute_impact(
            self._collector, flag_key, events, baseline=baseline, scope=checked_scope
        )

    def inventory(self, declared: Iterable[str], **filters: Unpack[FilterArgs]) -> InventoryReport:
        """Check stored evaluations against the flag keys the application declares.

        Args:
            declared: The declared flag keys (an iterable of str).
            **filters: The filters (``FilterArgs``), e.g. ``since=...``.

        Raises:
            TypeError: ``declared`` is a str or holds non-str items.
        """
        return check_inventory(declared, self.matching(build_filter(**filters)))

    # -- async twins ----------------------------------------------------------------
    # Reads take microseconds under a threading.Lock and never wait on I/O, so the
    # twins call the synchronous methods directly; they exist for async code that
    # awaits everything, like the seed's collector API.

    async def events_async(
        self,
        *,
        newest_first: bool = False,
        limit: int | None = None,
        offset: int = 0,
        **filters: Unpack[FilterArgs],
    ) -> list[FlagEvaluationEvent]:
        """``events`` for async code."""
        return self.events(newest_first=newest_first, limit=limit, offset=offset, **filters)

    async def count_async(self, **filters: Unpack[FilterArgs]) -> int:
        """``count`` for async code."""
        return self.count(**filters)

    async def summary_async(self, **filters: Unpack[FilterArgs]) -> FlagSummary:
        """``summary`` for async code."""
        return self.summary(**filters)

    async def summaries_async(self, **filters: Unpack[FilterArgs]) -> list[FlagSummary]:
        """``summaries`` for async code."""
        return self.summaries(**filters)

    async def impact_async(
        self,
        flag_key: str,
        /,
        *,
        baseline: str | None = None,
        scope: str = "request",
        **filters: Unpack[FilterArgs],
    ) -> FlagImpact:
        """``impact`` for async code."""
        return self.impact(flag_key, baseline=baseline, scope=scope, **filters)

    async def evaluations_per_trace_async(self, **filters: Unpack[FilterArgs]) -> dict[str, int]:
        """``evaluations_per_trace`` for async code."""
        return self.evaluations_per_trace(**filters)

    async def time_buckets_async(
        self,
        width: timedelta,
        *,
        fill_empty: bool = True,
        max_buckets: int = 10_000,
        **filters: Unpack[FilterArgs],
    ) -> list[TimeBucket]:
        """``time_buckets`` for async code."""
        return self.time_buckets(width, fill_empty=fill_empty, max_buckets=max_buckets, **filters)

    async def inventory_async(
        self, declared: Iterable[str], **filters: Unpack[FilterArgs]
    ) -> InventoryReport:
        """``inventory`` for async code."""
        return self.inventory(declared, **filters)

    def __repr__(self) -> str:
        return f"CollectorQuery({self._collector!r})"
