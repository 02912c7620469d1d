"""The example scripts run as a newcomer would run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(example: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / example)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_quickstart_prints_every_captured_evaluation() -> None:
    result = _run("quickstart.py")
    lines = result.stdout.splitlines()
    assert lines[0] == "captured 8 flag evaluations:"
    rows = [line.split() for line in lines[2:10]]
    assert [row[0] for row in rows] == [
        "new-checkout",
        "banner-color",
        "max-items",
        "not-declared",
    ] * 2
    assert rows[1][1] == "'#c05543'"
    assert rows[2][1] == "10"
    assert rows[3][-1] == "error=flag_not_found"
    assert [row[4] for row in rows] == ["alice"] * 4 + ["bob"] * 4
    assert lines[-1] == "per flag: new-checkout=2, banner-color=2, max-items=2, not-declared=2"


def test_variant_impact_finds_the_worse_rollout() -> None:
    result = _run("variant_impact.py")
    lines = result.stdout.splitlines()
    assert lines[0] == "flag pricing-engine, baseline legacy, judged per request"
    assert lines[1].split()[0] == "legacy"
    assert lines[1].endswith("-> baseline")
    assert lines[2].split()[0] == "new-pricing"
    assert lines[2].endswith("-> worse")


def test_log_events_example_records_the_log_based_evaluation() -> None:
    result = _run("log_events.py")
    assert result.stdout.splitlines() == ["new-checkout True on targeting_match alice"]


def test_serve_in_process_example_serves_its_own_evaluations() -> None:
    result = _run("serve_in_process.py")
    url, summary = result.stdout.splitlines()
    assert url.startswith("http://127.0.0.1:")
    assert summary == "new-checkout: 1 evaluation, variants {'on': 1}"
