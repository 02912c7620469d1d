"""examples/querying.py runs, and docs/query.md shows its code and output verbatim."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "querying.py"


def _run_example() -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout


def _querying_section() -> str:
    page = (ROOT / "docs" / "query.md").read_text(encoding="utf-8")
    start = page.index("## The query API\n")
    return page[start : page.index("\n## ", start + 1)]


def test_querying_example_prints_filters_waits_aggregates_and_exports() -> None:
    lines = _run_example().splitlines()
    assert "vip evaluations: 1" in lines
    assert "latest new-checkout users: ['dave', 'dave']" in lines
    assert "errors: [('retired-flag', 'flag_not_found')]" in lines
    assert (
        "new-checkout: count=6 variants={'off': 5, 'on': 1} error_rate=0.00 max_per_trace=3"
        in lines
    )
    assert "new-checkout evaluations per trace: [3, 1, 1, 1]" in lines
    assert "never evaluated: ['dark-mode']" in lines
    assert "failing: {'retired-flag': 1}" in lines
    assert lines[-1] == "wrote 10 lines to evaluations.jsonl"


def test_docs_querying_code_is_the_examples_code() -> None:
    blocks = re.findall(r"```python\n(.*?)```", _querying_section(), re.S)
    source = EXAMPLE.read_text(encoding="utf-8")
    start = source.index("    query = collector.query")
    body = textwrap.dedent(source[start : source.index("\n\n\nif __name__")])
    assert blocks[0] == body + "\n"


def test_docs_querying_output_is_what_the_example_prints() -> None:
    (output,) = re.findall(r"prints:\n\n```\n(.*?)```", _querying_section(), re.S)
    assert output == _run_example()
