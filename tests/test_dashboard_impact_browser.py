"""The dashboard's impact panel in headless Chromium, on seeded traffic with a known answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from playwright.sync_api import Browser, expect, sync_playwright

from flagscope.server import BackgroundServer, serve_in_background
from impact_traffic import FLAG, Behaviour, drive_into
from otlp_payloads import traces_protobuf
from test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, Watched

HOSTILE_VARIANT = "<img src=x onerror=alert(1)>"
ODD_KEYS = ("..", ".", "tiny/impact")


def _post(server: BackgroundServer, *exporters: InMemorySpanExporter) -> None:
    spans = [span for memory in exporters for span in memory.get_finished_spans()]
    for start in range(0, len(spans), 500):
        response = httpx.post(
            f"{server.url}/v1/traces",
            content=traces_protobuf(spans[start : start + 500]),
            headers={"content-type": "application/x-protobuf"},
        )
        assert response.status_code == 200


@pytest.fixture(scope="module")
def impact_server() -> Iterator[BackgroundServer]:
    """2,000 requests of a rollout whose new variant fails 4x as often; a tiny second flag."""
    memory = InMemorySpanExporter()
    drive_into(
        memory,
        {"off": Behaviour(0.02, 80.0), HOSTILE_VARIANT: Behaviour(0.08, 120.0)},
        2000,
        31,
        weights={"off": 0.6, HOSTILE_VARIANT: 0.4},
    )
    # Each drive shuts its provider down, and with it the exporter: one exporter each.
    tiny = InMemorySpanExporter()
    drive_into(tiny, {"a": Behaviour(0.5, 80.0), "b": Behaviour(0.0, 80.0)}, 12, 32, flag="tiny")
    # Keys a URL path cannot name: the browser resolves ".." and "." in a path.
    odd = []
    for seed, key in enumerate(ODD_KEYS, 33):
        exporter = InMemorySpanExporter()
        drive_into(exporter, {"a": Behaviour(0.0, 80.0)}, 7, seed, flag=key)
        odd.append(exporter)
    running = serve_in_background(port=0)
    try:
        _post(running, memory, tiny, *odd)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, impact_server: BackgroundServer) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    watched = Watched(context.new_page())
    try:
        yield watched
    finally:
        context.close()


def test_the_panel_names_the_worse_variant_with_its_interval_and_latency(
    page: Watched, impact_server: BackgroundServer, tmp_path: Path
) -> None:
    page.page.goto(f"{impact_server.url}/#/flag/{FLAG}")
    verdict = page.page.locator("#impact-verdict")
    expect(verdict).to_contain_text("is hurting", timeout=15_000)
    expect(verdict).to_contain_text(HOSTILE_VARIANT)
    rows = page.page.locator("#impact-table tbody tr")
    expect(rows).to_have_count(2)
    cells = {
        row.get_attribute("data-variant"): [c.strip() for c in row.locator("td").all_inner_texts()]
        for row in rows.all()
    }
    base, new = cells["off"], cells[HOSTILE_VARIANT]
    assert base[6] == "baseline"
    assert new[6] == "worse"
    # error rate "x.x% (low-high)" (an en dash), then p50, p95, p99 in ms
    assert "%" in new[2]
    assert "\u2013" in new[2]
    assert float(new[3]) > float(base[3])
    assert int(new[1]) + int(base[1]) == 2000
    page.page.screenshot(path=tmp_path / "impact.png", full_page=True)
    assert page.page.locator("img").count() == 0
    assert page.dialogs == []
    assert page.errors == []


def test_without_enough_requests_the_panel_says_so_and_shows_no_figures(
    page: Watched, impact_server: BackgroundServer
) -> None:
    page.page.goto(f"{impact_server.url}/#/flag/tiny")
    verdict = page.page.locator("#impact-verdict")
    expect(verdict).to_contain_text("Not enough requests", timeout=15_000)
    expect(verdict).to_contain_text("100 a variant needed")
    expect(page.page.locator("#impact-table")).to_be_hidden()
    assert page.errors == []


@pytest.mark.parametrize("key", ODD_KEYS)
def test_the_panel_of_a_flag_no_path_can_name_is_that_flags(
    page: Watched, impact_server: BackgroundServer, key: str
) -> None:
    """The panel asks with the key in the query: ``..``, ``.`` and a key ending in
    ``/impact`` reach their own flag (7 requests), not another or a 404."""
    page.page.goto(f"{impact_server.url}/#/flag/{quote(key, safe='')}")
    expect(page.page.locator("#flag-title")).to_have_text(key, timeout=15_000)
    verdict = page.page.locator("#impact-verdict")
    expect(verdict).to_contain_text("the most any has is 7", timeout=15_000)
    assert page.errors == []
