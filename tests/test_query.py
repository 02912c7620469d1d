"""The query API's records: every filter, paging, and reading only the asked flags."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flagscope import EvaluationReason, FlagEvaluationEvent, InMemoryAnalyticsCollector
from flagscope._query.filters import value_key
from flagscope._query.query import CollectorQuery
from producers import SERVICE_NAME
from traffic import PROVIDER_NAME, THEME, Traffic

# The records checkout_traffic() makes, in recording order, as (flag, targeting key).
RECORDED = [
    ("new-checkout", "alice"),
    ("banner-color", "alice"),
    ("new-checkout", "bob"),
    ("theme", "bob"),
    ("ghost", "carol"),
    ("max-items", "carol"),
    ("new-checkout", None),
    ("new-checkout", None),
    ("new-checkout", None),
]
ALL = list(range(len(RECORDED)))


def _positions(events: list[FlagEvaluationEvent], traffic: Traffic) -> list[int]:
    stored = traffic.pipeline.collector.events()
    return [next(i for i, e in enumerate(stored) if e is event) for event in events]


def test_the_traffic_fixture_records_what_the_requests_evaluated(query: CollectorQuery) -> None:
    assert [(e.flag_key, e.targeting_key) for e in query.events()] == RECORDED


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ALL),
        ({"flag_key": "new-checkout"}, [0, 2, 6, 7, 8]),
        ({"flag_key": ["theme", "banner-color"]}, [1, 3]),
        ({"flag_key": frozenset({"ghost", "max-items", "nope"})}, [4, 5]),
        ({"flag_key": ()}, []),
        ({"flag_key": "nope"}, []),
        ({"variant": "off"}, [2, 6, 7, 8]),
        ({"variant": "dark"}, [3]),
        ({"value": True}, [0]),
        ({"value": False}, [2, 4, 6, 7, 8]),
        ({"value": 0}, []),
        ({"value": "#c05543"}, [1]),
        ({"value": "none"}, [5]),
        ({"value": {"sizes": [1, 2], "palette": {"accent": "#c05543"}}}, [3]),
        ({"value": {"palette": {"accent": "#c05543"}, "sizes": (1, 2)}}, [3]),
        ({"value": THEME | {"sizes": [2, 1]}}, []),
        ({"reason": "default"}, [2, 6, 7, 8]),
        ({"reason": "TARGETING_MATCH"}, [0]),
        ({"reason": EvaluationReason.ERROR}, [4, 5]),
        ({"reason": EvaluationReason.STATIC}, [1, 3]),
        ({"provider_name": PROVIDER_NAME}, ALL),
        ({"provider_name": "LaunchDarkly"}, []),
        ({"error_type": "flag_not_found"}, [4]),
        ({"error_type": "type_mismatch"}, [5]),
        ({"errors_only": True}, [4, 5]),
        ({"errors_only": False}, ALL),
        ({"targeting_key": "bob"}, [2, 3]),
        ({"service_name": SERVICE_NAME}, ALL),
        ({"service_name": "billing"}, []),
        ({"predicate": lambda e: e.value is True or e.value == 42}, [0]),
        ({"flag_key": "new-checkout", "variant": "off", "reason": "default"}, [2, 6, 7, 8]),
        ({"flag_key": "new-checkout", "targeting_key": "alice", "variant": "off"}, []),
        ({"flag_key": ["ghost", "theme"], "errors_only": True}, [4]),
    ],
)
def test_each_filter_keeps_only_matching_records_in_recording_order(
    query: CollectorQuery, traffic: Traffic, filters: dict[str, Any], expected: list[int]
) -> None:
    assert _positions(query.events(**filters), traffic) == expected
    assert query.count(**filters) == len(expected)


@pytest.mark.parametrize("request_name", ["alice", "bob", "carol", "anonymous"])
@pytest.mark.parametrize("spelling", ["hex", "upper hex", "sdk int"])
def test_trace_and_span_id_filters_accept_hex_text_or_the_sdks_int(
    query: CollectorQuery, traffic: Traffic, request_name: str, spelling: str
) -> None:
    trace_hex, span_hex = traffic.ids[request_name]
    spellings: dict[str, Callable[[str], Any]] = {
        "hex": str,
        "upper hex": str.upper,
        "sdk int": lambda text: int(text, 16),
    }
    spell = spellings[spelling]
    by_trace = query.events(trace_id=spell(trace_hex))
    by_span = query.events(span_id=spell(span_hex))
    expected = [e for e in query.events() if e.trace_id == trace_hex]
    assert by_trace == expected
    assert by_span == expected
    assert by_trace  # every request evaluated at least one flag


def test_since_and_until_keep_a_half_open_time_range(query: CollectorQuery) -> None:
    stored = query.events()
    start, end = stored[2].timestamp, stored[6].timestamp
    in_range = query.events(since=start, until=end)
    assert in_range == [e for e in stored if start <= e.timestamp < end]
    assert stored[2] in in_range
    assert stored[6] not in in_range
    assert query.events(since=start) == [e for e in stored if e.timestamp >= start]
    assert query.events(until=end) == [e for e in stored if e.timestamp < end]


def test_since_accepts_any_timezone_and_compares_the_instant(query: CollectorQuery) -> None:
    stored = query.events()
    shifted = stored[3].timestamp.astimezone(timezone(timedelta(hours=-7)))
    assert query.events(since=shifted) == [e for e in stored if e.timestamp >= stored[3].timestamp]


def test_newest_first_reverses_recording_order(query: CollectorQuery) -> None:
    assert query.events(newest_first=True) == list(reversed(query.events()))


@pytest.mark.parametrize(
    ("newest_first", "limit", "offset"),
    [
        (False, 2, 0),
        (False, 2, 2),
        (False, None, 7),
        (True, 3, 1),
        (True, 0, 0),
        (False, 5, 100),
    ],
)
def test_limit_and_offset_page_through_the_ordered_results(
    query: CollectorQuery, newest_first: bool, limit: int | None, offset: int
) -> None:
    ordered = query.events(newest_first=newest_first)
    stop = None if limit is None else offset + limit
    page = query.events(newest_first=newest_first, limit=limit, offset=offset)
    assert page == ordered[offset:stop]


def test_pages_apply_after_the_filters(query: CollectorQuery, traffic: Traffic) -> None:
    page = query.events(flag_key="new-checkout", newest_first=True, limit=2, offset=1)
    assert _positions(page, traffic) == [7, 6]


def test_a_flag_key_filter_reads_only_that_flags_records() -> None:
    collector = InMemoryAnalyticsCollector()
    base = datetime(2025, 1, 1, tzinfo=UTC)
    collector.record_batch(
        FlagEvaluationEvent(base + timedelta(seconds=i), f"flag-{i % 50}", i, "static")
        for i in range(5000)
    )
    seen: list[str] = []

    def spy(event: FlagEvaluationEvent) -> bool:
        seen.append(event.flag_key)
        return True

    result = collector.query.events(flag_key=["flag-3", "flag-7"], predicate=spy)
    assert len(result) == 200
    assert set(seen) == {"flag-3", "flag-7"}
    assert len(seen) == 200
    assert [e.value for e in result] == sorted(e.value for e in result)


def test_collector_query_is_created_once_and_reads_its_collector() -> None:
    collector = InMemoryAnalyticsCollector()
    assert collector.query is collector.query
    assert collector.query.collector is collector
    assert CollectorQuery(collector).collector is collector


def test_queries_see_records_stored_after_they_were_created(make_event: Any) -> None:
    collector = InMemoryAnalyticsCollector()
    query = collector.query
    assert query.events() == []
    event = make_event("late")
    collector.record(event)
    assert query.events(flag_key="late") == [event]
    assert query.count() == 1


def test_after_eviction_queries_describe_only_what_is_stored(make_event: Any) -> None:
    collector = InMemoryAnalyticsCollector(max_size=4)
    events = [make_event("a" if i % 2 else "b") for i in range(10)]
    collector.record_batch(events)
    assert collector.query.events() == events[-4:]
    assert collector.query.events(flag_key="a") == [e for e in events[-4:] if e.flag_key == "a"]
    assert collector.query.count(flag_key="b") == 2


@pytest.mark.parametrize(
    ("filters", "error", "message"),
    [
        ({"flag": "x"}, TypeError, "unknown filter argument"),
        ({"flag_key": 5}, TypeError, "flag_key"),
        ({"flag_key": ["a", 5]}, TypeError, "flag_key"),
        ({"variant": 1}, TypeError, "variant must be a str"),
        ({"reason": None}, TypeError, "reason must be a str"),
        ({"errors_only": "yes"}, TypeError, "errors_only must be a bool"),
        ({"trace_id": "xyz"}, ValueError, "trace_id"),
        ({"trace_id": 0}, ValueError, "trace_id"),
        ({"trace_id": 1.5}, TypeError, "trace_id"),
        ({"span_id": "4bf92f3577b34da6a3ce929d0e0e4736"}, ValueError, "span_id"),
        ({"since": datetime(2025, 1, 1)}, ValueError, "timezone-aware"),
        ({"until": "2025-01-01"}, TypeError, "until must be a datetime"),
        (
            {"since": datetime(2025, 1, 2, tzinfo=UTC), "until": datetime(2025, 1, 1, tzinfo=UTC)},
            ValueError,
            "is after until",
        ),
        ({"predicate": "e.value"}, TypeError, "predicate must be callable"),
    ],
)
def test_bad_filter_arguments_raise_a_clear_error(
    query: CollectorQuery, filters: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        query.events(**filters)
    with pytest.raises(error, match=message):
        query.count(**filters)


@pytest.mark.parametrize(
    ("paging", "error"),
    [
        ({"limit": -1}, ValueError),
        ({"limit": "3"}, TypeError),
        ({"offset": -2}, ValueError),
        ({"offset": None}, TypeError),
        ({"limit": True}, TypeError),
        ({"newest_first": "yes"}, TypeError),
        ({"newest_first": 1}, TypeError),
    ],
)
def test_bad_paging_arguments_raise(
    query: CollectorQuery, paging: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        query.events(**paging)


def test_query_rejects_what_is_not_a_collector() -> None:
    with pytest.raises(TypeError, match="InMemoryAnalyticsCollector"):
        CollectorQuery([])  # type: ignore[arg-type]


# -- the filters against a reference implementation -----------------------------------

_BASE = datetime(2025, 1, 1, tzinfo=UTC)
_FLAGS = ["a", "b", "c"]
_VALUES = st.one_of(
    st.booleans(),
    st.integers(-2, 2),
    st.sampled_from(["on", "off", "1", "true"]),
    st.none(),
    st.lists(st.integers(0, 2), max_size=2).map(tuple),
    st.dictionaries(st.sampled_from(["x", "y"]), st.integers(0, 1), max_size=2),
)
_EVENTS = st.lists(
    st.builds(
        lambda flag, seconds, value, variant, reason, error, user, trace: FlagEvaluationEvent(
            timestamp=_BASE + timedelta(seconds=seconds),
            flag_key=flag,
            value=value,
            reason=reason,
            variant=variant,
            targeting_key=user,
            error_type=error,
            trace_id=trace,
        ),
        st.sampled_from(_FLAGS),
        st.integers(0, 20),
        _VALUES,
        st.sampled_from([None, "on", "off"]),
        st.sampled_from(list(EvaluationReason)),
        st.sampled_from([None, None, "general"]),
        st.sampled_from([None, "u1", "u2"]),
        st.sampled_from([None, "1" * 32, "2" * 32]),
    ),
    max_size=40,
)
_FILTERS = st.fixed_dictionaries(
    {},
    optional={
        "flag_key": st.one_of(st.sampled_from(_FLAGS), st.sets(st.sampled_from(_FLAGS))),
        "variant": st.sampled_from(["on", "off"]),
        "value": _VALUES,
        "reason": st.sampled_from([r.value for r in EvaluationReason]),
        "error_type": st.just("general"),
        "errors_only": st.booleans(),
        "targeting_key": st.sampled_from(["u1", "u2"]),
        "trace_id": st.sampled_from(["1" * 32, "2" * 32]),
        "since": st.integers(0, 20).map(lambda s: _BASE + timedelta(seconds=s)),
        "until": st.integers(21, 30).map(lambda s: _BASE + timedelta(seconds=s)),
    },
)


def _reference(event: FlagEvaluationEvent, filters: dict[str, Any]) -> bool:
    checks: dict[str, Callable[[Any], bool]] = {
        "flag_key": lambda k: event.flag_key in ({k} if isinstance(k, str) else k),
        "variant": lambda v: event.variant == v,
        "value": lambda v: value_key(event.value) == value_key(v),
        "reason": lambda r: str(event.reason) == r,
        "error_type": lambda t: event.error_type == t,
        "errors_only": lambda on: not on or event.error_type is not None or event.reason == "error",
        "targeting_key": lambda k: event.targeting_key == k,
        "trace_id": lambda t: event.trace_id == t,
        "since": lambda t: event.timestamp >= t,
        "until": lambda t: event.timestamp < t,
    }
    return all(checks[name](wanted) for name, wanted in filters.items())


@settings(max_examples=150, deadline=None)
@given(events=_EVENTS, filters=_FILTERS)
def test_filters_agree_with_a_plain_scan(
    events: list[FlagEvaluationEvent], filters: dict[str, Any]
) -> None:
    collector = InMemoryAnalyticsCollector()
    collector.record_batch(events)
    expected = [e for e in events if _reference(e, filters)]
    assert collector.query.events(**filters) == expected
    assert collector.query.count(**filters) == len(expected)


@pytest.mark.asyncio
async def test_async_twins_answer_as_the_synchronous_methods(query: CollectorQuery) -> None:
    filters: dict[str, Any] = {"flag_key": "new-checkout", "variant": "off"}
    assert await query.events_async(newest_first=True, limit=2, **filters) == query.events(
        newest_first=True, limit=2, **filters
    )
    assert await query.count_async(**filters) == query.count(**filters) == 4
    assert await query.summary_async(**filters) == query.summary(**filters)
    assert await query.summaries_async() == query.summaries()
    assert await query.evaluations_per_trace_async(**filters) == query.evaluations_per_trace(
        **filters
    )
    width = timedelta(minutes=1)
    assert await query.time_buckets_async(width, **filters) == query.time_buckets(width, **filters)
    declared = ["new-checkout", "never-seen"]
    assert await query.inventory_async(declared) == query.inventory(declared)


# Plumbing that takes a built filter rather than the filter keywords: no twin needed.
_NO_TWIN = {"matching"}


def test_every_query_method_has_an_async_twin_with_the_same_parameters() -> None:
    public = {
        name: member
        for name, member in vars(CollectorQuery).items()
        if not name.startswith("_") and inspect.isfunction(member)
    }
    synchronous = {name for name in public if not name.endswith("_async")} - _NO_TWIN

    assert {f"{name}_async" for name in synchronous} == set(public) - synchronous - _NO_TWIN
    for name in synchronous:
        twin = public[f"{name}_async"]
        assert not inspect.iscoroutinefunction(public[name]), name
        assert inspect.iscoroutinefunction(twin), name
        assert inspect.signature(twin).parameters == inspect.signature(public[name]).parameters
