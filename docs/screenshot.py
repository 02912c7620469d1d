"""Regenerate docs/dashboard.png and docs/dashboard-flags.png from a demo run.

Run: ``.venv/bin/python docs/screenshot.py``; it finds Chromium as the browser test does
(``tests/browser.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from flagscope._cli.demo import DemoShop
from flagscope.server import serve_in_background

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent / "tests"))

from browser import find_chromium  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic"]


def main() -> None:
    """Run the demo shop against a server, then photograph its dashboard."""
    with serve_in_background(port=0) as server:
        shop = DemoShop(server.url)
        shop.run(rounds=14, pause=1.0)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=find_chromium(), args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(f"{server.url}/")
            page.wait_for_selector("#flags-table tbody tr")
            page.screenshot(path=DOCS / "dashboard-flags.png")
            page.get_by_role("link", name="new-checkout", exact=True).click()
            page.wait_for_selector("#chart svg rect.bar")
            page.wait_for_selector("#events-table tbody tr")
            page.set_viewport_size({"width": 1280, "height": 1000})
            page.screenshot(path=DOCS / "dashboard.png")
            browser.close()
        shop.shutdown()
    print(f"wrote {DOCS / 'dashboard.png'} and {DOCS / 'dashboard-flags.png'}")


if __name__ == "__main__":
    main()
