"""Builders shared by the exporter tests: OTel pipelines, hand-made spans, producers' hooks.

Every pipeline gets its own ``TracerProvider``: the OTel API lets the global provider be
set once per process, so tests never touch it and hand the provider (or its tracer) around.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from unittest import mock

from ldclient import LDClient
from ldclient.config import Config
from ldclient.integrations.test_data import TestData
from ldotel.tracing import Hook, HookOptions
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    Event,
    ReadableSpan,
    SpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags

from flagscope import FlagEvaluationSpanExporter, InMemoryAnalyticsCollector, ValueDecoding
from flagscope._telemetry import semconv
from flagscope._telemetry.mapping import timestamp_from_ns

SERVICE_NAME = "checkout"
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7
# The hex spellings every trace viewer prints for the ids above.
TRACE_HEX = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_HEX = "00f067aa0ba902b7"
START_NS = 1_700_000_000_000_000_000
END_NS = START_NS + 5_000_000

ProcessorKind = Literal["simple", "batch", "concurrent"]
# The two processors a user attaches an exporter with.
PROCESSORS: tuple[ProcessorKind, ...] = ("simple", "batch")


@dataclass
class Pipeline:
    """A private tracer provider feeding flagscope, with every finished span mirrored."""

    provider: TracerProvider
    collector: InMemoryAnalyticsCollector
    exporter: FlagEvaluationSpanExporter
    mirror: InMemorySpanExporter = field(repr=False)
    kind: ProcessorKind

    def tracer(self) -> trace.Tracer:
        """Return a tracer of this pipeline's provider."""
        return self.provider.get_tracer("flagscope-tests")

    def flush(self) -> None:
        """Push batched spans through the exporter (a no-op export for the simple processor)."""
        assert self.provider.force_flush()

    def finished_spans(self) -> tuple[ReadableSpan, ...]:
        """Return every span the provider finished, as the SDK built it."""
        return self.mirror.get_finished_spans()

    def span_named(self, name: str) -> ReadableSpan:
        """Return the only finished span called ``name``."""
        (span,) = [span for span in self.finished_spans() if span.name == name]
        return span


def _processor(
    kind: ProcessorKind, exporter: FlagEvaluationSpanExporter, batch_options: Mapping[str, Any]
) -> SpanProcessor:
    if kind == "simple":
        return SimpleSpanProcessor(exporter)
    if kind == "batch":
        # By default a long delay: only force_flush (or a full batch) exports, so a test
        # that forgets to flush fails instead of passing by luck.
        return BatchSpanProcessor(exporter, **{"schedule_delay_millis": 60_000, **batch_options})
    concurrent = ConcurrentMultiSpanProcessor(num_threads=4)
    concurrent.add_span_processor(SimpleSpanProcessor(exporter))
    return concurrent


def make_pipeline(
    kind: ProcessorKind = "simple",
    *,
    max_size: int = 10_000,
    value_decoding: ValueDecoding = "json",
    collector: InMemoryAnalyticsCollector | None = None,
    batch_options: Mapping[str, Any] | None = None,
) -> Pipeline:
    """Build a provider (resource with ``service.name``) -> processor -> flagscope exporter.

    Args:
        kind: ``simple``, ``batch`` or ``concurrent`` (a ``ConcurrentMultiSpanProcessor``
            running a simple processor on a thread pool).
        max_size: The new collector's capacity.
        value_decoding: The exporter's value decoding.
        collector: Record into this collector instead of a new one.
        batch_options: Keyword arguments for the ``BatchSpanProcessor``.
    """
    if collector is None:
        collector = InMemoryAnalyticsCollector(max_size)
    exporter = FlagEvaluationSpanExporter(collector, value_decoding=value_decoding)
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(_processor(kind, exporter, batch_options or {}))
    mirror = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(mirror))
    return Pipeline(provider, collector, exporter, mirror, kind)


def span_context(trace_id: int = TRACE_ID, span_id: int = SPAN_ID) -> SpanContext:
    """Return a sampled, local span context."""
    return SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(1))


def flag_event(
    flag_key: Any = "new-checkout",
    attributes: Mapping[str, Any] | None = None,
    *,
    name: str = semconv.EVENT_NAME,
    timestamp: Any = START_NS + 1_000,
) -> Event:
    """Return a span event as the SDK stores it; a ``None`` key leaves the key out."""
    attrs: dict[str, Any] = {semconv.KEY: flag_key} if flag_key is not None else {}
    attrs.update(attributes or {})
    return Event(name, attrs, timestamp=timestamp)


# What a Python application's provider has: service.name plus the SDK's own attributes
# (telemetry.sdk.language among them).
DEFAULT_RESOURCE = Resource.create({"service.name": SERVICE_NAME})


def readable_span(
    name: str = "GET /cart",
    *,
    events: Sequence[Any] = (),
    attributes: Mapping[str, Any] | None = None,
    resource: Resource | None = None,
    context: SpanContext | None = None,
    parent: SpanContext | None = None,
    start_time: int = START_NS,
    end_time: int = END_NS,
) -> ReadableSpan:
    """Return a finished span built by hand, as exporters receive them."""
    return ReadableSpan(
        name=name,
        context=context if context is not None else span_context(),
        parent=parent,
        resource=resource if resource is not None else DEFAULT_RESOURCE,
        attributes=attributes,
        events=events,
        start_time=start_time,
        end_time=end_time,
    )


def within_span(when: Any, span: ReadableSpan) -> bool:
    """Whether a record's timestamp lies in the span's lifetime (to the microsecond)."""
    assert span.start_time is not None
    assert span.end_time is not None
    return bool(timestamp_from_ns(span.start_time) <= when <= timestamp_from_ns(span.end_time))


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    """Return the span's trace and span ids as 32 and 16 lowercase hex characters."""
    context = span.context
    assert context is not None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def launchdarkly_hook(provider: TracerProvider, options: HookOptions | None = None) -> Hook:
    """Return LaunchDarkly's OTel hook, its tracer taken from ``provider``.

    ``ldotel.tracing.Hook.__init__`` calls ``trace.get_tracer_provider()`` once and keeps
    the tracer, which it uses only for ``add_spans=True``. The global provider can be set
    only once per process, so instead of setting it, the lookup is patched for the
    constructor's duration: the hook gets this test's provider and nothing global changes.
    Span events need no patch: the hook adds them to ``trace.get_current_span()``, which
    is whatever span the test made current with its own tracer.
    """
    with mock.patch.object(trace, "get_tracer_provider", return_value=provider):
        return Hook(options if options is not None else HookOptions())


@contextmanager
def launchdarkly_client(td: TestData, hook: Hook) -> Iterator[LDClient]:
    """Run an offline LaunchDarkly client fed by ``td``, with ``hook`` installed."""
    client = LDClient(Config("sdk-key", update_processor_class=td, send_events=False, hooks=[hook]))
    try:
        assert client.is_initialized()
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]
