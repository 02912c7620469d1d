"""Aggregates: summaries per flag and overall, traces, time buckets, inventory checks."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flagscope import (
    EvaluationReason,
    FlagEvaluationEvent,
    FlagSummary,
    InMemoryAnalyticsCollector,
)
from flagscope._query.aggregates import summarize
from flagscope._query.filters import value_key
from flagscope._query.query import CollectorQuery
from producers import make_pipeline
from traffic import PROVIDER_NAME, THEME, Traffic, checkout_traffic

EventFactory = Callable[..., FlagEvaluationEvent]
BASE = datetime(2025, 1, 1, tzinfo=UTC)


def _is_ordered(counts: Any) -> bool:
    items = list(counts.items())
    return items == sorted(items, key=lambda item: (-item[1], item[0]))


def test_overall_summary_counts_every_stored_evaluation(query: CollectorQuery) -> None:
    stored = query.events()
    summary = query.summary()
    assert summary.flag_key is None
    assert summary.count == len(stored) == 9
    assert summary.by_variant == {"off": 4, "on": 1, "red": 1, "dark": 1}
    assert summary.by_reason == {"default": 4, "static": 2, "error": 2, "targeting_match": 1}
    assert summary.by_provider == {PROVIDER_NAME: 9}
    assert summary.by_error_type == {"flag_not_found": 1, "type_mismatch": 1}
    assert summary.by_value == {
        "false": 5,
        "true": 1,
        '"#c05543"': 1,
        '"none"': 1,
        value_key(THEME): 1,
    }
    assert summary.error_count == 2
    assert summary.error_rate == pytest.approx(2 / 9)
    assert summary.distinct_targeting_keys == 3  # alice, bob, carol; anonymous has none
    assert summary.first_seen == min(e.timestamp for e in stored)
    assert summary.last_seen == max(e.timestamp for e in stored)
    assert summary.distinct_traces == 4
    assert summary.max_per_trace == 3
    assert summary.evicted == 0
    for counts in (summary.by_variant, summary.by_value, summary.by_reason):
        assert _is_ordered(counts)
        assert isinstance(counts, MappingProxyType)


def test_per_flag_summaries_are_sorted_by_flag_key(query: CollectorQuery) -> None:
    summaries = query.summaries()
    assert [s.flag_key for s in summaries] == [
        "banner-color",
        "ghost",
        "max-items",
        "new-checkout",
        "theme",
    ]
    by_key = {s.flag_key: s for s in summaries}
    checkout = by_key["new-checkout"]
    assert checkout.count == 5
    assert checkout.by_variant == {"off": 4, "on": 1}
    assert checkout.by_value == {"false": 4, "true": 1}
    assert checkout.distinct_targeting_keys == 2
    assert checkout.max_per_trace == 3  # the anonymous request evaluated it three times
    assert checkout.distinct_traces == 3
    assert checkout.error_rate == 0.0
    assert by_key["ghost"].error_rate == 1.0
    assert by_key["ghost"].by_error_type == {"flag_not_found": 1}
    assert by_key["max-items"].by_value == {'"none"': 1}  # the default, after a type mismatch
    assert sum(s.count for s in summaries) == query.summary().count


def test_summaries_honour_filters(query: CollectorQuery) -> None:
    (bob,) = [query.summary(targeting_key="bob")]
    assert bob.count == 2
    assert bob.by_variant == {"dark": 1, "off": 1}
    assert [s.flag_key for s in query.summaries(errors_only=True)] == ["ghost", "max-items"]
    assert query.summary(flag_key="nope").count == 0


def test_evaluations_per_trace_spots_a_flag_evaluated_many_times_in_one_request(
    query: CollectorQuery, traffic: Traffic
) -> None:
    per_trace = query.evaluations_per_trace(flag_key="new-checkout")
    anonymous, alice, bob = (traffic.ids[name][0] for name in ("anonymous", "alice", "bob"))
    assert next(iter(per_trace)) == anonymous  # the most first
    assert per_trace == {anonymous: 3, alice: 1, bob: 1}
    assert sum(query.evaluations_per_trace().values()) == 9


def test_summary_to_dict_is_plain_json(query: CollectorQuery) -> None:
    data = query.summary(flag_key="theme").to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["by_value"] == {value_key(THEME): 1}
    assert data["first_seen"] == query.events(flag_key="theme")[0].timestamp.isoformat()


def test_empty_summary_has_no_times_and_a_zero_error_rate() -> None:
    summary = InMemoryAnalyticsCollector().query.summary()
    assert (summary.count, summary.error_count, summary.error_rate) == (0, 0, 0.0)
    assert (summary.first_seen, summary.last_seen, summary.max_per_trace) == (None, None, 0)
    assert summary.by_value == {}
    assert InMemoryAnalyticsCollector().query.summaries() == []


def test_aggregates_after_eviction_describe_what_is_stored_and_count_the_rest() -> None:
    pipeline = make_pipeline("simple", max_size=5)
    try:
        checkout_traffic(pipeline)
        query = pipeline.collector.query
        summary = query.summary()
        assert summary.count == 5
        assert summary.evicted == 4 == pipeline.collector.evicted_count
        stored = pipeline.collector.events()
        assert summary.by_variant == dict(Counter(e.variant for e in stored if e.variant))
        assert [s.flag_key for s in query.summaries()] == ["ghost", "max-items", "new-checkout"]
        assert all(s.evicted == 4 for s in query.summaries())
    finally:
        pipeline.provider.shutdown()


@pytest.mark.parametrize(
    ("error_type", "reason", "is_error"),
    [
        ("general", EvaluationReason.ERROR, True),
        (None, EvaluationReason.ERROR, True),  # flagd-style: reason ERROR without error.type
        ("provider_not_ready", EvaluationReason.DEFAULT, True),
        (None, EvaluationReason.DEFAULT, False),
        (None, "error", True),
    ],
)
def test_an_error_is_an_error_type_or_reason_error(
    make_event: EventFactory, error_type: str | None, reason: Any, is_error: bool
) -> None:
    events = [make_event(error_type=error_type, reason=reason), make_event()]
    summary = summarize(events, flag_key="flag", evicted=0)
    assert summary.error_count == int(is_error)
    assert summary.error_rate == int(is_error) / 2


def test_values_count_together_when_their_json_is_the_same(make_event: EventFactory) -> None:
    events = [
        make_event(value={"a": 1, "b": [1, 2]}),
        make_event(value=MappingProxyType({"b": (1, 2), "a": 1})),
        make_event(value=1),
        make_event(value=True),
        make_event(value="1"),
        make_event(value=1.0),
    ]
    counts = summarize(events, flag_key="flag", evicted=0).by_value
    # One number type, as in JSON: 1 and 1.0 are one value; True and "1" are not.
    assert counts == {'{"a":1,"b":[1,2]}': 2, "1": 2, "true": 1, '"1"': 1}


@pytest.mark.parametrize(
    "values", [(0.0, -0.0, -0.0), (-0.0, 0.0, -0.0), (-0.0, 1, -0.0)], ids=repr
)
def test_negative_zero_counts_as_zero_and_agrees_with_the_value_filter(
    make_event: EventFactory, values: tuple[Any, ...]
) -> None:
    # 0.0 == -0.0 and they hash alike: counting them apart would depend on which came first.
    collector = InMemoryAnalyticsCollector()
    collector.record_batch([make_event(value=value) for value in values])
    zeros = sum(1 for value in values if value == 0 and type(value) is float)
    assert collector.query.summary().by_value["0"] == zeros
    assert collector.query.count(value=0.0) == collector.query.count(value=-0.0) == zeros


# -- summaries against a reference, with eviction -------------------------------------

_EVENTS = st.lists(
    st.builds(
        lambda flag, seconds, value, variant, reason, error, user, trace: FlagEvaluationEvent(
            timestamp=BASE + timedelta(seconds=seconds),
            flag_key=flag,
            value=value,
            reason=reason,
            variant=variant,
            targeting_key=user,
            error_type=error,
            trace_id=trace,
            provider_name="p" if user else None,
        ),
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 100),
        st.one_of(st.booleans(), st.integers(0, 2), st.sampled_from(["x", "y"])),
        st.sampled_from([None, "on", "off"]),
        st.sampled_from(list(EvaluationReason)),
        st.sampled_from([None, None, "general"]),
        st.sampled_from([None, "u1", "u2", "u3"]),
        st.sampled_from([None, "1" * 32, "2" * 32]),
    ),
    max_size=60,
)


def _reference(
    events: list[FlagEvaluationEvent], flag_key: str | None, evicted: int
) -> FlagSummary:
    errors = [e for e in events if e.error_type is not None or e.reason == "error"]
    traces = Counter(e.trace_id for e in events if e.trace_id)
    return FlagSummary(
        flag_key=flag_key,
        count=len(events),
        by_variant=dict(Counter(e.variant for e in events if e.variant is not None)),
        by_value=dict(Counter(json.dumps(e.value) for e in events)),
        by_reason=dict(Counter(str(e.reason) for e in events)),
        by_provider=dict(Counter(e.provider_name for e in events if e.provider_name)),
        by_error_type=dict(Counter(e.error_type for e in events if e.error_type)),
        error_count=len(errors),
        error_rate=len(errors) / len(events) if events else 0.0,
        distinct_targeting_keys=len({e.targeting_key for e in events if e.targeting_key}),
        first_seen=min((e.timestamp for e in events), default=None),
        last_seen=max((e.timestamp for e in events), default=None),
        evicted=evicted,
        distinct_traces=len(traces),
        max_per_trace=max(traces.values(), default=0),
    )


@settings(max_examples=150, deadline=None)
@given(events=_EVENTS, max_size=st.integers(1, 30))
def test_summaries_match_a_plain_count_of_the_records_that_survived_eviction(
    events: list[FlagEvaluationEvent], max_size: int
) -> None:
    collector = InMemoryAnalyticsCollector(max_size)
    collector.record_batch(events)
    kept = events[-max_size:] if events else []
    evicted = len(events) - len(kept)
    assert collector.query.summary() == _reference(kept, None, evicted)
    expected = [
        _reference([e for e in kept if e.flag_key == key], key, evicted)
        for key in sorted({e.flag_key for e in kept})
    ]
    assert collector.query.summaries() == expected


# -- time buckets ----------------------------------------------------------------------


def _at(make_event: EventFactory, flag: str, minutes: float, **fields: Any) -> FlagEvaluationEvent:
    return make_event(flag, timestamp=BASE + timedelta(minutes=minutes), **fields)


def test_time_buckets_are_aligned_to_the_width_and_fill_gaps(make_event: EventFactory) -> None:
    collector = InMemoryAnalyticsCollector()
    collector.record_batch(
        [
            _at(make_event, "a", 1, variant="on"),
            _at(make_event, "b", 4, variant="off"),
            _at(make_event, "a", 4.9, variant="on", error_type="general"),
            _at(make_event, "a", 17, variant="off"),
        ]
    )
    buckets = collector.query.time_buckets(timedelta(minutes=5))
    assert [(b.start, b.end) for b in buckets] == [
        (BASE + timedelta(minutes=m), BASE + timedelta(minutes=m + 5)) for m in (0, 5, 10, 15)
    ]
    assert [b.count for b in buckets] == [3, 0, 0, 1]
    assert buckets[0].by_flag == {"a": 2, "b": 1}
    assert buckets[0].by_variant == {"on": 2, "off": 1}
    assert buckets[0].error_count == 1
    assert buckets[1].by_flag == {}
    assert [b.count for b in collector.query.time_buckets(timedelta(minutes=5), flag_key="a")] == [
        2,
        0,
        0,
        1,
    ]
    sparse = collector.query.time_buckets(timedelta(minutes=5), fill_empty=False)
    assert [b.start for b in sparse] == [BASE, BASE + timedelta(minutes=15)]
    data = buckets[0].to_dict()
    assert json.loads(json.dumps(data)) == data


def test_time_buckets_of_real_traffic_hold_every_evaluation(query: CollectorQuery) -> None:
    buckets = query.time_buckets(timedelta(hours=1))
    events = query.events()
    assert sum(b.count for b in buckets) == len(events)
    # Each bucket counts exactly the evaluations of its hour (the traffic may straddle two).
    for bucket in buckets:
        assert bucket.count == sum(1 for e in events if bucket.start <= e.timestamp < bucket.end)
    assert query.time_buckets(timedelta(hours=1), flag_key="nope") == []


def test_too_many_buckets_raise_with_advice(make_event: EventFactory) -> None:
    collector = InMemoryAnalyticsCollector()
    collector.record_batch([_at(make_event, "a", 0), _at(make_event, "a", 60 * 24)])
    with pytest.raises(ValueError, match="fill_empty=False"):
        collector.query.time_buckets(timedelta(seconds=1), max_buckets=1000)
    assert len(collector.query.time_buckets(timedelta(seconds=1), fill_empty=False)) == 2
    # Already sparse: the advice is only what is left to do.
    with pytest.raises(ValueError, match="or raise max_buckets") as raised:
        collector.query.time_buckets(timedelta(seconds=1), fill_empty=False, max_buckets=1)
    assert "fill_empty" not in str(raised.value)


@pytest.mark.parametrize(
    ("width", "error"),
    [(timedelta(0), ValueError), (timedelta(seconds=-1), ValueError), (60, TypeError)],
)
def test_bucket_width_must_be_a_positive_timedelta(width: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="width"):
        InMemoryAnalyticsCollector().query.time_buckets(width)


def test_buckets_that_would_end_past_the_last_date_are_refused_clearly(
    make_event: EventFactory,
) -> None:
    collector = InMemoryAnalyticsCollector()
    collector.record(_at(make_event, "a", 1))
    with pytest.raises(ValueError, match="would end past 9999: choose a narrower width"):
        collector.query.time_buckets(timedelta.max)


# -- inventory -----------------------------------------------------------------------

DECLARED = ["new-checkout", "banner-color", "theme", "max-items", "legacy-banner"]


def test_inventory_finds_unused_undeclared_single_variant_and_failing_flags(
    query: CollectorQuery,
) -> None:
    report = query.inventory(DECLARED)
    assert report.declared == tuple(sorted(DECLARED))
    assert report.never_evaluated == ("legacy-banner",)
    assert report.undeclared == ("ghost",)
    assert report.single_variant == {"banner-color": "red", "theme": "dark"}
    assert report.erroring == {"ghost": 1, "max-items": 1}
    assert not report.is_clean
    assert json.loads(json.dumps(report.to_dict())) == report.to_dict()


def test_inventory_is_clean_when_everything_declared_was_evaluated_without_errors(
    query: CollectorQuery,
) -> None:
    report = query.inventory(["new-checkout"], flag_key="new-checkout")
    assert report.is_clean
    assert report.single_variant == {}  # it served on and off


def test_single_variant_uses_the_value_when_the_producer_sends_no_variant(
    make_event: EventFactory,
) -> None:
    collector = InMemoryAnalyticsCollector()
    collector.record_batch([make_event("ld-flag", value="#c05543") for _ in range(3)])
    assert collector.query.inventory(["ld-flag"]).single_variant == {"ld-flag": '"#c05543"'}


@pytest.mark.parametrize("declared", ["new-checkout", 5, ["a", 1]])
def test_inventory_rejects_declared_keys_that_are_not_strings(declared: Any) -> None:
    with pytest.raises(TypeError, match="declared"):
        InMemoryAnalyticsCollector().query.inventory(declared)
