"""A smoke run of benchmarks/bench_query.py: it runs and prints every figure (no timing checks)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_query.py"


def test_bench_query_runs_in_quick_mode_and_prints_every_figure() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    verdicts = re.findall(r"^\(([a-d])\) .*\(target [^)]*\) (PASS|MISS)$", result.stdout, re.M)
    assert [label for label, _ in verdicts] == ["a", "b", "c", "d"]
    assert "collector: 2000 events, 50 flags (full)" in result.stdout
