"""Per-flag rollups: summaries kept current must equal summaries recomputed from records."""

from __future__ import annotations

import math
import random
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from flagscope._query.aggregates import FlagSummary, summarize, summarize_by_flag
from flagscope._query.collector import InMemoryAnalyticsCollector
from flagscope._query.filters import value_key
from flagscope._query.rollup import (
    CATCH_UP_AT,
    FlagRollup,
    Rollups,
    _part_profiles,
    _profile_counts,
    _read,
    cached_value_key,
)
from flagscope._store.records import EvaluationReason, FlagEvaluationEvent, trace_key
from flagscope._store.ring import RecordStore

FLAGS = ("a", "b", "c")
_START = datetime(2025, 1, 1, tzinfo=UTC)
_PLUS_ONE = timezone(timedelta(hours=1))
_MAPPINGS = ("by_variant", "by_value", "by_reason", "by_provider", "by_error_type")


def assert_same(ours: FlagSummary, expected: FlagSummary) -> None:
    """Equal field by field, count mappings in the same order, and alike as JSON."""
    assert ours == expected
    for name in _MAPPINGS:
        assert list(getattr(ours, name).items()) == list(getattr(expected, name).items()), name
    assert ours.to_dict() == expected.to_dict()
    # error_rate is a float: equal, not merely close.
    assert ours.error_rate.hex() == expected.error_rate.hex()


def reference(collector: InMemoryAnalyticsCollector, flag_key: str) -> FlagSummary:
    """What ``query.summary(flag_key=...)`` gave before rollups: a pass over the records."""
    return summarize(collector.events(flag_key), flag_key=None, evicted=collector.evicted_count)


# -- records with awkward fields ---------------------------------------------------

_values = st.one_of(
    st.sampled_from([True, False, 1, 0, 1.0, 0.0, -0.0, math.nan, math.inf, None, "1", "true"]),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True, width=16),
    st.text(max_size=3),
    st.lists(st.sampled_from([1, True, "x", None]), max_size=3),
    st.lists(st.sampled_from([1, True, "x", None]), max_size=3).map(tuple),
    st.dictionaries(st.sampled_from(["k", "j"]), st.sampled_from([1, 1.0, True, None])),
)
_reasons = st.sampled_from([*EvaluationReason, "STATIC", "custom", "Error", "error"])
_timestamps = st.builds(
    lambda seconds, tz: (_START + timedelta(seconds=seconds)).astimezone(tz),
    st.integers(-4, 4),  # out of order, with ties
    st.sampled_from([UTC, _PLUS_ONE]),  # one instant, two spellings
)


def _maybe(values: list[str]) -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), st.sampled_from(values))


events = st.builds(
    FlagEvaluationEvent,
    timestamp=_timestamps,
    flag_key=st.sampled_from(FLAGS),
    value=_values,
    reason=_reasons,
    variant=_maybe(["on", "off", "v"]),
    targeting_key=_maybe(["u1", "u2", "u3"]),
    provider_name=_maybe(["p", "q"]),
    error_type=_maybe(["flag_not_found", "general"]),
    trace_id=_maybe(["t1", "t2", "t3", "t4"]),
)


class RollupMachine(RuleBasedStateMachine):
    """Record, clear and summarise at random; rollups must always match recomputation."""

    collector: InMemoryAnalyticsCollector

    @initialize(max_size=st.integers(1, 40))
    def make_collector(self, max_size: int) -> None:
        self.collector = InMemoryAnalyticsCollector(max_size=max_size, summary_rollups=True)

    @rule(event=events)
    def record(self, event: FlagEvaluationEvent) -> None:
        self.collector.record(event)

    @rule(batch=st.lists(events, max_size=30))
    def record_batch(self, batch: list[FlagEvaluationEvent]) -> None:
        self.collector.record_batch(batch)

    @rule(before=st.lists(events, max_size=10), after=st.lists(events, max_size=3))
    def record_batch_stopped_by_a_bad_item(
        self, before: list[FlagEvaluationEvent], after: list[FlagEvaluationEvent]
    ) -> None:
        bad = FlagEvaluationEvent(_START, ["unhashable"], 1, "static")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            self.collector.record_batch([*before, bad, *after])

    @rule()
    def clear(self) -> None:
        self.collector.clear()

    @rule(flag_key=st.sampled_from([*FLAGS, "never-recorded"]))
    def summary_of_one_flag(self, flag_key: str) -> None:
        assert_same(
            self.collector.query.summary(flag_key=flag_key), reference(self.collector, flag_key)
        )

    @rule()
    def summaries_of_every_flag(self) -> None:
        collector = self.collector
        ours = collector.query.summaries()
        expected = summarize_by_flag(collector.events(), evicted=collector.evicted_count)
        assert [s.flag_key for s in ours] == [s.flag_key for s in expected]
        for one, other in zip(ours, expected, strict=True):
            assert_same(one, other)

    @invariant()
    def every_summary_matches_its_records(self) -> None:
        collector = self.collector
        for flag_key in FLAGS:
            assert_same(collector.query.summary(flag_key=flag_key), reference(collector, flag_key))
        expected = summarize(collector.events(), flag_key=None, evicted=collector.evicted_count)
        assert_same(collector.query.summary(), expected)


RollupMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestRollupsMatchRecomputation = RollupMachine.TestCase


# -- FlagRollup on its own ----------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    batch=st.lists(events, max_size=40),
    removals=st.lists(st.integers(0, 40), min_size=1, max_size=6),
    built=st.integers(0, 40),
)
def test_rollup_follows_adds_and_oldest_first_removals(
    batch: list[FlagEvaluationEvent], removals: list[int], built: int
) -> None:
    # Built from the first records at once (as the collector does), then kept current.
    stored = batch[:built]
    rollup = FlagRollup.of(stored)
    assert_same(rollup.summary("f", 7), summarize(stored, flag_key="f", evicted=7))
    remaining = batch[built:]
    for removal in removals:
        # Add a few, then evict a few, as a collector would.
        taken, remaining = remaining[: removal + 1], remaining[removal + 1 :]
        for event in taken:
            rollup.add(event)
            stored.append(event)
        for _ in range(min(removal, len(stored))):
            rollup.remove(stored.pop(0))
        assert rollup.count == len(stored)
        assert_same(rollup.summary("f", 7), summarize(stored, flag_key="f", evicted=7))


@settings(max_examples=200, deadline=None)
@given(
    batch=st.lists(events, max_size=150),
    steps=st.lists(st.tuples(st.integers(0, 70), st.integers(0, 70)), min_size=1, max_size=8),
)
def test_rollup_follows_batches_added_and_evicted_at_once(
    batch: list[FlagEvaluationEvent], steps: list[tuple[int, int]]
) -> None:
    # What the store hook hands over: a batch stored, then a batch of the oldest evicted.
    rollup = FlagRollup()
    stored: list[FlagEvaluationEvent] = []
    remaining = batch
    for taken, evicted in steps:
        added, remaining = remaining[:taken], remaining[taken:]
        rollup.extend(added)
        stored.extend(added)
        gone, stored = stored[: min(evicted, len(stored))], stored[min(evicted, len(stored)) :]
        rollup.evict(gone)
        assert rollup.count == len(stored)
        assert_same(rollup.summary("f", 3), summarize(stored, flag_key="f", evicted=3))


def test_cached_value_keys_keep_true_apart_from_one_and_one_point_zero_with_one() -> None:
    for value in (True, 1, 1.0, False, 0, 0.0, -0.0, "1", None, math.nan, math.inf, -math.inf):
        # Twice: the second answer comes from the cache.
        assert cached_value_key(value) == value_key(value)
        assert cached_value_key(value) == value_key(value)
    assert [cached_value_key(v) for v in (True, 1, 1.0)] == ["true", "1", "1"]
    assert cached_value_key(-0.0) == cached_value_key(0.0) == "0"


def test_a_rollup_counts_each_nan_as_the_same_value() -> None:
    records = [
        FlagEvaluationEvent(_START, "f", float("nan"), "static"),
        FlagEvaluationEvent(_START, "f", float("nan"), "static"),
    ]
    assert FlagRollup.of(records).summary("f", 0).by_value == {"NaN": 2}


# -- the collector's rollups ----------------------------------------------------------


def _event(flag_key: str, n: int, **fields: Any) -> FlagEvaluationEvent:
    fields.setdefault("reason", "static")
    return FlagEvaluationEvent(_START + timedelta(seconds=n), flag_key, n % 3, **fields)


def rollups_of(collector: RecordStore) -> Rollups:
    """The rollups attached to ``collector`` (found among its public hooks)."""
    (rollups,) = [hook for hook in collector.hooks if isinstance(hook, Rollups)]
    return rollups


def test_a_default_collector_keeps_no_rollups_yet_gives_the_same_summaries() -> None:
    collector = InMemoryAnalyticsCollector(max_size=10)
    collector.record_batch([_event(key, n) for n in range(20) for key in ("a", "b")])
    assert collector.summary_rollups is False
    assert collector.hooks == ()

    assert_same(collector.query.summary(flag_key="a"), reference(collector, "a"))
    assert collector.query.summaries() == summarize_by_flag(
        collector.events(), evicted=collector.evicted_count
    )
    collector.record(_event("a", 99))
    assert_same(collector.query.summary(flag_key="a"), reference(collector, "a"))


@pytest.mark.parametrize("wrong", [1, "yes", None])
def test_summary_rollups_must_be_a_bool(wrong: object) -> None:
    with pytest.raises(TypeError, match="summary_rollups must be a bool"):
        InMemoryAnalyticsCollector(summary_rollups=wrong)  # type: ignore[arg-type]


def test_rollups_attached_later_start_from_what_is_stored() -> None:
    store = InMemoryAnalyticsCollector(max_size=10)
    store.record_batch([_event(key, n) for n, key in enumerate("abcabcab")])
    rollups = Rollups(store)
    assert store.summary_rollups is True
    assert_same(rollups.summary("a", label=None) or _missing(), reference(store, "a"))
    store.record_batch([_event("c", n) for n in range(8, 14)])
    for key in "abc":
        assert_same(store.query.summary(flag_key=key), reference(store, key))
    rollups.detach()
    assert store.hooks == ()


def _missing() -> FlagSummary:
    raise AssertionError("no rollup where one was expected")


def test_summarising_a_flag_with_no_records_gives_the_empty_summary() -> None:
    collector = InMemoryAnalyticsCollector(summary_rollups=True)
    collector.record(_event("a", 1))
    assert_same(collector.query.summary(flag_key="zzz"), reference(collector, "zzz"))
    assert [summary.flag_key for summary in collector.query.summaries()] == ["a"]


def test_after_clear_summaries_count_only_new_records() -> None:
    collector = InMemoryAnalyticsCollector(max_size=10, summary_rollups=True)
    collector.record_batch([_event(key, n) for n, key in enumerate("abcab")])
    collector.clear()
    assert collector.query.summaries() == []
    assert collector.query.summary().count == 0
    collector.record(_event("a", 9))
    assert_same(collector.query.summary(flag_key="a"), reference(collector, "a"))


@pytest.mark.asyncio
async def test_after_close_summaries_are_empty() -> None:
    collector = InMemoryAnalyticsCollector(summary_rollups=True)
    await collector.record(_event("a", 1))
    await collector.close()
    assert collector.query.summaries() == []
    assert collector.query.summary(flag_key="a").count == 0


def test_a_flag_whose_records_were_all_evicted_has_no_summary_left() -> None:
    collector = InMemoryAnalyticsCollector(max_size=3, summary_rollups=True)
    collector.record_batch([_event("a", 0), _event("b", 1), _event("b", 2)])
    collector.record(_event("b", 3))  # evicts a's only record
    assert [summary.flag_key for summary in collector.query.summaries()] == ["b"]
    assert_same(collector.query.summary(flag_key="b"), reference(collector, "b"))


def test_flags_beyond_max_flags_are_summarised_from_their_records() -> None:
    store = InMemoryAnalyticsCollector(max_size=100)
    rollups = Rollups(store, max_flags=3)
    store.record_batch([_event(f"flag-{n % 5}", n) for n in range(50)])
    # Flags 0 to 2 came first and have a rollup; 3 and 4 do not.
    assert [rollups.summary(f"flag-{n}", label=None) is None for n in range(5)] == [
        False,
        False,
        False,
        True,
        True,
    ]
    expected = summarize_by_flag(store.events(), evicted=store.evicted_count)
    assert store.query.summaries() == expected
    for n in range(5):
        key = f"flag-{n}"
        assert_same(store.query.summary(flag_key=key), reference(store, key))
    store.record_batch([_event(f"flag-{n % 5}", n) for n in range(50, 180)])
    assert store.query.summaries() == summarize_by_flag(store.events(), evicted=store.evicted_count)


def test_records_a_rollup_cannot_count_fall_back_to_the_ordinary_path() -> None:
    collector = InMemoryAnalyticsCollector(max_size=5, summary_rollups=True)
    rollups = rollups_of(collector)
    collector.record_batch([_event("a", n) for n in range(3)])
    assert rollups.summary("a", label=None) is not None
    # An unhashable variant: summarize cannot count it either, and says so.
    collector.record(_event("a", 3, variant=["on"]))
    assert rollups.summary("a", label=None) is None
    with pytest.raises(TypeError, match="unhashable"):
        collector.query.summary(flag_key="a")
    collector.record_batch([_event("a", n) for n in range(4, 9)])  # the bad record is evicted
    assert_same(collector.query.summary(flag_key="a"), reference(collector, "a"))
    # Once the flag's records are all gone, its next records are rolled up again.
    collector.record_batch([_event("b", n) for n in range(5)])
    collector.record(_event("a", 10))
    assert rollups.summary("a", label=None) is not None
    assert_same(collector.query.summary(flag_key="a"), reference(collector, "a"))


def test_a_catch_up_reads_each_flag_as_the_separate_passes_did() -> None:
    # Values equal in Python but not as values (True, 1, 1.0; "1" and a list's JSON
    # text) keep apart; a flag with an unhashable variant is counted afresh (and
    # cannot be), while the other flags are read as usual.
    values: list[Any] = [True, 1, 1.0, "1", [1], "[1]", None, True, 1]
    events = [
        FlagEvaluationEvent(
            _START + timedelta(seconds=n),
            "a",
            value,
            "static",
            targeting_key=f"user-{n % 4}" if n % 5 else None,
            trace_id=f"{n % 3:032x}" if n % 4 else f"not hex {n}",
        )
        for n, value in enumerate(values)
    ]
    events += [_event("b", n, variant="on") for n in range(3)]
    events.insert(5, _event("b", 9, variant=["on"]))
    parts, times = _read(events, with_times=True)
    assert list(parts) == ["a", "b"]
    assert times == [event.timestamp for event in events]
    # Evicted records are read without their times: the same parts, no times.
    untimed, no_times = _read(events, with_times=False)
    assert no_times == []
    assert list(untimed) == ["a", "b"]
    for key, part in untimed.items():
        assert part[:4] == parts[key][:4]
        assert part[4] == []
    records, _, targeting_keys, traces, flag_times = parts["a"]
    assert records == [event for event in events if event.flag_key == "a"]
    assert targeting_keys == [event.targeting_key for event in records]
    assert traces == [trace_key(event) for event in records]
    assert flag_times == [event.timestamp for event in records]
    profiles = _part_profiles(parts["a"])
    assert profiles == _profile_counts(records)
    assert {profile[1] for profile in profiles or ()} == {value_key(value) for value in values}
    assert len(set(map(value_key, values))) == 6  # 1 and 1.0 are one value
    assert parts["b"][1] is None  # the unhashable variant: no counts by profile
    assert _part_profiles(parts["b"]) is None
    assert len(parts["b"][0]) == len(parts["b"][2]) == 4


def test_naive_timestamps_are_summarised_like_aware_ones() -> None:
    collector = InMemoryAnalyticsCollector(max_size=5, summary_rollups=True)
    naive = [
        FlagEvaluationEvent(datetime(2025, 1, 1, 0, 0, n % 3), "a", n, "static") for n in range(7)
    ]
    collector.record_batch(naive)
    assert_same(collector.query.summary(flag_key="a"), reference(collector, "a"))
    collector.record(FlagEvaluationEvent(_START, "a", 1, "static"))  # aware among naive
    with pytest.raises(TypeError):
        collector.query.summary(flag_key="a")
    assert rollups_of(collector).summary("a", label=None) is None


def test_changing_a_value_after_recording_or_reading_changes_no_summary() -> None:
    collector = InMemoryAnalyticsCollector(max_size=2, summary_rollups=True)
    value: dict[str, int] = {"n": 1}
    collector.record(FlagEvaluationEvent(_START, "a", value, "static"))
    before = collector.query.summary(flag_key="a")
    value["n"] = 2  # the record keeps its own copy
    collector.events()[0].value["n"] = 3  # and so does every read
    assert collector.query.summary(flag_key="a").by_value == {'{"n":1}': 1}
    collector.record_batch([_event("a", 1), _event("a", 2)])  # evicts it
    assert_same(collector.query.summary(flag_key="a"), reference(collector, "a"))
    assert before.by_value == {'{"n":1}': 1}


def test_summaries_from_rollups_equal_the_pass_over_records_on_realistic_traffic() -> None:
    rng = random.Random(7)
    collector = InMemoryAnalyticsCollector(max_size=500, summary_rollups=True)
    for n in range(2000):
        collector.record(
            FlagEvaluationEvent(
                _START + timedelta(milliseconds=n + rng.randint(-50, 50)),
                f"flag-{rng.randrange(20)}",
                rng.choice([True, False, "blue", 3, {"a": [1, 2]}]),
                rng.choice(["static", "targeting_match", "error", "split"]),
                variant=rng.choice(["on", "off", None]),
                targeting_key=f"user-{rng.randrange(50)}",
                error_type=rng.choice([None, None, None, "flag_not_found"]),
                trace_id=f"{rng.randrange(300):032x}",
            )
        )
        if n % 250 == 0:
            collector.query.summaries()
    assert collector.query.summaries() == summarize_by_flag(
        collector.events(), evicted=collector.evicted_count
    )


def test_summaries_match_after_more_records_than_are_queued_between_reads() -> None:
    # No read for several catch-up bounds: the hook counts its queue as it fills,
    # evictions and a record no rollup can count included.
    rng = random.Random(11)
    collector = InMemoryAnalyticsCollector(max_size=3000, summary_rollups=True)
    batches = []
    for _ in range(3 * CATCH_UP_AT // 100):
        batches.append(
            [
                FlagEvaluationEvent(
                    _START + timedelta(seconds=rng.randrange(10_000)),
                    f"flag-{rng.randrange(30)}",
                    rng.choice([True, False, 2, 2.0, "x", {"a": [1]}]),
                    rng.choice(["static", "error", "split"]),
                    variant=rng.choice(["on", "off", None]),
                    targeting_key=rng.choice([None, f"u{rng.randrange(500)}"]),
                    trace_id=f"{rng.randrange(5000):032x}",
                )
                for _ in range(100)
            ]
        )
    unhashable: Any = ["bad"]  # a variant no rollup can count, mid-stream
    batches[40][0] = FlagEvaluationEvent(_START, "flag-0", 1, "static", variant=unhashable)
    for batch in batches:
        collector.record_batch(batch)
    assert collector.query.summaries() == summarize_by_flag(
        collector.events(), evicted=collector.evicted_count
    )
    assert_same(
        collector.query.summary(),
        summarize(collector.events(), flag_key=None, evicted=collector.evicted_count),
    )


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """Switch threads every 10 us rather than 5 ms, so that reads land mid-batch."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


@pytest.mark.usefixtures("frequent_thread_switches")
def test_writers_and_summary_readers_at_once() -> None:
    collector = InMemoryAnalyticsCollector(max_size=300, summary_rollups=True)
    flags = [f"flag-{n}" for n in range(6)]
    writers, per_writer = 4, 3000
    start = threading.Barrier(writers + 2)
    errors: list[BaseException] = []
    done = threading.Event()

    def write(seed: int) -> None:
        rng = random.Random(seed)
        start.wait()
        for n in range(per_writer):
            event = FlagEvaluationEvent(
                _START + timedelta(seconds=rng.randrange(1000)),
                rng.choice(flags),
                rng.choice([True, False, 1, "x"]),
                rng.choice(["static", "error"]),
                variant=rng.choice(["on", "off"]),
                targeting_key=f"u{rng.randrange(30)}",
                trace_id=f"t{rng.randrange(100)}",
            )
            if n % 7 == 0:
                collector.record_batch([event, event])
            else:
                collector.record(event)

    reads = [0, 0]

    def read(flag_only: bool) -> None:
        start.wait()
        rng = random.Random(99)
        while not done.is_set():
            reads[flag_only] += 1
            try:
                if flag_only:
                    found = [collector.query.summary(flag_key=rng.choice(flags))]
                else:
                    found = collector.query.summaries()
                for summary in found:
                    # One consistent snapshot: the parts add up to the whole.
                    assert sum(summary.by_reason.values()) == summary.count
                    assert sum(summary.by_value.values()) == summary.count
                    assert summary.count <= collector.max_size
            except BaseException as error:  # noqa: BLE001 - reported by the main thread
                errors.append(error)
                return

    threads = [threading.Thread(target=write, args=(seed,)) for seed in range(writers)]
    readers = [threading.Thread(target=read, args=(flag_only,)) for flag_only in (True, False)]
    for thread in threads + readers:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    done.set()
    for thread in readers:
        thread.join(timeout=60)
    assert not errors, errors[0]
    assert min(reads) > 1  # both readers ran while writers wrote
    doubled = len(range(0, per_writer, 7))  # record_batch of two
    assert collector.total_recorded == writers * (per_writer + doubled)
    assert [summary.flag_key for summary in collector.query.summaries()] == sorted(
        collector.flag_keys()
    )
    for flag_key in flags:
        assert_same(collector.query.summary(flag_key=flag_key), reference(collector, flag_key))
    assert collector.query.summaries() == summarize_by_flag(
        collector.events(), evicted=collector.evicted_count
    )
