"""What ``pytest --flagscope-coverage`` adds to a test run, against the same run without it.

A generated suite of 1,000 tests (10 files of 100), each evaluating one flag through
OpenFeature with its ``TracingHook`` inside a span, runs in a fresh pytest process with
and without ``--flagscope-coverage``, in alternating rounds. Two applications:
  (a) the application sets an SDK ``TracerProvider`` itself (as an instrumented app
      does): the figure is what coverage costs; target under 10% more.
  (b) nothing sets a provider: coverage installs one, so every span becomes a
      recording span, which the run without coverage never pays (no target).

Each mode runs ``--repeats`` times, the two modes back to back in each round. Printed:
the best time of each mode, for the whole process (start-up, imports, collection, the
run, timed from outside) and for pytest's own session time ("in N s": collection and
run); and the median over rounds of the with/without ratio, the steadier figure on a
shared machine, on which the target is checked (session time, app (a)). Run:
``.venv/bin/python benchmarks/bench_coverage.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import Settings, median, parse_settings, report

APP = """
from openfeature import api
from openfeature.contrib.hook.opentelemetry import TracingHook
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider
from opentelemetry import trace
{provider}
tracer = trace.get_tracer("bench-app")
api.set_provider_and_wait(
    InMemoryProvider(
        {{f"flag-{{n}}": InMemoryFlag("on", {{"on": True, "off": False}}) for n in range(10)}}
    ),
    "bench",
)
client = api.get_client("bench")
client.add_hooks([TracingHook()])


def evaluate(key, user):
    with tracer.start_as_current_span("request"):
        return client.get_boolean_value(key, False, EvaluationContext(targeting_key=user))
"""

SET_PROVIDER = """
from opentelemetry.sdk.trace import TracerProvider

trace.set_tracer_provider(TracerProvider())
"""

TEST = """
from benchapp import evaluate


def test_{index}():
    assert evaluate("flag-{flag}", "user-{index}") is True
"""

INI = "[pytest]\naddopts = -p no:cacheprovider\nasyncio_default_fixture_loop_scope = function\n"
SESSION_TIME = re.compile(r" in ([0-9.]+)s")


def write_suite(directory: Path, tests: int, *, app_sets_provider: bool) -> None:
    files = 10
    (directory / "pytest.ini").write_text(INI)
    provider = SET_PROVIDER if app_sets_provider else ""
    (directory / "benchapp.py").write_text(APP.format(provider=provider))
    for file_index in range(files):
        body = "".join(
            TEST.format(index=index, flag=index % 10) for index in range(file_index, tests, files)
        )
        (directory / f"test_generated_{file_index}.py").write_text(body)


def run_pytest(directory: Path, tests: int, *options: str) -> tuple[float, float]:
    """Run the suite once; return (process seconds, pytest's session seconds)."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *options],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0 or f"{tests} passed" not in result.stdout:
        raise SystemExit(f"the generated suite did not pass:\n{result.stdout}\n{result.stderr}")
    if options and "flag coverage" not in result.stdout:
        raise SystemExit(f"no flag coverage section:\n{result.stdout}")
    session = SESSION_TIME.findall(result.stdout)
    return elapsed, float(session[-1])


def compare(settings: Settings, label: str, tests: int, *, app_sets_provider: bool) -> None:
    """Run both modes in paired rounds; print best times and the median paired ratio."""
    modes: dict[str, tuple[str, ...]] = {"without": (), "with": ("--flagscope-coverage",)}
    times: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        write_suite(directory, tests, app_sets_provider=app_sets_provider)
        if not settings.quick:
            run_pytest(directory, tests)  # warm the file system and the bytecode caches
        for round_index in range(settings.repeats):
            # Alternate which mode runs first: neither always gets the quieter moment.
            order = list(modes) if round_index % 2 == 0 else list(reversed(modes))
            for mode in order:
                times[mode].append(run_pytest(directory, tests, *modes[mode]))
    for index, what in enumerate(("whole process", "pytest session")):
        off = [run[index] for run in times["without"]]
        on = [run[index] for run in times["with"]]
        # The two runs of a round share the machine's load of the moment: their ratio
        # is steadier on a shared machine than a ratio of two separate bests.
        ratio = median([b / a for a, b in zip(off, on, strict=True)])
        print(
            f"({label}) {tests} tests, {what}, best of {settings.repeats}: without coverage "
            f"{min(off):.2f} s, with --flagscope-coverage {min(on):.2f} s"
        )
        figure = f"{ratio:.3f}"
        line = f"({label}) {tests} tests, {what}, with / without (median of paired rounds)"
        if app_sets_provider and what == "pytest session":
            report(line, figure, "< 1.10", ratio < 1.10)
        else:
            print(f"{line}: {figure} (no target)")


def main() -> None:
    settings = parse_settings(__doc__.splitlines()[0])
    tests = 50 if settings.quick else 1_000
    compare(settings, "a", tests, app_sets_provider=True)
    compare(settings, "b", tests, app_sets_provider=False)


if __name__ == "__main__":
    main()
