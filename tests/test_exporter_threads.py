"""The span exporter under threads and inside a running event loop.

The SDK calls ``export()`` from its batch worker, from every thread that ends a span
(simple processor), from a thread pool (concurrent processor), and from the event loop's own
thread when async code ends a span or force-flushes. Each must record exactly, and none may
block on the loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterable

import pytest
from opentelemetry.trace import Tracer

from flagscope import FlagEvaluationEvent, InMemoryAnalyticsCollector
from flagscope._store.ring import Done
from flagscope._telemetry import semconv
from producers import ProcessorKind, make_pipeline

THREADS = 8
SPANS_PER_THREAD = 200
SENT = THREADS * SPANS_PER_THREAD
FLAG_KEYS = ("new-checkout", "banner-color", "max-items")
SEQ = "test.seq"
# A hang guard for the hand-offs between threads, not a speed requirement.
HANG_GUARD_S = 120.0
KINDS: tuple[ProcessorKind, ...] = ("batch", "simple", "concurrent")

Identity = tuple[str, str | None, int]


def _identity(record: FlagEvaluationEvent) -> Identity:
    return record.flag_key, record.targeting_key, record.attributes[SEQ]


def _sent() -> Counter[Identity]:
    return Counter(
        (FLAG_KEYS[(thread + i) % len(FLAG_KEYS)], f"thread-{thread}", i)
        for thread in range(THREADS)
        for i in range(SPANS_PER_THREAD)
    )


class _Rendezvous:
    """Makes the reader's reads overlap the producers' writes without any sleeps as proof.

    The producers start only after the reader's first read, and all of them pause halfway
    until the reader has read again after they got there.
    """

    def __init__(self) -> None:
        self.reader_started = threading.Event()
        self.halfway = threading.Event()
        self.read_at_halfway = threading.Event()
        self.barrier = threading.Barrier(THREADS, action=self.halfway.set, timeout=HANG_GUARD_S)


def _produce(tracer: Tracer, thread: int, meet: _Rendezvous) -> None:
    assert meet.reader_started.wait(HANG_GUARD_S)
    for i in range(SPANS_PER_THREAD):
        if i == SPANS_PER_THREAD // 2:
            meet.barrier.wait()
            assert meet.read_at_halfway.wait(HANG_GUARD_S)
        with tracer.start_as_current_span(f"job-{thread}") as span:
            span.add_event(
                semconv.EVENT_NAME,
                {
                    semconv.KEY: FLAG_KEYS[(thread + i) % len(FLAG_KEYS)],
                    semconv.CONTEXT_ID: f"thread-{thread}",
                    semconv.RESULT_VALUE: "true",
                    SEQ: i,
                },
            )


async def _read_while_producing(
    collector: InMemoryAnalyticsCollector, meet: _Rendezvous, stop: asyncio.Event
) -> list[int]:
    """Read through the async API until told to stop; return the counts seen."""
    counts: list[int] = []
    while not stop.is_set():
        halfway = meet.halfway.is_set()
        events = await collector.get_events()
        ids = [_identity(record) for record in events]
        assert len(set(ids)) == len(ids), "a snapshot holds a record twice"
        counts.append(await collector.get_event_count())
        meet.reader_started.set()
        if halfway:
            meet.read_at_halfway.set()
        # Yield to the loop; the pause only keeps a 2-core machine from spinning.
        await asyncio.sleep(0.001)
    return counts


async def _run_threads(kind: ProcessorKind, collector: InMemoryAnalyticsCollector) -> list[int]:
    """Eight producer threads, one provider, one reader task; return what the reader saw."""
    otel = make_pipeline(
        kind,
        collector=collector,
        # Room for every span, so the SDK drops none; small batches so the worker exports
        # while the producers run.
        batch_options={"max_queue_size": SENT, "max_export_batch_size": 64},
    )
    meet = _Rendezvous()
    stop = asyncio.Event()
    reader = asyncio.create_task(_read_while_producing(collector, meet, stop))
    tracer = otel.tracer()
    threads = [
        threading.Thread(target=_produce, args=(tracer, thread, meet), name=f"producer-{thread}")
        for thread in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    try:
        await asyncio.to_thread(_join, threads)
        # Exports what the batch worker has not yet: here, on the event loop's thread.
        assert otel.provider.force_flush()
    finally:
        # Release everyone even when something failed, so a failure cannot hang the run.
        stop.set()
        meet.reader_started.set()
        meet.read_at_halfway.set()
        try:
            counts = await reader
        finally:
            otel.provider.shutdown()
    assert not any(thread.is_alive() for thread in threads)
    assert len(otel.finished_spans()) == SENT  # the SDK itself lost nothing
    stats = otel.exporter.stats
    assert (stats.items_seen, stats.events_mapped, stats.events_skipped) == (SENT, SENT, 0)
    return counts


def _join(threads: Iterable[threading.Thread]) -> None:
    for thread in threads:
        thread.join(HANG_GUARD_S)


def _by_thread(records: Iterable[FlagEvaluationEvent]) -> dict[str | None, list[int]]:
    seqs: dict[str | None, list[int]] = {}
    for record in records:
        seqs.setdefault(record.targeting_key, []).append(record.attributes[SEQ])
    return seqs


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", KINDS)
async def test_eight_threads_below_capacity_lose_and_duplicate_nothing(kind: ProcessorKind) -> None:
    collector = InMemoryAnalyticsCollector(max_size=SENT * 2)

    counts = await _run_threads(kind, collector)

    records = await collector.get_events()
    assert Counter(_identity(record) for record in records) == _sent()
    assert await collector.get_event_count() == SENT
    assert collector.evicted_count == 0
    # Each thread's spans are exported in the order it ended them.
    assert all(seqs == sorted(seqs) for seqs in _by_thread(records).values())
    # The reader ran during production and only ever saw the store grow.
    assert len(counts) >= 2
    assert counts == sorted(counts)
    for flag_key in FLAG_KEYS:
        expected = sum(1 for identity in _sent().elements() if identity[0] == flag_key)
        assert await collector.get_event_count(flag_key) == expected


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", KINDS)
async def test_eight_threads_above_capacity_keep_max_size_and_count_every_eviction(
    kind: ProcessorKind,
) -> None:
    max_size = 50
    collector = InMemoryAnalyticsCollector(max_size=max_size)

    counts = await _run_threads(kind, collector)

    records = await collector.get_events()
    assert len(records) == await collector.get_event_count() == max_size
    assert collector.evicted_count == SENT - max_size
    assert collector.total_recorded == SENT
    identities = [_identity(record) for record in records]
    assert len(set(identities)) == max_size
    assert set(identities) <= set(_sent())
    # Eviction is oldest first and each thread's spans arrive in order, so what is left
    # of each thread is the tail of what it sent.
    for seqs in _by_thread(records).values():
        assert seqs == list(range(SPANS_PER_THREAD - len(seqs), SPANS_PER_THREAD))
    assert all(0 <= count <= max_size for count in counts)


class _LoopSpyCollector(InMemoryAnalyticsCollector):
    """Notes, for each ``record_batch`` call, whether it ran inside a running event loop."""

    def __init__(self) -> None:
        super().__init__()
        self.inside_loop: list[bool] = []

    def record_batch(self, events: Iterable[FlagEvaluationEvent]) -> Done:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self.inside_loop.append(False)
        else:
            self.inside_loop.append(True)
        return super().record_batch(events)


async def _handler(tracer: Tracer, flag_key: str) -> None:
    """An async request handler that evaluates a flag inside its span."""
    with tracer.start_as_current_span("GET /cart") as span:
        await asyncio.sleep(0)
        span.add_event(semconv.EVENT_NAME, {semconv.KEY: flag_key, semconv.RESULT_VALUE: "1"})
        await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_simple_processor_records_inside_the_running_loop_without_blocking_it() -> None:
    collector = _LoopSpyCollector()
    otel = make_pipeline("simple", collector=collector)
    try:
        await _handler(otel.tracer(), "new-checkout")
        # No await since the span ended: the export already ran, on the loop's thread.
        assert collector.count() == 1
        assert collector.inside_loop == [True]
        await asyncio.gather(*(_handler(otel.tracer(), key) for key in FLAG_KEYS))
        assert await collector.get_event_count() == 1 + len(FLAG_KEYS)
    finally:
        otel.provider.shutdown()
    assert [r.value for r in collector.events()] == [1] * (1 + len(FLAG_KEYS))


@pytest.mark.asyncio
async def test_batch_force_flush_from_the_loop_records_without_deadlock() -> None:
    collector = _LoopSpyCollector()
    otel = make_pipeline("batch", collector=collector)
    try:
        await asyncio.gather(*(_handler(otel.tracer(), key) for key in FLAG_KEYS))
        otel.flush()
        assert collector.inside_loop == [True]
        assert sorted(r.flag_key for r in await collector.get_events()) == sorted(FLAG_KEYS)
    finally:
        otel.provider.shutdown()


@pytest.mark.asyncio
async def test_concurrent_multi_processor_records_from_its_pool_before_end_returns() -> None:
    collector = _LoopSpyCollector()
    otel = make_pipeline("concurrent", collector=collector)
    try:
        await _handler(otel.tracer(), "new-checkout")
        # ConcurrentMultiSpanProcessor waits for its pool, so the record is already there.
        assert collector.count() == 1
        assert collector.inside_loop == [False]
    finally:
        otel.provider.shutdown()
