"""How fast the query API is on a full collector, against plain passes over the same events.

One run, one full collector (100,000 events over 1,000 flags, mapped from
TracingHook-shaped attributes with varied variants, reasons, errors and traces).
Figures (each printed with its target and PASS or MISS):
  (a) per-flag filter ``query.events(flag_key=k, variant="on")`` vs a list
      comprehension over every stored event: speed-up, target >= 50x.
  (b) per-flag aggregate ``query.summary(flag_key=k)`` vs a hand-written pass over
      every stored event that keeps that flag's counts: speed-up, target >= 50x,
      on the default collector (each summary reads the flag's records) and on one
      made with ``summary_rollups=True``: cold (each flag's first summary builds its
      rollup, timed on fresh collectors, no target) and warm (rollup kept current).
  (c) whole-collector ``query.summary()`` vs one hand-written pass computing the same
      figures: time ratio, target <= 2x.
  (d) whole-collector ``query.summaries()`` (per flag) vs one hand-written pass that
      groups by flag: time ratio, target <= 2x, on both collectors.
  (e) ``query.impact(flag_key)`` over 100,000 evaluations of one flag, each in its own
      request with a known outcome (as the span exporter hands them to the collector),
      two variants: time, target < 50 ms (issue 12), with NumPy where the ``stats``
      extra installed it; the standard library's path alone is timed too.
Each comparison first checks both sides give the same answer. Timings are the best of
several repeats. Run: ``.venv/bin/python benchmarks/bench_query.py`` (``--only impact``
measures (e) alone, without building the 1,000-flag collector).
"""

from __future__ import annotations

import gc
import json
import random
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from _common import (
    Settings,
    best_ns_per_op,
    flag_keys,
    parse_settings,
    report,
    span_ids,
    typical_attribute_stream,
)

from flagscope import FlagEvaluationEvent, FlagSummary, InMemoryAnalyticsCollector
from flagscope._query import durations
from flagscope._store.outcomes import raw_outcome
from flagscope._store.records import span_key, trace_key
from flagscope._telemetry import semconv
from flagscope._telemetry.mapping import map_evaluation


def make_collector(
    rng: random.Random, size: int, flag_count: int, *, summary_rollups: bool = False
) -> InMemoryAnalyticsCollector:
    """Fill a collector of ``max_size=size`` with varied TracingHook-shaped evaluations."""
    keys = flag_keys(flag_count)
    users = [f"user-{n}" for n in range(1000)]
    stream = typical_attribute_stream(rng, keys, users)
    collector = InMemoryAnalyticsCollector(max_size=size, summary_rollups=summary_rollups)
    now = time.time_ns()
    trace_id, span_id = span_ids(rng)
    events = []
    for index in range(size):
        attributes = next(stream)
        roll = rng.random()
        if roll < 0.45:
            attributes[semconv.RESULT_VARIANT] = "off"
            attributes[semconv.RESULT_VALUE] = "false"
            attributes[semconv.RESULT_REASON] = "default"
        elif roll < 0.5:
            del attributes[semconv.RESULT_VARIANT]
            attributes[semconv.RESULT_REASON] = "error"
            attributes[semconv.ERROR_TYPE] = "flag_not_found"
        if index % 4 == 0:  # a request evaluates about four flags
            trace_id, span_id = span_ids(rng)
        event = map_evaluation(
            attributes, timestamp_ns=now + index * 1000, trace_id=trace_id, span_id=span_id
        )
        assert isinstance(event, FlagEvaluationEvent)
        events.append(event)
    collector.record_batch(events)
    return collector


def hand_summary(events: list[FlagEvaluationEvent]) -> dict[str, Any]:
    """One plain pass computing what ``FlagSummary`` holds, as a careful user would."""
    variants: dict[str, int] = {}
    values: dict[tuple[type, Any], int] = {}
    reasons: dict[str, int] = {}
    providers: dict[str, int] = {}
    error_types: dict[str, int] = {}
    traces: dict[str, int] = {}
    users: set[str] = set()
    errors = 0
    first: datetime | None = None
    last: datetime | None = None
    for event in events:
        if event.variant is not None:
            variants[event.variant] = variants.get(event.variant, 0) + 1
        value_id = (type(event.value), event.value)
        values[value_id] = values.get(value_id, 0) + 1
        reason = str(event.reason)
        reasons[reason] = reasons.get(reason, 0) + 1
        if event.provider_name is not None:
            providers[event.provider_name] = providers.get(event.provider_name, 0) + 1
        if event.error_type is not None:
            error_types[event.error_type] = error_types.get(event.error_type, 0) + 1
            errors += 1
        elif reason == "error":
            errors += 1
        if event.targeting_key is not None:
            users.add(event.targeting_key)
        if event.trace_id is not None:
            traces[event.trace_id] = traces.get(event.trace_id, 0) + 1
        if first is None or event.timestamp < first:
            first = event.timestamp
        if last is None or event.timestamp > last:
            last = event.timestamp
    return {
        "count": len(events),
        "by_variant": variants,
        "by_value": {json.dumps(value): n for (_, value), n in values.items()},
        "by_reason": reasons,
        "by_provider": providers,
        "by_error_type": error_types,
        "error_count": errors,
        "distinct_targeting_keys": len(users),
        "first_seen": first,
        "last_seen": last,
        "max_per_trace": max(traces.values(), default=0),
    }


def hand_summaries(events: list[FlagEvaluationEvent]) -> dict[str, dict[str, Any]]:
    """One plain pass grouping by flag, then the same figures per flag."""
    groups: dict[str, list[FlagEvaluationEvent]] = {}
    for event in events:
        groups.setdefault(event.flag_key, []).append(event)
    return {key: hand_summary(group) for key, group in sorted(groups.items())}


def same(summary: FlagSummary, hand: dict[str, Any]) -> bool:
    ours = summary.to_dict()
    ours["first_seen"], ours["last_seen"] = summary.first_seen, summary.last_seen
    return all(ours[name] == value for name, value in hand.items())


def call_each(function: Callable[[str], Any], keys: list[str]) -> int:
    for key in keys:
        function(key)
    return len(keys)


def call_once(function: Callable[[], Any]) -> int:
    function()
    return 1


def scan_ns_per_flag(settings: Settings, scan: Callable[[str], Any], keys: list[str]) -> float:
    # The scan is slow: time it on fewer flags (the figure is per flag either way).
    scan_keys = keys[: max(3, len(keys) // 20)]
    return best_ns_per_op(lambda: call_each(scan, scan_keys), settings.repeats)


def per_flag(
    settings: Settings,
    label: str,
    ours: Callable[[str], Any],
    scan: Callable[[str], Any],
    check: Callable[[Any, Any], bool],
    keys: list[str],
    *,
    verdict_label: str | None = None,
) -> float:
    for key in keys[:5]:
        assert check(ours(key), scan(key)), f"{label}: answers differ for {key}"
    ours_ns = best_ns_per_op(lambda: call_each(ours, keys), settings.repeats)
    scan_ns = scan_ns_per_flag(settings, scan, keys)
    ratio = scan_ns / ours_ns
    print(f"{label}: query {ours_ns / 1000:.1f} us, linear scan {scan_ns / 1000:.1f} us per flag")
    verdict_label = verdict_label or f"{label} speed-up vs a linear scan"
    report(verdict_label, f"{ratio:.0f}x", ">= 50x", ratio >= 50)
    return scan_ns


def first_summaries(collector: InMemoryAnalyticsCollector, keys: list[str]) -> int:
    """Summarise each flag once: on a fresh collector, each call builds a rollup."""
    query = collector.query
    for key in keys:
        query.summary(flag_key=key)
    return len(keys)


def cold_per_flag_summary(
    settings: Settings, size: int, flag_count: int, keys: list[str], scan_ns: float
) -> None:
    """Time each flag's first summary, which builds its rollup, on fresh collectors."""
    best = float("inf")
    for _ in range(settings.repeats):
        # The same seed gives the same events: a fresh collector with no rollup yet.
        fresh = make_collector(random.Random(settings.seed), size, flag_count, summary_rollups=True)
        stored = fresh.events()
        checked, timed = keys[:5], keys[5:]
        for key in checked:
            hand = hand_summary([e for e in stored if e.flag_key == key])
            assert same(fresh.query.summary(flag_key=key), hand), f"(b) cold: differ for {key}"
        best = min(best, best_ns_per_op(partial(first_summaries, fresh, timed), 1))
        del fresh, stored
        gc.collect()
    ratio = scan_ns / best
    print(
        f"(b) per-flag summary, cold (each flag's first summary builds its rollup): "
        f"query {best / 1000:.1f} us, linear scan {scan_ns / 1000:.1f} us per flag, "
        f"{ratio:.0f}x faster (no target: a first request)"
    )


def whole(settings: Settings, label: str, ours: Callable[[], Any], hand: Callable[[], Any]) -> None:
    ours_ns = hand_ns = float("inf")
    # Alternate the two so drift on the shared machine hits both alike.
    for _ in range(settings.repeats):
        ours_ns = min(ours_ns, best_ns_per_op(lambda: call_once(ours), 1))
        hand_ns = min(hand_ns, best_ns_per_op(lambda: call_once(hand), 1))
    ratio = ours_ns / hand_ns
    print(f"{label}: query {ours_ns / 1e6:.1f} ms, hand-written pass {hand_ns / 1e6:.1f} ms")
    report(f"{label} time / hand-written pass", f"{ratio:.2f}x", "<= 2x", ratio <= 2)


def impact_collector(rng: random.Random, size: int) -> InMemoryAnalyticsCollector:
    """``size`` evaluations of one flag, one per request, with the requests' outcomes."""
    collector = InMemoryAnalyticsCollector(max_size=size)
    now = time.time_ns()
    events = []
    outcomes = []
    for index in range(size):
        variant = "on" if rng.random() < 0.5 else "off"
        trace_id, span_id = span_ids(rng)
        event = map_evaluation(
            {
                semconv.KEY: "new-checkout",
                semconv.RESULT_VARIANT: variant,
                semconv.RESULT_REASON: "split",
            },
            timestamp_ns=now + index * 1000,
            trace_id=trace_id,
            span_id=span_id,
            service_name="checkout",
        )
        assert isinstance(event, FlagEvaluationEvent)
        events.append(event)
        failed = rng.random() < (0.02 if variant == "on" else 0.01)
        start = now + index * 1000
        duration = int(rng.lognormvariate(18.4, 0.5))  # about 100 ms
        code = 2 if failed else 1
        outcome = raw_outcome("GET /checkout", code, None, start, start + duration, 200)
        # The ids in their stored form, as the exporters hand them over.
        outcomes.append((trace_key(event), span_key(event), "checkout", None, True, 1, outcome))
    collector.record_batch(events)
    collector.record_outcomes(outcomes)
    return collector


def impact_cost(settings: Settings, size: int) -> None:
    collector = impact_collector(random.Random(settings.seed), size)
    query = collector.query
    impact = query.impact("new-checkout")
    assert sum(item.requests for item in impact.variants) == size, impact
    gc.collect()
    best_ns = min(
        best_ns_per_op(lambda: call_once(partial(query.impact, "new-checkout")), 1)
        for _ in range(settings.repeats)
    )
    verdicts = ", ".join(f"{item.variant} {item.verdict}" for item in impact.variants)
    print(f"(e) impact over {size} evaluations of one flag ({verdicts})")
    # The same calls on the standard library's path alone (no NumPy), for the record.
    with_numpy = durations._load_numpy() is not None
    loader = durations._load_numpy
    durations._load_numpy = lambda: None  # type: ignore[assignment,unused-ignore]
    try:
        assert query.impact("new-checkout") == impact
        plain_ns = min(
            best_ns_per_op(lambda: call_once(partial(query.impact, "new-checkout")), 1)
            for _ in range(settings.repeats)
        )
    finally:
        durations._load_numpy = loader
    print(
        f"(e) impact, standard library only (without the stats extra's NumPy), best of "
        f"{settings.repeats}: {plain_ns / 1e6:.1f} ms"
    )
    report(
        f"(e) impact over {size} evaluations of one flag "
        f"({'with NumPy' if with_numpy else 'NumPy not installed'}), best of {settings.repeats}",
        f"{best_ns / 1e6:.1f} ms",
        "< 50 ms",
        best_ns < 50e6,
    )


def main() -> None:
    settings = parse_settings(__doc__ or "", figures=("impact",))
    size, flag_count = (2_000, 50) if settings.quick else (100_000, 1_000)
    if settings.only == "impact":
        impact_cost(settings, size)
        return
    rng = random.Random(settings.seed)
    collector = make_collector(rng, size, flag_count)
    query = collector.query
    stored = collector.events()  # the plain list the scans walk
    print(f"collector: {len(stored)} events, {len(collector.flag_keys())} flags (full)")
    keys = rng.sample(collector.flag_keys(), min(200, flag_count))

    per_flag(
        settings,
        "(a) per-flag filter",
        lambda key: query.events(flag_key=key, variant="on"),
        lambda key: [e for e in stored if e.flag_key == key and e.variant == "on"],
        lambda a, b: bool(a == b),
        keys,
    )
    # (b) on the default collector: each summary reads the flag's records.
    summary_scan = lambda key: hand_summary([e for e in stored if e.flag_key == key])  # noqa: E731
    scan_ns = per_flag(
        settings,
        "(b) per-flag summary, default collector",
        lambda key: query.summary(flag_key=key),
        summary_scan,
        same,
        keys,
    )
    # (b) with summary_rollups=True: cold on fresh collectors (no rollup yet), then warm.
    cold_per_flag_summary(settings, size, flag_count, keys, scan_ns)
    rolled = make_collector(random.Random(settings.seed), size, flag_count, summary_rollups=True)
    rolled_query = rolled.query
    # Same events, but stamped at another time: its scan reads its own records.
    rolled_stored = rolled.events()
    first_summaries(rolled, keys)  # builds the rollups: what follows is warm
    per_flag(
        settings,
        "(b) per-flag summary, summary_rollups=True, warm (rollup kept current by recording)",
        lambda key: rolled_query.summary(flag_key=key),
        lambda key: hand_summary([e for e in rolled_stored if e.flag_key == key]),
        same,
        keys,
    )

    assert same(query.summary(), hand_summary(stored)), "(c) answers differ"
    whole(settings, "(c) whole-collector summary", query.summary, lambda: hand_summary(stored))

    for label, target, records in (
        ("default collector", query, stored),
        ("summary_rollups=True", rolled_query, rolled_stored),
    ):
        ours_all = target.summaries()
        hand_all = hand_summaries(records)
        assert [s.flag_key for s in ours_all] == list(hand_all), f"(d) {label}: flags differ"
        assert all(same(s, hand_all[str(s.flag_key)]) for s in ours_all), f"(d) {label}: differ"
    whole(
        settings,
        "(d) whole-collector summaries, default collector",
        query.summaries,
        lambda: hand_summaries(stored),
    )
    whole(
        settings,
        "(d) whole-collector summaries, summary_rollups=True, repeated",
        rolled_query.summaries,
        lambda: hand_summaries(rolled_stored),
    )
    impact_cost(settings, size)


if __name__ == "__main__":
    main()
