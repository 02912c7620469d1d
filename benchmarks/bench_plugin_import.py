"""What loading flagscope's pytest plugin adds to every pytest start (``python -X importtime``).

pytest loads every installed ``pytest11`` plugin at start, in every project that has
flagscope installed, whether or not a test uses the fixture. Each round starts a fresh
interpreter, imports pytest (already loaded when pytest loads plugins, so not counted),
then ``flagscope.testing._plugin``, and reads the plugin's cumulative import time from
``-X importtime``. The figure is the median over rounds; the target is 5 ms. It also
checks that no OpenTelemetry module was imported.

    .venv/bin/python benchmarks/bench_plugin_import.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys

TARGET_MS = 5.0
_LINE = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \| flagscope\.testing\._plugin$", re.M)
_PROBE = (
    "import pytest, sys; import flagscope.testing._plugin; "
    "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
)


def one_round() -> tuple[float, str]:
    """Import the plugin in a fresh interpreter: its cumulative ms, and the OTel modules."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _PROBE],
        capture_output=True,
        text=True,
        check=True,
    )
    match = _LINE.search(result.stderr)
    if match is None:
        raise RuntimeError(
            f"no import time for flagscope.testing._plugin:\n{result.stderr[-2000:]}"
        )
    return int(match.group(1)) / 1000, result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run, not figures")
    parser.add_argument("--repeats", type=int, default=15, help="fresh interpreters to time")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    if args.quick:
        print("quick mode: figures are not meaningful")
    rounds = [one_round() for _ in range(repeats)]
    times = [ms for ms, _ in rounds]
    otel = sorted({modules for _, modules in rounds} - {"[]"})
    median = statistics.median(times)
    verdict = "PASS" if median < TARGET_MS else "MISS"
    print(
        f"plugin import, python -X importtime, median of {repeats} fresh interpreters: "
        f"{median:.2f} ms (min {min(times):.2f}, max {max(times):.2f}) "
        f"(target < {TARGET_MS:g} ms) {verdict}"
    )
    print(f"OpenTelemetry modules imported by loading the plugin: {', '.join(otel) or 'none'}")


if __name__ == "__main__":
    main()
