"""wait_for / wait_for_async: woken by records from any thread, clear timeouts."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from openfeature.client import OpenFeatureClient
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flagscope import FlagEvaluationEvent, FlagEvaluationSpanExporter, InMemoryAnalyticsCollector
from flagscope._query.query import CollectorQuery
from producers import Pipeline, make_pipeline
from traffic import context, openfeature_client, request

MODES = ("sync", "async")


def wait(mode: str, query: CollectorQuery, **kwargs: Any) -> list[FlagEvaluationEvent]:
    """Run the sync twin, or the async twin on a fresh event loop, with the same arguments."""
    if mode == "sync":
        return query.wait_for(**kwargs)
    return asyncio.run(query.wait_for_async(**kwargs))


@pytest.fixture
def client() -> Iterator[OpenFeatureClient]:
    with openfeature_client() as client:
        yield client


@pytest.fixture
def simple() -> Iterator[Pipeline]:
    pipeline = make_pipeline("simple")
    try:
        yield pipeline
    finally:
        pipeline.provider.shutdown()


@pytest.fixture
def worker_thread_pipeline() -> Iterator[Pipeline]:
    """A batch processor that exports on its own worker thread, soon after each span."""
    collector = InMemoryAnalyticsCollector()
    exporter = FlagEvaluationSpanExporter(collector)
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=20))
    mirror = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(mirror))
    pipeline = Pipeline(provider, collector, exporter, mirror, kind="batch")
    try:
        yield pipeline
    finally:
        provider.shutdown()


def _evaluate(pipeline: Pipeline, client: OpenFeatureClient, user: str, times: int = 1) -> None:
    request(
        pipeline,
        client,
        user,
        [lambda c: c.get_boolean_value("new-checkout", False, context(user))] * times,
    )


@pytest.mark.parametrize("mode", MODES)
def test_returns_at_once_when_enough_records_are_stored(
    mode: str, simple: Pipeline, client: OpenFeatureClient
) -> None:
    _evaluate(simple, client, "alice", times=3)
    found = wait(mode, simple.collector.query, count=2, timeout=0, flag_key="new-checkout")
    assert len(found) == 3
    assert all(e.targeting_key == "alice" for e in found)


@pytest.mark.parametrize("mode", MODES)
def test_wakes_when_the_batch_processors_worker_thread_records(
    mode: str, worker_thread_pipeline: Pipeline, client: OpenFeatureClient
) -> None:
    pipeline = worker_thread_pipeline
    # The spans end on this thread before waiting; the worker exports them later.
    _evaluate(pipeline, client, "bob", times=2)
    found = wait(
        mode, pipeline.collector.query, count=2, timeout=30, flag_key="new-checkout", variant="off"
    )
    assert [e.targeting_key for e in found] == ["bob", "bob"]


@pytest.mark.parametrize("mode", MODES)
def test_wakes_when_another_thread_records_while_waiting(
    mode: str, simple: Pipeline, client: OpenFeatureClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = simple.collector
    subscribed = threading.Event()
    subscribe = collector.subscribe

    def subscribe_and_tell(listener: Callable[[], None]) -> Callable[[], None]:
        unsubscribe = subscribe(listener)
        subscribed.set()
        return unsubscribe

    monkeypatch.setattr(collector, "subscribe", subscribe_and_tell)

    def produce() -> None:
        # Record only once the waiter is waiting, so only a wake-up can find it.
        assert subscribed.wait(30)
        _evaluate(simple, client, "carol")

    thread = threading.Thread(target=produce)
    thread.start()
    try:
        found = wait(mode, collector.query, timeout=30, targeting_key="carol")
    finally:
        thread.join()
    assert [e.flag_key for e in found] == ["new-checkout"]
    assert collector.query.count() == 1


class _CountingSubscribers(InMemoryAnalyticsCollector):
    """A collector that counts the listeners subscribed and not yet unsubscribed."""

    def __init__(self) -> None:
        super().__init__()
        self.subscribed = 0
        self.subscriptions = 0  # ever made

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        unsubscribe = super().subscribe(listener)
        self.subscribed += 1
        self.subscriptions += 1
        done = False

        def counted_unsubscribe() -> None:
            nonlocal done
            if not done:
                done = True
                self.subscribed -= 1
            unsubscribe()

        return counted_unsubscribe


def _has_listener(collector: _CountingSubscribers) -> bool:
    return collector.subscribed > 0


@pytest.mark.asyncio
async def test_async_wait_sees_evaluations_made_on_the_same_event_loop(
    simple: Pipeline, client: OpenFeatureClient
) -> None:
    async def handler() -> None:
        await asyncio.sleep(0)
        _evaluate(simple, client, "dave")

    waiting = asyncio.create_task(
        simple.collector.query.wait_for_async(timeout=30, targeting_key="dave")
    )
    await asyncio.sleep(0)
    await handler()
    found = await waiting
    assert [e.targeting_key for e in found] == ["dave"]


@pytest.mark.parametrize("mode", MODES)
def test_timeout_says_what_was_wanted_and_what_was_seen(
    mode: str, simple: Pipeline, client: OpenFeatureClient
) -> None:
    _evaluate(simple, client, "erin", times=2)
    with pytest.raises(TimeoutError) as raised:
        wait(
            mode,
            simple.collector.query,
            count=1,
            timeout=0.05,
            flag_key="new-checkout",
            variant="on",
        )
    message = str(raised.value)
    assert "1 evaluation(s) matching flag_key='new-checkout', variant='on'" in message
    assert "0 matched" in message
    assert "variants: off x2" in message
    assert "values: false x2" in message
    assert "reasons: default x2" in message


@pytest.mark.parametrize("mode", MODES)
def test_timeout_for_an_unknown_flag_suggests_close_keys(
    mode: str, simple: Pipeline, client: OpenFeatureClient
) -> None:
    _evaluate(simple, client, "frank")
    with pytest.raises(
        TimeoutError, match=r"no evaluation of \['new-chekout'\] is stored"
    ) as raised:
        wait(mode, simple.collector.query, timeout=0, flag_key="new-chekout")
    assert "flags stored: new-checkout x1" in str(raised.value)
    assert "Did you mean 'new-checkout'?" in str(raised.value)


@pytest.mark.parametrize("mode", MODES)
def test_timeout_on_an_empty_collector_says_it_is_empty(mode: str) -> None:
    with pytest.raises(TimeoutError, match="the collector is empty"):
        wait(mode, InMemoryAnalyticsCollector().query, count=2, timeout=0)


def test_timeout_mentions_eviction(make_event: Callable[..., FlagEvaluationEvent]) -> None:
    collector = InMemoryAnalyticsCollector(max_size=2)
    collector.record_batch([make_event("a") for _ in range(5)])
    with pytest.raises(TimeoutError, match=r"evicted 3 older record\(s\) \(max_size=2\)"):
        collector.query.wait_for(count=2, timeout=0, flag_key="b")


@pytest.mark.parametrize("timeout", [0, 5.0, None])
def test_a_count_above_max_size_raises_value_error_at_once(timeout: float | None) -> None:
    """More matches than the collector can ever hold: no waiting, even with no timeout."""
    collector = InMemoryAnalyticsCollector(max_size=3)
    with pytest.raises(ValueError, match=r"count=4 can never be reached.*max_size=3"):
        collector.query.wait_for(count=4, timeout=timeout)


@pytest.mark.asyncio
async def test_the_async_wait_also_refuses_a_count_above_max_size_at_once() -> None:
    collector = InMemoryAnalyticsCollector(max_size=3)
    with pytest.raises(ValueError, match="can never be reached"):
        await collector.query.wait_for_async(count=4, timeout=None)


@pytest.mark.parametrize(
    "timeout", [1e10, 1e300, float("inf"), 10**400], ids=["1e10", "1e300", "inf", "10**400"]
)
def test_any_finite_or_infinite_timeout_waits_and_returns_the_matches(
    timeout: float, make_event: Callable[..., FlagEvaluationEvent]
) -> None:
    """A huge timeout is no OverflowError: the wait returns as soon as a record matches."""
    collector = InMemoryAnalyticsCollector()
    recorder = threading.Timer(0.05, lambda: collector.record(make_event("a")))
    recorder.start()
    try:
        (event,) = collector.query.wait_for(count=1, timeout=timeout, flag_key="a")
    finally:
        recorder.join()
    assert event.flag_key == "a"


@pytest.mark.asyncio
@pytest.mark.parametrize("timeout", [1e10, 1e300])
async def test_the_async_wait_takes_a_huge_timeout_too(
    timeout: float, make_event: Callable[..., FlagEvaluationEvent]
) -> None:
    collector = InMemoryAnalyticsCollector()
    asyncio.get_running_loop().call_later(0.05, collector.record, make_event("a"))
    (event,) = await collector.query.wait_for_async(count=1, timeout=timeout, flag_key="a")
    assert event.flag_key == "a"


@pytest.mark.asyncio
async def test_sync_wait_inside_an_event_loop_points_to_the_async_twin() -> None:
    with pytest.raises(TimeoutError, match=r"use 'await query\.wait_for_async"):
        InMemoryAnalyticsCollector().query.wait_for(timeout=0)


@pytest.mark.parametrize("mode", MODES)
def test_waiting_checks_again_only_when_the_collector_changes(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[int] = []
    original = CollectorQuery.matching

    def counting(self: CollectorQuery, event_filter: Any) -> list[FlagEvaluationEvent]:
        checks.append(1)
        return original(self, event_filter)

    monkeypatch.setattr(CollectorQuery, "matching", counting)
    with pytest.raises(TimeoutError):
        wait(mode, InMemoryAnalyticsCollector().query, flag_key="x", timeout=0.2)
    # One check on entry and one at the deadline (plus the message's own look):
    # nothing polls in between when no record arrives.
    assert len(checks) <= 3


@pytest.mark.parametrize("mode", MODES)
def test_waiters_unsubscribe_when_done(
    mode: str, make_event: Callable[..., FlagEvaluationEvent]
) -> None:
    collector = _CountingSubscribers()
    collector.record(make_event("a"))
    wait(mode, collector.query, flag_key="a")
    with pytest.raises(TimeoutError):
        wait(mode, collector.query, flag_key="b", timeout=0)
    assert collector.subscriptions == 2
    assert not _has_listener(collector)


@pytest.mark.asyncio
async def test_a_cancelled_async_wait_unsubscribes() -> None:
    collector = _CountingSubscribers()
    waiting = asyncio.create_task(collector.query.wait_for_async(flag_key="a", timeout=None))
    await asyncio.sleep(0)
    assert _has_listener(collector)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not _has_listener(collector)


@pytest.mark.parametrize("mode", MODES)
def test_cleared_records_no_longer_count(
    mode: str, make_event: Callable[..., FlagEvaluationEvent]
) -> None:
    collector = InMemoryAnalyticsCollector()
    collector.record_batch([make_event("a"), make_event("a")])
    collector.clear()
    with pytest.raises(TimeoutError, match="0 matched"):
        wait(mode, collector.query, flag_key="a", timeout=0)


def test_count_zero_returns_whatever_matches_at_once() -> None:
    assert InMemoryAnalyticsCollector().query.wait_for(count=0, timeout=0) == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"count": -1}, ValueError),
        ({"count": 1.5}, TypeError),
        ({"count": True}, TypeError),
        ({"timeout": -1}, ValueError),
        ({"timeout": -(10**400)}, ValueError),
        ({"timeout": float("nan")}, ValueError),
        ({"timeout": "5"}, TypeError),
        ({"flagkey": "a"}, TypeError),
    ],
)
def test_bad_wait_arguments_raise_at_once(
    mode: str, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        wait(mode, InMemoryAnalyticsCollector().query, **kwargs)


def test_flag_keys_that_cannot_be_hashed_are_refused_naming_the_argument() -> None:
    with pytest.raises(TypeError, match=r"^flag_key must hold flag keys \(str\), got list$"):
        InMemoryAnalyticsCollector().query.count(flag_key=[["a"]])  # type: ignore[list-item]


def test_recording_still_works_after_a_waiting_event_loop_closed(
    make_event: Callable[..., FlagEvaluationEvent], caplog: pytest.LogCaptureFixture
) -> None:
    collector = InMemoryAnalyticsCollector()
    loop = asyncio.new_event_loop()
    waiter = loop.create_task(collector.query.wait_for_async(flag_key="late", timeout=60))
    loop.run_until_complete(asyncio.sleep(0))  # the waiter is now subscribed
    # The waiter stays pending for good: asyncio's "Task was destroyed but it is
    # pending" at garbage collection is expected here, so this loop keeps it quiet.
    loop.set_exception_handler(lambda loop, context: None)
    loop.close()

    # Exporters may record at interpreter exit, after an application's loop is gone.
    with caplog.at_level(logging.DEBUG, logger="flagscope"):
        collector.record(make_event("late"))

    assert collector.count("late") == 1
    assert not waiter.done()
    assert caplog.records == []  # the waiter's wake-up knew its loop was gone


def test_timeout_message_cuts_long_values(make_event: Callable[..., FlagEvaluationEvent]) -> None:
    collector = InMemoryAnalyticsCollector()
    long_value = {"key-" + str(n): "x" * 20 for n in range(10)}
    collector.record(make_event("theme", value=long_value))
    with pytest.raises(TimeoutError) as raised:
        collector.query.wait_for(flag_key="theme", variant="dark", timeout=0)
    message = str(raised.value)
    assert '{"key-0":"xxxx' in message
    assert "..." in message
    assert '"key-9"' not in message
