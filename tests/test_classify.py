"""One classifier, every way in: the same telemetry gives the same records and skip counts.

Each span (and log record) below, good or malformed, goes through the in-process
exporter, OTLP/protobuf and OTLP/JSON; the records (every field) and the skip counts
must be identical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry._logs import LogRecord
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags

from flagscope import FlagEvaluationLogExporter, FlagEvaluationSpanExporter
from flagscope._query.collector import InMemoryAnalyticsCollector
from flagscope._telemetry import semconv
from flagscope._telemetry.otlp import read_logs, read_traces
from otlp_payloads import emit_logs, logs_json, logs_protobuf, traces_json, traces_protobuf
from producers import START_NS, TRACE_ID, flag_event, readable_span

PARENT = SpanContext(TRACE_ID, 0x1111222233334444, is_remote=False, trace_flags=TraceFlags(1))
CURRENT = {
    semconv.RESULT_VALUE: '"#c05543"',
    semconv.RESULT_VARIANT: "red",
    semconv.RESULT_REASON: "static",
    semconv.PROVIDER_NAME: "In-Memory Provider",
    semconv.CONTEXT_ID: "user-1",
}
Outcome = tuple[list[dict[str, Any]], dict[str, int]]

SPANS: dict[str, list[ReadableSpan]] = {
    "span-event": [readable_span(events=[flag_event("a", CURRENT)], parent=PARENT)],
    "legacy-event-name": [
        readable_span(
            events=[
                flag_event(
                    "b",
                    {semconv.PROVIDER_NAME: "LaunchDarkly", semconv.RESULT_VALUE: '"42"'},
                    name=semconv.EVENT_NAME_LEGACY,
                )
            ]
        )
    ],
    "exception-only": [
        readable_span(events=[flag_event("c", CURRENT, name=semconv.EXCEPTION_EVENT_NAME)])
    ],
    "no-key": [readable_span(events=[flag_event(None, CURRENT)])],
    "int-key": [readable_span(events=[flag_event(7, CURRENT)])],
    "empty-key": [readable_span(events=[flag_event("", CURRENT)])],
    "evaluation-span": [
        readable_span(
            semconv.SPAN_NAME,
            attributes={semconv.KEY: "d", semconv.RESULT_VALUE: 5},
            parent=PARENT,
            start_time=START_NS,
            end_time=START_NS + 1_234_567,
        )
    ],
    "evaluation-span-without-key": [readable_span(semconv.SPAN_NAME, attributes={"x": 1})],
    "evaluation-span-with-int-key": [readable_span(semconv.SPAN_NAME, attributes={semconv.KEY: 3})],
    "evaluation-span-holding-an-event": [
        readable_span(semconv.SPAN_NAME, events=[flag_event("e", CURRENT)])
    ],
    "good-and-bad-events": [
        readable_span(events=[flag_event("f", CURRENT), flag_event(None), flag_event(9)]),
        readable_span(events=[flag_event("g")]),
    ],
    "no-flag-telemetry": [readable_span(events=[flag_event("h", name="cart.viewed")])],
}


def _outcome(records: Sequence[Any], skipped: Any) -> Outcome:
    return [record.to_dict() for record in records], dict(skipped)


def _in_process(spans: list[ReadableSpan]) -> Outcome:
    collector = InMemoryAnalyticsCollector()
    exporter = FlagEvaluationSpanExporter(collector)
    exporter.export(spans)
    return _outcome(collector.events(), exporter.stats.skipped_by_reason)


def _over(encode: Callable[[list[ReadableSpan]], bytes], encoding: Any) -> Callable[..., Outcome]:
    def way(spans: list[ReadableSpan]) -> Outcome:
        batch = read_traces(encode(spans), encoding)
        return _outcome(batch.events, batch.skipped_by_reason)

    return way


WAYS = {
    "otlp-protobuf": _over(traces_protobuf, "protobuf"),
    "otlp-json": _over(traces_json, "json"),
}


@pytest.mark.parametrize("way", sorted(WAYS))
@pytest.mark.parametrize("case", sorted(SPANS))
def test_a_span_gives_the_same_records_and_skips_by_every_way_in(case: str, way: str) -> None:
    assert WAYS[way](SPANS[case]) == _in_process(SPANS[case])


def test_the_cases_cover_records_and_every_span_skip_reason() -> None:
    skips: set[str] = set()
    recorded = 0
    for spans in SPANS.values():
        records, skipped = _in_process(spans)
        recorded += len(records)
        skips |= set(skipped)
    assert recorded >= 6
    assert skips == {"missing_flag_key", "invalid_flag_key"}


def test_an_evaluation_span_tells_its_duration_and_parent() -> None:
    (record,), _ = _in_process(SPANS["evaluation-span"])
    assert record["evaluation_duration_ms"] == pytest.approx(1.234567)
    assert record["parent_span_id"] == "1111222233334444"
    (event_record,), _ = _in_process(SPANS["span-event"])
    assert event_record["parent_span_id"] == "1111222233334444"
    assert event_record["evaluation_duration_ms"] is None


# -- log records ---------------------------------------------------------------------

LOGS: dict[str, list[LogRecord]] = {
    "event-name": [
        LogRecord(event_name=semconv.EVENT_NAME, attributes={semconv.KEY: "a", **CURRENT})
    ],
    "event-name-attribute": [
        LogRecord(
            attributes={semconv.LOG_EVENT_NAME_ATTRIBUTE: semconv.EVENT_NAME, semconv.KEY: "b"}
        )
    ],
    "no-attributes": [LogRecord(event_name=semconv.EVENT_NAME)],
    "int-key": [LogRecord(event_name=semconv.EVENT_NAME, attributes={semconv.KEY: 4})],
    "other-event": [LogRecord(event_name="session.start", attributes={semconv.KEY: "c"})],
    "body-value": [
        LogRecord(
            event_name=semconv.EVENT_NAME_LEGACY,
            attributes={semconv.KEY: "d"},
            body={"value": '{"a": [1]}'},
        )
    ],
    "map-value": [
        LogRecord(
            event_name=semconv.EVENT_NAME,
            attributes={semconv.KEY: "e", semconv.RESULT_VALUE: {"tiers": ["gold", 1.5]}},
        )
    ],
    "ordinary-log": [LogRecord(body="hello", attributes={"http.route": "/cart"})],
}


def _logs_in_process(records: list[Any]) -> Outcome:
    collector = InMemoryAnalyticsCollector()
    exporter = FlagEvaluationLogExporter(collector)
    exporter.export(records)
    return _outcome(collector.events(), exporter.stats.skipped_by_reason)


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
@pytest.mark.parametrize("case", sorted(LOGS))
def test_a_log_record_gives_the_same_records_and_skips_by_every_way_in(
    case: str, encoding: Any
) -> None:
    exported = emit_logs(LOGS[case])
    body = logs_protobuf(exported) if encoding == "protobuf" else logs_json(exported)
    batch = read_logs(body, encoding)
    assert _outcome(batch.events, batch.skipped_by_reason) == _logs_in_process(exported)


def test_the_log_cases_cover_records_and_skips() -> None:
    outcomes = [_logs_in_process(emit_logs(records)) for records in LOGS.values()]
    assert sum(len(records) for records, _ in outcomes) == 4
    assert {reason for _, skipped in outcomes for reason in skipped} == {
        "missing_flag_key",
        "invalid_flag_key",
    }


_ID_BYTES = [
    b"",
    bytes(16),
    bytes(8),
    bytes(range(1, 17)),
    bytes(range(1, 9)),
    bytes(range(1, 10)),
    b"\x00" * 15 + b"\x01",
    b"\x00" * 7 + b"\x01",
    b"\xff" * 16,
    b"\xff" * 8,
]


@pytest.mark.parametrize("parent", [None, *_ID_BYTES])
@pytest.mark.parametrize("span_id", _ID_BYTES)
@pytest.mark.parametrize("trace_id", _ID_BYTES)
def test_byte_ids_become_the_keys_trace_id_key_and_span_id_key_give(
    trace_id: bytes, span_id: bytes, parent: bytes | None
) -> None:
    # _id_keys reads OTLP's byte ids without calling the key functions: the same keys.
    from flagscope._store.records import span_id_key, trace_id_key
    from flagscope._telemetry.classify import _id_keys

    expected = (
        trace_id_key(trace_id),
        span_id_key(span_id),
        span_id_key(parent) if parent else None,
    )
    assert _id_keys(trace_id, span_id, parent) == expected


_TIMES = st.one_of(st.none(), st.integers(-5, 2**64), st.just(START_NS), st.floats(0, 1e19))


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=5),
    st.one_of(st.integers(-3, 5), st.sampled_from(["STATUS_CODE_ERROR", "x"]), st.none()),
    st.one_of(st.text(max_size=3), st.none(), st.integers(0, 2)),
    _TIMES,
    _TIMES,
    st.one_of(st.none(), st.integers(-1, 700), st.sampled_from(["503", "x", 404.0])),
)
def test_a_span_outcome_is_the_tuple_raw_outcome_gives(
    name: str, code: Any, message: Any, start: Any, end: Any, http: Any
) -> None:
    # _outcome builds the tuple itself when there is no HTTP status: raw_outcome's.
    from flagscope._store.outcomes import raw_outcome
    from flagscope._telemetry.otlp_batch import STATUS_CODES, _outcome

    attributes = {} if http is None else {semconv.HTTP_RESPONSE_STATUS_CODE: http}
    expected = raw_outcome(
        name,
        STATUS_CODES.get(code, 0) if type(code) in (int, str) else 0,
        message if type(message) is str else None,
        start if type(start) is int else None,
        end if type(end) is int else None,
        http,
    )
    assert _outcome(name, code, message, start, end, lambda: attributes) == expected
