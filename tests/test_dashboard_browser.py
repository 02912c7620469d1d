"""The dashboard in headless Chromium, driven by Playwright.

The browser is found by ``tests/browser.py`` (``FLAGSCOPE_CHROMIUM``, then the PATH,
then Playwright's own browsers); ``make test`` installs Debian's ``chromium`` only when
none is found. If it cannot be launched these tests fail; they never skip.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from playwright.sync_api import Browser, Page, expect, sync_playwright

from browser import find_chromium
from flagscope._telemetry import semconv
from flagscope.server import BackgroundServer, serve_in_background

CHROMIUM = find_chromium()
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
HOSTILE = "<img src=x onerror=alert(1)>"
# (flag key, variant, JSON-encoded value, targeting key), sent in this order.
EVALUATIONS = [
    ("checkout", "on", "true", "alice"),
    ("checkout", "on", "true", "bob"),
    ("checkout", "off", "false", "carol"),
    ("checkout", "on", "true", "dave"),
    ("banner", "red", json.dumps(HOSTILE), "alice"),
    (HOSTILE, HOSTILE, json.dumps(HOSTILE), HOSTILE),
]


def _send(server: BackgroundServer, evaluations: list[tuple[str, str, str, str]]) -> None:
    """Evaluate through the OTel SDK and its OTLP/HTTP exporter, as any app would."""
    provider = TracerProvider(resource=Resource.create({"service.name": "browser-test"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{server.url}/v1/traces"))
    )
    tracer = provider.get_tracer("browser-test")
    for key, variant, value, user in evaluations:
        with tracer.start_as_current_span("GET /") as span:
            span.add_event(
                semconv.EVENT_NAME,
                {
                    semconv.KEY: key,
                    semconv.RESULT_VARIANT: variant,
                    semconv.RESULT_VALUE: value,
                    semconv.RESULT_REASON: "static",
                    semconv.CONTEXT_ID: user,
                },
            )
    provider.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    running = serve_in_background(port=0)
    _send(running, EVALUATIONS)
    try:
        yield running
    finally:
        running.stop()


class Watched:
    """A page, with every dialog, page error and failed console message it raised."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture
def page(browser: Browser, server: BackgroundServer) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    watched = Watched(context.new_page())
    watched.page.goto(f"{server.url}/")
    try:
        yield watched
    finally:
        context.close()


def _flag_row(page: Page, key: str) -> Any:
    return page.locator("#flags-table tbody tr").filter(
        has=page.get_by_role("link", name=key, exact=True)
    )


def _cells(row: Any) -> list[str]:
    return [text.strip() for text in row.locator("td").all_inner_texts()]


def test_flags_table_shows_what_was_sent(page: Watched, tmp_path: Path) -> None:
    rows = page.page.locator("#flags-table tbody tr")
    expect(rows).to_have_count(3)

    checkout = _cells(_flag_row(page.page, "checkout"))
    assert checkout[0] == "checkout"
    assert checkout[1] == "4"
    assert checkout[2] == "on 75% · off 25%"
    assert checkout[3] == "static 100%"
    assert checkout[4] == "0%"
    assert checkout[5] == "4"
    assert checkout[6].endswith("ago")
    keys = [row.get_attribute("data-flag-key") for row in rows.all()]
    assert keys == sorted(["checkout", "banner", HOSTILE])
    page.page.screenshot(path=tmp_path / "flags.png", full_page=True)
    assert (tmp_path / "flags.png").stat().st_size > 0
    assert page.errors == []


def test_a_flag_view_charts_the_variant_split_and_lists_recent_evaluations(
    page: Watched, tmp_path: Path
) -> None:
    page.page.get_by_role("link", name="checkout", exact=True).click()

    expect(page.page.locator("#flag-title")).to_have_text("checkout")
    events = page.page.locator("#events-table tbody tr")
    expect(events).to_have_count(4)
    bars = page.page.locator("#chart svg rect.bar")
    expect(bars.first).to_be_visible()
    tips = bars.locator("title").all_text_contents()
    charted: dict[str, int] = {}
    for tip in tips:
        # "<time>: <variant> <count> of <total>"
        variant, count = tip.split(": ", 1)[1].split(" of ")[0].rsplit(" ", 1)
        charted[variant] = charted.get(variant, 0) + int(count)
    assert charted == {"on": 3, "off": 1}
    assert page.page.locator("#legend li").all_inner_texts() == ["off", "on"]
    rows = [_cells(row) for row in events.all()]
    # Newest first: the reverse of the sending order.
    assert [(row[1], row[2], row[4]) for row in rows] == [
        ("on", "true", "dave"),
        ("off", "false", "carol"),
        ("on", "true", "bob"),
        ("on", "true", "alice"),
    ]
    assert all(len(row[7]) == 32 and len(row[8]) == 16 for row in rows)
    assert page.page.locator("#page-info").inner_text() == "1\N{EN DASH}4 of 4, newest first"
    page.page.screenshot(path=tmp_path / "checkout.png", full_page=True)
    assert page.errors == []


def test_event_filters_narrow_the_recent_evaluations(page: Watched) -> None:
    page.page.get_by_role("link", name="checkout", exact=True).click()
    events = page.page.locator("#events-table tbody tr")
    expect(events).to_have_count(4)

    context_cell = events.first.locator("td").nth(4)

    page.page.select_option("#filter-variant", "off")
    expect(events).to_have_count(1)
    expect(context_cell).to_have_text("carol")

    page.page.select_option("#filter-variant", "")
    page.page.fill("#filter-context", "bob")
    page.page.dispatch_event("#filter-context", "change")
    expect(context_cell).to_have_text("bob")
    expect(events).to_have_count(1)

    page.page.fill("#filter-context", "")
    page.page.check("#filter-errors")
    expect(page.page.locator("#page-info")).to_have_text("no matching evaluations")
    expect(events).to_have_count(0)


def test_hostile_flag_keys_and_values_render_as_text(page: Watched, tmp_path: Path) -> None:
    hostile_link = page.page.get_by_role("link", name=HOSTILE, exact=True)
    expect(hostile_link).to_have_count(1)
    assert hostile_link.inner_text() == HOSTILE

    hostile_link.click()
    expect(page.page.locator("#flag-title")).to_have_text(HOSTILE)
    row = page.page.locator("#events-table tbody tr")
    expect(row).to_have_count(1)
    cells = _cells(row)
    assert cells[1] == HOSTILE
    assert cells[2] == json.dumps(HOSTILE)
    assert cells[4] == HOSTILE
    assert page.page.locator("#legend li").all_inner_texts() == [HOSTILE]

    page.page.goto(page.page.url.split("#")[0] + "#/flag/banner")
    expect(page.page.locator("#events-table tbody tr")).to_have_count(1)
    assert _cells(page.page.locator("#events-table tbody tr"))[2] == json.dumps(HOSTILE)

    page.page.screenshot(path=tmp_path / "hostile.png", full_page=True)
    assert page.page.locator("img").count() == 0
    assert page.dialogs == []
    assert page.errors == []


def test_live_refresh_shows_new_evaluations(page: Watched, server: BackgroundServer) -> None:
    count_cell = _flag_row(page.page, "checkout").locator("td").nth(1)
    expect(count_cell).to_have_text("4")

    _send(server, [("checkout", "off", "false", "erin"), ("late-flag", "a", "1", "erin")])

    expect(count_cell).to_have_text("5", timeout=15_000)
    expect(page.page.locator("#flags-table tbody tr")).to_have_count(4, timeout=15_000)
    assert _cells(_flag_row(page.page, "checkout"))[2] == "on 60% · off 40%"


def test_flag_evaluation_metrics_show_beside_the_flags_when_counters_arrive(
    page: Watched, server: BackgroundServer
) -> None:
    metrics = page.page.locator("#metrics-view")
    expect(metrics).to_be_hidden()

    run = Path(__file__).parent / "fixtures" / "otlp-js-metrics" / "json"
    for request in json.loads((run / "requests.json").read_text()):
        response = page.page.request.post(
            server.url + request["path"],
            data=(run / request["file"]).read_bytes(),
            headers={"content-type": request["content_type"]},
        )
        assert response.ok

    expect(metrics).to_be_visible(timeout=15_000)
    row = page.page.locator("#metrics-table tbody tr").filter(
        has=page.page.get_by_text("new-checkout", exact=True)
    )
    assert _cells(row)[:2] == ["new-checkout", "5"]
    assert _cells(row)[2] == "off 60% · on 40%"
    assert _cells(row)[3] == "targeting_match 100%"
    errors = page.page.locator("#metrics-table tbody tr").filter(
        has=page.page.get_by_text("no-such-flag", exact=True)
    )
    assert _cells(errors)[4] == "2"
    assert page.errors == []
