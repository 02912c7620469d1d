"""What one OTLP request held, and the tally both OTLP decoders fill."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from flagscope import semconv
from flagscope.classify import Source, classify_log, classify_span
from flagscope.mapping import SkipReason
from flagscope.models import EMPTY_MAPPING, FlagEvaluationEvent

__all__ = ["OtlpBatch", "OtlpDecodeError", "SpanEvent", "Tally"]

_MAX_SKIP_DETAIL: Final = 5
_SPAN_NAME: Final = semconv.SPAN_NAME
_logger = logging.getLogger("flagscope")


class OtlpDecodeError(ValueError):
    """The payload is not a valid OTLP request of the expected signal."""


@dataclass(frozen=True, slots=True)
class OtlpBatch:
    """What one OTLP request held.

    Attributes:
        events: The evaluations mapped from it, in payload order.
        received: Spans (or log records) in the request.
        rejected: Of those, how many carried flag telemetry that could not be
            mapped (OTLP's ``rejected_spans`` / ``rejected_log_records``).
        skipped_by_reason: Unmapped evaluations, by ``SkipReason`` value.
    """

    events: tuple[FlagEvaluationEvent, ...]
    received: int
    rejected: int = 0
    skipped_by_reason: Mapping[str, int] = field(default_factory=lambda: EMPTY_MAPPING)

    @property
    def error_message(self) -> str:
        """A short account of what was skipped; empty when nothing was."""
        if not self.skipped_by_reason:
            return ""
        parts = sorted(self.skipped_by_reason.items(), key=lambda item: (-item[1], item[0]))
        detail = ", ".join(f"{count} {reason}" for reason, count in parts[:_MAX_SKIP_DETAIL])
        return f"flagscope skipped flag evaluations it could not map: {detail}"


class SpanEvent(NamedTuple):
    """A span event as the classifier reads it (the SDK's ``Event`` has these names)."""

    name: str
    attributes: Any
    timestamp: int | None


class Tally:
    """The records and counts of one request, filled span by span (or record by record)."""

    __slots__ = ("events", "received", "rejected", "skipped")

    def __init__(self) -> None:
        self.events: list[FlagEvaluationEvent] = []
        self.received = 0
        self.rejected = 0
        self.skipped: dict[str, int] = {}

    def add_span(
        self,
        source: Source,
        name: str,
        flag_events: Sequence[SpanEvent],
        span_attributes: Callable[[], Any],
        trace_id: Any,
        span_id: Any,
        parent_span_id: Any,
        start_ns: int | None,
        end_ns: int | None,
    ) -> None:
        """Count one span and map its evaluations (see ``classify_span``)."""
        self.received += 1
        if not flag_events and name != _SPAN_NAME:
            return
        before = sum(self.skipped.values())
        try:
            classify_span(
                source,
                name,
                flag_events,
                span_attributes,
                trace_id,
                span_id,
                parent_span_id,
                start_ns,
                end_ns,
                self.events,
                self.skipped,
            )
        except Exception:
            # One odd span must not lose the rest of the request.
            _logger.debug("flagscope: could not map an OTLP span", exc_info=True)
            self._skip_item()
        if sum(self.skipped.values()) != before:
            self.rejected += 1

    def add_log(self, source: Source, **record: Any) -> None:
        """Count one log record and map its evaluation (see ``classify_log``)."""
        self.received += 1
        before = sum(self.skipped.values())
        try:
            classify_log(source, records=self.events, skipped=self.skipped, **record)
        except Exception:
            _logger.debug("flagscope: could not map an OTLP log record", exc_info=True)
            self._skip_item()
        if sum(self.skipped.values()) != before:
            self.rejected += 1

    def _skip_item(self) -> None:
        reason = SkipReason.MAPPING_ERROR.value
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def batch(self) -> OtlpBatch:
        """The request's ``OtlpBatch``."""
        skipped = MappingProxyType(self.skipped) if self.skipped else EMPTY_MAPPING
        return OtlpBatch(tuple(self.events), self.received, self.rejected, skipped)
