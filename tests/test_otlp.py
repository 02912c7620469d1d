"""OTLP payloads (protobuf and JSON, traces and logs) mapped by ``flagscope._telemetry.otlp``."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from unittest.mock import patch

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st
from ldclient import Context
from ldclient.integrations.test_data import TestData
from ldotel.tracing import HookOptions
from openfeature.evaluation_context import EvaluationContext
from opentelemetry._logs import LogRecord
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

from flagscope import EvaluationReason, InMemoryAnalyticsCollector
from flagscope._telemetry import mapping, otlp, otlp_json, semconv
from flagscope._telemetry.log_exporter import FlagEvaluationLogExporter
from flagscope._telemetry.mapping import timestamp_from_ns
from flagscope._telemetry.otlp import (
    OtlpBatch,
    OtlpDecodeError,
    any_value,
    decode_logs,
    decode_traces,
    encoding_for,
    logs_response,
    map_logs,
    map_traces,
    media_type,
    parse_in_slices,
    read_traces,
    traces_response,
)
from otlp_payloads import (
    emit_logs,
    json_body,
    logs_json,
    logs_protobuf,
    openfeature_client,
    string_attr,
    traces_json,
    traces_protobuf,
)
from producers import (
    END_NS,
    SERVICE_NAME,
    SPAN_HEX,
    SPAN_ID,
    START_NS,
    TRACE_HEX,
    TRACE_ID,
    flag_event,
    hex_ids,
    launchdarkly_client,
    launchdarkly_hook,
    make_pipeline,
    readable_span,
)

ENCODINGS = ("protobuf", "json")


def _traces(spans: Any, encoding: str) -> Any:
    body = traces_protobuf(spans) if encoding == "protobuf" else traces_json(spans)
    return map_traces(decode_traces(body, encoding))  # type: ignore[arg-type]


def _logs(records: Any, encoding: str) -> Any:
    body = logs_protobuf(records) if encoding == "protobuf" else logs_json(records)
    return map_logs(decode_logs(body, encoding))  # type: ignore[arg-type]


# -- spans -----------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_openfeature_spans_map_exactly_as_the_span_exporter_maps_them(encoding: str) -> None:
    pipeline = make_pipeline()
    with openfeature_client() as client:
        tracer = pipeline.tracer()
        for user in ("alice", "bob"):
            with tracer.start_as_current_span("GET /checkout"):
                context = EvaluationContext(targeting_key=user)
                client.get_boolean_value("new-checkout", False, context)
                client.get_string_value("banner-color", "#000", context)
                client.get_object_value("theme", {}, context)
                client.get_boolean_value("not-declared", False, context)
    spans = pipeline.finished_spans()

    batch = _traces(spans, encoding)

    expected = [event.to_dict() for event in pipeline.collector.events()]
    assert len(expected) == 8
    assert [event.to_dict() for event in batch.events] == expected
    assert batch.received == 2
    assert batch.rejected == 0
    assert batch.error_message == ""
    first = batch.events[1]
    assert first.value == "#c05543"
    assert first.service_name == SERVICE_NAME
    assert (first.trace_id, first.span_id) == hex_ids(spans[0])
    assert batch.events[3].error_type == "flag_not_found"


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_launchdarkly_spans_map_exactly_as_the_span_exporter_maps_them(encoding: str) -> None:
    pipeline = make_pipeline()
    data = TestData.data_source()
    data.update(data.flag("new-checkout").variation_for_all(True))
    hook = launchdarkly_hook(
        pipeline.provider, HookOptions(add_spans=True, include_value=True, environment_id="env")
    )
    tracer = pipeline.tracer()
    with launchdarkly_client(data, hook) as client, tracer.start_as_current_span("GET /cart"):
        client.variation("new-checkout", Context.create("user-1"), False)
        client.variation_detail("not-declared", Context.create("user-2"), "x")
    spans = pipeline.finished_spans()
    assert {span.name for span in spans} >= {"variation", "variation_detail"}

    batch = _traces(spans, encoding)

    assert [event.to_dict() for event in batch.events] == [
        event.to_dict() for event in pipeline.collector.events()
    ]
    assert [(e.flag_key, e.value, e.flag_set_id) for e in batch.events] == [
        ("new-checkout", True, "env"),
        ("not-declared", "x", "env"),
    ]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize(
    ("event_name", "attributes", "field", "expected"),
    [
        (semconv.EVENT_NAME, {semconv.RESULT_VARIANT: "on"}, "variant", "on"),
        (semconv.EVENT_NAME_LEGACY, {semconv.VARIANT_LEGACY: "on"}, "variant", "on"),
        (semconv.EVENT_NAME, {semconv.PROVIDER_NAME_LEGACY: "flagd"}, "provider_name", "flagd"),
        (semconv.EVENT_NAME, {semconv.EVALUATION_REASON_LEGACY: "SPLIT"}, "reason", "split"),
        (semconv.EVENT_NAME, {semconv.ERROR_MESSAGE_GENERIC: "boom"}, "error_message", "boom"),
        (semconv.EVENT_NAME, {semconv.RESULT_VALUE: 7}, "value", 7),
        (semconv.EVENT_NAME, {semconv.RESULT_VALUE: 2.5}, "value", 2.5),
        (semconv.EVENT_NAME, {semconv.RESULT_VALUE: (1, 2)}, "value", [1, 2]),
        (semconv.EVENT_NAME, {semconv.RESULT_VALUE: "[1, 2]"}, "value", [1, 2]),
        (semconv.EVENT_NAME, {semconv.CONTEXT_ID: ""}, "targeting_key", None),
        (semconv.EVENT_NAME, {semconv.SET_ID: "env-abc"}, "flag_set_id", "env-abc"),
    ],
)
def test_every_attribute_spelling_survives_the_wire(
    encoding: str, event_name: str, attributes: dict[str, Any], field: str, expected: Any
) -> None:
    span = readable_span(events=[flag_event("f", attributes, name=event_name)])

    (event,) = _traces([span], encoding).events

    assert getattr(event, field) == expected
    assert event.flag_key == "f"


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_span_named_feature_flag_evaluation_carrying_the_keys_is_one_evaluation(
    encoding: str,
) -> None:
    span = readable_span(
        semconv.SPAN_NAME, attributes={semconv.KEY: "from-span", semconv.RESULT_VARIANT: "b"}
    )

    (event,) = _traces([span], encoding).events

    assert (event.flag_key, event.variant) == ("from-span", "b")
    assert event.timestamp == timestamp_from_ns(span.end_time)  # type: ignore[arg-type]
    assert (event.trace_id, event.span_id) == (TRACE_HEX, SPAN_HEX)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_exception_events_and_launchdarkly_variation_spans_are_not_evaluations(
    encoding: str,
) -> None:
    exception = flag_event("f", {"exception.type": "KeyError"}, name=semconv.EXCEPTION_EVENT_NAME)
    variation = readable_span("variation", attributes={semconv.KEY: "f", semconv.CONTEXT_ID: "u"})
    span = readable_span(events=[exception])

    batch = _traces([span, variation], encoding)

    assert batch.events == ()
    assert (batch.received, batch.rejected) == (2, 0)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_flag_events_without_a_key_are_rejected_and_explained(encoding: str) -> None:
    good = readable_span(events=[flag_event("kept")])
    bad = readable_span(events=[flag_event(None), flag_event("", name=semconv.EVENT_NAME_LEGACY)])

    batch = _traces([good, bad], encoding)

    assert [event.flag_key for event in batch.events] == ["kept"]
    assert (batch.received, batch.rejected) == (2, 1)
    assert dict(batch.skipped_by_reason) == {"missing_flag_key": 1, "invalid_flag_key": 1}
    assert "missing_flag_key" in batch.error_message
    assert "invalid_flag_key" in batch.error_message


def test_an_item_the_mapper_fails_on_is_rejected_and_the_rest_of_the_request_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = mapping.map_attributes

    def fragile(attributes: Any, *args: Any) -> Any:
        if attributes.get(semconv.KEY) == "boom":
            raise RuntimeError("mapper bug")
        return real(attributes, *args)

    monkeypatch.setattr("flagscope._telemetry.classify.map_attributes", fragile)
    spans = [readable_span(events=[flag_event(key)]) for key in ("a", "boom", "b")]
    records = emit_logs(
        [
            LogRecord(event_name=semconv.EVENT_NAME, attributes={semconv.KEY: key})
            for key in ("boom", "c")
        ]
    )

    for batch, kept in ((_traces(spans, "protobuf"), ["a", "b"]), (_logs(records, "json"), ["c"])):
        assert [event.flag_key for event in batch.events] == kept
        assert (batch.received, batch.rejected) == (len(kept) + 1, 1)
        assert dict(batch.skipped_by_reason) == {"mapping_error": 1}


def test_a_zero_event_timestamp_falls_back_to_the_span_end() -> None:
    span = readable_span(events=[flag_event("f", timestamp=0)])

    (event,) = _traces([span], "protobuf").events

    assert event.timestamp == timestamp_from_ns(span.end_time)  # type: ignore[arg-type]


# -- hand-written OTLP/JSON, as non-Python senders write it ---------------------------------


def _json_span_document(**span_fields: Any) -> dict[str, Any]:
    span = {
        "traceId": TRACE_HEX.upper(),
        "spanId": SPAN_HEX,
        "name": "GET /cart",
        "kind": 2,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000005000000",
        **span_fields,
    }
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [string_attr("service.name", "web-js")]},
                "scopeSpans": [{"scope": {"name": "js"}, "spans": [span]}],
            }
        ]
    }


def test_json_typed_values_kvlists_and_arrays_are_unwrapped() -> None:
    document = _json_span_document(
        events=[
            {
                "name": "feature_flag.evaluation",
                "timeUnixNano": "1700000000001000000",
                "attributes": [
                    string_attr(semconv.KEY, "limits"),
                    {
                        "key": semconv.RESULT_VALUE,
                        "value": {
                            "kvlistValue": {
                                "values": [
                                    {"key": "max", "value": {"intValue": "10"}},
                                    {"key": "on", "value": {"boolValue": True}},
                                    {
                                        "key": "tiers",
                                        "value": {
                                            "arrayValue": {
                                                "values": [
                                                    {"stringValue": "gold"},
                                                    {"doubleValue": 1.5},
                                                ]
                                            }
                                        },
                                    },
                                ]
                            }
                        },
                    },
                    {"key": "feature_flag.result.variationIndex", "value": {"intValue": 3}},
                    string_attr(semconv.RESULT_REASON, "TARGETING_MATCH"),
                ],
            }
        ]
    )

    (event,) = map_traces(decode_traces(json_body(document), "json")).events

    assert event.flag_key == "limits"
    assert event.value == {"max": 10, "on": True, "tiers": ["gold", 1.5]}
    assert event.reason is EvaluationReason.TARGETING_MATCH
    assert dict(event.attributes) == {"feature_flag.result.variationIndex": 3}
    assert event.trace_id == TRACE_HEX
    assert event.span_id == SPAN_HEX
    assert event.service_name == "web-js"
    assert event.timestamp == datetime(2023, 11, 14, 22, 13, 20, 1000, tzinfo=UTC)


def test_json_accepts_the_proto_field_names_too() -> None:
    document = {
        "resource_spans": [
            {
                "scope_spans": [
                    {
                        "spans": [
                            {
                                "trace_id": TRACE_HEX,
                                "span_id": SPAN_HEX,
                                "name": "x",
                                "events": [
                                    {
                                        "name": "feature_flag",
                                        "attributes": [string_attr(semconv.KEY, "snake")],
                                    }
                                ],
                            }
                        ]
                    }
                ]
            }
        ]
    }

    (event,) = map_traces(decode_traces(json_body(document), "json")).events

    assert (event.flag_key, event.trace_id) == ("snake", TRACE_HEX)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "must be an object"),
        (json.dumps({"resourceSpans": "nope"}).encode(), "invalid OTLP JSON"),
        (
            json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5}]}]}]}).encode(),
            "invalid OTLP JSON",
        ),
        (json.dumps(_json_span_document(traceId="not-hex")).encode(), "traceId must be hex"),
        (
            json.dumps(_json_span_document(startTimeUnixNano="yesterday")).encode(),
            "invalid OTLP JSON",
        ),
        # JSON numbers too large for a float are infinity, which no enum field can hold.
        (
            json.dumps(_json_span_document(status={"code": 1}))
            .replace('"code": 1', '"code": 1e400')
            .encode(),
            "invalid OTLP JSON",
        ),
        (
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"severityNumber": -1e400}]}]}]}',
            "invalid OTLP JSON",
        ),
    ],
)
def test_malformed_json_raises_a_decode_error_with_a_clear_message(
    body: bytes, message: str
) -> None:
    decode = decode_logs if body.startswith(b'{"resourceLogs"') else decode_traces
    with pytest.raises(OtlpDecodeError, match=message):
        decode(body, "json")


def test_truncated_protobuf_raises_a_decode_error() -> None:
    body = traces_protobuf([readable_span(events=[flag_event("f")])])

    with pytest.raises(OtlpDecodeError, match="invalid OTLP protobuf"):
        decode_traces(body[:-3], "protobuf")


@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=300), encoding=st.sampled_from(ENCODINGS))
def test_arbitrary_bytes_either_decode_or_raise_a_decode_error(body: bytes, encoding: Any) -> None:
    pairs: list[tuple[Callable[[bytes, Any], Any], Callable[[Any], OtlpBatch]]] = [
        (decode_traces, map_traces),
        (decode_logs, map_logs),
    ]
    for decode, mapper in pairs:
        try:
            request = decode(body, encoding)
        except OtlpDecodeError:
            continue
        batch = mapper(request)
        assert batch.rejected <= batch.received


_scalars = (
    st.text(max_size=10)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.binary(max_size=8)
)
_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


def _to_any_value(value: Any) -> AnyValue:
    wrapped = AnyValue()
    if isinstance(value, str):
        wrapped.string_value = value
    elif isinstance(value, bool):
        wrapped.bool_value = value
    elif isinstance(value, int):
        wrapped.int_value = value
    elif isinstance(value, float):
        wrapped.double_value = value
    elif isinstance(value, bytes):
        wrapped.bytes_value = value
    elif isinstance(value, tuple):
        wrapped.array_value.SetInParent()  # an empty array is still an array
        wrapped.array_value.values.extend(_to_any_value(item) for item in value)
    else:
        wrapped.kvlist_value.SetInParent()
        for key, item in value.items():
            pair = wrapped.kvlist_value.values.add()
            pair.key = key
            pair.value.CopyFrom(_to_any_value(item))
    return wrapped


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    if hasattr(value, "items"):
        return {key: _plain(item) for key, item in value.items()}
    return value


@settings(max_examples=150, deadline=None)
@given(value=_values)
def test_any_value_unwraps_every_shape_to_what_the_sdk_would_hold(value: Any) -> None:
    assert _plain(any_value(_to_any_value(value))) == value


def test_an_empty_any_value_is_none() -> None:
    assert any_value(AnyValue()) is None


# -- logs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_log_based_events_are_mapped_by_their_event_name(encoding: str) -> None:
    records = emit_logs(
        [
            LogRecord(  # type: ignore[call-overload]
                timestamp=1_700_000_000_000_000_000,
                trace_id=TRACE_ID,
                span_id=SPAN_ID,
                event_name=semconv.EVENT_NAME,
                attributes={
                    semconv.KEY: "logged",
                    semconv.RESULT_VALUE: '"blue"',
                    semconv.RESULT_VARIANT: "b",
                },
            ),
            LogRecord(body="an ordinary log line", attributes={semconv.KEY: "not-an-event"}),
        ]
    )

    batch = _logs(records, encoding)

    (event,) = batch.events
    assert (event.flag_key, event.value, event.variant) == ("logged", "blue", "b")
    assert (event.trace_id, event.span_id) == (TRACE_HEX, SPAN_HEX)
    assert event.service_name == SERVICE_NAME
    assert event.timestamp == timestamp_from_ns(1_700_000_000_000_000_000)
    assert (batch.received, batch.rejected) == (2, 0)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_event_name_attribute_and_body_value_of_semconv_1_29_are_read(encoding: str) -> None:
    records = emit_logs(
        [
            LogRecord(
                attributes={semconv.LOG_EVENT_NAME_ATTRIBUTE: "feature_flag", semconv.KEY: "old"},
                body={semconv.LOG_BODY_VALUE: 12},
            )
        ]
    )

    (event,) = _logs(records, encoding).events

    assert (event.flag_key, event.value) == ("old", 12)
    assert semconv.LOG_EVENT_NAME_ATTRIBUTE not in event.attributes
    assert event.trace_id is None


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_log_records_map_exactly_as_the_log_exporter_maps_them(encoding: str) -> None:
    records = emit_logs(
        [
            LogRecord(  # type: ignore[call-overload]
                timestamp=1_700_000_000_000_000_000,
                trace_id=TRACE_ID,
                span_id=SPAN_ID,
                event_name=semconv.EVENT_NAME,
                attributes={semconv.KEY: "a", semconv.RESULT_VALUE: '{"x": [1]}', "extra": 2},
            ),
            LogRecord(
                attributes={semconv.LOG_EVENT_NAME_ATTRIBUTE: "feature_flag", semconv.KEY: "b"},
                body={semconv.LOG_BODY_VALUE: "v"},
            ),
            LogRecord(event_name=semconv.EVENT_NAME, attributes={semconv.ERROR_TYPE: "general"}),
            LogRecord(body="plain log line"),
        ]
    )
    in_process = InMemoryAnalyticsCollector()
    FlagEvaluationLogExporter(in_process).export(records)

    batch = _logs(records, encoding)

    assert [event.to_dict() for event in batch.events] == [
        event.to_dict() for event in in_process.events()
    ]
    assert len(batch.events) == 2
    assert (batch.received, batch.rejected) == (4, 1)


def test_log_events_without_a_key_are_rejected() -> None:
    records = emit_logs([LogRecord(event_name=semconv.EVENT_NAME, attributes={"x": 1})])

    batch = _logs(records, "protobuf")

    assert batch.events == ()
    assert (batch.received, batch.rejected) == (1, 1)


# -- content types and responses -----------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("application/x-protobuf", "protobuf"),
        ("application/protobuf", "protobuf"),
        ("Application/JSON; charset=utf-8", "json"),
        ("text/plain", None),
        ("", None),
        (None, None),
    ],
)
def test_encoding_for_reads_the_content_type(header: str | None, expected: str | None) -> None:
    assert encoding_for(header) == expected


def test_media_type_names_the_response_encoding() -> None:
    assert media_type("protobuf") == "application/x-protobuf"
    assert media_type("json") == "application/json"


def test_a_full_success_leaves_partial_success_unset() -> None:
    batch = _traces([readable_span(events=[flag_event("f")])], "protobuf")

    response = ExportTraceServiceResponse.FromString(traces_response(batch, "protobuf"))

    assert not response.HasField("partial_success")
    assert json.loads(traces_response(batch, "json")) == {}


def test_rejections_are_reported_as_otlp_partial_success() -> None:
    batch = _traces([readable_span(events=[flag_event(None)])], "protobuf")

    traces = ExportTraceServiceResponse.FromString(traces_response(batch, "protobuf"))
    as_json = json.loads(traces_response(batch, "json"))
    logs = ExportLogsServiceResponse.FromString(logs_response(batch, "protobuf"))

    assert traces.partial_success.rejected_spans == 1
    assert "missing_flag_key" in traces.partial_success.error_message
    assert as_json["partialSuccess"]["rejectedSpans"] == "1"
    assert logs.partial_success.rejected_log_records == 1


# -- large bodies are parsed in slices, to the same message ---------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.builds(
            lambda key, n: readable_span(events=[flag_event(key, {"n": n})] * (n % 4)),
            st.text(min_size=1, max_size=12),
            st.integers(0, 50),
        ),
        max_size=12,
    ),
    st.integers(1, 400),
)
def test_a_request_parsed_in_slices_equals_one_parse(spans: list[Any], slice_bytes: int) -> None:
    body = traces_protobuf(spans)
    whole = ExportTraceServiceRequest.FromString(body)
    sliced = ExportTraceServiceRequest()
    parse_in_slices(sliced, body, slice_bytes)
    assert sliced == whole


def test_log_requests_parsed_in_slices_equal_one_parse() -> None:
    records = emit_logs(
        [
            LogRecord(event_name=semconv.EVENT_NAME, attributes={semconv.KEY: f"flag-{n}"})
            for n in range(50)
        ]
    )
    body = logs_protobuf(records)
    sliced = ExportLogsServiceRequest()
    parse_in_slices(sliced, body, 64)
    assert sliced == ExportLogsServiceRequest.FromString(body)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.integers(1, 64))
def test_bytes_parsed_in_slices_fail_where_one_parse_fails(body: bytes, slice_bytes: int) -> None:
    try:
        whole: ExportTraceServiceRequest | None = ExportTraceServiceRequest.FromString(body)
    except DecodeError:
        whole = None
    sliced = ExportTraceServiceRequest()
    try:
        parse_in_slices(sliced, body, slice_bytes)
    except DecodeError:
        assert whole is None
    else:
        assert whole is not None
        assert sliced == whole


def test_a_large_body_goes_through_the_sliced_parse_and_decodes_the_same() -> None:
    spans = [readable_span(events=[flag_event(f"flag-{n % 50}")]) for n in range(9000)]
    body = traces_protobuf(spans)
    assert len(body) > 1 << 20  # above what is parsed in one call
    batch = read_traces(body, "protobuf")
    assert len(batch.events) == 9000
    assert [e.flag_key for e in batch.events[:3]] == ["flag-0", "flag-1", "flag-2"]


# -- the usual span's short path (``otlp._typical_span``, ``otlp_json._typical_span``) -----

# Mostly what the hooks send (so the short path is taken), sometimes what it must refuse.
_HOOKS_TEXT = st.sampled_from(["on", "off", "STATIC", "TARGETING_MATCH", "flagd", "LaunchDarkly"])
_TEXT = st.one_of(
    _HOOKS_TEXT,
    _HOOKS_TEXT,
    _HOOKS_TEXT,
    _HOOKS_TEXT,
    st.text(alphabet="abcXYZ-_ 0", min_size=1, max_size=6),
    st.text(max_size=6),
)


def _rarely(draw: st.DrawFn) -> bool:
    return draw(st.integers(0, 7)) == 0


_FLAG_VALUE = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=6)
    | st.sampled_from(["true", "null", "42", '{"a": 1}', "[1]"])
)


@st.composite
def _usual_span(draw: st.DrawFn) -> ReadableSpan:
    """A span with one flag event, mostly as the hooks send it, with the edges around it."""
    attributes: dict[str, Any] = {
        semconv.KEY: draw(_TEXT),
        semconv.RESULT_REASON: draw(_TEXT),
        semconv.RESULT_VARIANT: draw(_TEXT),
        semconv.PROVIDER_NAME: draw(_TEXT),
    }
    value = draw(_FLAG_VALUE)
    if value is not None:
        attributes[semconv.RESULT_VALUE] = value
    if draw(st.booleans()):
        attributes[semconv.CONTEXT_ID] = draw(_TEXT)
    if _rarely(draw):
        attributes["app.tier"] = "gold"  # not the usual event: the general path's
    trace_id = 0 if _rarely(draw) else draw(st.just(TRACE_ID) | st.integers(1, 2**128 - 1))
    span_id = 0 if _rarely(draw) else draw(st.just(SPAN_ID) | st.integers(1, 2**64 - 1))
    parent = None
    if draw(st.booleans()):
        parent = SpanContext(trace_id, draw(st.integers(0, 2**64 - 1)), draw(st.booleans()))
    http = draw(
        st.sampled_from([None, 200, 503, "404", 0, 2**40, -1])
        if draw(st.booleans())
        else st.just(None)
    )
    span_attributes: dict[str, Any] = {"app.tier": "gold"} if draw(st.booleans()) else {}
    if http is not None:
        span_attributes[
            draw(st.sampled_from([semconv.HTTP_RESPONSE_STATUS_CODE, semconv.HTTP_STATUS_CODE_OLD]))
        ] = http
    times = st.sampled_from([0, START_NS, END_NS]) | st.integers(0, 2**64 - 1)
    start, end = draw(times), draw(times)
    code = draw(st.sampled_from(list(StatusCode)))
    # The SDK keeps a description only with ERROR (and warns about any other).
    status = (
        Status(code, draw(st.sampled_from([None, "", "boom"])))
        if code is StatusCode.ERROR
        else Status(code)
    )
    when = draw(st.sampled_from([0, START_NS]) | st.integers(1, 2**63))
    if not (when or end or start):
        when = START_NS  # no time at all is "now" on both paths, a moment apart
    return ReadableSpan(
        name=semconv.SPAN_NAME if _rarely(draw) else draw(st.sampled_from(["GET /", "pricing"])),
        context=SpanContext(trace_id, span_id, False),
        parent=parent,
        resource=Resource(
            {
                "service.name": "gen",
                "telemetry.sdk.language": draw(st.sampled_from(["python", "nodejs", "go"])),
            }
        ),
        attributes=span_attributes,
        events=[
            Event(
                draw(st.sampled_from(sorted(semconv.EVENT_NAMES))),
                attributes,
                timestamp=when,
            )
        ],
        kind=draw(st.sampled_from(list(SpanKind))),
        status=status,
        start_time=start,
        end_time=end,
    )


def _body(spans: list[ReadableSpan], encoding: str) -> bytes:
    return traces_protobuf(spans) if encoding == "protobuf" else traces_json(spans)


def _everything(batch: OtlpBatch) -> tuple[Any, ...]:
    return (
        [event.to_dict() for event in batch.events],
        batch.received,
        batch.rejected,
        dict(batch.skipped_by_reason),
        batch.outcomes,
        traces_response(batch, "protobuf"),
    )


@pytest.mark.parametrize("encoding", ENCODINGS)
@settings(max_examples=300, deadline=None)
@given(
    st.lists(_usual_span(), min_size=1, max_size=4),
    st.sampled_from(["auto", "json", "raw"]),
)
def test_the_usual_spans_short_path_gives_what_the_general_path_gives(
    encoding: str, spans: list[ReadableSpan], decoding: Any
) -> None:
    body = _body(spans, encoding)
    short = read_traces(body, encoding, value_decoding=decoding)  # type: ignore[arg-type]
    with (
        patch.object(otlp, "_typical_span", return_value=None),
        patch.object(otlp_json, "_typical_span", return_value=None),
    ):
        general = read_traces(body, encoding, value_decoding=decoding)  # type: ignore[arg-type]
    assert _everything(short) == _everything(general)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_hooks_usual_span_takes_the_short_path(encoding: str) -> None:
    span = readable_span(
        parent=SpanContext(TRACE_ID, 0x1111, True),
        events=[
            flag_event(
                "new-checkout",
                {
                    semconv.RESULT_VARIANT: "on",
                    semconv.RESULT_REASON: "TARGETING_MATCH",
                    semconv.PROVIDER_NAME: "flagd",
                    semconv.RESULT_VALUE: True,
                },
            )
        ],
        attributes={semconv.HTTP_RESPONSE_STATUS_CODE: 500},
    )
    module = otlp if encoding == "protobuf" else otlp_json
    with patch.object(module, "_typical_span", wraps=module._typical_span) as short:
        batch = read_traces(_body([span], encoding), encoding)  # type: ignore[arg-type]
    assert short.call_count == 1
    (record,) = batch.events
    assert (record.flag_key, record.variant, record.value) == ("new-checkout", "on", True)
    ((trace, span_id, service, wanted, is_root, kind, outcome),) = batch.outcomes
    assert (trace, span_id, service, wanted, is_root, kind) == (
        TRACE_ID,
        SPAN_ID,
        SERVICE_NAME,
        None,
        True,
        1,
    )
    assert outcome == ("GET /cart", 0, None, END_NS - START_NS, 500)
