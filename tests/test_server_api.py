"""The JSON API: every query filter, paging, per-flag aggregates, time buckets, health."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource

from flagscope._telemetry import semconv
from flagscope.server import BackgroundServer, serve_in_background
from otlp_payloads import traces_protobuf
from producers import flag_event, readable_span, span_context
from serve_process import ServeProcess, serving

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 1_000_000_000
TRACE_1, TRACE_2, TRACE_3 = (f"{n:032x}" for n in (0xA1, 0xA2, 0xA3))
SPAN_1, SPAN_2, SPAN_3 = (f"{n:016x}" for n in (0xB1, 0xB2, 0xB3))

# (trace, span, service, attributes); the i-th evaluation happens at T0 + 10 i seconds.
EVALUATIONS: list[tuple[str, str, str, dict[str, Any]]] = [
    (
        TRACE_1,
        SPAN_1,
        "shop",
        {
            semconv.KEY: "checkout",
            semconv.RESULT_VARIANT: "on",
            semconv.RESULT_VALUE: "true",
            semconv.RESULT_REASON: "static",
            semconv.PROVIDER_NAME: "p1",
            semconv.CONTEXT_ID: "alice",
        },
    ),
    (
        TRACE_2,
        SPAN_2,
        "shop",
        {
            semconv.KEY: "checkout",
            semconv.RESULT_VARIANT: "off",
            semconv.RESULT_VALUE: "false",
            semconv.RESULT_REASON: "targeting_match",
            semconv.PROVIDER_NAME: "p1",
            semconv.CONTEXT_ID: "bob",
        },
    ),
    (
        TRACE_1,
        SPAN_1,
        "shop",
        {
            semconv.KEY: "color/main",
            semconv.RESULT_VARIANT: "red",
            semconv.RESULT_VALUE: '"#c05543"',
            semconv.RESULT_REASON: "static",
            semconv.PROVIDER_NAME: "p2",
            semconv.CONTEXT_ID: "alice",
        },
    ),
    (
        TRACE_3,
        SPAN_3,
        "worker",
        {
            semconv.KEY: "missing",
            semconv.RESULT_VALUE: "false",
            semconv.RESULT_REASON: "error",
            semconv.ERROR_TYPE: "flag_not_found",
            semconv.CONTEXT_ID: "carol",
        },
    ),
    (
        TRACE_3,
        SPAN_3,
        "worker",
        {
            semconv.KEY: "checkout",
            semconv.RESULT_VARIANT: "on",
            semconv.RESULT_VALUE: "true",
            semconv.RESULT_REASON: "static",
            semconv.PROVIDER_NAME: "p1",
            semconv.CONTEXT_ID: "carol",
        },
    ),
]


def _at(index: int) -> datetime:
    return T0 + timedelta(seconds=10 * index)


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    running = serve_in_background(port=0)
    spans = []
    for index, (trace, span, service, attributes) in enumerate(EVALUATIONS):
        attributes = dict(attributes)
        key = attributes.pop(semconv.KEY)
        spans.append(
            readable_span(
                events=[flag_event(key, attributes, timestamp=T0_NS + index * 10_000_000_000)],
                context=span_context(int(trace, 16), int(span, 16)),
                resource=Resource.create({"service.name": service}),
            )
        )
    response = httpx.post(
        f"{running.url}/v1/traces",
        content=traces_protobuf(spans),
        headers={"content-type": "application/x-protobuf"},
    )
    assert response.status_code == 200
    try:
        yield running
    finally:
        running.stop()


def _get(server: BackgroundServer, path: str, params: Any = None) -> httpx.Response:
    return httpx.get(server.url + path, params=params)


def _indexes(events: list[dict[str, Any]]) -> list[int]:
    stamps = [_at(index).isoformat() for index in range(len(EVALUATIONS))]
    return [stamps.index(event["timestamp"]) for event in events]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, [0, 1, 2, 3, 4]),
        ({"flag_key": "checkout"}, [0, 1, 4]),
        ([("flag_key", "checkout"), ("flag_key", "color/main")], [0, 1, 2, 4]),
        ({"variant": "on"}, [0, 4]),
        ({"value": "true"}, [0, 4]),
        ({"value": "false"}, [1, 3]),
        ({"value": '"#c05543"'}, [2]),
        ({"value": "#c05543"}, [2]),
        ({"reason": "static"}, [0, 2, 4]),
        ({"reason": "TARGETING_MATCH"}, [1]),
        ({"provider_name": "p2"}, [2]),
        ({"error_type": "flag_not_found"}, [3]),
        ({"errors_only": "true"}, [3]),
        ({"errors_only": "false"}, [0, 1, 2, 3, 4]),
        ({"targeting_key": "alice"}, [0, 2]),
        ({"trace_id": TRACE_1}, [0, 2]),
        ({"trace_id": TRACE_1.upper()}, [0, 2]),
        ({"span_id": SPAN_3}, [3, 4]),
        ({"service_name": "worker"}, [3, 4]),
        ({"since": _at(2).isoformat()}, [2, 3, 4]),
        ({"until": _at(2).isoformat()}, [0, 1]),
        ({"since": "2025-03-01T12:00:10", "until": "2025-03-01T12:00:30Z"}, [1, 2]),
        ({"flag_key": "checkout", "service_name": "shop", "variant": "on"}, [0]),
        ({"flag_key": "nope"}, []),
    ],
)
def test_events_match_every_filter(
    server: BackgroundServer, params: Any, expected: list[int]
) -> None:
    body = _get(server, "/api/events", params).json()

    assert _indexes(body["events"]) == expected
    assert body["total"] == len(expected)


def test_events_page_newest_first(server: BackgroundServer) -> None:
    first = _get(server, "/api/events", {"newest_first": "true", "limit": 2}).json()
    second = _get(server, "/api/events", {"newest_first": "1", "limit": 2, "offset": 2}).json()
    oldest = _get(server, "/api/events", {"limit": 2}).json()

    assert _indexes(first["events"]) == [4, 3]
    assert _indexes(second["events"]) == [2, 1]
    assert _indexes(oldest["events"]) == [0, 1]
    assert (first["total"], first["limit"], second["offset"]) == (5, 2, 2)


def test_an_event_carries_every_field_of_the_record(server: BackgroundServer) -> None:
    (event,) = _get(server, "/api/events", {"flag_key": "missing"}).json()["events"]

    assert event == {
        "timestamp": _at(3).isoformat(),
        "flag_key": "missing",
        "value": False,
        "reason": "error",
        "variant": None,
        "targeting_key": "carol",
        "context_attributes": {},
        "evaluation_duration_ms": None,
        "provider_name": None,
        "flag_set_id": None,
        "version": None,
        "error_type": "flag_not_found",
        "error_message": None,
        "trace_id": TRACE_3,
        "span_id": SPAN_3,
        "parent_span_id": None,
        "service_name": "worker",
        "attributes": {},
    }


def test_flags_gives_one_summary_per_flag_and_the_overall_one(server: BackgroundServer) -> None:
    body = _get(server, "/api/flags").json()
    flags = {summary["flag_key"]: summary for summary in body["flags"]}

    assert list(flags) == ["checkout", "color/main", "missing"]
    checkout = flags["checkout"]
    assert checkout["count"] == 3
    assert checkout["by_variant"] == {"on": 2, "off": 1}
    assert checkout["by_reason"] == {"static": 2, "targeting_match": 1}
    assert checkout["distinct_targeting_keys"] == 3
    assert checkout["first_seen"] == _at(0).isoformat()
    assert checkout["last_seen"] == _at(4).isoformat()
    assert flags["missing"]["error_rate"] == 1.0
    assert body["overall"]["count"] == 5
    assert body["overall"]["error_count"] == 1


def test_flags_takes_the_filters_too(server: BackgroundServer) -> None:
    body = _get(server, "/api/flags", {"service_name": "worker"}).json()

    assert [(s["flag_key"], s["count"]) for s in body["flags"]] == [("checkout", 1), ("missing", 1)]


def test_one_flag_by_key_even_with_a_slash(server: BackgroundServer) -> None:
    summary = _get(server, "/api/flags/color/main").json()

    assert (summary["flag_key"], summary["count"], summary["by_value"]) == (
        "color/main",
        1,
        {'"#c05543"': 1},
    )


def test_an_unknown_flag_is_404(server: BackgroundServer) -> None:
    response = _get(server, "/api/flags/never-seen")

    assert response.status_code == 404
    assert "never-seen" in response.json()["error"]


def test_buckets_of_a_given_width_split_variants_over_time(server: BackgroundServer) -> None:
    body = _get(server, "/api/buckets", {"flag_key": "checkout", "width": "20"}).json()

    assert body["width_seconds"] == 20.0
    assert [(b["start"], b["count"], b["by_variant"]) for b in body["buckets"]] == [
        (_at(0).isoformat(), 2, {"on": 1, "off": 1}),
        (_at(2).isoformat(), 0, {}),
        (_at(4).isoformat(), 1, {"on": 1}),
    ]


def test_buckets_pick_a_width_when_none_is_given(server: BackgroundServer) -> None:
    body = _get(server, "/api/buckets").json()

    # 40 s of data: the smallest round width giving at most 60 buckets is 1 s.
    assert body["width_seconds"] == 1.0
    assert sum(bucket["count"] for bucket in body["buckets"]) == 5
    assert len(body["buckets"]) == 41


def test_health_reports_the_store_and_the_receiver(server: BackgroundServer) -> None:
    health = _get(server, "/api/health").json()

    assert health["status"] == "ok"
    assert (health["stored"], health["max_size"], health["evicted"]) == (5, 10_000, 0)
    assert health["receiver"]["spans_received"] == 5
    assert health["receiver"]["events_recorded"] == 5


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/events", {"flag": "x"}, "unknown query parameter 'flag'"),
        ("/api/events", {"errors_only": "maybe"}, "errors_only must be true or false"),
        ("/api/events", {"since": "yesterday"}, "since must be an ISO 8601 time"),
        ("/api/events", {"limit": "-1"}, "limit must be between 0 and 10000"),
        ("/api/events", {"limit": "many"}, "limit must be an integer"),
        ("/api/events", {"trace_id": "xyz"}, "trace_id"),
        ("/api/events", {"since": _at(3).isoformat(), "until": _at(1).isoformat()}, "after"),
        ("/api/buckets", {"width": "0"}, "width must be above 0"),
        ("/api/buckets", {"width": "nan"}, "width must be above 0"),
        ("/api/buckets", {"width": "soon"}, "width must be a number of seconds"),
        ("/api/buckets", {"width": "0.001"}, "buckets"),
        ("/api/flags", {"limit": "3"}, "unknown query parameter 'limit'"),
    ],
)
def test_bad_parameters_get_400_with_a_message(
    server: BackgroundServer, path: str, params: dict[str, str], message: str
) -> None:
    response = _get(server, path, params)

    assert response.status_code == 400
    assert message in response.json()["error"]


# -- bad parameters are 400, never 500: fuzzed against a real serve process ---------------------

PARAMETER_NAMES = [
    "flag_key",
    "value",
    "errors_only",
    "variant",
    "reason",
    "provider_name",
    "error_type",
    "targeting_key",
    "trace_id",
    "span_id",
    "service_name",
    "since",
    "until",
    "limit",
    "offset",
    "newest_first",
    "width",
]
ENDPOINTS = ["/api/events", "/api/flags", "/api/flags/checkout", "/api/buckets", "/api/health"]
nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "[" * 5000,
            "{" * 5000,
            '{"a":' * 800,
            "1e400",
            "-1e400",
            "NaN",
            "Infinity",
            "9" * 5000,
            "0x10",
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+23:59",
            "2025-03-01T12:00:00",
            "1e-300",
            "١٢",
            "\x00",
            "true",
            "",
        ]
    ),
)


@pytest.fixture(scope="module")
def serve_process() -> Iterator[ServeProcess]:
    with serving() as running:
        spans = [
            readable_span(
                name="GET /",
                context=span_context(int(trace, 16), int(span, 16)),
                resource=Resource({"service.name": service}),
                events=[flag_event(attributes[semconv.KEY], attributes, timestamp=T0_NS + n)],
            )
            for n, (trace, span, service, attributes) in enumerate(EVALUATIONS)
        ]
        status, _ = running.request(
            "POST",
            "/v1/traces",
            body=traces_protobuf(spans),
            headers={"content-type": "application/x-protobuf"},
        )
        assert status == 200
        yield running


def test_a_value_of_five_thousand_brackets_is_a_400_or_no_match_not_a_500(
    serve_process: ServeProcess,
) -> None:
    query = urllib.parse.urlencode({"value": "[" * 5000})
    status, body = serve_process.request("GET", f"/api/events?{query}")
    assert status == 200
    assert json.loads(body)["total"] == 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(endpoint="/api/events", params=[("value", "[" * 5000)])
@example(endpoint="/api/buckets", params=[("width", "1e-300")])
@example(endpoint="/api/flags", params=[("since", "9999-12-31T23:59:59-23:59")])
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    params=st.lists(
        st.tuples(st.one_of(st.sampled_from(PARAMETER_NAMES), st.text(max_size=10)), nasty_text),
        max_size=4,
    ),
)
def test_no_query_string_makes_the_api_answer_500(
    serve_process: ServeProcess, endpoint: str, params: list[tuple[str, str]]
) -> None:
    query = urllib.parse.urlencode(params)
    # Longer request lines are refused by the HTTP parser itself (h11: 16 KiB of headers).
    assume(len(query) < 15_500)
    status, body = serve_process.request("GET", f"{endpoint}?{query}" if query else endpoint)
    assert status in (200, 400, 404), body[:300]
    if status == 400:
        assert json.loads(body)["error"]


@pytest.mark.parametrize("name", ["variant", "reason", "since", "limit", "errors_only"])
def test_a_parameter_other_than_flag_key_given_twice_is_refused_with_400(
    server: BackgroundServer, name: str
) -> None:
    # Read once, the last would win and the others be dropped without a word.
    values = {"since": T0.isoformat(), "limit": "1", "errors_only": "true"}
    value = values.get(name, "on")
    response = _get(server, "/api/events", [(name, value), (name, value)])
    assert response.status_code == 400
    assert response.json() == {"error": f"query parameter {name!r} may be given once"}


def test_flag_key_given_twice_still_means_either(server: BackgroundServer) -> None:
    response = _get(server, "/api/events", [("flag_key", "checkout"), ("flag_key", "checkout")])
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/api/nope", 404), ("GET", "/api", 404), ("POST", "/api/events", 405)],
)
def test_api_paths_starlette_refuses_answer_json_like_every_other_api_error(
    server: BackgroundServer, method: str, path: str, status: int
) -> None:
    response = httpx.request(method, server.url + path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"error"}
    if status == 405:
        # Starlette builds it from a set: the order varies from run to run.
        assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}


def test_other_unknown_paths_still_answer_plain_text(server: BackgroundServer) -> None:
    response = _get(server, "/nope")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/plain")
