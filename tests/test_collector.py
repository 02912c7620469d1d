"""InMemoryAnalyticsCollector: the litestar-flags seed API, bounded and thread-safe."""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from litestar_flags.analytics import AnalyticsCollector as LitestarCollectorProtocol
from litestar_flags.analytics import InMemoryAnalyticsCollector as LitestarCollector

from flagscope._query.aggregates import summarize, summarize_by_flag
from flagscope._query.collector import AnalyticsCollector, InMemoryAnalyticsCollector, estimate_size
from flagscope._store.records import EvaluationReason, FlagEvaluationEvent
from flagscope._store.ring import RecordStore

EventFactory = Callable[..., FlagEvaluationEvent]
FLAGS = ("alpha", "beta", "gamma", "delta")
_START = datetime(2025, 1, 1, tzinfo=UTC)


def numbered_event(flag_key: str, n: int) -> FlagEvaluationEvent:
    """A record told apart from every other by ``n`` (its value)."""
    return FlagEvaluationEvent(_START + timedelta(seconds=n), flag_key, n, EvaluationReason.STATIC)


def record_flags(collector: RecordStore, flags: str) -> list[FlagEvaluationEvent]:
    """Record one event per letter of ``flags`` ("abca": alpha, beta, gamma, alpha)."""
    names = dict(zip("abcd", FLAGS, strict=True))
    start = collector.total_recorded
    events = [numbered_event(names[c], start + i) for i, c in enumerate(flags)]
    for event in events:
        collector.record(event)
    return events


# -- construction ----------------------------------------------------------------


def test_default_max_size_matches_litestar() -> None:
    assert InMemoryAnalyticsCollector().max_size == LitestarCollector().max_size


@pytest.mark.parametrize("max_size", [1, 2, 10_000, 10**7])
def test_positive_int_max_size_is_kept(max_size: int) -> None:
    assert InMemoryAnalyticsCollector(max_size=max_size).max_size == max_size


@pytest.mark.parametrize("max_size", [0, -1, -10_000])
def test_max_size_below_one_raises_value_error(max_size: int) -> None:
    with pytest.raises(ValueError, match="max_size"):
        InMemoryAnalyticsCollector(max_size=max_size)


@pytest.mark.parametrize("max_size", [True, False, 10.0, 1.5, "100", None, [10]], ids=repr)
def test_non_int_max_size_raises_type_error(max_size: Any) -> None:
    with pytest.raises(TypeError, match="max_size"):
        InMemoryAnalyticsCollector(max_size=max_size)


def test_collector_satisfies_both_collector_protocols() -> None:
    collector = InMemoryAnalyticsCollector()
    assert isinstance(collector, AnalyticsCollector)
    assert isinstance(collector, LitestarCollectorProtocol)


# -- the seed API, against litestar-flags itself -----------------------------------

_seed_steps = st.lists(
    st.one_of(
        st.tuples(st.just("record"), st.sampled_from(FLAGS)),
        st.tuples(st.just("record"), st.sampled_from(FLAGS)),
        st.tuples(st.just("clear")),
        st.tuples(st.just("close")),
        st.tuples(st.just("flush")),
        st.tuples(
            st.just("get"),
            st.none() | st.sampled_from(FLAGS),
            st.none() | st.integers(min_value=-3, max_value=12),
        ),
        st.tuples(st.just("count"), st.none() | st.sampled_from(FLAGS)),
        st.tuples(st.just("len")),
    ),
    max_size=60,
)


async def _drive(collector: Any, steps: list[tuple[Any, ...]]) -> list[Any]:
    """Run seed-API steps; return what every read gave."""
    out: list[Any] = []
    recorded = 0
    for step in steps:
        match step:
            case ("record", flag_key):
                await collector.record(numbered_event(flag_key, recorded))
                recorded += 1
            case ("clear",):
                await collector.clear()
            case ("close",):
                await collector.close()
            case ("flush",):
                await collector.flush()
            case ("get", flag_key, limit):
                out.append(await collector.get_events(flag_key=flag_key, limit=limit))
            case ("count", flag_key):
                out.append(await collector.get_event_count(flag_key))
            case ("len",):
                out.append(len(collector))
    out.append(await collector.get_events())
    return out


@settings(max_examples=150, deadline=None)
@given(steps=_seed_steps, max_size=st.sampled_from([1, 2, 3, 7, 10_000]))
def test_seed_api_gives_the_same_results_as_litestar_flags(
    steps: list[tuple[Any, ...]], max_size: int
) -> None:
    async def both() -> tuple[list[Any], list[Any]]:
        ours = await _drive(InMemoryAnalyticsCollector(max_size=max_size), steps)
        theirs = await _drive(LitestarCollector(max_size=max_size), steps)
        return ours, theirs

    ours, theirs = asyncio.run(both())
    assert ours == theirs


@pytest.mark.asyncio
async def test_get_events_returns_records_oldest_first() -> None:
    collector = InMemoryAnalyticsCollector()
    events = [numbered_event(flag, n) for n, flag in enumerate(["alpha", "beta", "alpha"])]
    for event in events:
        await collector.record(event)
    assert await collector.get_events() == events
    assert await collector.get_events("alpha") == [events[0], events[2]]
    assert await collector.get_events("missing") == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (1, [3]),
        (2, [2, 3]),
        (4, [0, 1, 2, 3]),
        (99, [0, 1, 2, 3]),
        (None, [0, 1, 2, 3]),
        (0, [0, 1, 2, 3]),
        (-1, [0, 1, 2, 3]),
    ],
)
async def test_limit_keeps_the_newest_n_oldest_first(
    limit: int | None, expected: list[int]
) -> None:
    collector = InMemoryAnalyticsCollector()
    for n in range(4):
        await collector.record(numbered_event("alpha", n))
        await collector.record(numbered_event("beta", 100 + n))
    events = await collector.get_events("alpha", limit=limit)
    assert [event.value for event in events] == expected


@pytest.mark.asyncio
async def test_get_event_count_counts_all_or_one_flag() -> None:
    collector = InMemoryAnalyticsCollector()
    record_flags(collector, "aabca")
    assert await collector.get_event_count() == 5
    assert await collector.get_event_count("alpha") == 3
    assert await collector.get_event_count("gamma") == 1
    assert await collector.get_event_count("missing") == 0
    assert len(collector) == 5


@pytest.mark.asyncio
async def test_flush_keeps_records() -> None:
    collector = InMemoryAnalyticsCollector()
    events = record_flags(collector, "ab")
    await collector.flush()
    assert await collector.get_events() == events


@pytest.mark.asyncio
@pytest.mark.parametrize("method", ["clear", "close"])
async def test_clear_and_close_release_records_and_stay_usable(method: str) -> None:
    collector = InMemoryAnalyticsCollector()
    record_flags(collector, "abc")
    await getattr(collector, method)()
    assert await collector.get_events() == []
    assert await collector.get_event_count("alpha") == 0
    assert len(collector) == 0
    later = record_flags(collector, "a")
    assert await collector.get_events() == later


@pytest.mark.asyncio
async def test_record_batch_stores_in_order() -> None:
    collector = InMemoryAnalyticsCollector(max_size=3)
    events = [numbered_event("alpha", n) for n in range(5)]
    await collector.record_batch(events)
    assert await collector.get_events() == events[-3:]
    assert collector.evicted_count == 2


def test_record_batch_accepts_any_iterable_and_stores_it_when_called() -> None:
    collector = InMemoryAnalyticsCollector()
    events = [numbered_event("alpha", n) for n in range(3)]
    collector.record_batch(iter(events))
    collector.record_batch([])
    assert collector.events() == events
    assert collector.total_recorded == 3


# -- eviction --------------------------------------------------------------------


def test_eviction_drops_oldest_first_and_is_counted() -> None:
    collector = InMemoryAnalyticsCollector(max_size=3)
    events = record_flags(collector, "abcab")
    assert collector.events() == events[2:]
    assert collector.evicted_count == 2
    assert collector.total_recorded == 5
    assert len(collector) == 3


def test_per_flag_queries_stay_consistent_after_many_wrap_arounds() -> None:
    collector = InMemoryAnalyticsCollector(max_size=5)
    pattern = "aabacdbbadcaaabcd" * 7
    events = record_flags(collector, pattern)
    kept = events[-5:]
    assert collector.events() == kept
    for flag in FLAGS:
        expected = [event for event in kept if event.flag_key == flag]
        assert collector.events(flag) == expected
        assert collector.count(flag) == len(expected)
    assert collector.counts_by_flag() == dict(Counter(event.flag_key for event in kept))
    assert collector.evicted_count == len(pattern) - 5


def test_a_flag_whose_records_are_all_evicted_disappears() -> None:
    collector = InMemoryAnalyticsCollector(max_size=2)
    record_flags(collector, "abb")
    assert collector.flag_keys() == ["beta"]
    assert collector.events("alpha") == []
    assert "alpha" not in collector.counts_by_flag()


def test_clear_resets_per_flag_indexes_but_keeps_counters() -> None:
    collector = InMemoryAnalyticsCollector(max_size=3)
    record_flags(collector, "abcab")
    collector.clear()
    assert collector.flag_keys() == []
    assert collector.counts_by_flag() == {}
    assert collector.evicted_count == 2
    assert collector.total_recorded == 5

    after = record_flags(collector, "cabd")
    assert collector.events() == after[-3:]
    assert collector.events("alpha") == [after[1]]
    assert collector.events("gamma") == []
    assert collector.evicted_count == 3
    assert collector.total_recorded == 9


def test_max_size_one_keeps_only_the_last_record() -> None:
    collector = InMemoryAnalyticsCollector(max_size=1)
    events = record_flags(collector, "abca")
    assert collector.events() == [events[-1]]
    assert collector.events("alpha") == [events[-1]]
    assert collector.count("beta") == 0


@pytest.mark.parametrize("max_size", [10, 2], ids=["room", "full"])
@pytest.mark.parametrize(
    "bad",
    [None, FlagEvaluationEvent(_START, ["unhashable"], 0, "static")],  # type: ignore[arg-type]
    ids=["not-a-record", "unhashable-key"],
)
def test_a_bad_item_stops_its_batch_and_leaves_the_collector_consistent(
    max_size: int, bad: Any
) -> None:
    collector = InMemoryAnalyticsCollector(max_size=max_size)
    before = record_flags(collector, "ab")
    calls: list[int] = []
    collector.subscribe(lambda: calls.append(collector.count()))
    good = numbered_event("gamma", 2)

    with pytest.raises((TypeError, AttributeError)):
        collector.record_batch([good, bad, numbered_event("delta", 3)])

    # What came before the bad item is stored and announced; the bad item is not.
    stored = [*before, good][-max_size:]
    assert collector.events() == stored
    assert collector.total_recorded == 3
    assert calls == [len(stored)]
    # And the collector keeps working, evicting and indexing as before.
    after = record_flags(collector, "cab")
    expected = [*stored, *after][-max_size:]
    assert collector.events() == expected
    assert collector.evicted_count == 6 - len(expected)
    for flag in FLAGS:
        assert collector.events(flag) == [e for e in expected if e.flag_key == flag]


# -- select, count, flag_keys, counts_by_flag --------------------------------------


def test_query_of_several_flags_keeps_recording_order_across_eviction() -> None:
    collector = InMemoryAnalyticsCollector(max_size=6)
    events = record_flags(collector, "abcdabcdba")
    selected = collector.query.events(flag_key={"alpha", "beta"})
    assert selected == [e for e in events[-6:] if e.flag_key in {"alpha", "beta"}]


@pytest.mark.parametrize("keys", [["missing"], ("missing", "other")], ids=repr)
def test_query_of_unknown_flags_is_empty(keys: list[str]) -> None:
    collector = InMemoryAnalyticsCollector()
    record_flags(collector, "ab")
    assert collector.query.events(flag_key=keys) == []


def test_flag_keys_lists_flags_by_first_stored_record() -> None:
    collector = InMemoryAnalyticsCollector()
    record_flags(collector, "cacbda")
    assert collector.flag_keys() == ["gamma", "alpha", "beta", "delta"]


def test_counts_by_flag_counts_each_flag() -> None:
    collector = InMemoryAnalyticsCollector()
    record_flags(collector, "cacbda")
    assert collector.counts_by_flag() == {"gamma": 2, "alpha": 2, "beta": 1, "delta": 1}
    assert collector.count() == 6


def test_iterating_the_collector_gives_the_stored_records() -> None:
    collector = InMemoryAnalyticsCollector(max_size=2)
    events = record_flags(collector, "abc")
    assert list(collector) == events[1:]


def test_repr_shows_size_and_evictions() -> None:
    collector = InMemoryAnalyticsCollector(max_size=2)
    record_flags(collector, "abc")
    assert repr(collector) == "InMemoryAnalyticsCollector(max_size=2, stored=2, evicted=1)"


# -- snapshots -------------------------------------------------------------------


def test_reads_are_snapshots_unaffected_by_later_changes() -> None:
    collector = InMemoryAnalyticsCollector(max_size=3)
    first = record_flags(collector, "ab")
    events = collector.events()
    alpha = collector.events("alpha")
    counts = collector.counts_by_flag()
    keys = collector.flag_keys()

    record_flags(collector, "ccc")
    collector.clear()

    assert events == first
    assert alpha == first[:1]
    assert counts == {"alpha": 1, "beta": 1}
    assert keys == ["alpha", "beta"]


def test_changing_a_returned_list_does_not_change_the_collector() -> None:
    collector = InMemoryAnalyticsCollector()
    events = record_flags(collector, "ab")
    returned = collector.events()
    returned.clear()
    collector.counts_by_flag()["alpha"] = 99
    assert collector.events() == events
    assert collector.count("alpha") == 1


# -- subscribe -------------------------------------------------------------------


def test_listener_is_called_after_each_change_and_sees_it() -> None:
    collector = InMemoryAnalyticsCollector()
    seen: list[int] = []
    collector.subscribe(lambda: seen.append(collector.count()))

    record_flags(collector, "a")
    collector.record_batch([numbered_event("beta", 10), numbered_event("beta", 11)])
    asyncio.run(collector.record(numbered_event("gamma", 12)))
    collector.clear()

    assert seen == [1, 3, 4, 0]


def test_listener_may_read_the_collector_without_deadlock() -> None:
    collector = InMemoryAnalyticsCollector()
    reads: list[list[FlagEvaluationEvent]] = []
    collector.subscribe(lambda: reads.append(collector.events("alpha")))

    worker = threading.Thread(target=record_flags, args=(collector, "a"), daemon=True)
    worker.start()
    worker.join(timeout=30)  # only a deadlock would come near this

    assert not worker.is_alive()
    assert [[e.value for e in read] for read in reads] == [[0]]


def test_raising_listener_does_not_break_recording_or_other_listeners(
    caplog: pytest.LogCaptureFixture,
) -> None:
    collector = InMemoryAnalyticsCollector()
    calls: list[str] = []

    def broken() -> None:
        calls.append("broken")
        raise RuntimeError("listener bug")

    collector.subscribe(broken)
    collector.subscribe(lambda: calls.append("ok"))
    with caplog.at_level(logging.DEBUG, logger="flagscope"):
        events = record_flags(collector, "ab")

    assert collector.events() == events
    assert calls == ["broken", "ok", "broken", "ok"]
    assert any(record.exc_info for record in caplog.records)


def test_unsubscribe_stops_calls_and_is_idempotent() -> None:
    collector = InMemoryAnalyticsCollector()
    calls: list[str] = []
    unsubscribe = collector.subscribe(lambda: calls.append("a"))
    collector.subscribe(lambda: calls.append("b"))

    record_flags(collector, "a")
    unsubscribe()
    unsubscribe()
    record_flags(collector, "a")

    assert calls == ["a", "b", "b"]


def test_listener_may_unsubscribe_itself_while_being_called() -> None:
    collector = InMemoryAnalyticsCollector()
    calls: list[str] = []

    def once() -> None:
        calls.append("once")
        unsubscribe()

    unsubscribe = collector.subscribe(once)
    collector.subscribe(lambda: calls.append("always"))
    record_flags(collector, "aa")

    assert calls == ["once", "always", "always"]


# -- threads ---------------------------------------------------------------------


@pytest.mark.parametrize("max_size", [10_000, 37])
def test_concurrent_recording_loses_nothing_and_keeps_per_thread_order(max_size: int) -> None:
    collector = InMemoryAnalyticsCollector(max_size=max_size)
    per_thread = 500
    barrier = threading.Barrier(len(FLAGS))

    def work(flag: str) -> None:
        barrier.wait()
        for n in range(per_thread):
            collector.record(numbered_event(flag, n))

    threads = [threading.Thread(target=work, args=(flag,)) for flag in FLAGS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    total = per_thread * len(FLAGS)
    assert collector.total_recorded == total
    assert len(collector) == min(total, max_size)
    assert collector.evicted_count == total - len(collector)
    assert sum(collector.counts_by_flag().values()) == len(collector)
    for flag in FLAGS:
        values = [event.value for event in collector.events(flag)]
        assert values == sorted(values)
        assert values == list(range(per_thread - len(values), per_thread))


# -- reference model ---------------------------------------------------------------


class CollectorMachine(RuleBasedStateMachine):
    """The collector must always equal a plain list trimmed to ``max_size``."""

    collector: InMemoryAnalyticsCollector

    @initialize(max_size=st.integers(min_value=1, max_value=50))
    def create(self, max_size: int) -> None:
        self.collector = InMemoryAnalyticsCollector(max_size=max_size)
        self.max_size = max_size
        self.model: list[tuple[int, FlagEvaluationEvent]] = []
        self.dropped = 0
        self.total = 0

    def _model_append(self, event: FlagEvaluationEvent) -> None:
        self.model.append((self.total, event))
        self.total += 1
        if len(self.model) > self.max_size:
            del self.model[0]
            self.dropped += 1

    @rule(flag=st.sampled_from(FLAGS))
    def record(self, flag: str) -> None:
        event = numbered_event(flag, self.total)
        self.collector.record(event)
        self._model_append(event)

    @rule(flags=st.lists(st.sampled_from(FLAGS), max_size=60))
    def record_batch(self, flags: list[str]) -> None:
        events = [numbered_event(flag, self.total + i) for i, flag in enumerate(flags)]
        self.collector.record_batch(events)
        for event in events:
            self._model_append(event)

    @rule()
    def clear(self) -> None:
        self.collector.clear()
        self.model = []

    @rule(
        flag=st.none() | st.sampled_from(FLAGS),
        limit=st.none() | st.integers(min_value=-2, max_value=60),
    )
    def query_with_limit(self, flag: str | None, limit: int | None) -> None:
        expected = [e for _, e in self.model if flag is None or e.flag_key == flag]
        if limit is not None and limit > 0:
            expected = expected[-limit:]
        assert self.collector.events(flag, limit) == expected

    @rule(flags=st.sets(st.sampled_from(FLAGS), min_size=1))
    def query_some_flags(self, flags: set[str]) -> None:
        expected = [e for _, e in self.model if e.flag_key in flags]
        assert self.collector.query.events(flag_key=flags) == expected

    @invariant()
    @precondition(lambda self: hasattr(self, "collector"))
    def matches_model(self) -> None:
        collector = self.collector
        model_events = [e for _, e in self.model]
        assert collector.events() == model_events
        assert len(collector) == len(self.model) == collector.count()
        assert collector.evicted_count == self.dropped
        assert collector.total_recorded == self.total
        for flag in FLAGS:
            flag_events = [e for e in model_events if e.flag_key == flag]
            assert collector.events(flag) == flag_events
            assert collector.count(flag) == len(flag_events)
        assert collector.counts_by_flag() == dict(Counter(e.flag_key for e in model_events))
        assert collector.flag_keys() == list(dict.fromkeys(e.flag_key for e in model_events))


CollectorMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None
)
TestCollectorMatchesReferenceModel = CollectorMachine.TestCase


# -- the byte budget -------------------------------------------------------------------


def sized_event(flag_key: str, n: int, padding: int) -> FlagEvaluationEvent:
    """A record told apart by ``n``, holding ``padding`` characters of attribute text."""
    return FlagEvaluationEvent(
        _START + timedelta(seconds=n),
        flag_key,
        n,
        EvaluationReason.STATIC,
        attributes={"note": "x" * padding} if padding else {},
    )


@pytest.mark.parametrize("max_bytes", [0, -1])
def test_max_bytes_below_one_raises_value_error(max_bytes: int) -> None:
    with pytest.raises(ValueError, match="max_bytes must be at least 1"):
        InMemoryAnalyticsCollector(max_bytes=max_bytes)


@pytest.mark.parametrize("max_bytes", [True, 1.5, "100", [10]], ids=repr)
def test_non_int_max_bytes_raises_type_error(max_bytes: Any) -> None:
    with pytest.raises(TypeError, match="max_bytes must be an int or None"):
        InMemoryAnalyticsCollector(max_bytes=max_bytes)


def test_by_default_only_max_size_bounds_the_store() -> None:
    collector = InMemoryAnalyticsCollector(max_size=3)
    for n in range(3):
        collector.record(sized_event("alpha", n, 100_000))
    assert collector.max_bytes is None
    assert len(collector) == 3
    assert collector.evicted_count == 0
    assert collector.stored_bytes == 0  # nothing is estimated without a budget


def test_estimate_grows_with_the_attributes_and_the_value() -> None:
    small = sized_event("alpha", 1, 0)
    padded = sized_event("alpha", 1, 10_000)
    assert estimate_size(padded) - estimate_size(small) >= 10_000
    nested = FlagEvaluationEvent(
        _START, "alpha", {"a": ["x" * 5000, {"b": "y" * 5000}]}, EvaluationReason.STATIC
    )
    assert estimate_size(nested) - estimate_size(small) >= 10_000


def test_a_deeply_nested_value_is_estimated_without_recursing_without_end() -> None:
    value: Any = "leaf"
    for _ in range(5000):
        value = [value]
    event = FlagEvaluationEvent(_START, "alpha", value, EvaluationReason.STATIC)
    assert estimate_size(event) > 0


def test_past_the_byte_budget_the_oldest_records_go_first_and_are_counted() -> None:
    one = estimate_size(sized_event("alpha", 0, 1000))
    collector = InMemoryAnalyticsCollector(max_size=1000, max_bytes=3 * one)
    events = [sized_event(flag, n, 1000) for n, flag in enumerate(["alpha", "beta"] * 5)]
    collector.record_batch(events)

    assert collector.events() == events[-3:]
    assert collector.evicted_count == 7
    assert collector.total_recorded == 10
    assert collector.stored_bytes <= 3 * one
    assert collector.counts_by_flag() == {"beta": 2, "alpha": 1}


def test_one_huge_record_evicts_many_small_ones_and_is_kept_even_alone() -> None:
    collector = InMemoryAnalyticsCollector(max_size=1000, max_bytes=50_000)
    collector.record_batch(sized_event("small", n, 0) for n in range(50))
    huge = sized_event("huge", 50, 200_000)
    collector.record(huge)

    assert collector.events() == [huge]
    assert collector.evicted_count == 50
    assert collector.count("small") == 0
    collector.record(sized_event("small", 51, 0))
    assert [e.flag_key for e in collector.events()] == ["small"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(FLAGS), st.integers(0, 3000)), max_size=60),
    st.integers(1, 12),
    st.integers(600, 12_000),
)
def test_both_bounds_evict_exactly_what_a_simple_model_evicts(
    items: list[tuple[str, int]], max_size: int, max_bytes: int
) -> None:
    """Newest first kept within both bounds; everything else evicted and counted."""
    collector = InMemoryAnalyticsCollector(
        max_size=max_size, max_bytes=max_bytes, summary_rollups=True
    )
    collector.query.summaries()  # every flag seen so far gets a rollup kept current
    model: list[FlagEvaluationEvent] = []
    for n, (flag, padding) in enumerate(items):
        event = sized_event(flag, n, padding)
        collector.record(event)
        model.append(event)
        if len(model) > max_size:
            model.pop(0)
        while len(model) > 1 and sum(map(estimate_size, model)) > max_bytes:
            model.pop(0)
        if n % 7 == 0:
            collector.query.summaries()

    assert collector.events() == model
    assert collector.evicted_count == len(items) - len(model)
    assert collector.stored_bytes == sum(map(estimate_size, model))
    for flag in FLAGS:
        assert collector.events(flag) == [e for e in model if e.flag_key == flag]
    assert collector.query.summaries() == summarize_by_flag(model, evicted=collector.evicted_count)
    assert collector.query.summary() == summarize(
        model, flag_key=None, evicted=collector.evicted_count
    )


_SHAPES = st.tuples(
    st.sampled_from(FLAGS),
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=3),
    st.none() | st.text(max_size=30),
    st.integers(0, 2000),
    st.none() | st.text(max_size=5),
)


def shaped_event(
    n: int, shape: tuple[str, Any, str | None, int, str | None]
) -> FlagEvaluationEvent:
    """A record told apart by ``n`` (its time), of the value, key and sizes drawn."""
    flag_key, value, targeting_key, padding, error_message = shape
    return FlagEvaluationEvent(
        _START + timedelta(seconds=n),
        flag_key,
        value,
        EvaluationReason.STATIC,
        targeting_key=targeting_key,
        attributes={"note": "x" * padding} if padding > 1000 else {},
        error_message=error_message,
    )


@settings(max_examples=80, deadline=None)
@given(st.lists(st.none() | st.text(max_size=40), min_size=1, max_size=20), st.booleans())
def test_a_stored_record_costs_the_budget_what_estimate_size_says_of_its_targeting_key(
    targeting_keys: list[str | None], wide: bool
) -> None:
    # The store sizes ASCII text without sys.getsizeof; any other text through it.
    keys = [key + "\u20ac" if wide and key is not None else key for key in targeting_keys]
    events = [shaped_event(n, ("a", n, key, 0, None)) for n, key in enumerate(keys)]
    store = RecordStore(max_size=100, max_bytes=10**9)
    store.record_batch(events)
    assert store.stored_bytes == sum(map(estimate_size, events))


class _Changes:
    """A store hook that keeps what it is told."""

    def __init__(self) -> None:
        self.added: list[FlagEvaluationEvent] = []
        self.evicted: list[FlagEvaluationEvent] = []

    def records_changed(
        self, added: Sequence[FlagEvaluationEvent], evicted: Sequence[FlagEvaluationEvent]
    ) -> None:
        self.added += added
        self.evicted += evicted

    def records_cleared(self) -> None:
        raise AssertionError("not cleared here")


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.lists(_SHAPES, max_size=12), max_size=12),
    st.integers(1, 30),
    st.integers(300, 8000) | st.integers(10**6, 10**9),  # bytes or count the bound reached
)
def test_a_batch_is_stored_and_evicted_as_its_records_one_at_a_time(
    batches: list[list[tuple[str, Any, str | None, int, str | None]]],
    max_size: int,
    max_bytes: int,
) -> None:
    by_batch = RecordStore(max_size=max_size, max_bytes=max_bytes)
    one_by_one = RecordStore(max_size=max_size, max_bytes=max_bytes)
    told = {by_batch: _Changes(), one_by_one: _Changes()}
    for store, hook in told.items():
        store.add_hook(hook)
    n = 0
    for shapes in batches:
        events = [shaped_event(n + i, shape) for i, shape in enumerate(shapes)]
        n += len(events)
        by_batch.record_batch(events)
        for event in events:
            one_by_one.record(event)
        assert by_batch.events() == one_by_one.events()
        assert by_batch.stored_bytes == one_by_one.stored_bytes
        assert by_batch.evicted_count == one_by_one.evicted_count
        assert by_batch.counts_by_flag() == one_by_one.counts_by_flag()
        for flag in FLAGS:
            assert by_batch.events(flag) == one_by_one.events(flag)
    assert told[by_batch].added == told[one_by_one].added
    assert told[by_batch].evicted == told[one_by_one].evicted
    assert by_batch.stored_bytes == sum(map(estimate_size, by_batch.events()))


def test_the_overall_summary_stays_current_through_evictions_and_clear() -> None:
    collector = InMemoryAnalyticsCollector(max_size=5, summary_rollups=True)
    record_flags(collector, "abcab")
    assert collector.query.summary().count == 5
    record_flags(collector, "dd")
    assert collector.query.summary() == summarize(
        collector.events(), flag_key=None, evicted=collector.evicted_count
    )
    collector.clear()
    assert collector.query.summary().count == 0
    assert collector.stored_bytes == 0


# -- one naming scheme: the seed's writes act when called ----------------------------


@pytest.mark.parametrize("name", ["clear", "close"])
def test_clear_and_close_called_from_sync_code_drop_the_records(name: str) -> None:
    collector = InMemoryAnalyticsCollector()
    record_flags(collector, "ab")
    getattr(collector, name)()
    assert len(collector) == 0


def test_the_seed_writes_return_a_finished_coroutine_that_never_warns() -> None:
    collector = InMemoryAnalyticsCollector()
    event = numbered_event("alpha", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = [
            collector.record(event),
            collector.record_batch([event]),
            collector.flush(),
            collector.close(),
            collector.clear(),
        ]
        assert all(isinstance(result, Coroutine) for result in results)
        assert all(asyncio.iscoroutine(result) for result in results)
        assert asyncio.run(collector.record(event)) is None  # asyncio.run takes it
        del results
        gc.collect()
    assert collector.events() == [event]


@pytest.mark.asyncio
async def test_the_seed_reads_are_coroutines_equal_to_their_async_twins() -> None:
    collector = InMemoryAnalyticsCollector()
    record_flags(collector, "abab")
    assert inspect.iscoroutinefunction(collector.get_events)
    assert inspect.iscoroutinefunction(collector.get_event_count)
    assert await collector.get_events("alpha", 1) == await collector.events_async("alpha", 1)
    assert await collector.get_event_count("beta") == await collector.count_async("beta") == 2


def test_a_collector_is_what_litestar_flags_expects_of_an_analytics_collector() -> None:
    collector: AnalyticsCollector = InMemoryAnalyticsCollector()
    assert isinstance(collector, AnalyticsCollector)


# -- the store hook ---------------------------------------------------------------------


class RecordingHook:
    """A test observer: notes every call the store makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[FlagEvaluationEvent], list[FlagEvaluationEvent]]] = []

    def records_changed(
        self, added: Sequence[FlagEvaluationEvent], evicted: Sequence[FlagEvaluationEvent]
    ) -> None:
        self.calls.append(("changed", list(added), list(evicted)))

    def records_cleared(self) -> None:
        self.calls.append(("cleared", [], []))


def test_a_hook_hears_what_is_stored_then_every_addition_eviction_and_clear() -> None:
    store = RecordStore(max_size=2)
    first = record_flags(store, "a")
    hook = RecordingHook()
    detach = store.add_hook(hook)
    assert store.hooks == (hook,)
    later = [numbered_event("beta", 1), numbered_event("gamma", 2)]
    store.record_batch(later)
    store.clear()
    detach()
    store.record(numbered_event("delta", 3))
    assert hook.calls == [
        ("changed", first, []),
        ("changed", later, first),
        ("cleared", [], []),
    ]
    assert not store.hooks


def test_a_hook_hears_byte_budget_evictions_including_records_of_the_same_batch() -> None:
    store = RecordStore(max_size=100, max_bytes=1)
    hook = RecordingHook()
    store.add_hook(hook)
    events = [numbered_event("alpha", n) for n in range(3)]
    store.record_batch(events)
    # Only the newest is kept: the others were stored, then evicted, oldest first.
    assert hook.calls[-1] == ("changed", events, events[:2])
    assert store.events() == events[-1:]


def test_a_hook_that_raises_is_detached_and_the_store_goes_on() -> None:
    store = RecordStore(max_size=3)

    class Broken(RecordingHook):
        def records_changed(
            self, added: Sequence[FlagEvaluationEvent], evicted: Sequence[FlagEvaluationEvent]
        ) -> None:
            if added and added[0].flag_key == "beta":
                raise RuntimeError("broken")

    store.add_hook(Broken())
    events = record_flags(store, "abc")
    assert store.hooks == ()
    assert store.events() == events
