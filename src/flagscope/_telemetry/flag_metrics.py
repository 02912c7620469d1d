"""Flag evaluation counts received as OTLP metrics, per flag, variant and reason.

Kept beside the evaluation records, not in them: a counter says how many
evaluations happened, never which ones. ``flagscope serve`` fills one from
``/v1/metrics`` (``flagscope._telemetry.otlp_metrics``); the JSON API, ``flagscope report``
and the dashboard show it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from flagscope._store.records import EMPTY_MAPPING

__all__ = ["DEFAULT_MAX_SERIES", "FlagMetricCounts", "FlagMetricsStore"]

DEFAULT_MAX_SERIES: Final = 10_000


@dataclass(frozen=True, slots=True)
class FlagMetricCounts:
    """What the counters say about one flag.

    Attributes:
        flag_key: The flag.
        evaluations: Evaluations requested (``evaluation_requests_total``), or
            successes plus errors when no request counter was sent.
        successes: Successful evaluations.
        errors: Failed evaluations.
        by_variant: Successful evaluations per variant.
        by_reason: Evaluations per lowercased reason (failures under ``error``).
        providers: Provider names the counters named.
    """

    flag_key: str
    evaluations: int
    successes: int
    errors: int
    by_variant: Mapping[str, int] = field(default_factory=lambda: EMPTY_MAPPING)
    by_reason: Mapping[str, int] = field(default_factory=lambda: EMPTY_MAPPING)
    providers: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the counts as plain JSON-ready data."""
        return {
            "flag_key": self.flag_key,
            "evaluations": self.evaluations,
            "successes": self.successes,
            "errors": self.errors,
            "by_variant": dict(self.by_variant),
            "by_reason": dict(self.by_reason),
            "providers": list(self.providers),
        }


class FlagMetricsStore:
    """The latest value of every flag counter series, bounded; thread-safe.

    Args:
        max_series: The most series kept; points of new series past it are
            dropped and counted (``dropped_points``).

    Raises:
        TypeError: ``max_series`` is not an int.
        ValueError: ``max_series`` is below 1.
    """

    def __init__(self, max_series: int = DEFAULT_MAX_SERIES) -> None:
        if isinstance(max_series, bool) or not isinstance(max_series, int):
            raise TypeError(f"max_series must be an int, got {type(max_series).__name__}")
        if max_series < 1:
            raise ValueError(f"max_series must be at least 1, got {max_series}")
        self._max_series = max_series
        self._lock = threading.Lock()
        # identity -> (kind, flag key, variant, reason, provider, value)
        self._series: dict[str, tuple[str, str, str | None, str | None, str | None, int]] = {}
        self._dropped = 0

    @property
    def dropped_points(self) -> int:
        """Points of new series refused because ``max_series`` were held."""
        with self._lock:
            return self._dropped

    def __len__(self) -> int:
        with self._lock:
            return len(self._series)

    def add(self, series: Iterable[Any]) -> None:
        """Take data points (``flagscope._telemetry.otlp_metrics.FlagSeries``).

        A cumulative point replaces its series' value; a delta point adds to it.
        """
        with self._lock:
            for point in series:
                known = self._series.get(point.identity)
                if known is None and len(self._series) >= self._max_series:
                    self._dropped += 1
                    continue
                value = point.value
                if known is not None and not point.cumulative:
                    value += known[5]
                self._series[point.identity] = (
                    point.kind,
                    point.flag_key,
                    point.variant,
                    point.reason,
                    point.provider_name,
                    value,
                )

    def flags(self, flag_keys: Iterable[str] = ()) -> list[FlagMetricCounts]:
        """Return the counts per flag, most evaluated first (then by key).

        Args:
            flag_keys: Only these flags; every flag when empty.
        """
        wanted = frozenset(flag_keys)
        with self._lock:
            values = list(self._series.values())
        tallies: dict[str, dict[str, Any]] = {}
        for kind, flag_key, variant, reason, provider, value in values:
            if wanted and flag_key not in wanted:
                continue
            tally = tallies.setdefault(
                flag_key,
                {"requests": 0, "successes": 0, "errors": 0, "variants": {}, "reasons": {}},
            )
            tally.setdefault("providers", set())
            if provider:
                tally["providers"].add(provider)
            if kind == "requests":
                tally["requests"] += value
                continue
            tally["successes" if kind == "success" else "errors"] += value
            if variant is not None:
                tally["variants"][variant] = tally["variants"].get(variant, 0) + value
            if reason is not None:
                tally["reasons"][reason] = tally["reasons"].get(reason, 0) + value
        counts = [
            FlagMetricCounts(
                flag_key,
                max(tally["requests"], tally["successes"] + tally["errors"]),
                tally["successes"],
                tally["errors"],
                _sorted(tally["variants"]),
                _sorted(tally["reasons"]),
                tuple(sorted(tally["providers"])),
            )
            for flag_key, tally in tallies.items()
        ]
        counts.sort(key=lambda item: (-item.evaluations, item.flag_key))
        return counts


def _sorted(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
