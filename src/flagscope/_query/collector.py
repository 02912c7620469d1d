"""The collector users make: the record store with its query attached.

``InMemoryAnalyticsCollector`` is a ``flagscope._store.ring.RecordStore`` (records, the
bounded ring, eviction, notification) plus ``query`` and, on request, rollups
kept current through the store's hook. It lives above the query layer; the store
itself imports nothing from it.
"""

from __future__ import annotations

from flagscope._query.query import CollectorQuery
from flagscope._query.rollup import Rollups
from flagscope._store.ring import AnalyticsCollector, RecordStore, estimate_size
from flagscope._validate import check_bool

__all__ = ["AnalyticsCollector", "InMemoryAnalyticsCollector", "estimate_size"]


class InMemoryAnalyticsCollector(RecordStore):
    """Keeps the newest evaluations in memory, within a count and a byte budget.

    A drop-in for litestar-flags' collector of the same name (``await record``,
    ``await get_events`` ...): a ``RecordStore`` (see it for storage, eviction and
    the sync/async names) with ``query`` for filters, waits and aggregates.

    Args:
        max_size: How many records to keep; a positive int.
        max_bytes: The most bytes the stored records may hold, as
            ``estimate_size`` estimates them; ``None`` (the default) bounds the
            store by ``max_size`` only.
        summary_rollups: Keep every flag's summary, and the overall one, current as
            records arrive and leave (``flagscope._query.rollup.Rollups``), so repeated
            summaries (a dashboard polling) cost time in distinct values, not
            records. It costs each record a few microseconds more and about 150
            bytes; off by default, so the exporters' path stays lean.

    Raises:
        TypeError: ``max_size`` is not an int, ``max_bytes`` not an int or None, or
            ``summary_rollups`` not a bool.
        ValueError: ``max_size`` or ``max_bytes`` is below 1.
    """

    def __init__(
        self,
        max_size: int = 10000,
        *,
        max_bytes: int | None = None,
        summary_rollups: bool = False,
    ) -> None:
        check_bool("summary_rollups", summary_rollups)
        super().__init__(max_size, max_bytes=max_bytes)
        self._query: CollectorQuery | None = None
        if summary_rollups:
            Rollups(self)

    @property
    def summary_rollups(self) -> bool:
        """Whether summaries are kept current: ``Rollups`` are attached (see above)."""
        return any(isinstance(hook, Rollups) for hook in self.hooks)

    @property
    def query(self) -> CollectorQuery:
        """Filters, waits and aggregates over this collector (``flagscope._query.query``)."""
        query = self._query
        if query is None:
            query = self._query = CollectorQuery(self)
        return query
