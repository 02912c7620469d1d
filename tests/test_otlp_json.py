"""OTLP/JSON read straight from the document: JavaScript exporters' quirks cost no request."""

from __future__ import annotations

import io
import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan

from flagscope._query.export import to_csv, to_json, write_csv, write_jsonl
from flagscope._telemetry import otlp_json, semconv
from flagscope._telemetry.otlp import (
    OtlpBatch,
    OtlpDecodeError,
    decode_traces,
    map_traces,
    read_logs,
    read_traces,
    traces_response,
)
from flagscope.server import BackgroundServer, serve_in_background
from otlp_payloads import json_body, string_attr, traces_json, traces_protobuf
from producers import START_NS, readable_span

TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"


def _request(*events: dict[str, Any], span: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {
        "traceId": TRACE,
        "spanId": SPAN,
        "name": "GET /cart",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000005000000",
        "events": list(events),
    }
    body.update(span or {})
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [string_attr("service.name", "js-app")]},
                "scopeSpans": [{"scope": {"name": "app"}, "spans": [body]}],
            }
        ]
    }


def _event(key: str, value: dict[str, Any] | None, **extra: dict[str, Any]) -> dict[str, Any]:
    attributes = [string_attr(semconv.KEY, key)]
    if value is not None:
        attributes.append({"key": semconv.RESULT_VALUE, "value": value})
    attributes.extend({"key": name, "value": item} for name, item in extra.items())
    return {
        "name": semconv.EVENT_NAME,
        "timeUnixNano": "1700000000001000000",
        "attributes": attributes,
    }


PARSERS = ["orjson", "json.loads"]


@contextmanager
def _parser(name: str) -> Iterator[None]:
    """Parse JSON bodies with orjson (the server extra installs it) or with json.loads only."""
    loads = otlp_json._fast_loads
    assert loads is not None, "the server extra installs orjson"
    with patch.object(otlp_json, "_fast_loads", loads if name == "orjson" else None):
        yield


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ({"intValue": 1e21}, 1e21),
        ({"intValue": 9223372036854776000}, 9.223372036854776e18),
        ({"intValue": -9223372036854776000}, -9.223372036854776e18),
        ({"intValue": "9223372036854775808"}, 9.223372036854775808e18),
        ({"intValue": 1.7976931348623157e308}, 1.7976931348623157e308),
        ({"intValue": int(sys.float_info.max)}, sys.float_info.max),
        ({"intValue": 9223372036854775807}, 9223372036854775807),
        ({"intValue": "42"}, 42),
        ({"intValue": 2.5}, 2.5),
    ],
    ids=repr,
)
def test_an_int_value_outside_int64_becomes_a_float_and_the_request_is_kept(
    sent: dict[str, Any], expected: Any
) -> None:
    document = _request(_event("big", sent), _event("next", {"boolValue": True}))
    batch = read_traces(json_body(document), "json")
    assert [event.flag_key for event in batch.events] == ["big", "next"]
    value = batch.events[0].value
    assert value == expected
    assert type(value) is type(expected)


# The largest double is just below 2**1024: every integer of 309 digits or more past it.
_BEYOND_A_DOUBLE = st.integers(min_value=2**1024) | st.integers(max_value=-(2**1024))


@pytest.mark.parametrize("parser", PARSERS)
@settings(max_examples=25, deadline=None)
@given(_BEYOND_A_DOUBLE, st.booleans(), st.sampled_from(["intValue", "doubleValue"]))
def test_an_integer_beyond_a_double_is_refused_whole_as_out_of_range(
    parser: str, number: int, as_text: bool, kind: str
) -> None:
    # OTLP's int64 cannot hold it, nor can a float: protobuf's JSON parser refuses it too.
    sent: Any = str(number) if as_text and kind == "intValue" else number
    document = _request(_event("big", {kind: sent}), _event("next", {"boolValue": True}))
    with _parser(parser), pytest.raises(OtlpDecodeError, match=rf"{kind} is out of range"):
        read_traces(json_body(document), "json")
    with pytest.raises(OtlpDecodeError):
        decode_traces(json_body(document), "json")


@pytest.mark.parametrize("sent", [1e400, "1e400", "-Infinity", "NaN"], ids=repr)
def test_an_int_value_no_finite_double_holds_is_refused_whole(sent: Any) -> None:
    document = _request(_event("inf", {"intValue": sent}))
    for parser in PARSERS:
        with _parser(parser), pytest.raises(OtlpDecodeError, match="must be a finite number"):
            read_traces(json_body(document), "json")


@pytest.mark.parametrize("parser", PARSERS)
def test_an_int_value_of_309_digits_is_answered_400_not_500(parser: str) -> None:
    document = _request(_event("big", {"intValue": 2 * 10**308}))
    with _parser(parser), serve_in_background(port=0) as running:
        response = httpx.post(
            running.url + "/v1/traces",
            content=json_body(document),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 400, response.text
        assert "intValue is out of range" in response.text
        assert running.collector.events() == []


def test_double_value_null_is_none_with_nothing_stale_in_attributes() -> None:
    # JSON.stringify writes NaN and Infinity as null.
    document = _request(_event("nan", {"doubleValue": None}))
    (event,) = read_traces(json_body(document), "json").events
    assert event.value is None
    assert dict(event.attributes) == {}


@pytest.mark.parametrize(
    ("sent", "expected"),
    [("NaN", math.isnan), ("Infinity", math.isinf), ("-Infinity", math.isinf), ("2.5", None)],
)
def test_double_value_words_are_read_as_protobuf_json_spells_them(sent: str, expected: Any) -> None:
    (event,) = read_traces(json_body(_request(_event("d", {"doubleValue": sent}))), "json").events
    assert type(event.value) is float
    assert expected(event.value) if expected else event.value == 2.5


def test_snake_case_spellings_and_enum_names_are_accepted() -> None:
    document = {
        "resource_spans": [
            {
                "resource": {"attributes": [string_attr("service.name", "snake")]},
                "scope_spans": [
                    {
                        "spans": [
                            {
                                "trace_id": TRACE,
                                "span_id": SPAN,
                                "name": "x",
                                "kind": "SPAN_KIND_SERVER",
                                "status": {"code": "STATUS_CODE_ERROR"},
                                "start_time_unix_nano": 1700000000000000000,
                                "events": [
                                    {
                                        "name": semconv.EVENT_NAME,
                                        "time_unix_nano": "1700000000001000000",
                                        "attributes": [
                                            string_attr(semconv.KEY, "k"),
                                            {
                                                "key": semconv.RESULT_VALUE,
                                                "value": {"int_value": "7"},
                                            },
                                        ],
                                    }
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    (event,) = read_traces(json_body(document), "json").events
    assert (event.flag_key, event.value, event.service_name) == ("k", 7, "snake")
    assert event.trace_id == TRACE


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"resourceSpans": {}},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"events": [None]}]}]}]},
        _request(_event("k", {"boolValue": "yes"})),
        _request(_event("k", {"intValue": "many"})),
        _request(_event("k", {"stringValue": "a", "intValue": 1})),
        _request(_event("k", {"bytesValue": "!!"})),
        _request(_event("k", {"arrayValue": {"values": "x"}})),
        _request(span={"status": {"code": True}}),
        _request(span={"status": "ok"}),
        _request(span={"status": {"message": 5}}),
        _request(span={"traceState": 5}),
        _request(span={"kind": []}),
        _request(span={"flags": True}),
        _request(span={"links": [{"spanId": "zz"}]}),
        _request(span={"events": [{"name": 5}]}),
    ],
    ids=repr,
)
def test_a_malformed_document_is_refused_whole(document: Any) -> None:
    with pytest.raises(OtlpDecodeError, match=r"invalid|must be an object"):
        read_traces(json_body(document), "json")


def test_logs_read_the_same_tolerances() -> None:
    document = {
        "resourceLogs": [
            {
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "eventName": semconv.EVENT_NAME,
                                "timeUnixNano": "1700000000000000000",
                                "body": {},
                                "attributes": [
                                    string_attr(semconv.KEY, "k"),
                                    {"key": semconv.RESULT_VALUE, "value": {"intValue": 1e21}},
                                ],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    (event,) = read_logs(json_body(document), "json").events
    assert event.value == 1e21


# -- lone surrogates never break a view ---------------------------------------------------

# JSON text can spell a lone surrogate; json.loads reads it into a str that cannot be UTF-8.
SURROGATE_BODY = (
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"' + TRACE.encode() + b'",'
    b'"spanId":"' + SPAN.encode() + b'","name":"s","events":[{"name":"feature_flag.evaluation",'
    b'"timeUnixNano":"1700000000001000000","attributes":['
    b'{"key":"feature_flag.key","value":{"stringValue":"bad\\ud800key"}},'
    b'{"key":"feature_flag.result.variant","value":{"stringValue":"v\\udfff"}},'
    b'{"key":"feature_flag.result.value","value":{"stringValue":"{\\"a\\":\\"\\\\ud800\\"}"}},'
    b'{"key":"app.note\\ud800","value":{"stringValue":"\\udc00"}}]}]}]}]}]}'
)


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with serve_in_background(port=0) as running:
        response = httpx.post(
            running.url + "/v1/traces",
            content=SURROGATE_BODY,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 200, response.text
        yield running


def test_lone_surrogates_are_stored_as_the_replacement_character(server: BackgroundServer) -> None:
    (event,) = server.collector.events()
    assert event.flag_key == "bad\ufffdkey"
    assert event.variant == "v\ufffd"
    assert event.value == {"a": "\ufffd"}
    assert dict(event.attributes) == {"app.note\ufffd": "\ufffd"}


@pytest.mark.parametrize(
    "path",
    ["/api/flags", "/api/events", "/api/flags/bad%EF%BF%BDkey", "/api/buckets", "/api/health"],
)
def test_every_api_view_answers_after_a_lone_surrogate(server: BackgroundServer, path: str) -> None:
    response = httpx.get(server.url + path)
    assert response.status_code == 200, response.text
    json.loads(response.content.decode("utf-8"))


def test_every_export_works_after_a_lone_surrogate(server: BackgroundServer) -> None:
    events = server.collector.events()
    for text in (to_json(events), to_csv(events)):
        text.encode("utf-8")
    write_jsonl(events, io.StringIO())
    write_csv(events, io.StringIO())


# -- the same answers as protobuf, on generated requests -----------------------------------

_SCALAR = (
    st.text(max_size=8)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.booleans()
)
_ATTRIBUTE_VALUE = (
    _SCALAR
    | st.lists(st.text(max_size=4), max_size=3).map(tuple)
    | st.lists(st.integers(-5, 5), max_size=3).map(tuple)
)
_FLAG_ATTRIBUTES = st.dictionaries(
    st.sampled_from(
        [
            semconv.KEY,
            semconv.RESULT_VALUE,
            semconv.RESULT_VARIANT,
            semconv.VARIANT_LEGACY,
            semconv.RESULT_REASON,
            semconv.PROVIDER_NAME,
            semconv.CONTEXT_ID,
            semconv.ERROR_TYPE,
            semconv.ERROR_MESSAGE,
            "app.tier",
        ]
    ),
    _ATTRIBUTE_VALUE,
    max_size=6,
)
_EVENT = st.builds(
    lambda name, attributes, offset: Event(name, attributes, timestamp=START_NS + offset),
    st.sampled_from(
        [semconv.EVENT_NAME, semconv.EVENT_NAME_LEGACY, semconv.EXCEPTION_EVENT_NAME, "other"]
    ),
    _FLAG_ATTRIBUTES,
    st.integers(0, 10**6),
)
_SPAN = st.builds(
    lambda name, events, attributes, language: readable_span(
        name,
        events=events,
        attributes=attributes,
        resource=Resource({"service.name": "gen", "telemetry.sdk.language": language}),
    ),
    st.sampled_from(["GET /", semconv.SPAN_NAME]),
    st.lists(_EVENT, max_size=3),
    _FLAG_ATTRIBUTES,
    st.sampled_from(["python", "nodejs", "go"]),
)


def _answers(batch: OtlpBatch) -> tuple[Any, ...]:
    return (
        [event.to_dict() for event in batch.events],
        batch.received,
        batch.rejected,
        dict(batch.skipped_by_reason),
        traces_response(batch, "protobuf"),
    )


@pytest.mark.parametrize("parser", PARSERS)
@settings(max_examples=150, deadline=None)
@given(st.lists(_SPAN, min_size=1, max_size=4), st.sampled_from(["auto", "json", "raw"]))
def test_json_and_protobuf_give_identical_records_skips_and_answers(
    parser: str, spans: list[ReadableSpan], decoding: Any
) -> None:
    from_protobuf = read_traces(traces_protobuf(spans), "protobuf", value_decoding=decoding)
    with _parser(parser):
        from_json = read_traces(traces_json(spans), "json", value_decoding=decoding)
    # Today's decoder, for reference: protobuf's own JSON parser, then the same mapper.
    reference = map_traces(decode_traces(traces_json(spans), "json"), value_decoding=decoding)
    assert _answers(from_json) == _answers(from_protobuf) == _answers(reference)


# -- outcomes: what the spans did, read as protobuf's parser reads it ---------------------


def _read_both(document: dict[str, Any]) -> tuple[Any, Any]:
    """``read_traces``' answer and today's decoder's (protobuf's JSON parser), with outcomes."""
    body = json.dumps(document).encode()

    def outcomes(read: Any) -> Any:
        try:
            batch = read()
        except OtlpDecodeError:
            return "refused"
        return (_answers(batch), batch.outcomes)

    return (
        outcomes(lambda: read_traces(body, "json")),
        outcomes(lambda: map_traces(decode_traces(body, "json"))),
    )


@pytest.mark.parametrize(
    "code",
    [2, "STATUS_CODE_ERROR", "2", 2.0, " +2", "\u0662", "7", "BOGUS", "99999999999"],
    ids=repr,
)
@pytest.mark.parametrize("kind", [2, "SPAN_KIND_SERVER", "2", 2.0, 1, "1"], ids=repr)
def test_enum_numbers_sent_as_text_or_floats_read_as_protobuf_reads_them(
    code: Any, kind: Any
) -> None:
    """A status code or span kind "2" or 2.0 is ERROR or SERVER, as protobuf's parser has it.

    The kind decides whether a span with a remote parent (and no span flags) is its
    service's request; a number beyond 32 bits is refused, as protobuf refuses it.
    """
    document = _request(
        _event("f", None),
        span={"parentSpanId": "1111111111111111", "kind": kind, "status": {"code": code}},
    )
    ours, reference = _read_both(document)
    assert ours == reference
    if code in (2.0, "2"):
        assert ours != "refused"
        (item,) = ours[1]
        assert item[6][1] == 2  # the status read as error
        assert item[4] is (kind not in (1, "1"))  # a SERVER span: its service's request


def test_a_parent_sent_in_upper_case_is_found_among_the_requests_spans() -> None:
    """Hex ids are one id in either case: the JS SpanHook's span finds the span it was made in."""
    document = _request(
        span={"parentSpanId": "1111111111111111", "status": {"code": 2}},
    )
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans.append(
        {
            "traceId": TRACE.upper(),
            "spanId": "3333333333333333",
            "parentSpanId": SPAN.upper(),
            "name": semconv.SPAN_NAME,
            "startTimeUnixNano": "1700000000001000000",
            "endTimeUnixNano": "1700000000002000000",
            "attributes": [
                string_attr(semconv.KEY, "f"),
                string_attr(semconv.RESULT_VARIANT, "on"),
            ],
        }
    )
    ours, reference = _read_both(document)
    assert ours == reference
    assert [item[5] for item in ours[1]] == [2, 0]  # the evaluation span, then its parent
    assert ours[1][1][6][:2] == ("GET /cart", 2)


# -- orjson answers as json.loads does ----------------------------------------------------


def _nested(depth: int) -> bytes:
    """A trace request nested ``depth`` levels deep in a field receivers ignore."""
    return b'{"resourceSpans":[],"x":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def _with_value(text: bytes, field: bytes = b"value") -> bytes:
    """A request with one flag event whose value (or span start time) is ``text`` as written."""
    if field == b"value":
        document = _request(_event("k", {"intValue": "@"}))
    else:
        document = _request(_event("k", {"boolValue": True}), span={"startTimeUnixNano": "@"})
    body = json.dumps(document, separators=(",", ":")).encode()
    placeholder = b'"intValue":"@"' if field == b"value" else b'"@"'
    assert body.count(placeholder) == 1
    return body.replace(placeholder, text)


_INT64_MIN = -(2**63)
EDGE_BODIES = {
    # Integers beyond 64 bits: orjson reads them as floats, json.loads as ints.
    **{
        f"intValue {number}": _with_value(b'"intValue":%d' % number)
        for number in (
            _INT64_MIN - 1,
            _INT64_MIN - 1024,
            _INT64_MIN - 1025,
            2**64 - 1,
            2**64,
            2**64 + 1,
            10**30,
            -(10**30),
        )
    },
    "intValue -2**63 as a float": _with_value(b'"intValue":-9.223372036854776e18'),
    "intValue 10**400": _with_value(b'"intValue":1' + b"0" * 400),
    "doubleValue 10**30": _with_value(b'"doubleValue":1' + b"0" * 30),
    "doubleValue -2**63-1": _with_value(b'"doubleValue":-9223372036854775809'),
    "stringValue 10**30": _with_value(b'"stringValue":1' + b"0" * 30),
    "boolValue -2**63-1": _with_value(b'"boolValue":-9223372036854775809'),
    "start time 2**64": _with_value(b"%d" % 2**64, b"start"),
    "start time -2**63-1": _with_value(b"%d" % (_INT64_MIN - 1), b"start"),
    "start time 10**30": _with_value(b"1" + b"0" * 30, b"start"),
    # What json.loads alone accepts.
    "doubleValue NaN": _with_value(b'"doubleValue":NaN'),
    "doubleValue -Infinity": _with_value(b'"doubleValue":-Infinity'),
    "doubleValue 1e400": _with_value(b'"doubleValue":1e400'),
    "a lone surrogate": _with_value(b'"stringValue":"\\ud800"'),
    "a UTF-8 BOM": b"\xef\xbb\xbf" + json_body(_request(_event("k", {"boolValue": True}))),
    "UTF-16": json.dumps(_request(_event("k", {"boolValue": True}))).encode("utf-16"),
    # What neither accepts, or both read alike.
    "invalid UTF-8": _with_value(b'"stringValue":"\xff"'),
    "a raw control character": _with_value(b'"stringValue":"\x01"'),
    "a long float": _with_value(b'"doubleValue":0.' + b"3" * 800),
    "duplicate keys": _with_value(b'"stringValue":"a","boolValue":true,"stringValue":"b"'),
    "a trailing comma": b'{"resourceSpans":[],}',
    "not an object": b"[1]",
    "an empty body": b"",
    "whitespace": b" \t\r\n",
    "two values closing the lists around them": b"{}],[{}",
    "a value and a closing bracket": b"{}]",
    **{f"nested {depth} deep": _nested(depth) for depth in (768, 769, 990, 1000, 1024, 1025)},
}


def _outcome(body: bytes) -> tuple[Any, ...]:
    try:
        batch = read_traces(body, "json")
    except Exception as error:  # noqa: BLE001 - compared, whatever it is
        return ("refused", type(error).__name__, str(error))
    return ("read", repr(_answers(batch)))


@pytest.mark.parametrize("body", EDGE_BODIES.values(), ids=EDGE_BODIES.keys())
def test_orjson_and_json_loads_answer_alike_where_the_parsers_differ(body: bytes) -> None:
    with _parser("orjson"):
        fast = _outcome(body)
    with _parser("json.loads"):
        assert fast == _outcome(body)


def test_orjson_parses_bodies_nested_768_deep_and_leaves_deeper_ones_to_json_loads() -> None:
    assert otlp_json._fast_document(_nested(768)) == json.loads(_nested(768))
    assert otlp_json._fast_document(_nested(769)) is None


def test_orjson_leaves_integers_that_may_round_to_int64_min_to_json_loads() -> None:
    assert otlp_json._fast_document(_with_value(b'"intValue":-9223372036854775809')) is None
    assert otlp_json._fast_document(_with_value(b'"intValue":-9000000000000000000')) is not None


def test_json_bodies_are_read_without_orjson_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "orjson", None)  # import orjson raises ImportError
    assert otlp_json._orjson_loads() is None
    monkeypatch.setattr(otlp_json, "_fast_loads", None)
    (event,) = read_traces(json_body(_request(_event("k", {"boolValue": True}))), "json").events
    assert (event.flag_key, event.value) == ("k", True)


def _answer(read: Any, *args: Any) -> tuple[str, Any]:
    try:
        return ("read", read(*args))
    except OtlpDecodeError as error:
        return ("refused", str(error))


_INTEGER_SPELLINGS = [
    "1700000000001000000",
    "9999999999999999999",
    "18446744073709551615",
    "18446744073709551616",
    "\u0661\u0667\u0660\u0660",  # Arabic-Indic digits: int() reads them
    "\u00b2",  # a digit that is no decimal: int() refuses it
    "+5",
    " 5 ",
    "1_000",
    "",
    "5.0",
    "-1",
    0,
    7,
    -1,
    2**32 - 1,
    2**32,
    2**64,
    True,
    1.0,
    1.5,
    None,
]


@pytest.mark.parametrize("value", _INTEGER_SPELLINGS, ids=repr)
def test_times_and_counts_read_every_spelling_as_the_integer_reader_does(value: Any) -> None:
    message = {"timeUnixNano": value, "droppedAttributesCount": value}
    assert _answer(otlp_json._time, message, "timeUnixNano", "time_unix_nano", "event") == _answer(
        otlp_json._integer, value, "event.timeUnixNano", 0, 2**64 - 1
    )
    count = _answer(
        otlp_json._count, message, "droppedAttributesCount", "dropped_attributes_count", "event"
    )
    expected = _answer(otlp_json._integer, value, "event.droppedAttributesCount", 0, 2**32 - 1)
    assert count == (expected if expected[0] == "refused" else ("read", None))


@pytest.mark.parametrize(
    "value",
    [
        {"stringValue": "a"},
        {"stringValue": 5},
        {"stringValue": None},
        {"stringValue": "a", "boolValue": True},
        {"stringValue": "a", "unknownField": 1},
        {"string_value": "snake"},
        {"boolValue": False},
        {},
    ],
    ids=repr,
)
def test_an_attribute_value_reads_as_any_value_reads_it(value: dict[str, Any]) -> None:
    pairs = [{"key": "k", "value": value}]
    read = _answer(otlp_json._attributes, pairs, "event")
    try:
        expected: tuple[str, Any] = ("read", {"k": otlp_json._any_value(value, "value")})
    except OtlpDecodeError as error:
        expected = ("refused", f"event.attributes['k'].{error}")
    assert read == expected
