"""OTLP metrics: every payload is acknowledged; OpenFeature's flag counters are counted.

The recordings in ``fixtures/otlp-js-metrics`` are real runs of OpenFeature's JavaScript
``MetricsHook`` (its README says how they were made), replayed byte for byte.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from flagscope._telemetry.flag_metrics import FlagMetricsStore
from flagscope._telemetry.otlp_batch import OtlpDecodeError
from flagscope._telemetry.otlp_metrics import map_metrics, read_metrics
from flagscope.server import BackgroundServer, serve_in_background

FIXTURES = Path(__file__).parent / "fixtures" / "otlp-js-metrics"
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    running = serve_in_background(port=0)
    try:
        yield running
    finally:
        running.stop()


def _replay(server: BackgroundServer, run: Path) -> None:
    for request in json.loads((run / "requests.json").read_text()):
        response = httpx.post(
            server.url + request["path"],
            content=(run / request["file"]).read_bytes(),
            headers={"content-type": request["content_type"], "user-agent": request["user_agent"]},
        )
        assert response.status_code == 200, response.text


def _expected(run: Path) -> dict[str, dict[str, Any]]:
    expected = json.loads((run / "expected.json").read_text())
    flags: dict[str, dict[str, Any]] = {}
    for entry in expected["successes"]:
        flag = flags.setdefault(
            entry["flag_key"], {"variants": Counter(), "reasons": Counter(), "errors": 0}
        )
        flag["variants"][entry["variant"]] += entry["count"]
        flag["reasons"][entry["reason"].lower()] += entry["count"]
    for flag_key, count in expected["errors"].items():
        flag = flags.setdefault(
            flag_key, {"variants": Counter(), "reasons": Counter(), "errors": 0}
        )
        flag["errors"] += count
        flag["reasons"]["error"] += count
    return flags


@pytest.mark.parametrize("encoding", ["json", "proto"])
def test_a_recorded_metrics_hook_run_gives_the_evaluated_counts_per_flag_variant_and_reason(
    server: BackgroundServer, encoding: str
) -> None:
    run = FIXTURES / encoding
    _replay(server, run)

    answer = httpx.get(f"{server.url}/api/metrics").json()
    counted = {flag["flag_key"]: flag for flag in answer["flags"]}
    expected = _expected(run)
    assert set(counted) == set(expected)
    for flag_key, flag in expected.items():
        assert counted[flag_key]["by_variant"] == dict(flag["variants"]), flag_key
        assert counted[flag_key]["by_reason"] == dict(flag["reasons"]), flag_key
        assert counted[flag_key]["errors"] == flag["errors"], flag_key
        successes = sum(flag["variants"].values())
        assert counted[flag_key]["evaluations"] == successes + flag["errors"], flag_key
    health = httpx.get(f"{server.url}/api/health").json()
    assert health["receiver"]["data_points_received"] == answer["data_points_received"] > 0
    # Counters are not evaluations: nothing is stored as one.
    assert health["stored"] == 0


def test_api_metrics_filters_by_flag_and_refuses_unknown_parameters(
    server: BackgroundServer,
) -> None:
    _replay(server, FIXTURES / "json")
    answer = httpx.get(f"{server.url}/api/metrics", params={"flag_key": "max-items"}).json()
    assert [flag["flag_key"] for flag in answer["flags"]] == ["max-items"]
    response = httpx.get(f"{server.url}/api/metrics", params={"flag": "max-items"})
    assert response.status_code == 400
    assert "flag_key" in response.json()["error"]


def test_any_metrics_payload_is_acknowledged_and_its_data_points_counted(
    server: BackgroundServer,
) -> None:
    document = {
        "resourceMetrics": [
            {
                "scopeMetrics": [
                    {
                        "metrics": [
                            {"name": "g", "gauge": {"dataPoints": [{"asDouble": 1.5}]}},
                            {
                                "name": "h",
                                "histogram": {
                                    "dataPoints": [{"count": "2", "bucketCounts": ["1", "1"]}]
                                },
                            },
                            {
                                "name": "s",
                                "summary": {"dataPoints": [{"count": "1"}, {"count": "3"}]},
                            },
                        ]
                    }
                ]
            }
        ]
    }
    response = httpx.post(f"{server.url}/v1/metrics", json=document)
    assert response.status_code == 200
    assert response.json() == {}
    health = httpx.get(f"{server.url}/api/health").json()["receiver"]
    assert health["data_points_received"] == 4
    assert httpx.get(f"{server.url}/api/metrics").json()["flags"] == []


def test_a_malformed_metrics_body_is_a_400_and_counted(server: BackgroundServer) -> None:
    response = httpx.post(
        f"{server.url}/v1/metrics",
        content=b"\xff\xff not protobuf",
        headers={"content-type": "application/x-protobuf"},
    )
    assert response.status_code == 400
    assert httpx.get(f"{server.url}/api/health").json()["receiver"]["bad_requests"] == 1
    with pytest.raises(OtlpDecodeError):
        read_metrics(b'{"resourceMetrics": 3}', "json")


def _request(
    value: int, temporality: AggregationTemporality.ValueType, *, key: object = "f"
) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = "feature_flag.evaluation_success_total"
    metric.sum.aggregation_temporality = temporality
    point = metric.sum.data_points.add()
    point.as_int = value
    point.start_time_unix_nano = 1
    if isinstance(key, str):
        attribute = point.attributes.add()
        attribute.key = "feature_flag.key"
        attribute.value.string_value = key
    return request


def test_a_cumulative_series_takes_its_latest_value_and_a_delta_series_adds_up() -> None:
    cumulative = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    delta = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    store = FlagMetricsStore()
    for value in (2, 5, 5):
        store.add(map_metrics(_request(value, cumulative)).series)
    assert store.flags()[0].successes == 5

    store = FlagMetricsStore()
    for value in (2, 5, 5):
        store.add(map_metrics(_request(value, delta)).series)
    assert store.flags()[0].successes == 12


def test_a_counter_point_without_a_flag_key_is_counted_but_not_kept() -> None:
    batch = map_metrics(_request(3, CUMULATIVE, key=None))
    assert (batch.received, batch.series) == (1, ())


def test_the_store_keeps_at_most_max_series_and_counts_what_it_drops() -> None:
    store = FlagMetricsStore(max_series=1)
    store.add(map_metrics(_request(1, CUMULATIVE, key="a")).series)
    store.add(map_metrics(_request(1, CUMULATIVE, key="b")).series)
    assert [flag.flag_key for flag in store.flags()] == ["a"]
    assert store.dropped_points == 1


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (1.5, TypeError), (True, TypeError)])
def test_the_store_rejects_a_bad_max_series(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        FlagMetricsStore(max_series=value)
