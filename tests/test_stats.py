"""The exporters' counters: exact under concurrent exports, whichever way they count."""

from __future__ import annotations

import threading

from flagscope._telemetry.stats import StatsCounter


def test_single_span_exports_and_general_exports_add_up_exactly_across_threads() -> None:
    counter = StatsCounter("test")

    def export_many() -> None:
        for _ in range(5_000):
            counter.add_one()
            counter.add_export(2, 1, 1, {})

    threads = [threading.Thread(target=export_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    stats = counter.snapshot()
    assert stats.export_calls == 40_000
    assert stats.items_seen == 20_000 * 1 + 20_000 * 2
    assert stats.events_mapped == 40_000
    assert stats.items_ignored == 20_000


def test_reading_the_counters_counts_nothing() -> None:
    counter = StatsCounter("test")
    counter.add_one()
    assert counter.snapshot().export_calls == 1
    assert counter.snapshot().export_calls == 1
    assert counter.snapshot().events_mapped == 1
