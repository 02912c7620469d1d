"""Capture the flag evaluations a test makes, and assert on them.

``capture_flag_evaluations()`` works anywhere (unittest, scripts); the pytest
plugin's ``flag_evaluations`` fixture is a thin wrapper around it.

How capture reaches the spans: a ``TracerProvider`` cannot remove a span
processor, so flagscope attaches one exporter and processor per provider (and
per processor kind) the first time a capture needs it, and keeps it for the
life of the process. That exporter records into a dispatcher, which forwards
to whichever captures are active; each capture has its own fresh collector.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import threading
import warnings
import weakref
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Unpack

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)

from flagscope.collector import InMemoryAnalyticsCollector
from flagscope.exporter import FlagEvaluationSpanExporter, check_value_decoding
from flagscope.filters import FilterArgs
from flagscope.mapping import ValueDecoding
from flagscope.models import EvaluationReason, FlagEvaluationEvent, json_safe

if TYPE_CHECKING:
    from flagscope.query import CollectorQuery

__all__ = [
    "DEFAULT_SNAPSHOT_FIELDS",
    "UNSET",
    "FlagEvaluationCapture",
    "SpanProcessorKind",
    "UnexpectedFlagWarning",
    "capture_flag_evaluations",
    "resolve_tracer_provider",
]

SpanProcessorKind = Literal["simple", "batch"]
PROCESSOR_KINDS: Final = ("simple", "batch")

DEFAULT_SNAPSHOT_FIELDS: Final = (
    "flag_key",
    "value",
    "variant",
    "reason",
    "targeting_key",
    "error_type",
)
_EVENT_FIELDS: Final = tuple(field.name for field in dataclasses.fields(FlagEvaluationEvent))
_ID_FIELDS: Final = frozenset({"trace_id", "span_id"})

# The batch processor's default 5 s delay would make every ``wait_for`` slow.
_BATCH_DELAY_MILLIS: Final = 50
_FLUSH_TIMEOUT_MILLIS: Final = 30_000
_MAX_TABLE_ROWS: Final = 40
_MAX_CELL: Final = 40
_NO_SPAN_HINT: Final = (
    "flag hooks add their events to the current span, and flagscope sees a span when it "
    "ends: was the flag evaluated inside a recording span that ended during the capture?"
)


class _Unset(enum.Enum):
    UNSET = enum.auto()

    def __repr__(self) -> str:
        return "<unset>"


UNSET: Final = _Unset.UNSET
"""Default of the assertion keywords: the field is not checked (so ``None`` can be)."""


class UnexpectedFlagWarning(UserWarning):
    """A flag outside a capture's ``expected_flags`` was evaluated (``strict=False``)."""


# -- one processor per provider, shared by every capture ---------------------------------


class _Dispatcher:
    """Forwards recorded evaluations to the captures active right now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sinks: tuple[InMemoryAnalyticsCollector, ...] = ()

    def record_many(self, events: Iterable[FlagEvaluationEvent]) -> int:
        batch = events if isinstance(events, list) else list(events)
        # Read the tuple once: captures start and stop on other threads.
        for sink in self._sinks:
            sink.record_many(batch)
        return len(batch)

    @property
    def has_sinks(self) -> bool:
        return bool(self._sinks)

    def add(self, sink: InMemoryAnalyticsCollector) -> None:
        with self._lock:
            self._sinks = (*self._sinks, sink)

    def remove(self, sink: InMemoryAnalyticsCollector) -> None:
        with self._lock:
            self._sinks = tuple(item for item in self._sinks if item is not sink)


class _SharedExporter(FlagEvaluationSpanExporter):
    """The exporter behind every capture on one provider; knows when it was shut down."""

    is_shut_down = False

    def __init__(self, dispatcher: _Dispatcher, *, value_decoding: ValueDecoding) -> None:
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
class _Attachment:
    dispatcher: _Dispatcher
    exporter: _SharedExporter
    processor: SpanProcessor


_registry_lock = threading.Lock()
_attachments: weakref.WeakKeyDictionary[SdkTracerProvider, dict[tuple[str, str], _Attachment]] = (
    weakref.WeakKeyDictionary()
)


def _attach(
    provider: SdkTracerProvider, kind: SpanProcessorKind, decoding: ValueDecoding
) -> _Attachment:
    with _registry_lock:
        per_provider = _attachments.setdefault(provider, {})
        attachment = per_provider.get((kind, decoding))
        # A provider that was shut down also shut our exporter down; spans it still
        # makes need a live one (one more processor per shutdown, not per capture).
        if attachment is None or attachment.exporter.is_shut_down:
            dispatcher = _Dispatcher()
            exporter = _SharedExporter(dispatcher, value_decoding=decoding)
            processor: SpanProcessor
            if kind == "batch":
                processor = BatchSpanProcessor(exporter, schedule_delay_millis=_BATCH_DELAY_MILLIS)
            else:
                processor = SimpleSpanProcessor(exporter)
            provider.add_span_processor(processor)
            attachment = _Attachment(dispatcher, exporter, processor)
            per_provider[(kind, decoding)] = attachment
        return attachment


def resolve_tracer_provider(tracer_provider: object = None) -> SdkTracerProvider:
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


# -- the capture ---------------------------------------------------------------------------


def _check_flag_keys(name: str, keys: object) -> frozenset[str]:
    if isinstance(keys, str) or not isinstance(keys, Iterable):
        raise TypeError(f"{name} must be a collection of flag keys, got {keys!r}")
    items = list(keys)
    bad = [key for key in items if not isinstance(key, str)]
    if bad:
        raise TypeError(f"{name} must hold flag keys (str), got {bad[0]!r}")
    return frozenset(items)


def capture_flag_evaluations(
    tracer_provider: object = None,
    *,
    processor: SpanProcessorKind = "simple",
    expected_flags: Iterable[str] | None = None,
    strict: bool = False,
    max_size: int = 10_000,
    value_decoding: ValueDecoding = "json",
) -> FlagEvaluationCapture:
    """Return a capture of the flag evaluations made while it is active.

    Use it as a context manager (``with capture_flag_evaluations() as flags:``)
    or call ``start()`` and ``stop()``, e.g. from unittest's ``setUp`` and
    ``addCleanup``. Each capture starts empty and records the evaluation events
    of every span that ends while it is active.

    Args:
        tracer_provider: An SDK ``TracerProvider``; ``None`` means the global one
            (installed once when none is set yet).
        processor: ``"simple"`` exports on the thread that ends the span, so
            events are there as soon as the span ends; ``"batch"`` exports from
            the SDK's worker thread, as production does: read with ``wait_for``.
        expected_flags: The flags the code under test may evaluate; others
            warn with ``UnexpectedFlagWarning`` when the capture stops.
        strict: Make evaluations outside ``expected_flags`` fail the stop with
            an ``AssertionError`` instead.
        max_size: How many evaluations the capture keeps.
        value_decoding: ``"json"`` or ``"raw"``, as for the exporter.

    Raises:
        TypeError: A wrong type for any argument, or a provider that is not an
            SDK ``TracerProvider`` (checked when the capture starts).
        ValueError: An unknown ``processor`` or ``value_decoding``, or
            ``strict=True`` without ``expected_flags``.
    """
    return FlagEvaluationCapture(
        tracer_provider,
        processor=processor,
        expected_flags=expected_flags,
        strict=strict,
        max_size=max_size,
        value_decoding=value_decoding,
    )


class FlagEvaluationCapture:
    """The flag evaluations made while a capture was active, with assertions on them.

    Build it with ``capture_flag_evaluations()``; the pytest fixture
    ``flag_evaluations`` is one. Reading works during and after the capture.
    ``len()``, iteration and ``events`` give the records in recording order;
    ``query`` and ``wait_for`` give the full query API.
    """

    def __init__(
        self,
        tracer_provider: object = None,
        *,
        processor: SpanProcessorKind = "simple",
        expected_flags: Iterable[str] | None = None,
        strict: bool = False,
        max_size: int = 10_000,
        value_decoding: ValueDecoding = "json",
    ) -> None:
        if processor not in PROCESSOR_KINDS:
            raise ValueError(f"processor must be one of {PROCESSOR_KINDS}, got {processor!r}")
        if not isinstance(strict, bool):
            raise TypeError(f"strict must be a bool, got {strict!r}")
        self._expected = (
            None if expected_flags is None else _check_flag_keys("expected_flags", expected_flags)
        )
        if strict and self._expected is None:
            raise ValueError("strict=True needs expected_flags (use [] to allow no flag at all)")
        self._strict = strict
        self._kind: SpanProcessorKind = processor
        self._decoding = check_value_decoding(value_decoding)
        self._requested_provider = tracer_provider
        self._collector = InMemoryAnalyticsCollector(max_size)
        self._provider: SdkTracerProvider | None = None
        self._attachment: _Attachment | None = None
        self._state: Literal["new", "active", "stopped"] = "new"

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> FlagEvaluationCapture:
        """Attach (once per provider) and start recording; returns the capture.

        Raises:
            RuntimeError: The capture was already started.
            TypeError: The provider is not an SDK ``TracerProvider``.
        """
        __tracebackhide__ = True
        if self._state != "new":
            raise RuntimeError("a flag evaluation capture can only be started once")
        provider = resolve_tracer_provider(self._requested_provider)
        attachment = _attach(provider, self._kind, self._decoding)
        if self._kind == "batch":
            # The batch processor stays attached between captures and still holds the
            # spans that ended before this one started: deliver them elsewhere first.
            attachment.processor.force_flush(_FLUSH_TIMEOUT_MILLIS)
        self._provider = provider
        self._attachment = attachment
        attachment.dispatcher.add(self._collector)
        self._state = "active"
        return self

    def stop(self, *, check_expected: bool = True) -> None:
        """Stop recording, then check ``expected_flags`` if any were given.

        With the batch processor, spans that ended before the stop are flushed
        first, so they land in this capture rather than the next one. Stopping
        twice does nothing more.

        Args:
            check_expected: Whether to check ``expected_flags`` (skip it when
                the code under test already failed).

        Raises:
            AssertionError: ``strict=True`` and a flag outside ``expected_flags``
                was evaluated.
        """
        __tracebackhide__ = True
        if self._state != "active":
            return
        self._stop()
        if check_expected:
            self._check_expected()

    def _stop(self) -> None:
        attachment = self._attachment
        if self._state != "active" or attachment is None:
            return
        try:
            if self._kind == "batch":
                attachment.processor.force_flush(_FLUSH_TIMEOUT_MILLIS)
        finally:
            attachment.dispatcher.remove(self._collector)
            self._state = "stopped"

    def _check_expected(self) -> None:
        __tracebackhide__ = True
        if self._expected is None:
            return
        if self._strict:
            self.assert_only_evaluated(*self._expected)
            return
        unexpected = self._unexpected(self._expected)
        if unexpected:
            warnings.warn(
                UnexpectedFlagWarning(
                    "flags evaluated outside expected_flags="
                    f"{sorted(self._expected)!r}: {_describe_counts(unexpected)}"
                ),
                stacklevel=3,
            )

    def __enter__(self) -> FlagEvaluationCapture:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        # A failure inside the block says more than a flag list would.
        self.stop(check_expected=exc_type is None)

    # -- reading ------------------------------------------------------------------------

    @property
    def collector(self) -> InMemoryAnalyticsCollector:
        """The capture's own collector."""
        return self._collector

    @property
    def tracer_provider(self) -> SdkTracerProvider | None:
        """The provider the capture is attached to, once started."""
        return self._provider

    @property
    def processor(self) -> SpanProcessorKind:
        """The kind of span processor the capture reads through."""
        return self._kind

    @property
    def active(self) -> bool:
        """Whether the capture is recording now."""
        return self._state == "active"

    @property
    def events(self) -> list[FlagEvaluationEvent]:
        """The captured evaluations, in recording order."""
        return self._collector.events()

    @property
    def query(self) -> CollectorQuery:
        """The query API over the captured evaluations (filters, aggregates, waits)."""
        return self._collector.query

    def flag_keys(self) -> list[str]:
        """The keys of the evaluated flags, first evaluated first."""
        return self._collector.flag_keys()

    def wait_for(
        self, *, count: int = 1, timeout: float | None = 5.0, **filters: Unpack[FilterArgs]
    ) -> list[FlagEvaluationEvent]:
        """Block until ``count`` captured evaluations match ``filters``; return them.

        This is how to read evaluations that another thread delivers, such as
        the batch processor's worker. Filters are the query API's; ``timeout``
        is in seconds, ``None`` waits for ever.

        Raises:
            TimeoutError: Not enough matched in time; the message shows what did.
        """
        __tracebackhide__ = True
        try:
            return self.query.wait_for(count=count, timeout=timeout, **filters)
        except TimeoutError as error:
            # Re-raised here so the traceback ends in the test, not in flagscope.
            raise TimeoutError(str(error)) from None

    async def wait_for_async(
        self, *, count: int = 1, timeout: float | None = 5.0, **filters: Unpack[FilterArgs]
    ) -> list[FlagEvaluationEvent]:
        """The async twin of ``wait_for``: awaits without blocking the event loop.

        Raises:
            TimeoutError: Not enough matched in time; the message shows what did.
        """
        __tracebackhide__ = True
        try:
            return await self.query.wait_for_async(count=count, timeout=timeout, **filters)
        except TimeoutError as error:
            raise TimeoutError(str(error)) from None

    def flush(self, timeout_millis: int = _FLUSH_TIMEOUT_MILLIS) -> bool:
        """Export what the batch processor still holds; True when it all went out."""
        attachment = self._attachment
        if attachment is None:
            return True
        return attachment.processor.force_flush(timeout_millis)

    def clear(self) -> None:
        """Forget the evaluations captured so far; the capture goes on."""
        self._collector.clear_sync()

    def __len__(self) -> int:
        return len(self._collector)

    def __iter__(self) -> Iterator[FlagEvaluationEvent]:
        return iter(self._collector.events())

    def __repr__(self) -> str:
        return (
            f"<FlagEvaluationCapture {self._state}: {len(self)} evaluation(s) of "
            f"{len(self._collector.flag_keys())} flag(s)>"
        )

    # -- snapshot -----------------------------------------------------------------------

    def snapshot(
        self,
        include: Iterable[str] = (),
        *,
        exclude: Iterable[str] = (),
        normalize_ids: bool = False,
    ) -> list[dict[str, Any]]:
        """The captured evaluations as plain, deterministic dicts, in recording order.

        Each dict holds ``DEFAULT_SNAPSHOT_FIELDS`` plus ``include``, minus
        ``exclude``. Values are JSON-plain (mappings become dicts, tuples lists),
        reasons plain strings, timestamps ISO 8601 text. Timestamps and ids vary
        from run to run, so they appear only when included.

        Args:
            include: More record fields, e.g. ``("provider_name", "trace_id")``.
            exclude: Fields to leave out.
            normalize_ids: Replace trace and span ids by 1, 2, 3 ... in order of
                first appearance, so "same span" can be asserted deterministically.

        Raises:
            ValueError: A name that is not a ``FlagEvaluationEvent`` field.
            TypeError: ``include`` or ``exclude`` is a single string.
        """
        added = _check_field_names("include", include)
        removed = set(_check_field_names("exclude", exclude))
        names = [name for name in (*DEFAULT_SNAPSHOT_FIELDS, *added) if name not in removed]
        names = list(dict.fromkeys(names))
        numbering: dict[str, dict[str, int]] = {"trace_id": {}, "span_id": {}}
        rows: list[dict[str, Any]] = []
        for event in self._collector.events():
            row: dict[str, Any] = {}
            for name in names:
                raw = getattr(event, name)
                if normalize_ids and name in _ID_FIELDS and raw is not None:
                    seen = numbering[name]
                    row[name] = seen.setdefault(raw, len(seen) + 1)
                elif name == "reason":
                    row[name] = str(raw)
                else:
                    row[name] = json_safe(raw)
            rows.append(row)
        return rows

    # -- assertions ---------------------------------------------------------------------

    def assert_evaluated(
        self,
        flag_key: str,
        *,
        value: Any = UNSET,
        variant: str | _Unset | None = UNSET,
        reason: str | EvaluationReason | _Unset = UNSET,
        error_type: str | _Unset | None = UNSET,
        targeting_key: str | _Unset | None = UNSET,
        times: int | None = None,
    ) -> list[FlagEvaluationEvent]:
        """Assert ``flag_key`` was evaluated with these results; return the matches.

        A keyword left unset is not checked; ``None`` checks for absence (no
        variant, no error). Values compare JSON-normalised (``{"a": 1}`` matches
        a stored mapping, ``[1, 2]`` a tuple) but ``True`` never equals ``1``.
        Reasons compare case-insensitively.

        Args:
            flag_key: The flag's key.
            value: The evaluated value.
            variant: The variant served.
            reason: The evaluation reason.
            error_type: The ``error.type`` of a failed evaluation.
            targeting_key: Who it was evaluated for.
            times: How many matching evaluations exactly; ``None`` means at least one.

        Raises:
            AssertionError: Not matched (or not ``times`` times); the message
                tables what was evaluated instead.
            TypeError: ``flag_key`` is not a str or ``times`` not an int.
            ValueError: ``times`` is negative.
        """
        __tracebackhide__ = True
        _check_flag_key(flag_key)
        if times is not None and (isinstance(times, bool) or not isinstance(times, int)):
            raise TypeError(f"times must be an int or None, got {times!r}")
        if times is not None and times < 0:
            raise ValueError(f"times must be at least 0, got {times}")
        expected: dict[str, Any] = {
            name: wanted
            for name, wanted in (
                ("value", value),
                ("variant", variant),
                ("reason", reason),
                ("error_type", error_type),
                ("targeting_key", targeting_key),
            )
            if wanted is not UNSET
        }
        if "reason" in expected and expected["reason"] is not None:
            expected["reason"] = str(expected["reason"]).lower()
        events = self._collector.events()
        notes: dict[int, str] = {}
        matches: list[FlagEvaluationEvent] = []
        for index, event in enumerate(events):
            if event.flag_key != flag_key:
                continue
            differences = _differences(event, expected)
            notes[index] = (
                "; ".join(differences) if differences else ("matches" if expected else "")
            )
            if not differences:
                matches.append(event)
        if (times is None and matches) or (times is not None and len(matches) == times):
            return matches
        with_part = (
            " with " + ", ".join(f"{name}={wanted!r}" for name, wanted in expected.items())
            if expected
            else ""
        )
        wanted_times = "" if times is None else f" {_times(times)}"
        headline = f"expected flag {flag_key!r} to be evaluated{wanted_times}{with_part}; "
        if not notes:
            headline += "it was not evaluated"
        elif not expected:
            headline += f"it was evaluated {_times(len(notes))}"
        else:
            headline += f"{len(matches)} of its {_count(len(notes), 'evaluation')} matched"
        columns = _columns(with_targeting="targeting_key" in expected)
        raise AssertionError(
            headline + "\n" + _table(events, notes, columns, marks=f"> marks {flag_key!r}")
        )

    def assert_not_evaluated(self, flag_key: str) -> None:
        """Assert ``flag_key`` was never evaluated during the capture.

        Raises:
            AssertionError: It was; the message tables every evaluation.
            TypeError: ``flag_key`` is not a str.
        """
        __tracebackhide__ = True
        _check_flag_key(flag_key)
        events = self._collector.events()
        notes = {index: "" for index, event in enumerate(events) if event.flag_key == flag_key}
        if notes:
            raise AssertionError(
                f"expected flag {flag_key!r} not to be evaluated; it was evaluated "
                f"{_times(len(notes))}\n"
                + _table(events, notes, _columns(), marks=f"> marks {flag_key!r}")
            )

    def assert_no_errors(self) -> None:
        """Assert no captured evaluation failed (no ``error.type``, reason not ``error``).

        Raises:
            AssertionError: Some did; the message tables them with their messages.
        """
        __tracebackhide__ = True
        events = self._collector.events()
        notes = {
            index: event.error_message or "" for index, event in enumerate(events) if event.is_error
        }
        if notes:
            raise AssertionError(
                f"expected no failed flag evaluations; {len(notes)} of {len(events)} failed\n"
                + _table(events, notes, _columns(), marks="> marks failures", note="message")
            )

    def assert_only_evaluated(self, *flag_keys: str) -> None:
        """Assert no flag other than ``flag_keys`` was evaluated (none is fine too).

        Raises:
            AssertionError: Another flag was; the message names each with its count.
            TypeError: A key is not a str.
        """
        __tracebackhide__ = True
        allowed = _check_flag_keys("flag_keys", flag_keys)
        unexpected = self._unexpected(allowed)
        if unexpected:
            events = self._collector.events()
            notes = {
                index: "" for index, event in enumerate(events) if event.flag_key in unexpected
            }
            raise AssertionError(
                f"unexpected flags evaluated (expected only {sorted(allowed)!r}): "
                f"{_describe_counts(unexpected)}\n"
                + _table(events, notes, _columns(), marks="> marks unexpected flags")
            )

    def _unexpected(self, allowed: Collection[str]) -> dict[str, int]:
        counts = self._collector.counts_by_flag()
        return {key: counts[key] for key in self._collector.flag_keys() if key not in allowed}


# -- helpers -------------------------------------------------------------------------------


def _check_flag_key(flag_key: object) -> None:
    if not isinstance(flag_key, str):
        raise TypeError(f"flag_key must be a str, got {flag_key!r}")


def _check_field_names(name: str, names: Iterable[str]) -> list[str]:
    if isinstance(names, str):
        raise TypeError(f"{name} must be a collection of field names, got the string {names!r}")
    items = list(names)
    unknown = [item for item in items if item not in _EVENT_FIELDS]
    if unknown:
        raise ValueError(
            f"{name}: {unknown[0]!r} is not a FlagEvaluationEvent field; "
            f"choose from {', '.join(_EVENT_FIELDS)}"
        )
    return items


def _plain(value: Any) -> Any:
    """JSON-normalise, keeping bools apart from the numbers they equal."""
    if isinstance(value, bool):
        return (bool, value)
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, (int, float, str)) or value is None:
        return value
    return json_safe(value)


def _differences(event: FlagEvaluationEvent, expected: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for name, wanted in expected.items():
        actual: Any = getattr(event, name)
        if name == "value":
            same = _plain(actual) == _plain(wanted)
            actual = json_safe(actual)
        elif name == "reason":
            actual = str(actual)
            same = actual == wanted
        else:
            same = actual == wanted
        if not same:
            found.append(f"{name} {_short(repr(actual))} != {_short(repr(wanted))}")
    return found


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _times(number: int) -> str:
    return "once" if number == 1 else f"{number} times"


def _describe_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{key!r} ({_times(count)})" for key, count in counts.items())


def _columns(*, with_targeting: bool = False) -> tuple[str, ...]:
    if with_targeting:
        return ("flag_key", "value", "variant", "reason", "targeting_key", "error")
    return ("flag_key", "value", "variant", "reason", "error")


def _cell(event: FlagEvaluationEvent, column: str) -> str:
    if column == "value":
        text = repr(json_safe(event.value))
    elif column == "error":
        text = event.error_type or ("error" if event.is_error else "-")
    else:
        raw = getattr(event, column)
        text = "-" if raw is None else str(raw)
    return _short(text)


def _short(text: str) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 3] + "..."


def _table(
    events: list[FlagEvaluationEvent],
    notes: Mapping[int, str],
    columns: tuple[str, ...],
    *,
    marks: str,
    note: str = "",
) -> str:
    """Render the captured evaluations as an aligned table, marked rows first-class."""
    if not events:
        hint = _NO_SPAN_HINT
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            hint = "OTEL_SDK_DISABLED=true is set, so the SDK records no spans at all"
        return f"no flag evaluations were captured ({hint})"
    shown = list(range(len(events)))
    hidden = 0
    if len(shown) > _MAX_TABLE_ROWS:
        # Too many to read: keep the rows the message is about.
        marked = sorted(notes)[:_MAX_TABLE_ROWS]
        hidden = len(events) - len(marked)
        shown = marked
    has_notes = any(notes.get(index) for index in shown)
    header = [*columns, note or "vs expected"] if has_notes else list(columns)
    rows = [
        [*(_cell(events[index], column) for column in columns), notes.get(index, "")]
        if has_notes
        else [_cell(events[index], column) for column in columns]
        for index in shown
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(prefix: str, cells: list[str]) -> str:
        return (prefix + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))).rstrip()

    title = f"captured {_count(len(events), 'flag evaluation')}"
    lines = [f"{title} ({marks}):" if notes else f"{title}:", line("    ", header)]
    lines += [
        line("  > " if index in notes else "    ", row)
        for index, row in zip(shown, rows, strict=True)
    ]
    if hidden:
        lines.append(f"    ... and {hidden} more not shown")
    return "\n".join(lines)
