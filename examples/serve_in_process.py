"""An application's own flag dashboard, served in-process from a background thread.

Run with ``.venv/bin/python examples/serve_in_process.py`` (needs ``flagscope[server]``):
it serves on a free loopback port, evaluates a flag in a span, reads it back through the
JSON API, and stops.
"""

from __future__ import annotations

import json
import urllib.request

from opentelemetry.sdk.trace import TracerProvider

from flagscope.server import serve_in_background


def main() -> None:
    tracer_provider = TracerProvider()
    server = serve_in_background(tracer_provider, port=0)  # port=0 picks a free one
    with server:
        print(server.url)  # the dashboard; server.collector holds the records
        tracer = tracer_provider.get_tracer("shop")
        with tracer.start_as_current_span("checkout") as span:
            span.add_event(
                "feature_flag.evaluation",
                {"feature_flag.key": "new-checkout", "feature_flag.result.variant": "on"},
            )
        with urllib.request.urlopen(f"{server.url}/api/flags/new-checkout", timeout=10) as answer:
            summary = json.load(answer)
        print("new-checkout:", summary["count"], "evaluation, variants", summary["by_variant"])


if __name__ == "__main__":
    main()
