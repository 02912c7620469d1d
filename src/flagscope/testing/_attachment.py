"""How captures reach the spans: one exporter and processor per provider, shared.

A ``TracerProvider`` cannot remove a span processor, so flagscope attaches one
exporter and processor per provider (and per processor kind and value decoding)
the first time a capture needs it, and keeps it for the life of the process. That
exporter records into a dispatcher, which forwards to whichever captures are
active; each capture has its own fresh collector.
"""

from __future__ import annotations

import dataclasses
import threading
import weakref
from collections.abc import Sequence
from typing import Final

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)

from flagscope._store.outcomes import OutcomeItem
from flagscope._store.records import FlagEvaluationEvent
from flagscope._telemetry.exporter import EventSink, FlagEvaluationSpanExporter
from flagscope._telemetry.mapping import ValueDecoding
from flagscope.testing._kinds import PROCESSOR_KINDS, SpanProcessorKind

__all__ = [
    "FLUSH_TIMEOUT_MILLIS",
    "PROCESSOR_KINDS",
    "Attachment",
    "Dispatcher",
    "SpanProcessorKind",
    "attach",
    "resolve_tracer_provider",
]


# The batch processor's default 5 s delay would make every ``wait_for`` slow.
_BATCH_DELAY_MILLIS: Final = 50
FLUSH_TIMEOUT_MILLIS: Final = 30_000


class Dispatcher:
    """Forwards recorded evaluations to the sinks active right now.

    The sinks are the active captures' collectors, and the suite's flag coverage
    recorder when ``--flagscope-coverage`` is on.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sinks: tuple[EventSink, ...] = ()

    def record_batch(self, events: list[FlagEvaluationEvent]) -> None:
        # Read the tuple once: captures start and stop on other threads.
        for sink in self._sinks:
            sink.record_batch(events)

    def record_with_outcomes(
        self, events: list[FlagEvaluationEvent], items: Sequence[OutcomeItem]
    ) -> int:
        """Forward records and their spans' outcomes to each sink that keeps outcomes."""
        for sink in self._sinks:
            record_with_outcomes = getattr(sink, "record_with_outcomes", None)
            if record_with_outcomes is not None:
                record_with_outcomes(events, items)
            elif events:
                sink.record_batch(events)
        return len(events)

    @property
    def has_sinks(self) -> bool:
        return bool(self._sinks)

    def add(self, sink: EventSink) -> None:
        with self._lock:
            self._sinks = (*self._sinks, sink)

    def remove(self, sink: EventSink) -> None:
        with self._lock:
            self._sinks = tuple(item for item in self._sinks if item is not sink)


class _SharedExporter(FlagEvaluationSpanExporter):
    """The exporter behind every capture on one provider; knows when it was shut down."""

    is_shut_down = False

    def __init__(self, dispatcher: Dispatcher, *, value_decoding: ValueDecoding) -> None:
        super().__init__(dispatcher, value_decoding=value_decoding)
        self._dispatcher = dispatcher

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        # Between captures nobody reads: skip the mapping, the spans are someone else's.
        if not self._dispatcher.has_sinks and not self.is_shut_down:
            return SpanExportResult.SUCCESS
        return super().export(spans)

    def shutdown(self) -> None:
        self.is_shut_down = True
        super().shutdown()


@dataclasses.dataclass(frozen=True, slots=True)
class Attachment:
    """What one provider carries for captures: the dispatcher, exporter and processor."""

    dispatcher: Dispatcher
    exporter: _SharedExporter
    processor: SpanProcessor


_registry_lock = threading.Lock()
_attachments: weakref.WeakKeyDictionary[SdkTracerProvider, dict[tuple[str, str], Attachment]] = (
    weakref.WeakKeyDictionary()
)


def attach(
    provider: SdkTracerProvider, kind: SpanProcessorKind, decoding: ValueDecoding
) -> Attachment:
    """Return the provider's attachment for ``kind`` and ``decoding``, adding it the first time."""
    with _registry_lock:
        per_provider = _attachments.setdefault(provider, {})
        attachment = per_provider.get((kind, decoding))
        # A provider that was shut down also shut our exporter down; spans it still
        # makes need a live one (one more processor per shutdown, not per capture).
        if attachment is None or attachment.exporter.is_shut_down:
            dispatcher = Dispatcher()
            exporter = _SharedExporter(dispatcher, value_decoding=decoding)
            processor: SpanProcessor
            if kind == "batch":
                processor = BatchSpanProcessor(exporter, schedule_delay_millis=_BATCH_DELAY_MILLIS)
            else:
                processor = SimpleSpanProcessor(exporter)
            provider.add_span_processor(processor)
            attachment = Attachment(dispatcher, exporter, processor)
            per_provider[(kind, decoding)] = attachment
        return attachment


def resolve_tracer_provider(
    tracer_provider: trace.TracerProvider | None = None,
) -> SdkTracerProvider:
    """Return the SDK ``TracerProvider`` a capture should attach to.

    ``None`` (or the API's ``ProxyTracerProvider``) means the global provider.
    When no global provider is set yet, an SDK ``TracerProvider`` is installed
    globally, once: the OpenTelemetry API refuses to replace it later, and
    tracers obtained earlier are proxies that follow it.

    Raises:
        TypeError: The provider (given, or the global one) is not an SDK
            ``TracerProvider``, such as a ``NoOpTracerProvider``: it records no
            spans, so there would be nothing to capture.
    """
    __tracebackhide__ = True
    explicit = tracer_provider is not None and not isinstance(
        tracer_provider, trace.ProxyTracerProvider
    )
    if not explicit:
        tracer_provider = trace.get_tracer_provider()
        if isinstance(tracer_provider, trace.ProxyTracerProvider):
            with _registry_lock:
                if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
                    trace.set_tracer_provider(SdkTracerProvider())
            tracer_provider = trace.get_tracer_provider()
    if isinstance(tracer_provider, SdkTracerProvider):
        return tracer_provider
    kind = type(tracer_provider).__name__
    if explicit:
        raise TypeError(
            "flagscope can only capture from an opentelemetry.sdk.trace.TracerProvider; "
            f"tracer_provider is a {kind}"
        )
    raise TypeError(
        f"flagscope cannot capture flag evaluations: the global tracer provider is a {kind}, "
        "not an opentelemetry.sdk.trace.TracerProvider, so no spans are recorded. Set an "
        "SDK TracerProvider with opentelemetry.trace.set_tracer_provider() before anything "
        "else sets one, or pass tracer_provider= (under pytest: override the "
        "flagscope_tracer_provider fixture)"
    )
