"""The capture: flag evaluations recorded while it is active, with assertions on them.

``capture_flag_evaluations()`` works anywhere (unittest, scripts); the pytest
plugin's ``flag_evaluations`` fixture is a thin wrapper around it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Unpack

from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.trace import TracerProvider

from flagscope._query.collector import InMemoryAnalyticsCollector
from flagscope._query.filters import FilterArgs
from flagscope._query.impact import BaselineNotServedError, FlagImpact
from flagscope._store.records import EvaluationReason, FlagEvaluationEvent
from flagscope._telemetry.exporter import check_value_decoding
from flagscope._telemetry.mapping import ValueDecoding
from flagscope._validate import check_bool
from flagscope.testing import _assertions, _impact_checks
from flagscope.testing._assertions import UNSET, Unset, check_flag_keys, unexpected_flags
from flagscope.testing._attachment import (
    FLUSH_TIMEOUT_MILLIS,
    PROCESSOR_KINDS,
    Attachment,
    SpanProcessorKind,
    attach,
    resolve_tracer_provider,
)
from flagscope.testing._snapshot import snapshot_rows
from flagscope.testing._table import describe_counts

if TYPE_CHECKING:
    from flagscope._query.query import CollectorQuery

__all__ = ["FlagEvaluationCapture", "UnexpectedFlagWarning", "capture_flag_evaluations"]


class UnexpectedFlagWarning(UserWarning):
    """A flag outside a capture's ``expected_flags`` was evaluated (``strict=False``)."""


def capture_flag_evaluations(
    tracer_provider: TracerProvider | None = None,
    *,
    processor: SpanProcessorKind = "simple",
    expected_flags: Iterable[str] | None = None,
    strict: bool = False,
    max_size: int = 10_000,
    value_decoding: ValueDecoding = "auto",
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
        value_decoding: ``"auto"`` (the default), ``"json"`` or ``"raw"``, as for the exporter.

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
        tracer_provider: TracerProvider | None = None,
        *,
        processor: SpanProcessorKind = "simple",
        expected_flags: Iterable[str] | None = None,
        strict: bool = False,
        max_size: int = 10_000,
        value_decoding: ValueDecoding = "auto",
    ) -> None:
        if processor not in PROCESSOR_KINDS:
            raise ValueError(f"processor must be one of {PROCESSOR_KINDS}, got {processor!r}")
        check_bool("strict", strict)
        self._expected = (
            None if expected_flags is None else check_flag_keys("expected_flags", expected_flags)
        )
        if strict and self._expected is None:
            raise ValueError("strict=True needs expected_flags (use [] to allow no flag at all)")
        self._strict = strict
        self._kind: SpanProcessorKind = processor
        self._decoding = check_value_decoding(value_decoding)
        self._requested_provider = tracer_provider
        self._collector = InMemoryAnalyticsCollector(max_size)
        self._provider: SdkTracerProvider | None = None
        self._attachment: Attachment | None = None
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
        attachment = attach(provider, self._kind, self._decoding)
        if self._kind == "batch":
            # The batch processor stays attached between captures and still holds the
            # spans that ended before this one started: deliver them elsewhere first.
            attachment.processor.force_flush(FLUSH_TIMEOUT_MILLIS)
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
        attachment = self._attachment
        if self._state != "active" or attachment is None:
            return
        try:
            if self._kind == "batch":
                attachment.processor.force_flush(FLUSH_TIMEOUT_MILLIS)
        finally:
            attachment.dispatcher.remove(self._collector)
            self._state = "stopped"
        if check_expected:
            self._check_expected()

    def _check_expected(self) -> None:
        __tracebackhide__ = True
        if self._expected is None:
            return
        if self._strict:
            self.assert_only_evaluated(*self._expected)
            return
        unexpected = unexpected_flags(self._collector.events(), self._expected)
        if unexpected:
            warnings.warn(
                UnexpectedFlagWarning(
                    "flags evaluated outside expected_flags="
                    f"{sorted(self._expected)!r}: {describe_counts(unexpected)}"
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

    def flush(self, timeout_millis: int = FLUSH_TIMEOUT_MILLIS) -> bool:
        """Export what the batch processor still holds; True when it all went out."""
        attachment = self._attachment
        if attachment is None:
            return True
        return attachment.processor.force_flush(timeout_millis)

    def clear(self) -> None:
        """Forget the evaluations captured so far; the capture goes on."""
        self._collector.clear()

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
            TypeError: ``include`` or ``exclude`` is a single string, or
                ``normalize_ids`` is not a bool.
        """
        check_bool("normalize_ids", normalize_ids)
        return snapshot_rows(
            self._collector.events(), include, exclude, normalize_ids=normalize_ids
        )

    # -- assertions ---------------------------------------------------------------------

    def assert_evaluated(
        self,
        flag_key: str,
        *,
        value: Any = UNSET,
        variant: str | Unset | None = UNSET,
        reason: str | EvaluationReason | Unset = UNSET,
        error_type: str | Unset | None = UNSET,
        targeting_key: str | Unset | None = UNSET,
        times: int | None = None,
    ) -> list[FlagEvaluationEvent]:
        """Assert ``flag_key`` was evaluated with these results; return the matches.

        A keyword left unset is not checked; ``None`` checks for absence (no
        variant, no error). Values compare by flagscope's one rule
        (``flagscope._store.values``: ``1`` equals ``1.0``, ``True`` never equals ``1``,
        NaN matches NaN, mappings by content). Reasons compare case-insensitively.

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
        return _assertions.evaluated(
            self._collector.events(),
            flag_key,
            times=times,
            value=value,
            variant=variant,
            reason=reason,
            error_type=error_type,
            targeting_key=targeting_key,
        )

    def assert_not_evaluated(self, flag_key: str) -> None:
        """Assert ``flag_key`` was never evaluated during the capture.

        Raises:
            AssertionError: It was; the message tables every evaluation.
            TypeError: ``flag_key`` is not a str.
        """
        __tracebackhide__ = True
        _assertions.not_evaluated(self._collector.events(), flag_key)

    def assert_no_errors(self) -> None:
        """Assert no captured evaluation failed (no ``error.type``, reason not ``error``).

        Raises:
            AssertionError: Some did; the message tables them with their messages.
        """
        __tracebackhide__ = True
        _assertions.no_errors(self._collector.events())

    def assert_no_regression(
        self,
        flag_key: str,
        /,
        *,
        baseline: str | None = None,
        scope: str = "request",
        require_verdict: bool = True,
        **filters: Unpack[FilterArgs],
    ) -> FlagImpact:
        """Assert no variant of ``flag_key`` made its requests fail more or run slower.

        For integration tests that drive enough traffic (at least
        ``flagscope._query.impact.MIN_REQUESTS`` requests per variant): judges each
        variant against the baseline as ``query.impact`` does, and fails when one
        is ``worse``.

        Args:
            flag_key: The flag.
            baseline: The variant to compare with (``query.impact``'s default otherwise).
            scope: ``"request"`` or ``"span"``, as for ``query.impact``.
            require_verdict: Also fail when a variant has too little data to judge
                (on by default: a regression test that judged nothing proves nothing).
            **filters: The query API's filters.

        Returns:
            The ``FlagImpact``, for further checks.

        Raises:
            AssertionError: A variant is worse (or, with ``require_verdict``, could not
                be judged, or the flag was never evaluated): the message tables every
                variant. Or ``baseline`` was never served: it names those that were.
            TypeError: A bad argument, as for ``query.impact``.
            ValueError: A bad argument, as for ``query.impact``.
        """
        __tracebackhide__ = True
        check_bool("require_verdict", require_verdict)
        try:
            impact = self.query.impact(flag_key, baseline=baseline, scope=scope, **filters)
        except BaselineNotServedError as error:
            # A misspelt baseline, or one not in this run's traffic: the test's finding.
            raise AssertionError(str(error)) from None
        _impact_checks.no_regression(impact, require_verdict=require_verdict)
        return impact

    def assert_only_evaluated(self, *flag_keys: str) -> None:
        """Assert no flag other than ``flag_keys`` was evaluated (none is fine too).

        Raises:
            AssertionError: Another flag was; the message names each with its count.
            TypeError: A key is not a str.
        """
        __tracebackhide__ = True
        allowed = check_flag_keys("flag_keys", flag_keys)
        _assertions.only_evaluated(self._collector.events(), allowed)
