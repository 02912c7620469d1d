"""Whether ``flagscope serve``'s ``gc.freeze`` keeps cyclic garbage of requests in flight.

Freezing moves every live object out of the cycle collector's reach; an object frozen
while a request is in flight and later left in a reference cycle would never be freed.
This runs a ``serve_in_background`` server under ``bench_server``'s protobuf load for
10 s (``FREEZE_LEAK_SECONDS`` in the environment) while a thread freezes every ``INTERVAL`` seconds
(0: never), stops it, unfreezes
and collects: the objects found are the cyclic garbage freezing kept. Compare intervals::

    for interval in 1 5 0; do .venv/bin/python benchmarks/freeze_leak.py $interval; done
"""

from __future__ import annotations

import gc
import os
import random
import sys
import threading
import time

import bench_server

from flagscope.server import serve_in_background

SECONDS = float(os.environ.get("FREEZE_LEAK_SECONDS", "10"))


def main() -> None:
    interval = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    server = serve_in_background(port=0, max_size=5_000_000)
    rng = random.Random(3)
    bodies = [bench_server.batch_request(rng, 200).SerializeToString() for _ in range(4)]
    stop = threading.Event()
    freezes = 0

    def freezer() -> None:
        nonlocal freezes
        while not stop.wait(interval):
            gc.collect(1)
            gc.freeze()
            freezes += 1

    if interval > 0:
        threading.Thread(target=freezer, daemon=True).start()
    tallies = [bench_server.Tally() for _ in bodies]
    senders = [
        threading.Thread(
            target=bench_server.send_for,
            args=(server.url, body, "protobuf", 200, SECONDS, tally),
        )
        for body, tally in zip(bodies, tallies, strict=True)
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    stop.set()
    time.sleep(interval + 0.1)
    server.stop()
    time.sleep(0.5)
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    found = gc.collect()
    requests = sum(tally.requests for tally in tallies)
    print(
        f"freezing every {interval:g} s: {freezes} freezes, {requests} requests, "
        f"{frozen} objects frozen; cyclic garbage found after unfreezing: {found} objects"
    )


if __name__ == "__main__":
    main()
