"""What ``query.impact`` costs per call, in instructions (run under callgrind).

Wall-clock figures on a shared machine move by 10% or more; instruction counts do not.
Each run builds ``bench_query.py``'s figure (e) collector (``SIZE`` evaluations of one
flag, each in its own request with a known outcome, two variants), calls
``query.impact`` once to warm up, then ``CALLS`` more times.

Run, for example::

    for calls in 0 3; do
      PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python benchmarks/count_impact_instructions.py $calls 2>&1 | grep Collected
    done

(count[3] - count[0]) / 3 is what one call costs. An optional second argument is
``SIZE`` (default 100,000).
"""

from __future__ import annotations

import random
import sys

from bench_query import impact_collector


def main() -> None:
    calls = int(sys.argv[1])
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    collector = impact_collector(random.Random(1234), size)
    query = collector.query
    query.impact("new-checkout")
    for _ in range(calls):
        query.impact("new-checkout")


if __name__ == "__main__":
    main()
