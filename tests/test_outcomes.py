"""Outcomes recorded beside evaluations: every way in, joined later, in bounded memory."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from flagscope import (
    FlagEvaluationEvent,
    FlagEvaluationLogExporter,
    FlagEvaluationSpanExporter,
    InMemoryAnalyticsCollector,
)
from flagscope._store import outcomes as outcomes_module
from flagscope._store.outcomes import NO_OUTCOME, OutcomeStore, SpanOutcome, raw_outcome
from flagscope._store.records import span_key, trace_key
from flagscope._telemetry import semconv
from flagscope._telemetry.mapping import map_evaluation
from flagscope._telemetry.otlp import decode_traces, map_traces
from otlp_payloads import traces_json, traces_protobuf

EVALUATION = {
    "feature_flag.key": "new-checkout",
    "feature_flag.result.variant": "on",
    "feature_flag.result.reason": "split",
}
RESOURCE = Resource.create({semconv.SERVICE_NAME: "shop"})


@pytest.fixture
def collector() -> InMemoryAnalyticsCollector:
    return InMemoryAnalyticsCollector(max_size=1000)


@pytest.fixture
def tracer(collector: InMemoryAnalyticsCollector) -> Iterator[Any]:
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(FlagEvaluationSpanExporter(collector)))
    yield provider.get_tracer("app")
    provider.shutdown()


def request_outcome(
    collector: InMemoryAnalyticsCollector, record: FlagEvaluationEvent
) -> SpanOutcome | None:
    assert record.trace_id is not None
    key = (record.trace_id, record.service_name)
    return collector.outcomes.request_outcomes([key]).get(key)


def span_outcome(collector: InMemoryAnalyticsCollector, span_id: str | None) -> SpanOutcome | None:
    return collector.outcomes.span_outcomes([span_id]).get(span_id or "")


def failing_request(tracer: Any) -> None:
    """A SERVER request that answers 500, with the evaluation in a child span."""
    with tracer.start_as_current_span("GET /checkout", kind=SpanKind.SERVER) as root:
        with tracer.start_as_current_span("pricing") as child:
            child.add_event(semconv.EVENT_NAME, EVALUATION)
        root.set_attribute("http.response.status_code", 500)
        root.set_status(Status(StatusCode.ERROR, "payment declined"))


# -- the span exporter -----------------------------------------------------------------


def test_the_request_outcome_joins_an_evaluation_made_in_a_child_span(
    collector: InMemoryAnalyticsCollector, tracer: Any
) -> None:
    """The root ends after the evaluation's span; its outcome is still found."""
    failing_request(tracer)
    (record,) = collector.events()
    outcome = request_outcome(collector, record)
    assert outcome is not None
    assert (outcome.name, outcome.status, outcome.description) == (
        "GET /checkout",
        "error",
        "payment declined",
    )
    assert outcome.http_status_code == 500
    assert outcome.failed
    assert outcome.duration_ms is not None
    assert outcome.duration_ms >= 0


def test_the_span_outcome_is_the_span_the_evaluation_was_made_in(
    collector: InMemoryAnalyticsCollector, tracer: Any
) -> None:
    failing_request(tracer)
    (record,) = collector.events()
    outcome = span_outcome(collector, record.span_id)
    assert outcome is not None
    assert (outcome.name, outcome.status, outcome.failed) == ("pricing", "unset", False)


def test_an_evaluation_in_the_root_span_is_its_own_request(
    collector: InMemoryAnalyticsCollector, tracer: Any
) -> None:
    with tracer.start_as_current_span("GET /") as root:
        root.add_event(semconv.EVENT_NAME, EVALUATION)
        root.set_status(Status(StatusCode.OK))
    (record,) = collector.events()
    outcome = request_outcome(collector, record)
    assert outcome is not None
    assert (outcome.name, outcome.status) == ("GET /", "ok")


def test_a_span_whose_parent_is_remote_is_the_services_request(
    collector: InMemoryAnalyticsCollector, tracer: Any
) -> None:
    """The local root of a service called by another is the span with the remote parent."""
    remote = SpanContext(
        trace_id=0xABC, span_id=0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    with (
        trace.use_span(NonRecordingSpan(remote)),
        tracer.start_as_current_span("POST /charge", kind=SpanKind.SERVER),
        tracer.start_as_current_span("fraud-check") as child,
    ):
        child.add_event(semconv.EVENT_NAME, EVALUATION)
    (record,) = collector.events()
    outcome = request_outcome(collector, record)
    assert outcome is not None
    assert outcome.name == "POST /charge"


def test_the_older_http_status_code_attribute_and_text_codes_are_read(
    collector: InMemoryAnalyticsCollector, tracer: Any
) -> None:
    with tracer.start_as_current_span("GET /") as root:
        root.add_event(semconv.EVENT_NAME, EVALUATION)
        root.set_attribute("http.status_code", "503")
    (record,) = collector.events()
    outcome = request_outcome(collector, record)
    assert outcome is not None
    assert outcome.http_status_code == 503
    assert outcome.failed


@pytest.mark.parametrize(
    ("start", "end"),
    [(1.25, 2.5), (1, float("inf")), (float("-inf"), 5), ("1", "2"), (1, 2**1100)],
    ids=["floats", "infinite end", "infinite start", "text", "beyond any float"],
)
@pytest.mark.parametrize("flag_events", [1, 2], ids=["one event", "two events"])
def test_span_times_that_are_not_int_nanoseconds_give_unknown_durations(
    collector: InMemoryAnalyticsCollector,
    tracer: Any,
    start: Any,
    end: Any,
    flag_events: int,
) -> None:
    """The SDK keeps whatever times it is given; only int nanoseconds make a duration.

    Int times at or past 2**64 (beyond OTLP's fixed64) are no times either: a duration
    no float can hold would make every reading of the outcome raise.

    One flag event takes the exporter's lean path, two its general one; the root,
    without events, the local roots' path.
    """
    root = tracer.start_span("GET /", kind=SpanKind.SERVER, start_time=start)
    with trace.use_span(root, end_on_exit=False):
        child = tracer.start_span("step", start_time=start)
        for _ in range(flag_events):
            child.add_event(semconv.EVENT_NAME, EVALUATION)
        child.end(end_time=end)
    root.end(end_time=end)
    records = collector.events()
    assert len(records) == flag_events
    for record in records:
        request = request_outcome(collector, record)
        span = span_outcome(collector, record.span_id)
        assert request is not None
        assert span is not None
        assert (request.name, request.duration_ms, span.duration_ms) == ("GET /", None, None)
    (variant,) = collector.query.impact("new-checkout").variants
    assert (variant.requests, variant.duration_p50_ms) == (1, None)


def test_spans_without_flags_cost_no_outcome_when_nothing_waits(
    collector: InMemoryAnalyticsCollector, tracer: Any
) -> None:
    for _ in range(5):
        with tracer.start_as_current_span("GET /health"):
            pass
    assert len(collector.outcomes) == 0


def test_a_batch_span_processor_joins_requests_exported_with_their_evaluations() -> None:
    """The root ends after the child, in the same batch: its outcome still joins."""
    collector = InMemoryAnalyticsCollector(max_size=100)
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(BatchSpanProcessor(FlagEvaluationSpanExporter(collector)))
    tracer = provider.get_tracer("app")
    for _ in range(3):
        failing_request(tracer)
    provider.force_flush()
    records = collector.events()
    assert len(records) == 3
    for record in records:
        outcome = request_outcome(collector, record)
        assert outcome is not None
        assert (outcome.name, outcome.status, outcome.http_status_code) == (
            "GET /checkout",
            "error",
            500,
        )
        child = span_outcome(collector, record.span_id)
        assert child is not None
        assert child.name == "pricing"
    provider.shutdown()


def _evaluation_span_in_failing_handler(tracer: Any) -> None:
    """A request whose handler makes an evaluation as its own span, then fails."""
    with (
        tracer.start_as_current_span("GET /", kind=SpanKind.SERVER),
        tracer.start_as_current_span("handler") as handler,
    ):
        evaluation = tracer.start_span(semconv.SPAN_NAME)
        for key, value in EVALUATION.items():
            evaluation.set_attribute(key, value)
        evaluation.end()
        handler.set_status(Status(StatusCode.ERROR, "render failed"))


def test_a_batch_joins_an_evaluation_span_to_the_span_it_was_made_in() -> None:
    """An evaluation made as its own span, exported in one batch with its parent."""
    collector = InMemoryAnalyticsCollector(max_size=100)
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(BatchSpanProcessor(FlagEvaluationSpanExporter(collector)))
    _evaluation_span_in_failing_handler(provider.get_tracer("app"))
    provider.force_flush()
    (record,) = collector.events()
    outcome = span_outcome(collector, record.parent_span_id)
    assert outcome is not None
    assert (outcome.name, outcome.status) == ("handler", "error")
    request = request_outcome(collector, record)
    assert request is not None
    assert request.name == "GET /"
    provider.shutdown()


# -- the log exporter --------------------------------------------------------------------


def test_log_based_evaluations_are_joined_to_their_span_and_request(
    collector: InMemoryAnalyticsCollector, tracer: Any
) -> None:
    """A log record carries the span's ids; the span exporter brings the outcomes."""
    logger_provider = LoggerProvider(resource=RESOURCE)
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(FlagEvaluationLogExporter(collector))
    )
    logger = logger_provider.get_logger("app")
    with tracer.start_as_current_span("GET /cart", kind=SpanKind.SERVER) as root:
        with tracer.start_as_current_span("render"):
            logger.emit(event_name=semconv.EVENT_NAME, attributes=EVALUATION)
        root.set_status(Status(StatusCode.ERROR, "timeout"))
    (record,) = collector.events()
    request = request_outcome(collector, record)
    span = span_outcome(collector, record.span_id)
    assert request is not None
    assert (request.name, request.status) == ("GET /cart", "error")
    assert span is not None
    assert span.name == "render"
    logger_provider.shutdown()


# -- OTLP ----------------------------------------------------------------------------------


def _recorded(
    encoding: str, spans: list[ReadableSpan], collector: InMemoryAnalyticsCollector
) -> None:
    body = traces_protobuf(spans) if encoding == "protobuf" else traces_json(spans)
    batch = map_traces(decode_traces(body, encoding))  # type: ignore[arg-type]
    collector.record_batch(list(batch.events))
    collector.record_outcomes(batch.outcomes)


def _finished_spans(work: Any) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    work(provider.get_tracer("app"))
    provider.shutdown()
    return list(memory.get_finished_spans())


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
@pytest.mark.parametrize("root_first", [False, True], ids=["root-last", "root-first"])
def test_otlp_joins_outcomes_when_a_traces_spans_arrive_in_separate_requests(
    collector: InMemoryAnalyticsCollector, encoding: str, root_first: bool
) -> None:
    spans = _finished_spans(failing_request)
    child = [span for span in spans if span.name == "pricing"]
    root = [span for span in spans if span.name == "GET /checkout"]
    for part in (root, child) if root_first else (child, root):
        _recorded(encoding, part, collector)
    (record,) = collector.events()
    outcome = request_outcome(collector, record)
    assert outcome is not None
    assert (outcome.name, outcome.status, outcome.http_status_code) == (
        "GET /checkout",
        "error",
        500,
    )
    assert span_outcome(collector, record.span_id) is not None


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"http.response.status_code": 502, "http.route": "/"}, 502),
        ({"http.status_code": 503, "http.method": "GET"}, 503),
        ({"http.status_code": 500, "http.response.status_code": 404}, 404),
        ({"http.route": "/"}, None),
    ],
    ids=["current", "older", "current-wins", "none"],
)
def test_otlp_requests_read_the_http_status_under_either_key(
    collector: InMemoryAnalyticsCollector,
    encoding: str,
    attributes: dict[str, Any],
    expected: int | None,
) -> None:
    def work(tracer: Any) -> None:
        with tracer.start_as_current_span("GET /", kind=SpanKind.SERVER) as root:
            root.add_event(semconv.EVENT_NAME, EVALUATION)
            for key, value in attributes.items():
                root.set_attribute(key, value)

    _recorded(encoding, _finished_spans(work), collector)
    (record,) = collector.events()
    outcome = request_outcome(collector, record)
    assert outcome is not None
    assert outcome.http_status_code == expected


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_a_js_style_evaluation_span_is_judged_by_the_span_it_was_made_in(
    collector: InMemoryAnalyticsCollector, encoding: str
) -> None:
    """The SpanHook's span is a child of the span evaluated in: that span is the outcome."""

    spans = _finished_spans(_evaluation_span_in_failing_handler)
    _recorded(encoding, spans, collector)
    (record,) = collector.events()
    assert record.parent_span_id is not None
    outcome = span_outcome(collector, record.parent_span_id)
    assert outcome is not None
    assert (outcome.name, outcome.status) == ("handler", "error")
    assert request_outcome(collector, record) is not None


# -- the bulk read behind impact ----------------------------------------------------------------

_START = 1_700_000_000_000_000_000


def _evaluation(
    trace: int,
    variant: str | None,
    *,
    service: str | None = "shop",
    reason: str = "split",
    span: int | None = None,
    parent: int | None = None,
    evaluation_ms: float | None = None,
) -> FlagEvaluationEvent:
    return FlagEvaluationEvent(
        timestamp=datetime.now(UTC),
        flag_key="new-checkout",
        value=variant != "off" if variant is not None else "by-value",
        reason=reason,
        variant=variant,
        trace_id=f"{trace:032x}",
        span_id=f"{span if span is not None else trace:016x}",
        parent_span_id=f"{parent:016x}" if parent is not None else None,
        evaluation_duration_ms=evaluation_ms,
        service_name=service,
    )


def _outcome(
    event: FlagEvaluationEvent, *, failed: bool = False, duration: int | None = 1000
) -> tuple[Any, ...]:
    end = _START + duration if duration is not None else None
    raw = raw_outcome("GET /", 2 if failed else 1, None, _START, end, 200)
    return (trace_key(event), span_key(event), event.service_name, None, True, 1, raw)


def _label(event: FlagEvaluationEvent) -> str:
    return f"value:{event.value}"


def test_figures_count_each_request_once_per_label_with_its_reasons_and_failures() -> None:
    collector = InMemoryAnalyticsCollector(max_size=100)
    events = [
        _evaluation(1, "on"),
        _evaluation(1, "on", reason="default"),  # the same request again: counted once
        _evaluation(1, "off"),  # and once for the other variant it saw
        _evaluation(2, "on"),
        _evaluation(3, "off", service="billing"),  # the same trace id in another service
        _evaluation(4, "on"),  # no outcome known
    ]
    collector.record_batch(events)
    collector.record_outcomes(
        [
            _outcome(events[0], failed=True, duration=2000),
            _outcome(events[3], duration=None),
            _outcome(events[4], duration=3000),
        ]
    )
    found = collector.outcomes.figures("request", events, _label)
    on, off = found["on"], found["off"]
    assert (on.evaluations, on.requests, on.errors) == (4, 2, 1)
    assert on.reasons == {"split": 3, "default": 1}
    assert sorted(on.durations) == [-1, 2000]  # -1: times not known
    assert (off.evaluations, off.requests, off.errors, sorted(off.durations)) == (
        2,
        2,
        1,
        [2000, 3000],
    )


def test_figures_label_evaluations_sent_without_a_variant_by_the_callback() -> None:
    collector = InMemoryAnalyticsCollector(max_size=100)
    events = [_evaluation(1, "on"), _evaluation(2, None), _evaluation(3, None)]
    collector.record_batch(events)
    collector.record_outcomes([_outcome(event) for event in events])
    found = collector.outcomes.figures("request", events, _label)
    assert {label: item.requests for label, item in found.items()} == {
        "on": 1,
        "value:by-value": 2,
    }


def test_figures_of_spans_judge_an_evaluation_span_by_the_span_it_was_made_in() -> None:
    collector = InMemoryAnalyticsCollector(max_size=100)
    handler = _evaluation(1, "on", span=10)
    own_span = _evaluation(2, "on", span=20, parent=10, evaluation_ms=0.5)
    collector.record_batch([handler, own_span])
    collector.record_outcomes([_outcome(handler, failed=True)])
    found = collector.outcomes.figures("span", [handler, own_span], _label)
    assert (found["on"].evaluations, found["on"].requests, found["on"].errors) == (2, 1, 1)


@pytest.mark.parametrize("failing", [1, 30])
def test_figures_count_failures_alike_however_many_there_are(failing: int) -> None:
    """Few failures are found by one scan of the store; many, row by row."""
    collector = InMemoryAnalyticsCollector(max_size=200)
    events = [_evaluation(trace, "on" if trace % 2 else "off") for trace in range(1, 101)]
    collector.record_batch(events)
    collector.record_outcomes(
        [_outcome(event, failed=index < failing) for index, event in enumerate(events)]
    )
    found = collector.outcomes.figures("request", events, _label)
    expected = {
        label: sum(
            1 for index, event in enumerate(events) if index < failing and event.variant == label
        )
        for label in ("on", "off")
    }
    assert {label: item.errors for label, item in found.items()} == expected


# -- bounds ------------------------------------------------------------------------------------


def test_evaluations_waiting_for_a_request_that_never_ends_hold_at_most_max_size_entries() -> None:
    collector = InMemoryAnalyticsCollector(max_size=10)
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(FlagEvaluationSpanExporter(collector)))
    tracer = provider.get_tracer("app")
    for _ in range(100):
        root = tracer.start_span("GET /never-ends")  # never ended: never exported
        with (
            trace.use_span(root, end_on_exit=False),
            tracer.start_as_current_span("child") as child,
        ):
            child.add_event(semconv.EVENT_NAME, EVALUATION)
    assert len(collector.outcomes.want_requests) <= collector.outcomes.limit
    assert len(collector.outcomes) <= 2 * collector.outcomes.limit


def test_outcomes_go_with_the_evaluations_they_explain() -> None:
    """Once a request's evaluations are evicted, its outcome is dropped at the next write."""
    collector = InMemoryAnalyticsCollector(max_size=4)
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(FlagEvaluationSpanExporter(collector)))
    tracer = provider.get_tracer("app")
    failing_request(tracer)
    (first,) = collector.events()
    for _ in range(8):
        failing_request(tracer)
    assert request_outcome(collector, first) is None
    assert len(collector.outcomes) <= 2 * collector.outcomes.limit


def test_clear_forgets_the_outcomes(collector: InMemoryAnalyticsCollector, tracer: Any) -> None:
    failing_request(tracer)
    collector.clear()
    assert len(collector.outcomes) == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.integers(0, 3), st.booleans()),
        max_size=200,
    ),
    st.integers(1, 8),
)
def test_the_store_never_holds_more_than_its_capacity_per_table(
    operations: list[tuple[int, int, bool]], capacity: int
) -> None:
    """Whatever arrives, in whatever order, each table stays within capacity."""
    store = OutcomeStore(capacity)
    raw = raw_outcome("span", 2, "x", 1, 2, 500)
    for seq, (trace_number, kind, is_root) in enumerate(operations, 1):
        trace_id = f"{trace_number:032x}"
        span_id = f"{trace_number + 1:016x}"
        store.add(
            [
                (
                    trace_id,
                    span_id,
                    "shop",
                    span_id,
                    is_root,
                    kind,
                    raw if kind in (0, 1) else NO_OUTCOME,
                )
            ],
            seq,
            max(0, seq - 50),
        )
        assert len(store.want_spans) <= store.limit
        assert len(store.want_requests) <= store.limit
        assert len(store) <= 2 * store.limit


def _assert_outcomes_named(
    collector: InMemoryAnalyticsCollector, expected: dict[str, tuple[str, str | None]]
) -> None:
    """Each stored record's span outcome, and its request's (or none), have the names
    ``expected`` gives by span id."""
    for record in collector.events():
        span_name, wanted_root = expected[record.span_id or ""]
        found = span_outcome(collector, record.span_id)
        assert found is not None
        assert found.name == span_name
        request = request_outcome(collector, record)
        assert (request.name if request is not None else None) == wanted_root


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 12),
    st.lists(st.tuples(st.booleans(), st.integers(-1, 3), st.booleans()), max_size=120),
)
def test_every_stored_evaluation_finds_the_outcomes_that_arrived(
    max_size: int, requests: list[tuple[bool, int, bool]]
) -> None:
    """A model of the join: whatever the order, a stored evaluation's outcomes are found.

    Each request evaluates a flag in its root or in a child span; its root's outcome
    arrives before the evaluation (``delay`` -1), with it, after it (``delay``
    requests later), or never.
    """
    collector = InMemoryAnalyticsCollector(max_size=max_size)
    expected: dict[str, tuple[str, str | None]] = {}  # span id -> (span name, request name)
    late: list[tuple[int, list[Any]]] = []
    for number, (in_root, delay, root_ends) in enumerate(requests, 1):
        trace_id, span_id, root_id = number, 2 * number, 2 * number + 1
        record = map_evaluation(
            EVALUATION, timestamp_ns=number, trace_id=trace_id, span_id=span_id, service_name="shop"
        )
        assert isinstance(record, FlagEvaluationEvent)
        span_name = f"span {number}"
        root_name = f"GET /{number}"
        item = (
            trace_id,
            span_id,
            "shop",
            None,
            in_root,
            1,
            raw_outcome(span_name, 1, None, 1, 2, 200),
        )
        root = (trace_id, root_id, "shop", None, True, 0, raw_outcome(root_name, 2, "x", 1, 3, 500))
        if not in_root and root_ends and delay < 0:
            collector.record_outcomes([root])
        collector.record_with_outcomes([record], [item])
        if in_root:
            expected[record.span_id or ""] = (span_name, span_name)
            continue
        expected[record.span_id or ""] = (span_name, root_name if root_ends else None)
        if root_ends and delay >= 0:
            late.append((number + delay, [root]))
        for _, items in [entry for entry in late if entry[0] <= number]:
            collector.record_outcomes(items)
        late = [entry for entry in late if entry[0] > number]
    for _, items in late:
        collector.record_outcomes(items)
    _assert_outcomes_named(collector, expected)
    assert len(collector.outcomes) <= 2 * collector.outcomes.limit


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 6),
    st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans()), max_size=80),
)
def test_the_one_span_entries_join_whenever_a_reader_looks(
    max_size: int, requests: list[tuple[bool, bool, bool]]
) -> None:
    """The span exporter's one-span entries (``record_span``, ``record_request``), read
    between any two writes: outcomes written but not yet read into the columns, and
    rows read and then taken again, give each stored evaluation its own outcomes.
    """
    collector = InMemoryAnalyticsCollector(max_size=max_size)
    expected: dict[str, tuple[str, str | None]] = {}

    for number, (in_root, root_ends, read_now) in enumerate(requests, 1):
        trace_id, span_id = number, 2 * number
        record = map_evaluation(
            EVALUATION, timestamp_ns=number, trace_id=trace_id, span_id=span_id, service_name="shop"
        )
        assert isinstance(record, FlagEvaluationEvent)
        span_name = f"span {number}"
        collector.record_span(
            record, trace_id, span_id, "shop", in_root, raw_outcome(span_name, 1, None, 1, 2, 200)
        )
        if in_root:
            expected[record.span_id or ""] = (span_name, span_name)
        else:
            root_name = f"GET /{number}"
            expected[record.span_id or ""] = (span_name, None)
            if read_now:
                # The evaluation is stored, its request not yet ended.
                _assert_outcomes_named(collector, expected)
            expected[record.span_id or ""] = (span_name, root_name if root_ends else None)
            if root_ends:
                collector.record_request(
                    trace_id, "shop", raw_outcome(root_name, 2, "x", 1, 3, 500)
                )
        if read_now:
            _assert_outcomes_named(collector, expected)
    _assert_outcomes_named(collector, expected)
    assert len(collector.outcomes) <= 2 * collector.outcomes.limit


@pytest.mark.parametrize("way_in", ["record_request", "record_outcomes"])
def test_roots_nobody_wants_bring_on_the_trim_on_either_way_in(way_in: str) -> None:
    """Wants whose evaluations were evicted go at the next trim, which a root nobody
    wants brings once the collector took a ring of seqs since the last one (else every
    ``max_size // 2 + 1`` such roots), whether the span exporter hands it over alone
    (``record_request``) or in a batch (``record_outcomes``)."""
    collector = InMemoryAnalyticsCollector(max_size=8)
    for number in (1, 2):
        record = map_evaluation(
            EVALUATION, timestamp_ns=number, trace_id=number, span_id=number, service_name="shop"
        )
        assert isinstance(record, FlagEvaluationEvent)
        collector.record_span(
            record, number, number, "shop", False, raw_outcome("child", 1, None, 1, 2, 200)
        )
    # Both evaluations evicted; their requests never ended.
    collector.record_batch(
        [map_evaluation(EVALUATION, timestamp_ns=3, service_name="shop") for _ in range(8)]  # type: ignore[misc]
    )
    wants = collector.outcomes.want_requests
    assert set(wants) == {(1, "shop"), (2, "shop")}
    # The batch took the ring's other eight seqs, and writing records trims nothing:
    # the first root brings the trim.
    left = []
    for number in range(10, 13):
        outcome = raw_outcome("GET /", 1, None, 1, 3, 200)
        if way_in == "record_request":
            collector.record_request(number, "shop", outcome)
        else:
            collector.record_outcomes([(number, number, "shop", None, True, 0, outcome)])
        left.append(len(wants))

    assert left == [0, 0, 0]


def test_record_span_drops_the_wants_of_evicted_evaluations_once_a_ring() -> None:
    """Requests that never end: ``record_span`` drops the wants of evicted evaluations
    once a ring of seqs, whatever else wrote some of them."""
    max_size = 8
    collector = InMemoryAnalyticsCollector(max_size=max_size)
    wants = collector.outcomes.want_requests
    stale = []
    for number in range(1, 80):
        record = map_evaluation(
            EVALUATION, timestamp_ns=number, trace_id=number, span_id=number, service_name="shop"
        )
        assert isinstance(record, FlagEvaluationEvent)
        collector.record_span(
            record, number, number, "shop", False, raw_outcome("child", 1, None, 1, 2, 200)
        )
        if number % 3 == 0:
            # A batch write between: its seqs are no span's.
            collector.record_batch([map_evaluation(EVALUATION, timestamp_ns=number)])  # type: ignore[list-item]
        stale.append(sum(seq < collector._first_seq for seq in wants.values()))
    assert max(stale) <= max_size
    assert 0 in stale[max_size:]  # trimmed, not only capped
    assert len(wants) <= 2 * max_size


@pytest.mark.parametrize(
    ("max_size", "requests", "batch_size"),
    [(2, 5, 7), (100, 1000, 33), (1000, 1500, 512)],
)
def test_a_batch_processor_keeps_the_outcomes_of_every_stored_evaluation(
    max_size: int, requests: int, batch_size: int
) -> None:
    """Each span's outcome lasts as long as its own evaluations, not its batch's newest.

    Kept as long as the batch's newest, the rows of a batch's older evaluations
    outlived them once evicted and took the ring's room from rows still needed: a
    collector of 1,000 lost the request outcomes of 78 of its evaluations.
    """
    collector = InMemoryAnalyticsCollector(max_size=max_size)
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(
        BatchSpanProcessor(
            FlagEvaluationSpanExporter(collector),
            max_queue_size=requests * 2,
            max_export_batch_size=batch_size,
        )
    )
    tracer = provider.get_tracer("app")
    for _ in range(requests):
        with (
            tracer.start_as_current_span("GET /", kind=SpanKind.SERVER),
            tracer.start_as_current_span("step") as step,
        ):
            step.add_event(semconv.EVENT_NAME, EVALUATION)
    provider.force_flush()
    provider.shutdown()
    records = collector.events()
    assert len(records) == max_size
    assert all(request_outcome(collector, record) is not None for record in records)
    assert len(collector.outcomes.span_outcomes([record.span_id for record in records])) == max_size
    (variant,) = collector.query.impact("new-checkout").variants
    assert variant.requests == max_size


@pytest.mark.parametrize("in_one_batch", [False, True])
def test_an_outcome_the_columns_cannot_hold_never_fails_a_reader(in_one_batch: bool) -> None:
    """A way in's malformed outcome is read as what ``raw_outcome`` makes of it.

    Alone, the row keeps it until read; in a batch of roots, the columns take it at once.
    """
    store = OutcomeStore(4)
    bad: Any = ("span", 300, None, "long", None)
    huge: Any = ("huge", 1, None, 2**1100, 200)
    items: list[Any] = [
        (1, 2, "shop", None, True, 1, bad),
        (3, 4, "shop", None, True, 1, ("ok", 1, None, 5, 200)),
        (5, 6, "shop", None, True, 1, huge),
    ]
    if in_one_batch:
        store.add(items, 2, 0)
        assert store._raws[:3] == [None, None, None]  # written straight into the columns
    else:
        for seq, item in enumerate(items):
            store.add([item], seq, 0)
    found = store.span_outcomes([2, 4, 6])
    assert found[2] == SpanOutcome("span", "unset", None, None, None)
    assert found[4] == SpanOutcome("ok", "ok", None, 5 / 1e6, 200)
    assert found[6] == SpanOutcome("huge", "ok", None, None, 200)


def test_the_store_checks_its_capacity() -> None:
    with pytest.raises(TypeError, match="capacity"):
        OutcomeStore("10")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="capacity"):
        OutcomeStore(0)


def test_a_store_without_a_collector_takes_no_request_on_its_own() -> None:
    """``add_request`` reads the collector's oldest seq: without one, it refuses."""
    with pytest.raises(TypeError, match="records"):
        OutcomeStore(4).add_request(1, "shop", ("GET /", 1, None, 5, 200))


def test_the_outcome_store_imports_nothing_from_the_query_layer_or_above() -> None:
    """DESIGN.md section 2: telemetry in, then store, then query, then views."""
    tree = ast.parse(Path(outcomes_module.__file__).read_text())
    imported = {
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    above = {
        "flagscope._query.query",
        "flagscope._query.filters",
        "flagscope._query.aggregates",
        "flagscope._query.waiting",
        "flagscope._query.rollup",
        "flagscope._query.export",
        "flagscope._query.impact",
        "flagscope._query.significance",
        "flagscope._query.collector",
    }
    assert not imported & above, imported & above
    assert not any(name.startswith(("flagscope.server", "flagscope.testing")) for name in imported)


_OUTCOME_COLUMNS = ("_raws", "_names", "_codes", "_descriptions", "_durations", "_https")


def _state(store: OutcomeStore) -> dict[str, Any]:
    """The store's state, each row's outcome as a reader gets it.

    A row keeps its way in's tuple until read, or has its columns written at once (a
    batch of roots): either way, the same outcome.
    """
    state = {
        k: v for k, v in vars(store).items() if k not in ("_lock", "_add_roots", *_OUTCOME_COLUMNS)
    }
    columns = zip(
        store._names, store._codes, store._descriptions, store._durations, store._https, strict=True
    )
    state["outcomes"] = [
        raw if raw is not None else row for raw, row in zip(store._raws, columns, strict=True)
    ]
    return state


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.lists(
                st.tuples(st.integers(0, 40), st.sampled_from([1, 0, 2]), st.booleans()),
                max_size=12,
            ),
        ),
        max_size=25,
    ),
    st.integers(1, 10),
    st.integers(0, 3),
)
def test_a_batch_of_root_spans_is_kept_as_its_spans_one_by_one(
    batches: list[tuple[bool, list[tuple[int, int, bool]]]], capacity: int, look_every: int
) -> None:
    """Column by column or row by row, the store ends up the same, lookups between."""
    by_column, by_row = OutcomeStore(capacity), OutcomeStore(capacity)
    by_row._add_roots = lambda *_: False  # type: ignore[method-assign]
    seq = 0
    for number, (roots_only, batch) in enumerate(batches):
        items: list[Any] = []
        for trace_number, drawn_kind, drawn_root in batch:
            kind, is_root = (1, True) if roots_only else (drawn_kind, drawn_root)
            seq += 1
            raw = raw_outcome(f"span {seq}", 2 if seq % 3 else 1, None, 1, 2 + seq, 200)
            items.append((trace_number, 1000 + seq, "shop", trace_number, is_root, kind, raw))
        for store in (by_column, by_row):
            store.add(items, seq, max(0, seq - 3 * capacity))
            if look_every and number % look_every == 0:
                store.span_outcomes(range(1000, 1000 + seq + 1))
                store.request_outcomes((trace, "shop") for trace in range(41))
        assert _state(by_column) == _state(by_row)


def _record_for(number: int, service: str = "shop") -> FlagEvaluationEvent:
    record = map_evaluation(
        EVALUATION,
        timestamp_ns=number,
        trace_id=1000 + number,
        span_id=number,
        service_name=service,
    )
    assert isinstance(record, FlagEvaluationEvent)
    return record


def _outcomes_by_span(collector: InMemoryAnalyticsCollector) -> dict[str, tuple[Any, Any]]:
    """Each stored record's span outcome name and request outcome name, by span id."""
    found: dict[str, tuple[Any, Any]] = {}
    for record in collector.events():
        span = span_outcome(collector, record.span_id)
        request = request_outcome(collector, record)
        found[record.span_id or ""] = (
            span.name if span is not None else None,
            request.name if request is not None else None,
        )
    return found


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 8),
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 40)), max_size=80),
)
def test_held_outcomes_join_as_outcomes_written_at_once_would(
    max_size: int, steps: list[tuple[int, int]]
) -> None:
    """``record_span`` holds each outcome in its record's slot until someone reads, or a
    write of another kind comes: whatever comes between, the joins at the end are
    those of a collector read after every step, which writes each outcome at once.

    Steps: a local root with an evaluation (0), a child span with one (1), a later
    evaluation in an earlier trace (2), an earlier trace's root ending without one
    (3), a record through ``record_batch`` (4), a root through ``record_with_outcomes``
    (5); ``pick`` chooses the earlier trace.
    """
    read_each, read_last = (InMemoryAnalyticsCollector(max_size=max_size) for _ in range(2))
    traces: list[int] = []
    trace_of: dict[str, int] = {}  # span id -> its trace's number
    roots: set[int] = set()  # traces whose root came with an evaluation
    root_names: dict[int, str] = {}  # trace -> the name of its root's outcome
    for number, (kind, pick) in enumerate(steps, 1):
        earlier = traces[pick % len(traces)] if traces else None
        if kind == 3:
            # A request's root ends without an evaluation: one whose root had none.
            children = [trace for trace in traces if trace not in roots]
            earlier = children[pick % len(children)] if children else None
        for collector in (read_each, read_last):
            outcome = raw_outcome(f"span {number}", 1, None, 1, 2, 200 + number)
            record = _record_for(number)
            if kind in (0, 1):
                collector.record_span(record, 1000 + number, number, "shop", kind == 0, outcome)
            elif kind == 2 and earlier is not None:
                late = map_evaluation(
                    EVALUATION,
                    timestamp_ns=number,
                    trace_id=1000 + earlier,
                    span_id=number,
                    service_name="shop",
                )
                assert isinstance(late, FlagEvaluationEvent)
                collector.record_span(late, 1000 + earlier, number, "shop", False, outcome)
            elif kind == 3 and earlier is not None:
                collector.record_request(
                    1000 + earlier, "shop", raw_outcome(f"GET /{earlier}", 2, "x", 1, 3, 500)
                )
            elif kind == 4:
                collector.record_batch([_record_for(number, "other")])
            elif kind == 5:
                collector.record_with_outcomes(
                    [record], [(1000 + number, number, "shop", None, True, 1, outcome)]
                )
            if collector is read_each:
                _outcomes_by_span(collector)
        if kind in (0, 1, 5):
            traces.append(number)
            trace_of[_record_for(number).span_id or ""] = number
        elif kind == 2 and earlier is not None:
            trace_of[_record_for(number).span_id or ""] = earlier
        if kind in (0, 5):
            roots.add(number)
            root_names[number] = f"span {number}"
        elif kind == 3 and earlier is not None:
            root_names[earlier] = f"GET /{earlier}"
    found, at_once = _outcomes_by_span(read_last), _outcomes_by_span(read_each)
    assert found.keys() == at_once.keys()
    for span_id, (span_name, request_name) in found.items():
        assert span_name == at_once[span_id][0]
        trace = trace_of.get(span_id)
        # Never another request's outcome.
        assert {request_name, at_once[span_id][1]} <= {None, root_names.get(trace or 0)}
        if all(other in found for other, its in trace_of.items() if its == trace):
            # Every evaluation of the request is stored: the same join. (Past an
            # eviction, a row written at once may outlive its evaluations a while, or
            # be reused sooner: either may still find the request.)
            assert request_name == at_once[span_id][1]
    assert len(read_last.outcomes) <= 2 * read_last.outcomes.limit


def test_a_request_held_with_its_evaluation_explains_one_exported_after_it() -> None:
    """A root's outcome held in its record's slot is kept in a row when that record is
    evicted while a later evaluation of the same request, still stored, wants it."""
    collector = InMemoryAnalyticsCollector(max_size=3)
    root = _record_for(1)
    collector.record_span(root, 1001, 1, "shop", True, raw_outcome("GET /", 2, "x", 1, 3, 500))
    late = map_evaluation(EVALUATION, timestamp_ns=2, trace_id=1001, span_id=2, service_name="shop")
    assert isinstance(late, FlagEvaluationEvent)
    collector.record_span(late, 1001, 2, "shop", False, raw_outcome("job", 1, None, 1, 2, 0))
    for number in (3, 4):  # the root's record is evicted by the second
        collector.record_span(
            _record_for(number),
            1000 + number,
            number,
            "shop",
            True,
            raw_outcome(f"span {number}", 1, None, 1, 2, 0),
        )
    assert [record.span_id for record in collector.events()] == [
        late.span_id,
        _record_for(3).span_id,
        _record_for(4).span_id,
    ]
    found = request_outcome(collector, late)
    assert found is not None
    assert (found.name, found.failed) == ("GET /", True)


def test_the_outcome_store_has_no_more_attributes_than_an_instance_shares_keys_for() -> None:
    # CPython keeps at most 30 attributes of an instance in its class's shared keys; past
    # that the instance gets a dict of its own, and every attribute read on the span
    # exporter's per-span path costs more (docs/performance.md). A new attribute then
    # belongs in an existing one, or in the collector.
    store = InMemoryAnalyticsCollector(max_size=10).outcomes
    assert len(vars(store)) <= 30


def _numbered(number: int) -> FlagEvaluationEvent:
    """An evaluation of service ``shop`` whose trace id, span id and timestamp are ``number``."""
    record = map_evaluation(
        EVALUATION, timestamp_ns=number, trace_id=number, span_id=number, service_name="shop"
    )
    assert isinstance(record, FlagEvaluationEvent)
    return record


@pytest.mark.parametrize("max_size", [2, 10, 64])
def test_wants_stay_within_twice_max_size_when_batches_come_between_spans(max_size: int) -> None:
    """Spans whose requests never end, with batches of evaluation-span items too small to
    bring a counted trim between them: the ring of seqs brings it."""
    collector = InMemoryAnalyticsCollector(max_size=max_size)
    outcomes = collector.outcomes
    number = 0
    worst = 0
    for _ in range(30):
        for _ in range(max_size - 1):
            number += 1
            collector.record_span(
                _numbered(number),
                number,
                number,
                "shop",
                False,
                raw_outcome("child", 1, None, 1, 2, 200),
            )
            worst = max(worst, len(outcomes.want_requests))
        events: list[FlagEvaluationEvent] = []
        items: list[Any] = []
        for _ in range(max_size // 2):
            number += 1
            events.append(_numbered(number))
            items.append((number, number, "shop", 10**9 + number, False, 2, NO_OUTCOME))
        collector.record_with_outcomes(events, items)
        worst = max(worst, len(outcomes.want_requests), len(outcomes.want_spans))
    assert worst <= 2 * max_size
