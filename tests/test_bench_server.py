"""A smoke run of benchmarks/bench_server.py: it runs and loses nothing (no timing checks)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_server.py"


def test_bench_server_runs_in_quick_mode_and_stores_every_event_sent() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--batch", "20"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        cwd=SCRIPT.parent,
    )

    assert re.search(r"^accepted spans per second: [\d,]+$", result.stdout, re.M)
    (line,) = re.findall(r"^events stored / events sent: .*$", result.stdout, re.M)
    stored, sent = (int(n) for n in re.findall(r"(\d+) / (\d+)", line)[0])
    assert stored == sent > 0
    assert line.endswith("PASS")
    assert "non-200: 0" in result.stdout
