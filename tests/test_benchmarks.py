"""Smoke runs of the benchmark scripts: they run and print every labelled figure.

No timing is checked here (machines are shared and noisy); ``make bench`` gives figures.
The server benchmark's one hard check stays: every event sent is stored.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
NUMBER = r"[0-9]+(?:\.[0-9]+)?"
VERDICT = r"\(target [^)]*\) (PASS|MISS)"


def _run(
    script: str,
    *arguments: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
) -> str:
    """Run a benchmark script to its end (it must succeed); return what it printed.

    ``env`` is added to this process's environment.
    """
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    return result.stdout


def _run_quick(script: str, *options: str) -> str:
    out = _run(script, "--quick", *options)
    assert out.startswith("quick mode:")
    return out


def test_bench_collector_prints_each_figure_with_its_target_and_verdict() -> None:
    out = _run_quick("bench_collector.py", "--repeats", "1")

    verdicts = re.findall(rf"^\(([a-d])\) [^:]+: {NUMBER}x? {VERDICT}$", out, re.M)
    assert [label for label, _ in verdicts] == ["a", "b", "c", "d"]
    assert re.search(
        rf"^\(a\) await record, full max_size=10000: ours {NUMBER} us, "
        rf"litestar-flags {NUMBER} us per event$",
        out,
        re.M,
    )
    assert re.search(rf"^\(a\) record, full max_size=10000: {NUMBER} us per event$", out, re.M)
    assert re.search(
        rf"^\(a\) record, full max_size=10000, summary_rollups=True, every flag with a "
        rf"rollup: {NUMBER} us per event \(without rollups {NUMBER} us\)$",
        out,
        re.M,
    )
    assert re.search(rf"^\(c\) get_events\(flag_key\), .* ours {NUMBER} us, litestar", out, re.M)
    assert re.search(
        rf"^\(c\) events\(flag_key\), synchronous, .*: {NUMBER} us per call", out, re.M
    )
    assert re.search(rf"^\(d\) bytes per stored event: {NUMBER} \(target <= 350\)", out, re.M)


def test_bench_exporter_prints_both_workloads_and_the_mapper_cost() -> None:
    out = _run_quick("bench_exporter.py", "--repeats", "1")

    for workload in (
        "span + one flag event",
        "request + child span with the flag event",
        "span + OpenFeature evaluation (TracingHook)",
    ):
        prefix = re.escape(f"exporter, {workload}: ")
        assert re.search(
            rf"^{prefix}per span, .*: InMemorySpanExporter {NUMBER} us, ours {NUMBER} us, "
            rf"floor {NUMBER} us$",
            out,
            re.M,
        )
        assert re.search(rf"^{prefix}ratio ours / InMemorySpanExporter .*: {NUMBER}", out, re.M)
        assert re.search(rf"^{prefix}ratio floor / InMemorySpanExporter .*: {NUMBER}", out, re.M)
        assert re.search(
            rf"^{prefix}outcome capture adds per span \(medians of 50 timed calls each, us\): "
            rf"-?{NUMBER} \(target <= 1.0\) (PASS|MISS)$",
            out,
            re.M,
        )
        assert re.search(
            rf"^{prefix}two pipelines without outcomes, measured alike, differ by -?{NUMBER} us "
            rf"per span$",
            out,
            re.M,
        )
    target_line = re.escape("exporter, span + one flag event: ratio ours / InMemorySpanExporter")
    assert re.search(rf"^{target_line} .*: {NUMBER} \(target <= 1.25\) (PASS|MISS)$", out, re.M)
    assert re.search(rf"^mapper: map_evaluation per TracingHook event .*: {NUMBER} us$", out, re.M)


def test_bench_query_prints_each_figure_with_its_target_and_verdict() -> None:
    out = _run_quick("bench_query.py", "--repeats", "1")

    verdicts = re.findall(r"^\(([a-e])\) .*\(target [^)]*\) (PASS|MISS)$", out, re.M)
    # (b) on the default collector and warm with rollups; (d) on both collectors.
    assert [label for label, _ in verdicts] == ["a", "b", "b", "c", "d", "d", "e"]
    assert "collector: 2000 events, 50 flags (full)" in out
    assert re.search(
        rf"^\(b\) per-flag summary, default collector: query {NUMBER} us, linear scan "
        rf"{NUMBER} us per flag$",
        out,
        re.M,
    )
    assert re.search(
        rf"^\(b\) per-flag summary, cold .*: query {NUMBER} us, linear scan {NUMBER} us per "
        rf"flag, {NUMBER}x faster \(no target: a first request\)$",
        out,
        re.M,
    )
    assert re.search(
        rf"^\(b\) per-flag summary, summary_rollups=True, warm .* speed-up vs a linear scan: "
        rf"{NUMBER}x \(target >= 50x\) (PASS|MISS)$",
        out,
        re.M,
    )
    assert re.search(
        rf"^\(d\) whole-collector summaries, summary_rollups=True, repeated: query {NUMBER} ms",
        out,
        re.M,
    )


def test_bench_server_stores_every_event_sent_in_both_encodings() -> None:
    out = _run_quick("bench_server.py", "--batch", "20")

    for encoding in ("protobuf", "json"):
        assert re.search(rf"^{encoding}: accepted spans per second: [\d,]+$", out, re.M)
        (line,) = re.findall(rf"^{encoding}: events stored / events sent: .*$", out, re.M)
        stored, sent = (int(n) for n in re.findall(r"(\d+) / (\d+)", line)[0])
        assert stored == sent > 0
        assert line.endswith("PASS")
        assert f"{encoding}: requests: " in out
    assert out.count("non-200: 0") == 2
    ratio_line = r"^OTLP/JSON throughput / protobuf throughput \(median of 3 .*: [\d.]+"
    assert re.search(ratio_line, out, re.M)
    assert re.search(
        rf"^\(c\) /api/flags at --max-size 20000, 20000 stored: first {NUMBER} ms, then median: "
        rf"{NUMBER} ms {VERDICT}$",
        out,
        re.M,
    )
    stalls = re.findall(rf"^\(d\) /api/health during .*: {NUMBER} ms {VERDICT}$", out, re.M)
    assert len(stalls) == 2
    assert re.search(
        rf"^\(e\) decode 001-traces.request.json \(\d+ bytes, 57 flag events\): "
        rf"read_traces {NUMBER} ms",
        out,
        re.M,
    )


def test_bench_coverage_prints_both_times_and_the_ratio() -> None:
    out = _run_quick("bench_coverage.py", "--repeats", "1")

    for label in ("a", "b"):
        for what in ("whole process", "pytest session"):
            assert re.search(
                rf"^\({label}\) 50 tests, {what}, best of 1: without coverage {NUMBER} s, "
                rf"with --flagscope-coverage {NUMBER} s$",
                out,
                re.M,
            )
    ratio = r", with / without \(median of paired rounds\): "
    assert re.search(rf"^\(a\) 50 tests, pytest session{ratio}{NUMBER} {VERDICT}$", out, re.M)
    assert len(re.findall(rf"^\([ab]\) 50 tests, .*{ratio}{NUMBER} \(no target\)$", out, re.M)) == 3


def test_count_pipeline_instructions_runs_every_pipeline_and_workload() -> None:
    """The instruction-count script behind docs/performance.md runs (under callgrind there)."""
    for mode, workload in (("memory", "one"), ("without", "request"), ("with", "openfeature")):
        _run("count_pipeline_instructions.py", mode, workload, "0", cwd=BENCHMARKS)
    # And with a small store, past its fill, the garbage collector off.
    _run(
        "count_pipeline_instructions.py",
        "with",
        "request",
        "50",
        cwd=BENCHMARKS,
        env={"SIZE": "20", "WARM_UP": "100", "NO_GC": "1"},
    )


def test_freeze_leak_prints_what_freezing_kept() -> None:
    out = _run("freeze_leak.py", "0.5", env={"FREEZE_LEAK_SECONDS": "1.5"}, timeout=120)
    assert re.fullmatch(
        r"freezing every 0\.5 s: [0-9]+ freezes, [1-9][0-9]* requests, [0-9]+ objects frozen; "
        r"cyclic garbage found after unfreezing: [0-9]+ objects\n",
        out,
    ), out


def test_bench_grpc_calls_prints_calls_per_second_for_each_tree() -> None:
    out = _run(
        "bench_grpc_calls.py",
        ".",
        cwd=BENCHMARKS.parent,
        env={"CALLS": "40", "ROUNDS": "1"},
        timeout=120,
    )
    assert re.fullmatch(
        rf".*/{re.escape(BENCHMARKS.parent.name)}: [0-9,]+ calls/s of 1 span\(s\), 4 senders\n",
        out,
    ), out
