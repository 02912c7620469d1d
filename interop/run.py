"""Run real JavaScript flag producers live against ``flagscope serve`` and check every field.

``make interop`` installs the producers (``interop/package.json``, exact versions, locked)
with npm and runs this script with the project's ``.venv`` Python. It starts
``flagscope serve`` on a free loopback port, runs ``producer.mjs`` once per configuration
below (OpenFeature's three OpenTelemetry hooks and LaunchDarkly's TracingHook, over
OTLP/HTTP JSON and protobuf, some gzip), waits until the server holds what each producer
sent, and compares every stored field with what the producer evaluated
(``interop/out/LABEL/expected.json``, written by the producer). Then
``metrics_producer.mjs`` runs OpenFeature's MetricsHook over OTLP metrics (JSON, then
protobuf) and the per-flag, per-variant, per-reason counts ``/api/metrics`` gained are
compared with what it evaluated (``of-metrics-*``: one outcome per flag). Records are matched by
trace id, span id and flag key (and time, when one span evaluates a flag twice).

Values compare as the producer's JSON model: strings stay strings, objects and arrays are
plain objects and arrays, ``True`` is not ``1``, and numbers compare as JavaScript numbers
(doubles), so ``1 == 1.0``. The last line is ``N passed, N failed`` (one per expected
record); the exit status is 1 when anything failed.

    .venv/bin/python interop/run.py [--only LABEL ...]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
PRODUCER = HERE / "producer.mjs"
START_TIMEOUT = 30.0
PRODUCER_TIMEOUT = 120.0
STORE_TIMEOUT = 15.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The server is on loopback: a proxy set for the outside world must not catch these calls.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Config:
    """One producer run: which SDK and hook, and how it exports."""

    label: str
    producer: str
    hook: str = ""
    encoding: str = "json"
    compression: str = "none"
    extra: tuple[str, ...] = ()

    def describe(self) -> str:
        """Say what runs, for the report."""
        hook = self.hook or "TracingHook"
        if "--ld-spans" in self.extra:
            hook += "(spans)"
        gzip = "+gzip" if self.compression == "gzip" else ""
        return f"{self.producer} {hook}, OTLP {self.encoding}{gzip}"


CONFIGS: tuple[Config, ...] = (
    Config("of-spanevent-json", "openfeature", "SpanEventHook", "json"),
    Config("of-spanevent-proto-gzip", "openfeature", "SpanEventHook", "proto", "gzip"),
    Config("of-span-json", "openfeature", "SpanHook", "json"),
    Config("of-span-proto", "openfeature", "SpanHook", "proto"),
    Config("of-event-json", "openfeature", "EventHook", "json"),
    Config("of-event-proto", "openfeature", "EventHook", "proto"),
    Config("ld-events-json", "launchdarkly", "", "json"),
    Config("ld-events-proto", "launchdarkly", "", "proto"),
    Config(
        "ld-spans-json-gzip",
        "launchdarkly",
        "",
        "json",
        "gzip",
        ("--ld-spans", "--ld-environment-id", "env-abc"),
    ),
)

# Fields every record has, compared as they are (``None`` included).
PLAIN_FIELDS = (
    "variant",
    "reason",
    "targeting_key",
    "provider_name",
    "flag_set_id",
    "version",
    "error_type",
    "error_message",
    "service_name",
    "trace_id",
    "span_id",
)
SPECIAL_NUMBERS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf, "-0": -0.0}
# JSON has no NaN or Infinity: over protobuf the receiver gets them exactly, but the JSON
# API can only spell them, today as their repr (``json_safe``), or as null.
API_SPELLINGS = {"NaN": ("nan", None), "Infinity": ("inf", None), "-Infinity": ("-inf", None)}
# Stored durations and timestamps are to the microsecond.
DURATION_TOLERANCE_MS = 0.001


# -- value equality ----------------------------------------------------------------------


def is_number(value: object) -> bool:
    """Tell a JSON number (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def same(expected: Any, stored: Any) -> bool:
    """Compare as JavaScript values: numbers as doubles, ``True`` is not ``1``, NaN is NaN."""
    if is_number(expected) and is_number(stored):
        left, right = float(expected), float(stored)
        return left == right or (math.isnan(left) and math.isnan(right))
    if isinstance(expected, bool) or isinstance(stored, bool):
        return type(expected) is type(stored) and expected == stored
    if isinstance(expected, str) or isinstance(stored, str) or expected is None or stored is None:
        return type(expected) is type(stored) and expected == stored
    if isinstance(expected, list) and isinstance(stored, list):
        return len(expected) == len(stored) and all(map(same, expected, stored))
    if isinstance(expected, dict) and isinstance(stored, dict):
        return expected.keys() == stored.keys() and all(
            same(value, stored[key]) for key, value in expected.items()
        )
    return False


def show(value: Any) -> str:
    """Print a value with its JSON type, so ``"42"`` and ``42`` never look alike."""
    kind = {
        bool: "bool",
        int: "int",
        float: "float",
        str: "str",
        list: "list",
        dict: "dict",
        type(None): "null",
    }.get(type(value), type(value).__name__)
    text = json.dumps(value, ensure_ascii=False) if kind != "float" else repr(value)
    if len(text) > 120:
        text = text[:117] + "..."
    return f"{text} ({kind})"


def value_hint(expected: Any, stored: Any, special: str | None, encoding: str) -> str:
    """Guess why a value differs, from the two values."""
    if isinstance(expected, str):
        try:
            decoded = json.loads(expected)
        except ValueError:
            decoded = object()
        # A decoded NaN or Infinity reaches the JSON API as its repr ("nan", "-inf").
        shown = repr(decoded) if isinstance(decoded, float) and not math.isfinite(decoded) else None
        if same(decoded, stored) or (shown is not None and stored == shown):
            return "the producer's string was JSON-decoded: a string must stay a string"
        if not isinstance(stored, str):
            return "a string was stored as another type"
    if isinstance(stored, str) and not isinstance(expected, str):
        return "stored as JSON text, not decoded"
    if special and encoding == "json" and stored is not None:
        return f"the OTLP/JSON exporter sends {special} as doubleValue null: expected None"
    if is_number(expected) and is_number(stored):
        return "a different number"
    return ""


# -- the server --------------------------------------------------------------------------


class Server:
    """``flagscope serve --port 0`` in a child process."""

    def __init__(self, python: Path) -> None:
        self.log = OUT / "serve.log"
        command = [str(python), "-c", "from flagscope._cli.main import main; main()"]
        flagscope = python.parent / "flagscope"
        if flagscope.exists():
            command = [str(flagscope)]
        self._log_file = self.log.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [*command, "serve", "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
        )
        self.url = self._read_url()

    def _read_url(self) -> str:
        assert self.process.stdout is not None
        found: list[str] = []

        def read() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self._log_file.write(line)
                self._log_file.flush()
                if not found and " listening on " in line:
                    found.append(line.split(" listening on ", 1)[1].split()[0])
            # Keep draining, so the server never blocks on a full pipe.

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not found:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"flagscope serve did not start; see {self.log}")
            time.sleep(0.02)
        url = found[0]
        while True:  # listening is printed before uvicorn accepts: wait for the API
            try:
                get_json(url, "/api/health")
                return url
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"flagscope serve did not answer; see {self.log}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server (Ctrl-C first, as a user would)."""
        if self.process.poll() is None:
            self.process.send_signal(2)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_file.close()


def get_json(url: str, path: str, params: dict[str, str] | None = None) -> Any:
    """GET a JSON API path."""
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with OPENER.open(url + path + query, timeout=10) as response:
        return json.load(response)


def stored_events(url: str, service: str) -> tuple[int, list[dict[str, Any]]]:
    """Return how many records the service has, and all of them."""
    body = get_json(url, "/api/events", {"service_name": service, "limit": "10000"})
    return body["total"], body["events"]


# -- comparing ---------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one configuration gave."""

    config: Config
    passed: int = 0
    failed: int = 0
    lines: list[str] = field(default_factory=list)
    causes: Counter[str] = field(default_factory=Counter)


def micros(stamp: str) -> int:
    """Return a stored ISO timestamp as Unix microseconds."""
    return (datetime.fromisoformat(stamp) - EPOCH) // timedelta(microseconds=1)


def record_key(record: dict[str, Any]) -> tuple[Any, Any, Any]:
    """Return what matches a stored record to an expected one."""
    return (record.get("trace_id"), record.get("span_id"), record.get("flag_key"))


def pair(
    expected: list[dict[str, Any]], stored: list[dict[str, Any]]
) -> Iterator[tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """Pair records by trace id, span id and flag key; by time within one such group."""
    groups: dict[tuple[Any, Any, Any], list[dict[str, Any]]] = defaultdict(list)
    for record in stored:
        groups[record_key(record)].append(record)
    for records in groups.values():
        records.sort(key=lambda record: micros(record["timestamp"]))
    wanted: dict[tuple[Any, Any, Any], list[dict[str, Any]]] = defaultdict(list)
    for record in expected:
        wanted[record_key(record)].append(record)
    for key, records in wanted.items():
        records.sort(key=lambda record: record["timestamp_ns"])
        found = groups.pop(key, [])
        for index, record in enumerate(records):
            yield record, found[index] if index < len(found) else None
        for extra in found[len(records) :]:
            yield None, extra
    for records in groups.values():
        for extra in records:
            yield None, extra


def compare(
    expected: dict[str, Any], stored: dict[str, Any], encoding: str
) -> list[tuple[str, str, str]]:
    """Return (field, message, cause) for every field that differs."""
    problems: list[tuple[str, str, str]] = []
    special = expected.get("value_special")
    want = SPECIAL_NUMBERS[special] if special else expected["value"]
    if special in API_SPELLINGS and encoding == "json":
        want = None  # what the OTLP/JSON exporter puts on the wire (doubleValue null)
    if expected.get("wire_ambiguous", False) and not isinstance(want, (dict, list)):
        # The wire cannot tell an object's JSON text from a string holding that text;
        # flagscope's documented rule (README, "What gets recorded") decodes it.
        want = expected["value_other_reading"]
    got = stored.get("value")
    value_ok = same(want, got) or (
        special in API_SPELLINGS and encoding != "json" and got in API_SPELLINGS[special]
    )
    if not value_ok:
        hint = value_hint(want, got, special, encoding)
        problems.append(
            (
                "value",
                f"expected {show(want)}, stored {show(got)}" + (f"  <- {hint}" if hint else ""),
                hint or "value differs",
            )
        )
    for name in PLAIN_FIELDS:
        if stored.get(name) != expected.get(name):
            problems.append(
                (
                    name,
                    f"expected {show(expected.get(name))}, stored {show(stored.get(name))}",
                    f"{name} differs",
                )
            )
    if not same(expected["attributes"], stored.get("attributes")):
        attributes = stored.get("attributes") or {}
        extra = sorted(set(attributes) - set(expected["attributes"]))
        hint = (
            f"  <- left in attributes: {', '.join(extra)}"
            if extra and "feature_flag.result.value" in extra
            else ""
        )
        problems.append(
            (
                "attributes",
                f"expected {show(expected['attributes'])}, stored {show(attributes)}{hint}",
                "a stale feature_flag.result.value attribute" if hint else "attributes differ",
            )
        )
    if stored.get("context_attributes") not in ({}, None):
        problems.append(
            (
                "context_attributes",
                f"expected {{}}, stored {show(stored.get('context_attributes'))}",
                "context_attributes differ",
            )
        )
    if micros(stored["timestamp"]) != expected["timestamp_ns"] // 1000:
        problems.append(
            (
                "timestamp",
                f"expected {expected['timestamp_ns']} ns, stored {stored['timestamp']}",
                "timestamp differs",
            )
        )
    duration = expected.get("evaluation_duration_ms")
    stored_duration = stored.get("evaluation_duration_ms")
    if duration is None:
        if stored_duration is not None:
            problems.append(
                (
                    "evaluation_duration_ms",
                    f"expected null, stored {show(stored_duration)}",
                    "evaluation_duration_ms differs",
                )
            )
    elif stored_duration is None or abs(stored_duration - duration) > DURATION_TOLERANCE_MS:
        problems.append(
            (
                "evaluation_duration_ms",
                f"expected {duration!r} (the feature_flag.evaluation span's duration), "
                f"stored {show(stored_duration)}",
                "evaluation_duration_ms is not the evaluation span's duration",
            )
        )
    # parent_span_id: compared where the server's JSON has the field (flagscope after
    # issue 8) and the producer knows one (SpanHook's child spans).
    if (
        "parent_span_id" in stored
        and "parent_span_id" in expected
        and stored["parent_span_id"] != expected["parent_span_id"]
    ):
        problems.append(
            (
                "parent_span_id",
                f"expected {show(expected['parent_span_id'])}, "
                f"stored {show(stored['parent_span_id'])}",
                "parent_span_id differs",
            )
        )
    return problems


def describe(record: dict[str, Any]) -> str:
    """Name a record in the report."""
    value = record.get("value_special") or json.dumps(record.get("value"), ensure_ascii=False)
    if len(value) > 40:
        value = value[:37] + "..."
    return (
        f"{record.get('flag_key')!r} = {value} [{record.get('js_type', '?')}] "
        f"trace {record.get('trace_id')} span {record.get('span_id')}"
    )


def check(config: Config, url: str, node: str) -> Outcome:
    """Run one producer configuration and compare what the server stored."""
    outcome = Outcome(config)
    out = OUT / config.label
    shutil.rmtree(out, ignore_errors=True)
    command = [
        node,
        str(PRODUCER),
        "--endpoint",
        url,
        "--out",
        str(out),
        "--producer",
        config.producer,
        "--encoding",
        config.encoding,
        "--compression",
        config.compression,
        "--service",
        config.label,
        *(["--hook", config.hook] if config.hook else []),
        *config.extra,
    ]
    try:
        run = subprocess.run(
            command, capture_output=True, text=True, timeout=PRODUCER_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        outcome.failed += 1
        outcome.lines.append(f"  FAIL producer did not finish in {PRODUCER_TIMEOUT:.0f} s")
        outcome.causes["producer failed"] += 1
        return outcome
    if run.returncode != 0 or not (out / "expected.json").exists():
        outcome.failed += 1
        outcome.lines.append(f"  FAIL producer exited {run.returncode}:")
        outcome.lines.extend(
            f"    {line}" for line in (run.stderr or run.stdout).splitlines()[-15:]
        )
        outcome.causes["producer failed"] += 1
        return outcome
    expected: list[dict[str, Any]] = json.loads((out / "expected.json").read_text("utf-8"))
    meta: dict[str, Any] = json.loads((out / "run.json").read_text("utf-8"))

    # Requests the server refused: their records are not coming.
    refused: dict[str, dict[str, Any]] = {}
    for export in meta["exports"]:
        if not export["ok"]:
            for trace_id in export["trace_ids"]:
                refused[trace_id] = export
    coming = sum(1 for record in expected if record["trace_id"] not in refused)

    deadline = time.monotonic() + STORE_TIMEOUT
    total, stored = stored_events(url, config.label)
    while total < coming and time.monotonic() < deadline:
        time.sleep(0.05)
        total, stored = stored_events(url, config.label)

    readings: dict[str, list[str]] = defaultdict(list)
    for want, got in pair(expected, stored):
        if want is None:
            assert got is not None
            outcome.failed += 1
            outcome.causes["a record the producer never sent"] += 1
            outcome.lines.append(f"  FAIL unexpected record {describe(got)}")
            continue
        if got is None:
            outcome.failed += 1
            export = refused.get(want["trace_id"])
            if export is not None:
                detail = export["detail"] or export["error"] or ""
                if len(detail) > 240:
                    detail = detail[:237] + "..."
                why = (
                    f"the server refused the OTLP request carrying it: {export['status']} {detail}"
                )
                outcome.causes["request refused by the server (whole request lost)"] += 1
            else:
                why = "not stored"
                outcome.causes["record missing"] += 1
            outcome.lines.append(f"  FAIL missing {describe(want)}\n    {why}")
            continue
        if want.get("wire_ambiguous"):
            readings[reading(got.get("value"))].append(want["flag_key"])
        problems = compare(want, got, config.encoding)
        if not problems:
            outcome.passed += 1
            continue
        outcome.failed += 1
        outcome.lines.append(f"  FAIL {describe(want)}")
        for name, message, cause in problems:
            outcome.lines.append(f"    {name}: {message}")
            outcome.causes[cause] += 1
    outcome.lines.extend(ambiguity_report(outcome, readings))
    return outcome


def reading(stored: Any) -> str:
    """Say how the receiver read a value the wire cannot tell apart from another."""
    if isinstance(stored, (dict, list)):
        return "objects and arrays (JSON text decoded)"
    if isinstance(stored, str):
        return "strings (JSON text kept)"
    return "neither reading"


def ambiguity_report(outcome: Outcome, readings: dict[str, list[str]]) -> list[str]:
    """Accept either reading of wire-ambiguous values, but only one for all of them."""
    if not readings:
        return []
    total = sum(len(keys) for keys in readings.values())
    if len(readings) == 1:
        (how,) = readings
        return [
            f"  note: {total} values the producer sends as JSON text in a string, the same "
            f"bytes for an object or array and for a string holding that text, "
            f"were all stored as {how}"
        ]
    outcome.failed += 1
    outcome.causes["wire-ambiguous JSON text read two ways"] += 1
    lines = [
        f"  FAIL {total} values whose wire form cannot tell an object's JSON text from a "
        "string holding that text were read two ways; one rule must hold for all:"
    ]
    for how, keys in sorted(readings.items()):
        lines.append(f"    as {how}: {', '.join(sorted(set(keys)))}")
    return lines


METRICS_PRODUCER = HERE / "metrics_producer.mjs"
METRICS_ENCODINGS = ("json", "proto")


def flag_counts(url: str) -> dict[str, dict[str, Any]]:
    """Return ``/api/metrics``'s counts by flag key."""
    return {flag["flag_key"]: flag for flag in get_json(url, "/api/metrics")["flags"]}


def check_metrics(encoding: str, url: str, node: str) -> Outcome:
    """Run OpenFeature's MetricsHook producer; compare what its run added to the counts.

    One outcome per flag: the successes per variant and per reason, and the errors,
    that ``/api/metrics`` gained must equal what the producer evaluated.
    """
    label = f"of-metrics-{encoding}"
    outcome = Outcome(Config(label, "openfeature", "MetricsHook", encoding))
    out = OUT / label
    shutil.rmtree(out, ignore_errors=True)
    before = flag_counts(url)
    command = [node, str(METRICS_PRODUCER), "--endpoint", url, "--out", str(out)]
    try:
        subprocess.run(
            [*command, "--encoding", encoding], check=True, timeout=PRODUCER_TIMEOUT, cwd=HERE
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        outcome.failed += 1
        outcome.lines.append(f"  the producer failed: {error}")
        outcome.causes["metrics producer failed"] += 1
        return outcome
    expected = json.loads((out / "expected.json").read_text())
    wanted: dict[str, dict[str, Counter[str]]] = defaultdict(
        lambda: {"variants": Counter(), "reasons": Counter(), "errors": Counter()}
    )
    for entry in expected["successes"]:
        wanted[entry["flag_key"]]["variants"][entry["variant"]] += entry["count"]
        wanted[entry["flag_key"]]["reasons"][entry["reason"].lower()] += entry["count"]
    for flag_key, count in expected["errors"].items():
        wanted[flag_key]["errors"]["error"] += count
        wanted[flag_key]["reasons"]["error"] += count
    # The counts only grow while the server runs: wait for the last export to land.
    deadline = time.monotonic() + STORE_TIMEOUT
    while True:
        after = flag_counts(url)
        gained = {}
        for flag_key in wanted:
            old, new = before.get(flag_key, {}), after.get(flag_key, {})
            gained[flag_key] = {
                "variants": Counter(new.get("by_variant", {})) - Counter(old.get("by_variant", {})),
                "reasons": Counter(new.get("by_reason", {})) - Counter(old.get("by_reason", {})),
                # Unary + drops counts of zero, as Counter subtraction does.
                "errors": +Counter({"error": new.get("errors", 0) - old.get("errors", 0)}),
            }
        if gained == wanted or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for flag_key, flag in wanted.items():
        if gained[flag_key] == flag:
            outcome.passed += 1
            continue
        outcome.failed += 1
        outcome.causes["flag counts from metrics"] += 1
        outcome.lines.append(
            f"  {flag_key}: expected {dict(flag)}, the server gained {dict(gained[flag_key])}"
        )
    return outcome


def main(argv: list[str] | None = None) -> int:
    """Run every configuration; print the diffs and ``N passed, N failed``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], help="run only this label")
    parser.add_argument("--node", default=shutil.which("node") or "node", help="node binary")
    options = parser.parse_args(argv)
    configs = [config for config in CONFIGS if not options.only or config.label in options.only]
    metrics_labels = {f"of-metrics-{encoding}" for encoding in METRICS_ENCODINGS}
    if not configs and not set(options.only) & metrics_labels:
        parser.error(f"no configuration named {options.only}; known: {[c.label for c in CONFIGS]}")
    if not (HERE / "node_modules").is_dir():
        print("interop/node_modules is missing: run `make interop` (npm ci)", file=sys.stderr)
        return 2
    OUT.mkdir(exist_ok=True)
    server = Server(Path(sys.executable))
    print(f"flagscope serve at {server.url}; producer output in {OUT}")
    outcomes: list[Outcome] = []
    try:
        for config in configs:
            outcome = check(config, server.url, options.node)
            outcomes.append(outcome)
            print(
                f"{config.label} ({config.describe()}): "
                f"{outcome.passed} passed, {outcome.failed} failed",
                flush=True,
            )
            for line in outcome.lines:
                print(line)
        for encoding in METRICS_ENCODINGS:
            if options.only and f"of-metrics-{encoding}" not in options.only:
                continue
            outcome = check_metrics(encoding, server.url, options.node)
            outcomes.append(outcome)
            print(
                f"of-metrics-{encoding} (openfeature MetricsHook, OTLP metrics {encoding}): "
                f"{outcome.passed} passed, {outcome.failed} failed",
                flush=True,
            )
            for line in outcome.lines:
                print(line)
    finally:
        server.stop()
    causes: Counter[str] = Counter()
    for outcome in outcomes:
        causes.update(outcome.causes)
    if causes:
        print("\nWhy (failing fields and records, all configurations):")
        for cause, count in causes.most_common():
            print(f"  {count:4d}  {cause}")
    passed = sum(outcome.passed for outcome in outcomes)
    failed = sum(outcome.failed for outcome in outcomes)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
