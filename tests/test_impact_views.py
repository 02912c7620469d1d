"""Variant impact in every view: the JSON API, ``flagscope report --impact``, the pytest capture."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flagscope.cli import cli
from flagscope.impact_report import IMPACT_CSV_COLUMNS
from flagscope.server import BackgroundServer, serve_in_background
from impact_traffic import FLAG, Behaviour, drive_into
from otlp_payloads import traces_protobuf

CONTROL = Behaviour(0.02, 100.0)
WORSE = Behaviour(0.08, 160.0)


@pytest.fixture(scope="module")
def impact_server() -> Iterator[BackgroundServer]:
    """A server that received 3,000 seeded requests over OTLP, in batches of 500 spans."""
    memory = InMemorySpanExporter()
    drive_into(
        memory,
        {"control": CONTROL, "treatment": WORSE},
        3000,
        11,
        weights={"control": 0.7, "treatment": 0.3},
    )
    spans = list(memory.get_finished_spans())
    running = serve_in_background(port=0)
    try:
        for start in range(0, len(spans), 500):
            response = httpx.post(
                f"{running.url}/v1/traces",
                content=traces_protobuf(spans[start : start + 500]),
                headers={"content-type": "application/x-protobuf"},
            )
            assert response.status_code == 200
        yield running
    finally:
        running.stop()


def test_the_api_judges_the_worse_variant(impact_server: BackgroundServer) -> None:
    response = httpx.get(
        f"{impact_server.url}/api/flags/{FLAG}/impact", params={"baseline": "control"}
    )
    assert response.status_code == 200
    document = response.json()
    assert (document["flag_key"], document["baseline"], document["scope"]) == (
        FLAG,
        "control",
        "request",
    )
    verdicts = {item["variant"]: item["verdict"] for item in document["variants"]}
    assert verdicts == {"control": "baseline", "treatment": "worse"}
    treatment = next(item for item in document["variants"] if item["variant"] == "treatment")
    assert treatment["requests"] > 700
    assert len(treatment["error_rate_interval"]) == 2


def test_the_api_takes_the_scope_and_the_filters(impact_server: BackgroundServer) -> None:
    response = httpx.get(
        f"{impact_server.url}/api/flags/{FLAG}/impact",
        params={"scope": "span", "variant": "treatment"},
    )
    document = response.json()
    assert document["scope"] == "span"
    assert [item["variant"] for item in document["variants"]] == ["treatment"]


@pytest.mark.parametrize(
    ("params", "message"),
    [({"scope": "trace"}, "scope"), ({"colour": "red"}, "unknown query parameter")],
)
def test_the_api_refuses_bad_parameters_with_400(
    impact_server: BackgroundServer, params: dict[str, str], message: str
) -> None:
    response = httpx.get(f"{impact_server.url}/api/flags/{FLAG}/impact", params=params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_the_api_answers_404_for_a_flag_never_seen(impact_server: BackgroundServer) -> None:
    response = httpx.get(f"{impact_server.url}/api/flags/nothing-here/impact")
    assert response.status_code == 404


def test_report_impact_prints_a_row_per_variant_with_the_verdict(
    impact_server: BackgroundServer,
) -> None:
    result = CliRunner().invoke(
        cli, ["report", "--url", impact_server.url, "--impact", "--flag", FLAG]
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if FLAG in line]
    assert any("treatment" in line and "WORSE" in line for line in lines), result.output
    assert any("control" in line and "baseline" in line for line in lines), result.output


def test_report_impact_json_is_what_the_api_gives(impact_server: BackgroundServer) -> None:
    result = CliRunner().invoke(
        cli, ["report", "--url", impact_server.url, "--impact", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    (document,) = json.loads(result.output)
    api = httpx.get(f"{impact_server.url}/api/flags/{FLAG}/impact").json()
    assert document == api


def test_report_impact_csv_has_one_row_per_variant(impact_server: BackgroundServer) -> None:
    result = CliRunner().invoke(
        cli, ["report", "--url", impact_server.url, "--impact", "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert tuple(rows[0]) == IMPACT_CSV_COLUMNS
    assert sorted(row["variant"] for row in rows) == ["control", "treatment"]
