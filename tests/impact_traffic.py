"""Seeded request traffic through a real TracerProvider, with a known effect per variant."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from flagscope import FlagEvaluationSpanExporter, InMemoryAnalyticsCollector
from flagscope._telemetry import semconv

FLAG = "new-checkout"
_START = 1_700_000_000_000_000_000


@dataclass(frozen=True)
class Behaviour:
    """What requests that saw a variant do: how often they fail, their median duration."""

    error_rate: float
    median_ms: float


def drive(
    collector: InMemoryAnalyticsCollector,
    variants: Mapping[str, Behaviour],
    requests: int,
    seed: int,
    *,
    weights: Mapping[str, float] | None = None,
    default_variant: str | None = None,
) -> None:
    """Send the requests (see ``drive_into``) through flagscope's span exporter."""
    drive_into(
        FlagEvaluationSpanExporter(collector),
        variants,
        requests,
        seed,
        weights=weights,
        default_variant=default_variant,
    )


def drive_into(
    exporter: SpanExporter,
    variants: Mapping[str, Behaviour],
    requests: int,
    seed: int,
    *,
    weights: Mapping[str, float] | None = None,
    default_variant: str | None = None,
    flag: str = FLAG,
) -> None:
    """Send ``requests`` requests, each evaluating ``flag`` once inside a child span.

    Each request is a SERVER root span (``http.response.status_code`` 500 and
    status error when it fails) around a ``pricing`` span holding the
    OpenFeature-style evaluation event. Durations are log-normal around the
    variant's median (sigma 0.5), with explicit start and end times.
    """
    provider = TracerProvider(resource=Resource.create({semconv.SERVICE_NAME: "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    send_requests(
        provider.get_tracer("impact-tests"),
        variants,
        requests,
        seed,
        weights=weights,
        default_variant=default_variant,
        flag=flag,
    )
    provider.shutdown()


def send_requests(
    tracer: Any,
    variants: Mapping[str, Behaviour],
    requests: int,
    seed: int,
    *,
    weights: Mapping[str, float] | None = None,
    default_variant: str | None = None,
    flag: str = FLAG,
) -> None:
    """Send the requests ``drive_into`` describes with ``tracer`` (evaluating ``flag``)."""
    rng = random.Random(seed)
    names = sorted(variants)
    chances = [(weights or {}).get(name, 1.0) for name in names]
    now = _START
    for _ in range(requests):
        variant = rng.choices(names, chances)[0]
        behaviour = variants[variant]
        duration_ns = int(behaviour.median_ms * math.exp(rng.gauss(0.0, 0.5)) * 1e6)
        failed = rng.random() < behaviour.error_rate
        root = tracer.start_span("GET /checkout", kind=SpanKind.SERVER, start_time=now)
        with trace.use_span(root, end_on_exit=False):
            child = tracer.start_span("pricing", start_time=now + 1000)
            child.add_event(
                semconv.EVENT_NAME,
                {
                    "feature_flag.key": flag,
                    "feature_flag.result.variant": variant,
                    "feature_flag.result.reason": (
                        "default" if variant == default_variant else "split"
                    ),
                    "feature_flag.provider.name": "InMemoryProvider",
                },
                timestamp=now + 2000,
            )
            child.end(end_time=now + 3000)
        root.set_attribute("http.response.status_code", 500 if failed else 200)
        if failed:
            root.set_status(Status(StatusCode.ERROR, "payment declined"))
        root.end(end_time=now + duration_ns)
        now += duration_ns + 1000
