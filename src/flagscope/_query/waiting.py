"""Waiting until the collector holds matching evaluations, from sync or async code.

Both twins share ``_Wait``: subscribe to the collector, re-check on every
notification, give up at the deadline. Only the way they sleep differs: a
``threading.Event`` for threads, an ``asyncio.Event`` set through
``loop.call_soon_threadsafe`` for coroutines, since records may arrive on the
SDK's worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Final, Protocol

from flagscope._query.filters import EventFilter, build_filter
from flagscope._store.records import FlagEvaluationEvent
from flagscope._store.ring import RecordStore
from flagscope._store.values import value_key
from flagscope._validate import check_int, check_seconds

__all__ = ["wait_for", "wait_for_async"]


class Matcher(Protocol):
    """What a wait reads: the store, and the records a filter matches (``CollectorQuery``)."""

    @property
    def collector(self) -> RecordStore: ...

    def matching(self, event_filter: EventFilter) -> list[FlagEvaluationEvent]: ...


_LISTED: Final = 8
_WIDTH: Final = 60  # a long value (a JSON object) is cut to this many characters
_MAX_SLEEP: Final = 3600.0  # the longest single sleep; any finite timeout works


def _check_count(count: object) -> int:
    return check_int("count", count, minimum=0)


def _check_timeout(timeout: object) -> float | None:
    return check_seconds("timeout", timeout, optional=True, zero=True)


def _short(text: str) -> str:
    return text if len(text) <= _WIDTH else text[: _WIDTH - 3] + "..."


def _tally(counter: Counter[str]) -> str:
    items = counter.most_common(_LISTED)
    text = ", ".join(f"{_short(key)} x{count}" for key, count in items)
    hidden = len(counter) - len(items)
    return text + (f", and {hidden} more" if hidden > 0 else "")


class _Wait:
    """One wait: what is wanted, the re-check, and the timeout message."""

    def __init__(
        self,
        query: Matcher,
        count: object,
        timeout: object,
        filters: dict[str, Any],
        *,
        blocking_a_loop: bool = False,
    ) -> None:
        self.query = query
        self.count = _check_count(count)
        max_size = query.collector.max_size
        if self.count > max_size:
            # It would wait its whole timeout (for ever with None) for what cannot come.
            raise ValueError(
                f"count={self.count} can never be reached: the collector keeps at most "
                f"max_size={max_size} records"
            )
        self.timeout = _check_timeout(timeout)
        self.filter: EventFilter = build_filter(**filters)
        self.blocking_a_loop = blocking_a_loop
        self.last_matched = 0
        self.deadline = math.inf if self.timeout is None else time.monotonic() + self.timeout

    def check(self) -> list[FlagEvaluationEvent] | None:
        """Return the matching records once there are enough, else ``None``."""
        matched = self.query.matching(self.filter)
        self.last_matched = len(matched)
        return matched if len(matched) >= self.count else None

    def time_left(self) -> float | None:
        """Return how long to sleep at most (``None``: no deadline).

        Raises:
            TimeoutError: The deadline has passed.
        """
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise self.error()
        # Sleeps are sliced: Event.wait raises OverflowError past threading.TIMEOUT_MAX,
        # and a waiter wakes at every record anyway.
        return None if math.isinf(remaining) else min(remaining, _MAX_SLEEP)

    def error(self) -> TimeoutError:
        """Build the ``TimeoutError`` that says what was wanted and what was seen."""
        wanted = f"{self.count} evaluation(s) matching {self.filter.description}"
        lines = [
            f"timed out after {self.timeout:g} s waiting for {wanted}; "
            f"{self.last_matched} matched.",
            self._seen(),
        ]
        evicted = self.query.collector.evicted_count
        if evicted:
            lines.append(
                f"The collector has evicted {evicted} older record(s) "
                f"(max_size={self.query.collector.max_size})."
            )
        if self.blocking_a_loop:
            lines.append(
                "wait_for() blocked a running event loop, so evaluations made on that loop "
                "could not arrive: use 'await query.wait_for_async(...)' in async code."
            )
        return TimeoutError("\n".join(lines))

    def _seen(self) -> str:
        collector = self.query.collector
        counts = collector.counts_by_flag()
        if not counts:
            return "Seen instead: nothing; the collector is empty."
        flag_keys = self.filter.flag_keys
        if flag_keys is None:
            return "Seen instead: " + self._describe(collector.events(), counts)
        present = sorted(key for key in flag_keys if key in counts)
        if present:
            events = self.query.matching(build_filter(flag_key=present))
            return f"Seen instead, for flag(s) {', '.join(map(repr, present))}: " + (
                self._describe(events, {key: counts[key] for key in present})
            )
        others = sorted(counts, key=lambda key: (-counts[key], key))
        close = sorted(
            {
                match
                for key in flag_keys
                for match in difflib.get_close_matches(key, others, n=3, cutoff=0.6)
            }
        )
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        listed = ", ".join(f"{key} x{counts[key]}" for key in others[:_LISTED])
        more = len(others) - _LISTED
        listed += f", and {more} more" if more > 0 else ""
        return (
            f"Seen instead: no evaluation of {sorted(flag_keys)} is stored; "
            f"flags stored: {listed}.{hint}"
        )

    @staticmethod
    def _describe(events: list[FlagEvaluationEvent], counts: dict[str, int]) -> str:
        by_flag = Counter(counts)
        variants: Counter[str] = Counter()
        values: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        for event in events:
            if event.variant is not None:
                variants[event.variant] += 1
            values[value_key(event.value)] += 1
            reasons[str(event.reason)] += 1
        parts = [f"{len(events)} evaluation(s) stored; flags: {_tally(by_flag)}"]
        if variants:
            parts.append(f"variants: {_tally(variants)}")
        parts.append(f"values: {_tally(values)}")
        parts.append(f"reasons: {_tally(reasons)}")
        return "; ".join(parts) + "."


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def wait_for(
    query: Matcher, *, count: int = 1, timeout: float | None = 5.0, **filters: Any
) -> list[FlagEvaluationEvent]:
    """Block until ``count`` stored records match ``filters``; return the matches.

    Raises:
        TimeoutError: ``timeout`` seconds passed first; the message says what was seen.
        ValueError: ``count`` is above the collector's ``max_size`` (raised at once).
    """
    wait = _Wait(query, count, timeout, filters, blocking_a_loop=_running_loop() is not None)
    wake = threading.Event()
    unsubscribe = query.collector.subscribe(wake.set)
    try:
        while True:
            # Clear before checking, so a record stored during the check wakes us again.
            wake.clear()
            matched = wait.check()
            if matched is not None:
                return matched
            wake.wait(wait.time_left())
    finally:
        unsubscribe()


def _threadsafe_setter(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> Callable[[], None]:
    def wake() -> None:
        # A closed loop (an exporter running at interpreter exit) has nobody waiting.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(event.set)

    return wake


async def wait_for_async(
    query: Matcher, *, count: int = 1, timeout: float | None = 5.0, **filters: Any
) -> list[FlagEvaluationEvent]:
    """The async twin of ``wait_for``: same arguments, never blocks the event loop.

    Raises:
        TimeoutError: ``timeout`` seconds passed first; the message says what was seen.
        ValueError: ``count`` is above the collector's ``max_size`` (raised at once).
    """
    wait = _Wait(query, count, timeout, filters)
    wake = asyncio.Event()
    unsubscribe = query.collector.subscribe(_threadsafe_setter(asyncio.get_running_loop(), wake))
    try:
        while True:
            wake.clear()
            matched = wait.check()
            if matched is not None:
                return matched
            time_left = wait.time_left()  # raises at the deadline: outside the suppress
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), time_left)
    finally:
        unsubscribe()
