"""Variant impact in the views: the JSON API, ``flagscope report --impact``, the pytest capture."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flagscope._cli.impact_report import IMPACT_CSV_COLUMNS
from flagscope._cli.main import cli
from flagscope.server import BackgroundServer, serve_in_background
from flagscope.testing import FlagEvaluationCapture, capture_flag_evaluations
from impact_traffic import FLAG, Behaviour, drive_into, send_requests
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
    [
        ({"scope": "trace"}, "scope"),
        ({"colour": "red"}, "unknown query parameter"),
        # A misspelt baseline would judge every variant against nothing.
        ({"baseline": "contrl"}, f"baseline 'contrl' of flag {FLAG!r} was never served; served: "),
        ([("scope", "span"), ("scope", "request")], "'scope' may be given once"),
        ([("baseline", "control"), ("baseline", "treatment")], "'baseline' may be given once"),
    ],
)
def test_the_api_refuses_bad_parameters_with_400(
    impact_server: BackgroundServer, params: Any, message: str
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


# -- the pytest capture -------------------------------------------------------------------


def _captured(variants: dict[str, Behaviour], requests: int) -> FlagEvaluationCapture:
    provider = TracerProvider()
    with capture_flag_evaluations(provider) as capture:
        send_requests(provider.get_tracer("app"), variants, requests, 21)
    return capture


def test_assert_no_regression_passes_when_the_variants_behave_alike() -> None:
    capture = _captured({"control": CONTROL, "treatment": CONTROL}, 1500)
    impact = capture.assert_no_regression(FLAG, baseline="control")
    assert impact.variant("treatment").verdict == "no_difference"


def test_assert_no_regression_fails_with_a_table_of_the_variants() -> None:
    capture = _captured({"control": CONTROL, "treatment": WORSE}, 1500)
    with pytest.raises(AssertionError, match="made requests fail more") as failure:
        capture.assert_no_regression(FLAG, baseline="control")
    message = str(failure.value)
    assert "'treatment'" in message
    assert "error rate (95% CI)" in message
    assert "worse" in message


def test_assert_no_regression_refuses_to_pass_on_too_little_traffic() -> None:
    capture = _captured({"control": CONTROL, "treatment": WORSE}, 60)
    with pytest.raises(AssertionError, match="nothing was judged"):
        capture.assert_no_regression(FLAG, baseline="control")
    capture.assert_no_regression(FLAG, baseline="control", require_verdict=False)


@pytest.mark.parametrize("require_verdict", [True, False])
def test_assert_no_regression_with_a_baseline_never_served_fails_naming_it(
    require_verdict: bool,
) -> None:
    """A misspelt baseline would leave every variant compared with nothing, unjudged."""
    capture = _captured({"control": CONTROL, "treatment": WORSE}, 600)
    with pytest.raises(AssertionError) as failure:
        capture.assert_no_regression(FLAG, baseline="contrl", require_verdict=require_verdict)
    message = str(failure.value)
    assert message.startswith(f"baseline 'contrl' of flag {FLAG!r} was never served; served: ")
    assert sorted(message.split("served: ")[1].split(", ")) == ["'control'", "'treatment'"]


def test_assert_no_regression_on_a_flag_never_evaluated_fails() -> None:
    capture = _captured({"control": CONTROL}, 5)
    with pytest.raises(AssertionError, match="never evaluated"):
        capture.assert_no_regression("other-flag")


@pytest.fixture(scope="module")
def two_flag_server() -> Iterator[BackgroundServer]:
    """FLAG served as control or treatment; "other" as a or b, never as control."""
    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    drive_into(first, {"control": CONTROL, "treatment": CONTROL}, 40, 21)
    drive_into(second, {"a": CONTROL, "b": CONTROL}, 40, 22, flag="other")
    spans = [*first.get_finished_spans(), *second.get_finished_spans()]
    running = serve_in_background(port=0)
    try:
        response = httpx.post(
            f"{running.url}/v1/traces",
            content=traces_protobuf(spans),
            headers={"content-type": "application/x-protobuf"},
        )
        assert response.status_code == 200
        yield running
    finally:
        running.stop()


def test_report_impact_with_a_baseline_skips_the_flags_that_never_served_it(
    two_flag_server: BackgroundServer,
) -> None:
    result = CliRunner().invoke(
        cli,
        [
            *("report", "--url", two_flag_server.url, "--impact"),
            *("--baseline", "control", "--format", "json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert [impact["flag_key"] for impact in json.loads(result.stdout)] == [FLAG]
    assert "skipped flag 'other': it never served the baseline 'control'" in result.stderr


def test_report_impact_of_a_given_flag_that_never_served_the_baseline_is_an_error(
    two_flag_server: BackgroundServer,
) -> None:
    result = CliRunner().invoke(
        cli,
        [
            *("report", "--url", two_flag_server.url, "--impact"),
            *("--flag", "other", "--baseline", "control"),
        ],
    )
    assert result.exit_code == 1
    assert "baseline 'control' of flag 'other' was never served; served: " in result.stderr


def test_report_impact_table_says_the_flags_were_skipped_not_that_none_is_stored(
    two_flag_server: BackgroundServer,
) -> None:
    result = CliRunner().invoke(
        cli, ["report", "--url", two_flag_server.url, "--impact", "--baseline", "nope"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"no flag to judge at {two_flag_server.url}: the 2 stored were skipped (see above)"
    )
    assert result.stderr.count("it never served the baseline 'nope'") == 2


ODD_KEYS = (".", "..", "checkout/impact")


@pytest.fixture(scope="module")
def odd_keys_server() -> Iterator[BackgroundServer]:
    """Flags no URL path can name, and ``checkout``, whose impact route the last shadows."""
    running = serve_in_background(port=0)
    try:
        for seed, key in enumerate(("checkout", *ODD_KEYS), 40):
            memory = InMemorySpanExporter()
            drive_into(memory, {"a": CONTROL, "b": WORSE}, 12, seed, flag=key)
            response = httpx.post(
                f"{running.url}/v1/traces",
                content=traces_protobuf(memory.get_finished_spans()),
                headers={"content-type": "application/x-protobuf"},
            )
            assert response.status_code == 200
        yield running
    finally:
        running.stop()


@pytest.mark.parametrize("key", ODD_KEYS)
def test_the_query_form_reaches_flags_no_path_can_name(
    odd_keys_server: BackgroundServer, key: str
) -> None:
    url = odd_keys_server.url
    summary = httpx.get(f"{url}/api/flag", params={"flag_key": key})
    assert summary.status_code == 200
    assert (summary.json()["flag_key"], summary.json()["count"]) == (key, 12)
    impact = httpx.get(f"{url}/api/flag/impact", params={"flag_key": key, "scope": "span"})
    assert impact.status_code == 200
    document = impact.json()
    assert (document["flag_key"], document["scope"]) == (key, "span")
    assert sum(item["evaluations"] for item in document["variants"]) == 12


def test_a_key_ending_in_impact_is_shadowed_in_the_path_but_not_in_the_query(
    odd_keys_server: BackgroundServer,
) -> None:
    url = odd_keys_server.url
    by_path = httpx.get(f"{url}/api/flags/checkout%2Fimpact").json()
    assert by_path["flag_key"] == "checkout"  # the impact route's answer for "checkout"
    by_query = httpx.get(f"{url}/api/flag", params={"flag_key": "checkout/impact"}).json()
    assert (by_query["flag_key"], by_query["count"]) == ("checkout/impact", 12)


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/flag", {}, "flag_key is required"),
        ("/api/flag/impact", {}, "flag_key is required"),
        ("/api/flag", [("flag_key", "."), ("flag_key", "..")], "flag_key must be given once"),
        ("/api/flag/impact", [("flag_key", "."), ("flag_key", "..")], "given once"),
        ("/api/flag/impact", {"flag_key": ".", "colour": "red"}, "unknown query parameter"),
        ("/api/flag", {"flag_key": ".", "scope": "span"}, "unknown query parameter"),
    ],
)
def test_the_query_form_refuses_a_missing_repeated_or_unknown_parameter(
    odd_keys_server: BackgroundServer, path: str, params: Any, message: str
) -> None:
    response = httpx.get(f"{odd_keys_server.url}{path}", params=params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_the_query_form_answers_404_for_a_flag_never_seen(
    odd_keys_server: BackgroundServer,
) -> None:
    for path in ("/api/flag", "/api/flag/impact"):
        response = httpx.get(f"{odd_keys_server.url}{path}", params={"flag_key": "..."})
        assert response.status_code == 404


def test_report_impact_reaches_flags_no_path_can_name(odd_keys_server: BackgroundServer) -> None:
    result = CliRunner().invoke(
        cli,
        ["report", "--url", odd_keys_server.url, "--impact", "--format", "json"]
        + [argument for key in ODD_KEYS for argument in ("--flag", key)],
    )
    assert result.exit_code == 0, result.output
    documents = json.loads(result.stdout)
    assert [document["flag_key"] for document in documents] == list(ODD_KEYS)
