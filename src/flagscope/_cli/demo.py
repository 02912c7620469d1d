"""The demo application behind ``flagscope demo``: a small shop that evaluates flags.

It is an ordinary OpenFeature application instrumented with OpenTelemetry: the
``TracingHook`` adds ``feature_flag.evaluation`` span events, and the SDK's OTLP/HTTP
exporter sends them to a flagscope server, exactly as any other process would.
A second service emits log-based evaluation events, the semantic conventions'
current form. Needs the ``demo`` extra.

The shop rolls out ``new-checkout`` and the new checkout is worse: requests that get
it fail about four times as often (HTTP 500) and take about half as long again. The
latency is simulated (each request span is given its start and end times) so the
demo runs in seconds; the failures and the telemetry are real. ``flagscope report
--impact`` and the dashboard's impact panel show the verdict.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
import time
from typing import Any, Final

from flagscope._extras import missing_extra
from flagscope._telemetry import semconv

try:
    from openfeature import api
    from openfeature.contrib.hook.opentelemetry import TracingHook
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.flag_evaluation import FlagResolutionDetails, Reason
    from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider
    from opentelemetry import trace
    from opentelemetry._logs import LogRecord
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise missing_extra(error, "flagscope demo", "demo") from error

__all__ = ["DemoShop"]

_DOMAIN: Final = "flagscope-demo"
_USERS: Final = tuple(f"user-{n:03d}" for n in range(1, 121))
_VIPS: Final = frozenset(_USERS[::6])
_FIRST_ROLLOUT: Final = 10
_ROLLOUT_STEP: Final = 10
_MAX_ROLLOUT: Final = 90
# What a checkout request does, by new-checkout's variant: (chance it fails with a
# 500, median latency in ms). The new checkout is the worse one.
_BEHAVIOUR: Final = {"off": (0.02, 80.0), "on": (0.08, 120.0)}


def _bucket(user: str) -> int:
    # A stable 0-99 bucket per user, as percentage rollouts do.
    return hashlib.sha256(user.encode()).digest()[0] * 100 // 256


class DemoShop:
    """A checkout service and an e-mail worker evaluating flags, exporting OTLP to ``url``.

    ``new-checkout`` is being rolled out: each round serves it to more users, so
    the dashboard's chart shows the variant split moving; its ``on`` variant makes
    checkout requests fail more and run slower (see the module docstring).

    Args:
        url: The flagscope server's base URL (``/v1/traces`` and ``/v1/logs`` are added).
    """

    def __init__(self, url: str) -> None:
        self._rollout = _FIRST_ROLLOUT
        self._round = 0
        self._random = random.Random(20261130)
        self.evaluations = 0
        base = url.rstrip("/")
        self._tracer_provider = TracerProvider(
            resource=Resource.create({"service.name": "demo-shop"})
        )
        self._tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces"))
        )
        self._tracer = self._tracer_provider.get_tracer("demo-shop")
        self._logger_provider = LoggerProvider(
            resource=Resource.create({"service.name": "demo-mailer"})
        )
        self._logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{base}/v1/logs"))
        )
        self._logger = self._logger_provider.get_logger("demo-mailer")
        # A named domain and client-level hooks: the demo leaves OpenFeature's global
        # provider and hooks alone.
        api.set_provider(InMemoryProvider(self._flags()), domain=_DOMAIN)
        self._client = api.get_client(_DOMAIN)
        self._client.add_hooks([TracingHook()])

    def _flags(self) -> dict[str, InMemoryFlag[Any]]:
        def rollout(
            flag: InMemoryFlag[Any], context: EvaluationContext
        ) -> FlagResolutionDetails[Any]:
            variant = "on" if _bucket(context.targeting_key or "") < self._rollout else "off"
            return FlagResolutionDetails(
                flag.variants[variant], variant=variant, reason=Reason.SPLIT
            )

        def vip_banner(
            flag: InMemoryFlag[Any], context: EvaluationContext
        ) -> FlagResolutionDetails[Any]:
            if context.attributes.get("plan") == "vip":
                return FlagResolutionDetails(
                    flag.variants["gold"], variant="gold", reason=Reason.TARGETING_MATCH
                )
            return FlagResolutionDetails(
                flag.variants["blue"], variant="blue", reason=Reason.DEFAULT
            )

        return {
            "new-checkout": InMemoryFlag(
                "off", {"on": True, "off": False}, context_evaluator=rollout
            ),
            "banner-color": InMemoryFlag(
                "blue", {"blue": "#1f6feb", "gold": "#d4a72c"}, context_evaluator=vip_banner
            ),
            "max-cart-items": InMemoryFlag("twenty", {"twenty": 20, "fifty": 50}),
            "search-ranking": InMemoryFlag(
                "v2", {"v1": {"model": "bm25"}, "v2": {"model": "hybrid", "boost": [1, 2]}}
            ),
        }

    def step(self) -> None:
        """Serve one checkout request per user, and send one digest e-mail."""
        client = self._client
        for index, user in enumerate(_USERS):
            plan = "vip" if user in _VIPS else "free"
            context = EvaluationContext(targeting_key=user, attributes={"plan": plan})
            start = time.time_ns()
            request = self._tracer.start_span(
                "GET /checkout", kind=SpanKind.SERVER, start_time=start
            )
            with trace.use_span(request, end_on_exit=False):
                new_checkout = client.get_boolean_value("new-checkout", False, context)
                client.get_string_value("banner-color", "#000000", context)
                client.get_integer_value("max-cart-items", 10, context)
                self.evaluations += 3
                if index % 3 == 0:
                    client.get_object_value("search-ranking", {}, context)
                    self.evaluations += 1
                if index % 8 == 0:
                    # A flag the code asks for but nobody declared: flag_not_found.
                    client.get_boolean_value("gift-wrap", False, context)
                    self.evaluations += 1
            self._end_request(request, start, "on" if new_checkout else "off")
        self._logger.emit(
            LogRecord(
                event_name=semconv.EVENT_NAME,
                attributes={
                    semconv.KEY: "weekly-digest",
                    semconv.RESULT_VALUE: "true",
                    semconv.RESULT_VARIANT: "enabled",
                    semconv.RESULT_REASON: "static",
                    semconv.PROVIDER_NAME: "env-config",
                },
            )
        )
        self.evaluations += 1
        self._round += 1
        self._rollout = min(_MAX_ROLLOUT, self._rollout + _ROLLOUT_STEP)

    def _end_request(self, request: Any, start: int, variant: str) -> None:
        """Give the request its outcome: the new checkout fails more and runs slower."""
        failure_rate, median_ms = _BEHAVIOUR[variant]
        latency_ms = median_ms * math.exp(self._random.gauss(0.0, 0.4))
        failed = self._random.random() < failure_rate
        request.set_attribute("http.response.status_code", 500 if failed else 200)
        if failed:
            request.set_status(Status(StatusCode.ERROR, "payment service timed out"))
        request.end(end_time=start + int(latency_ms * 1e6))

    def flush(self) -> None:
        """Send everything the exporters hold now."""
        self._tracer_provider.force_flush()
        self._logger_provider.force_flush()

    def run(self, *, rounds: int, pause: float, stop: threading.Event | None = None) -> int:
        """Run ``rounds`` rounds ``pause`` seconds apart, flush, return the evaluations made.

        A set ``stop`` ends the run between two rounds.
        """
        stop = stop or threading.Event()
        for number in range(rounds):
            if (number and stop.wait(pause)) or stop.is_set():
                break
            self.step()
        self.flush()
        return self.evaluations

    def run_until(self, stop: threading.Event, *, pause: float) -> None:
        """Keep serving a round every ``pause`` seconds until ``stop`` is set."""
        while not stop.wait(pause):
            self.step()
            self.flush()

    def shutdown(self) -> None:
        """Flush and stop the exporters; release the OpenFeature provider."""
        self._tracer_provider.shutdown()
        self._logger_provider.shutdown()
        api.set_provider(InMemoryProvider({}), domain=_DOMAIN)
