"""Helpers shared by the benchmark scripts: timing, verdict lines, typical producer input.

Machines here are shared and noisy, so every figure is measured several times in the
same run as its baseline, and a ratio is only ever taken between figures measured
side by side.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from flagscope._telemetry import semconv

# What OpenFeature's TracingHook (openfeature-hooks-opentelemetry 0.3.1) puts on a span
# event for a boolean flag served from a static variant (DESIGN.md section 4).
TYPICAL_ATTRIBUTES: dict[str, Any] = {
    semconv.KEY: "bool-flag",
    semconv.RESULT_VALUE: "true",
    semconv.RESULT_REASON: "static",
    semconv.RESULT_VARIANT: "on",
    semconv.CONTEXT_ID: "user-123",
    semconv.PROVIDER_NAME: "In-Memory Provider",
}


@dataclass(frozen=True, slots=True)
class Settings:
    """How hard a script works: ``--quick`` is for the smoke test, not for figures."""

    quick: bool
    repeats: int
    seed: int
    only: str | None = None


def parse_settings(description: str, figures: Sequence[str] = ()) -> Settings:
    """Parse the common options; ``figures`` names what ``--only`` may pick, if anything."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and few repeats: checks the script runs, figures mean nothing",
    )
    parser.add_argument("--repeats", type=int, default=None, help="timing repeats per figure")
    parser.add_argument("--seed", type=int, default=1234, help="random seed for the input")
    if figures:
        parser.add_argument("--only", choices=figures, help="measure this figure only")
    args = parser.parse_args()
    repeats = args.repeats if args.repeats is not None else (2 if args.quick else 7)
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.quick:
        print("quick mode: sizes and repeats are tiny, the figures below mean nothing")
    return Settings(
        quick=args.quick, repeats=repeats, seed=args.seed, only=getattr(args, "only", None)
    )


def best_ns_per_op(run: Callable[[], int], repeats: int) -> float:
    """Return the best (lowest) ns per operation over ``repeats`` runs.

    ``run`` does some operations and returns how many. The best run is the one
    least disturbed by the other processes on the machine.
    """
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        ops = run()
        elapsed = time.perf_counter_ns() - start
        best = min(best, elapsed / ops)
    return best


def median(values: list[float]) -> float:
    return statistics.median(values)


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def report(label: str, figure: str, target: str, passed: bool) -> None:
    """Print one labelled figure line: ``label: figure (target ...) PASS|MISS``."""
    print(f"{label}: {figure} (target {target}) {verdict(passed)}")


def flag_keys(count: int) -> list[str]:
    return [f"flag-{index:03d}" for index in range(count)]


def typical_attribute_stream(
    rng: random.Random, keys: list[str], users: list[str]
) -> Iterator[dict[str, Any]]:
    """Yield TracingHook-shaped attributes with the flag and user drawn from sets."""
    template = TYPICAL_ATTRIBUTES
    while True:
        attributes = dict(template)
        attributes[semconv.KEY] = rng.choice(keys)
        attributes[semconv.CONTEXT_ID] = rng.choice(users)
        yield attributes


def span_ids(rng: random.Random) -> tuple[int, int]:
    """Return a random (trace id, span id) pair as the SDK holds them: ints."""
    return rng.getrandbits(128) | 1, rng.getrandbits(64) | 1
