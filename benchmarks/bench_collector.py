"""How fast and how small the collector is, against litestar-flags 0.2.2's in the same run.

Figures (each printed with its target and PASS or MISS):
  (a) per-event cost of ``await collector.record(event)`` into a full collector of
      max_size=10000, ours vs litestar-flags' ``InMemoryAnalyticsCollector`` (which
      slices its whole list once full); plus our ``record`` called without ``await``,
      and ``record`` on a collector made with ``summary_rollups=True`` (every flag with
      a rollup kept current).
  (b) ``record`` into a full collector of max_size=1_000_000 vs max_size=1_000.
  (c) ``await get_events(flag_key=...)`` on a full collector of 10000 events over 100
      flags, ours vs litestar-flags'; and the synchronous ``events(flag_key)``.
  (d) bytes per stored event at steady state, measured with tracemalloc on a full
      collector fed by the real mapper.

Every timing is the best (lowest) of several repeats; ratios compare figures taken
side by side in this run. Run: ``.venv/bin/python benchmarks/bench_collector.py``.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import random
import time
import tracemalloc
from functools import partial
from typing import Any

from _common import (
    Settings,
    best_ns_per_op,
    flag_keys,
    parse_settings,
    report,
    span_ids,
    typical_attribute_stream,
)
from litestar_flags.analytics import InMemoryAnalyticsCollector as LitestarCollector

from flagscope import FlagEvaluationEvent, InMemoryAnalyticsCollector, map_evaluation

FLAG_COUNT = 100
USER_COUNT = 1000


def make_events(rng: random.Random, count: int) -> list[FlagEvaluationEvent]:
    """Map ``count`` TracingHook-shaped events, each with its own ids and timestamp."""
    stream = typical_attribute_stream(
        rng, flag_keys(FLAG_COUNT), [f"user-{n}" for n in range(USER_COUNT)]
    )
    now = time.time_ns()
    events = []
    for index, attributes in zip(range(count), stream, strict=False):
        trace_id, span_id = span_ids(rng)
        event = map_evaluation(
            attributes,
            timestamp_ns=now + index * 1000,
            trace_id=trace_id,
            span_id=span_id,
            service_name="checkout",
        )
        assert isinstance(event, FlagEvaluationEvent), event
        events.append(event)
    return events


def fill(collector: Any, events: list[FlagEvaluationEvent], size: int) -> None:
    """Record events (cycling through ``events``) until ``size`` are stored."""
    stream = itertools.islice(itertools.cycle(events), size)
    if isinstance(collector, InMemoryAnalyticsCollector):
        collector.record_batch(list(stream))
    else:
        # litestar-flags' collector has no batch call and its record is O(n) once
        # full: fill its list directly, which leaves it exactly as records would.
        collector._events.extend(stream)


async def await_record(collector: Any, events: list[FlagEvaluationEvent]) -> int:
    start = time.perf_counter_ns()
    for event in events:
        await collector.record(event)
    return time.perf_counter_ns() - start


async def await_get_events(collector: Any, keys: list[str]) -> int:
    start = time.perf_counter_ns()
    for key in keys:
        await collector.get_events(flag_key=key)
    return time.perf_counter_ns() - start


def best_async_ns_per_op(
    runner: asyncio.Runner, timed: Any, collector: Any, items: list[Any], repeats: int
) -> float:
    """Best ns per item of ``timed(collector, items)``, timed inside the event loop."""
    return min(runner.run(timed(collector, items)) for _ in range(repeats)) / len(items)


def figure_a(settings: Settings, events: list[FlagEvaluationEvent], runner: asyncio.Runner) -> None:
    size = 10_000
    ours = InMemoryAnalyticsCollector(max_size=size)
    theirs = LitestarCollector(max_size=size)
    fill(ours, events, size)
    fill(theirs, events, size)
    batch_ours = events[: 500 if settings.quick else 50_000]
    batch_theirs = events[: 100 if settings.quick else 3_000]
    ours_ns = best_async_ns_per_op(runner, await_record, ours, batch_ours, settings.repeats)
    theirs_ns = best_async_ns_per_op(runner, await_record, theirs, batch_theirs, settings.repeats)
    assert len(ours) == size
    assert len(theirs) == size

    def record(collector: InMemoryAnalyticsCollector) -> int:
        record = collector.record
        for event in batch_ours:
            record(event)
        return len(batch_ours)

    sync_ns = best_ns_per_op(partial(record, ours), settings.repeats)
    ratio = theirs_ns / ours_ns
    print(
        f"(a) await record, full max_size={size}: ours {ours_ns / 1000:.3f} us, "
        f"litestar-flags {theirs_ns / 1000:.3f} us per event"
    )
    report("(a) record speed-up vs litestar-flags", f"{ratio:.1f}x", ">= 18x", ratio >= 18)
    print(f"(a) record, full max_size={size}: {sync_ns / 1000:.3f} us per event")

    # With summary_rollups=True every flag has a rollup that recording keeps current
    # (what flagscope serve runs): what each record costs then.
    rolled = InMemoryAnalyticsCollector(max_size=size, summary_rollups=True)
    fill(rolled, events, size)
    assert len(rolled.query.summaries()) == FLAG_COUNT

    rolled_ns = best_ns_per_op(partial(record, rolled), settings.repeats)
    print(
        f"(a) record, full max_size={size}, summary_rollups=True, every flag with a "
        f"rollup: {rolled_ns / 1000:.3f} us per event (without rollups {sync_ns / 1000:.3f} us)"
    )


def figure_b(settings: Settings, events: list[FlagEvaluationEvent]) -> None:
    small_size = 1_000
    large_size = 20_000 if settings.quick else 1_000_000
    small = InMemoryAnalyticsCollector(max_size=small_size)
    large = InMemoryAnalyticsCollector(max_size=large_size)
    fill(small, events, small_size)
    fill(large, events, large_size)
    batch = events[: 500 if settings.quick else 100_000]

    def recorder(collector: InMemoryAnalyticsCollector) -> Any:
        def run() -> int:
            record = collector.record
            for event in batch:
                record(event)
            return len(batch)

        return run

    # Alternate the two sizes so drift on the machine hits both alike.
    small_ns = large_ns = float("inf")
    for _ in range(settings.repeats):
        small_ns = min(small_ns, best_ns_per_op(recorder(small), 1))
        large_ns = min(large_ns, best_ns_per_op(recorder(large), 1))
    ratio = large_ns / small_ns
    print(
        f"(b) record, full: max_size={large_size} {large_ns / 1000:.3f} us, "
        f"max_size={small_size} {small_ns / 1000:.3f} us per event"
    )
    report(
        f"(b) cost ratio max_size={large_size} / {small_size}",
        f"{ratio:.2f}",
        "<= 1.1",
        ratio <= 1.1,
    )
    del large
    gc.collect()


def figure_c(settings: Settings, events: list[FlagEvaluationEvent], runner: asyncio.Runner) -> None:
    size = 10_000
    ours = InMemoryAnalyticsCollector(max_size=size)
    theirs = LitestarCollector(max_size=size)
    fill(ours, events, size)
    fill(theirs, events, size)
    keys = flag_keys(FLAG_COUNT)
    assert len(ours.flag_keys()) == FLAG_COUNT
    theirs_batch = keys[: 5 if settings.quick else 100]
    ours_batch = theirs_batch * (1 if settings.quick else 20)
    # Same answers before timing anything: the comparison is only fair if so.
    for key in keys[:5]:
        assert runner.run(ours.get_events(flag_key=key)) == runner.run(
            theirs.get_events(flag_key=key)
        )
    ours_ns = best_async_ns_per_op(runner, await_get_events, ours, ours_batch, settings.repeats)
    theirs_ns = best_async_ns_per_op(
        runner, await_get_events, theirs, theirs_batch, settings.repeats
    )
    ratio = theirs_ns / ours_ns
    print(
        f"(c) get_events(flag_key), full max_size={size}, {FLAG_COUNT} flags: "
        f"ours {ours_ns / 1000:.2f} us, litestar-flags {theirs_ns / 1000:.2f} us per call"
    )
    report("(c) get_events speed-up vs litestar-flags", f"{ratio:.1f}x", ">= 80x", ratio >= 80)

    def read_sync() -> int:
        events_of = ours.events
        for key in ours_batch:
            events_of(key)
        return len(ours_batch)

    sync_ns = best_ns_per_op(read_sync, settings.repeats)
    per_flag = len(ours) // FLAG_COUNT
    print(
        f"(c) events(flag_key), synchronous, {per_flag} records per flag: "
        f"{sync_ns / 1000:.3f} us per call (target < 1 us)"
    )


def figure_d(settings: Settings) -> None:
    size = 1_000 if settings.quick else 10_000
    rng = random.Random(settings.seed)
    keys = flag_keys(FLAG_COUNT)
    users = [f"user-{n}" for n in range(USER_COUNT)]
    stream = typical_attribute_stream(rng, keys, users)
    now = time.time_ns()
    id_pairs = [span_ids(rng) for _ in range(2 * size)]

    def record_range(collector: InMemoryAnalyticsCollector, start: int, stop: int) -> None:
        for index in range(start, stop):
            trace_id, span_id = id_pairs[index]
            collector.record(
                map_evaluation(  # type: ignore[arg-type]
                    next(stream), timestamp_ns=now + index, trace_id=trace_id, span_id=span_id
                )
            )

    gc.collect()
    tracemalloc.start()
    try:
        collector = InMemoryAnalyticsCollector(max_size=size)
        # Warm the mapper's caches and the collector's structures, then measure what
        # ``size`` more events (each evicting an older one) leave behind.
        record_range(collector, 0, size)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        record_range(collector, size, 2 * size)
        gc.collect()
        steady = tracemalloc.get_traced_memory()[0]
        # The stored events' own size: free the collector and see what goes.
        collector_len = len(collector)
        del collector
        gc.collect()
        empty = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    per_event = (steady - empty) / collector_len
    print(
        f"(d) memory, full max_size={size}: steady-state growth over {size} more events "
        f"{steady - before} bytes (evicted ones freed)"
    )
    report("(d) bytes per stored event", f"{per_event:.0f}", "<= 350", per_event <= 350)


def main() -> None:
    settings = parse_settings(__doc__ or "")
    rng = random.Random(settings.seed)
    events = make_events(rng, 2_000 if settings.quick else 100_000)
    with asyncio.Runner() as runner:
        figure_a(settings, events, runner)
        figure_b(settings, events)
        figure_c(settings, events, runner)
    figure_d(settings)


if __name__ == "__main__":
    main()
