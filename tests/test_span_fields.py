"""The span exporter reads SDK spans' fields only where they are what the properties return."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from flagscope import FlagEvaluationSpanExporter, InMemoryAnalyticsCollector
from flagscope._telemetry import semconv, span_fields
from flagscope._telemetry.span_fields import (
    CONTEXT_ITEMS_HOLD,
    EVENTS_LIST,
    FIELD_READS_HOLD,
    SDK_EVENT,
    reads_fields,
)

EVALUATION = {
    "feature_flag.key": "new-checkout",
    "feature_flag.result.variant": "on",
    "feature_flag.result.reason": "split",
    "feature_flag.provider.name": "flagd",
}
RESOURCE = Resource.create({semconv.SERVICE_NAME: "shop"})


class PropertiesOnly(ReadableSpan):
    """A span class overriding the properties with equal ones: read through properties."""

    @property
    def name(self) -> str:
        return super().name

    @property
    def context(self) -> Any:
        return super().context

    @property
    def parent(self) -> SpanContext | None:
        return super().parent

    @property
    def resource(self) -> Resource:
        return super().resource

    @property
    def status(self) -> Status:
        return super().status

    @property
    def start_time(self) -> int | None:
        return super().start_time

    @property
    def end_time(self) -> int | None:
        return super().end_time

    @property
    def attributes(self) -> Any:
        return super().attributes

    @property
    def events(self) -> Any:
        return super().events


class FailedStatus(ReadableSpan):
    """A span class whose ``status`` says more than its field."""

    @property
    def status(self) -> Status:
        return Status(StatusCode.ERROR, "from the property")


def copy_as(cls: type[ReadableSpan], span: ReadableSpan) -> ReadableSpan:
    """The same span, built through ``ReadableSpan``'s public constructor as ``cls``."""
    return cls(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def finished_spans(statuses: list[tuple[int, str | None, int | None, bool]]) -> list[Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("app")
    remote_parent = SpanContext(
        trace_id=0xABC, span_id=0xDEF, is_remote=True, trace_flags=TraceFlags(1)
    )
    for index, (code, description, http, remote) in enumerate(statuses):
        context = trace.set_span_in_context(trace.NonRecordingSpan(remote_parent))
        with tracer.start_as_current_span(
            "GET /checkout", kind=SpanKind.SERVER, context=context if remote else None
        ) as span:
            if index % 2:
                # The evaluation in a child span: the request joins it when it ends.
                with tracer.start_as_current_span("pricing") as child:
                    child.add_event(semconv.EVENT_NAME, EVALUATION)
            else:
                span.add_event(semconv.EVENT_NAME, EVALUATION)
            if http is not None:
                span.set_attribute(semconv.HTTP_RESPONSE_STATUS_CODE, http)
            if code:
                span.set_status(Status(StatusCode(code), description))
    provider.shutdown()
    return list(memory.get_finished_spans())


def recorded(
    spans: list[ReadableSpan], *, batch: bool = False
) -> tuple[list[Any], list[Any], list[Any]]:
    """Records and their request and span outcomes, spans exported one by one or at once."""
    collector = InMemoryAnalyticsCollector(max_size=100)
    exporter = FlagEvaluationSpanExporter(collector)
    if batch:
        exporter.export(spans)
    for span in [] if batch else spans:
        exporter.export((span,))
    records = collector.events()
    keys = [(record.trace_id or "", record.service_name) for record in records]
    requests = collector.outcomes.request_outcomes(keys)
    span_outcomes = collector.outcomes.span_outcomes([record.span_id for record in records])
    return (
        [record.to_dict() for record in records],
        [requests.get(key) for key in keys],
        [span_outcomes.get(record.span_id or "") for record in records],
    )


def test_the_installed_sdk_is_read_through_its_fields() -> None:
    # If an SDK release changes what its properties do, this fails and says so; the
    # exporter keeps working through the properties meanwhile.
    assert FIELD_READS_HOLD
    assert CONTEXT_ITEMS_HOLD
    assert SDK_EVENT is Event
    assert EVENTS_LIST is BoundedList
    assert reads_fields(Span)
    assert reads_fields(ReadableSpan)


def test_a_bounded_list_not_iterating_its_deque_is_not_read_through_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def listed(self: BoundedList[Any]) -> Any:
        return iter(())  # not the deque: an SDK keeping its items elsewhere

    monkeypatch.setattr(BoundedList, "__iter__", listed)
    assert span_fields._events_list() is None


class OwnEvents(BoundedList):  # type: ignore[type-arg]
    """A list of events of its own kind: iterated, not read through the SDK's deque."""

    def __iter__(self) -> Any:
        return iter([*super().__iter__(), *super().__iter__()])


def test_events_in_a_list_of_another_kind_are_iterated() -> None:
    (span,) = finished_spans([(0, None, None, False)])
    events = OwnEvents(None)
    events.extend(tuple(span._events))
    span._events = events
    records, _, _ = recorded([span])
    # The subclass's own iteration gave the one event twice.
    assert [record["flag_key"] for record in records] == ["new-checkout", "new-checkout"]


def test_a_class_overriding_a_property_is_read_through_its_properties() -> None:
    assert not reads_fields(PropertiesOnly)
    assert not reads_fields(FailedStatus)
    assert not reads_fields(object)


def test_an_overridden_property_decides_the_outcome() -> None:
    (span,) = finished_spans([(0, None, None, False)])
    _, requests, spans = recorded([copy_as(FailedStatus, span)])
    assert requests[0] is not None
    assert requests[0].status == "error"
    assert requests[0].description == "from the property"
    assert spans[0] is not None
    assert spans[0].status == "error"


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0, 1, 2]),
            st.none() | st.text(max_size=5),
            st.none() | st.integers(100, 599),
            st.booleans(),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_fields_and_properties_give_the_same_records_and_outcomes(
    statuses: list[tuple[int, str | None, int | None, bool]],
) -> None:
    spans = finished_spans(statuses)
    public = [copy_as(PropertiesOnly, span) for span in spans]
    one_by_one = recorded(spans)
    assert one_by_one == recorded(public)
    assert recorded(spans, batch=True) == recorded(public, batch=True) == one_by_one
    records, requests, _ = one_by_one
    assert len(records) == len(statuses)
    assert None not in requests  # every evaluation's request outcome was joined
