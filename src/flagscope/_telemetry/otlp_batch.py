"""What one OTLP request held, and the tally both OTLP decoders fill."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from flagscope._store.outcomes import (
    NO_OUTCOME,
    TIME_LIMIT,
    OutcomeItem,
    RawOutcome,
    evaluation_span_item,
    raw_outcome,
)
from flagscope._store.records import (
    EMPTY_MAPPING,
    PARENT_KEY,
    SPAN_KEY,
    TRACE_KEY,
    FlagEvaluationEvent,
    span_id_key,
    trace_id_key,
)
from flagscope._telemetry import semconv
from flagscope._telemetry.classify import (
    Source,
    classify_log,
    classify_span,
    http_status_attribute,
)
from flagscope._telemetry.mapping import SkipReason, ValueDecoding, map_typical

__all__ = [
    "STATUS_CODES",
    "OtlpBatch",
    "OtlpDecodeError",
    "SpanEvent",
    "Tally",
    "is_local_root",
    "typical_item",
]

_MAX_SKIP_DETAIL: Final = 5
_SPAN_NAME: Final = semconv.SPAN_NAME
# OTLP span flags (proto 1.1+): bit 8 says whether bit 9, "the parent is remote", is set.
_HAS_IS_REMOTE: Final = 0x100
_IS_REMOTE: Final = 0x200
# Span kinds that start a service's part of a trace: SERVER and CONSUMER.
_ENTRY_KINDS: Final = frozenset({2, 5, "SPAN_KIND_SERVER", "SPAN_KIND_CONSUMER"})
# OTLP status codes, as numbers or OTLP/JSON's names, to 0 unset, 1 ok, 2 error.
STATUS_CODES: Final = {
    0: 0,
    1: 1,
    2: 2,
    "STATUS_CODE_UNSET": 0,
    "STATUS_CODE_OK": 1,
    "STATUS_CODE_ERROR": 2,
}
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
        outcomes: The outcomes of spans that explain evaluations (their own,
            their requests'), for ``record_outcomes`` after the events.
    """

    events: tuple[FlagEvaluationEvent, ...]
    received: int
    rejected: int = 0
    skipped_by_reason: Mapping[str, int] = field(default_factory=lambda: EMPTY_MAPPING)
    outcomes: tuple[OutcomeItem, ...] = ()

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

    __slots__ = (
        "_plain",
        "_wanted_parents",
        "events",
        "outcomes",
        "received",
        "rejected",
        "skipped",
    )

    def __init__(self) -> None:
        self.events: list[FlagEvaluationEvent] = []
        self.received = 0
        self.rejected = 0
        self.skipped: dict[str, int] = {}
        self.outcomes: list[OutcomeItem] = []
        # Spans that are neither local roots nor hold evaluations, by span id, until
        # the end of the request: an evaluation span later in it may name one its parent.
        self._plain: dict[Any, tuple[Source, Any, Callable[[], RawOutcome]]] = {}
        self._wanted_parents: list[Any] = []

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
        status_code: Any = 0,
        status_message: Any = None,
        flags: Any = 0,
        kind: Any = 0,
    ) -> None:
        """Count one span and map its evaluations (see ``classify_span``).

        ``status_code`` and ``status_message`` are the span's status, ``flags``
        its OTLP flags and ``kind`` its span kind (numbers or OTLP/JSON enum
        names): they say what happened to it and whether it is a local root.
        """
        self.received += 1
        is_root = not parent_span_id or is_local_root(parent_span_id, flags, kind)
        if not flag_events and name != _SPAN_NAME:
            try:
                if is_root:
                    self.outcomes.append(
                        (
                            trace_id_key(trace_id),
                            span_id_key(span_id),
                            source.service_name,
                            None,
                            True,
                            0,
                            _outcome(
                                name, status_code, status_message, start_ns, end_ns, span_attributes
                            ),
                        )
                    )
                elif span_id:
                    self._plain[span_id] = (
                        source,
                        trace_id,
                        partial(
                            _outcome,
                            name,
                            status_code,
                            status_message,
                            start_ns,
                            end_ns,
                            span_attributes,
                        ),
                    )
            except Exception:
                _logger.debug("flagscope: could not read an OTLP span's outcome", exc_info=True)
            return
        skipped = self.skipped
        # The skip counts are summed only when there are any: usually there are none.
        before = sum(skipped.values()) if skipped else 0
        events = self.events
        count = len(events)
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
                events,
                skipped,
            )
        except Exception:
            # One odd span must not lose the rest of the request.
            _logger.debug("flagscope: could not map an OTLP span", exc_info=True)
            self._skip_item()
        if skipped and sum(skipped.values()) != before:
            self.rejected += 1
        if len(events) > count:
            record = events[-1]
            if name == _SPAN_NAME:
                # The JS SpanHook's span: it explains nothing; the span it was made in does.
                self._wanted_parents.append(parent_span_id)
                self.outcomes.append(
                    evaluation_span_item(
                        TRACE_KEY(record), SPAN_KEY(record), source.service_name, PARENT_KEY(record)
                    )
                )
            else:
                try:
                    raw = _outcome(
                        name, status_code, status_message, start_ns, end_ns, span_attributes
                    )
                except Exception:
                    _logger.debug("flagscope: could not read an OTLP span's outcome", exc_info=True)
                    raw = NO_OUTCOME
                self.outcomes.append(
                    (
                        TRACE_KEY(record),
                        SPAN_KEY(record),
                        source.service_name,
                        None,
                        is_root,
                        1,
                        raw,
                    )
                )

    def add_log(self, source: Source, **record: Any) -> None:
        """Count one log record and map its evaluation (see ``classify_log``)."""
        self.received += 1
        before = sum(self.skipped.values())
        count = len(self.events)
        try:
            classify_log(source, records=self.events, skipped=self.skipped, **record)
        except Exception:
            _logger.debug("flagscope: could not map an OTLP log record", exc_info=True)
            self._skip_item()
        if sum(self.skipped.values()) != before:
            self.rejected += 1
        if len(self.events) > count:
            # Made inside a span: that span and its request explain it, when they come.
            event = self.events[-1]
            self.outcomes.append(
                (TRACE_KEY(event), SPAN_KEY(event), source.service_name, None, False, 3, NO_OUTCOME)
            )

    def _skip_item(self) -> None:
        reason = SkipReason.MAPPING_ERROR.value
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def batch(self) -> OtlpBatch:
        """The request's ``OtlpBatch``."""
        skipped = MappingProxyType(self.skipped) if self.skipped else EMPTY_MAPPING
        outcomes = self.outcomes
        plain = self._plain
        by_lower_case: dict[str, Any] | None = None
        for parent in self._wanted_parents:
            entry = plain.pop(parent, None) if parent else None
            if entry is None and parent and type(parent) is str and plain:
                # OTLP/JSON's hex ids are one id in either case (protobuf's are bytes):
                # a parent sent in another case than its span's id is still found.
                if by_lower_case is None:
                    by_lower_case = {key.lower(): key for key in plain if type(key) is str}
                key = by_lower_case.get(parent.lower())
                entry = plain.pop(key, None) if key is not None else None
            if entry is None:
                continue
            source, trace_id, outcome = entry
            try:
                outcomes.append(
                    (
                        trace_id_key(trace_id),
                        span_id_key(parent),
                        source.service_name,
                        None,
                        False,
                        0,
                        outcome(),
                    )
                )
            except Exception:
                _logger.debug("flagscope: could not read an OTLP span's outcome", exc_info=True)
        return OtlpBatch(tuple(self.events), self.received, self.rejected, skipped, tuple(outcomes))


def is_local_root(parent_span_id: Any, flags: Any, kind: Any) -> bool:
    """Whether a span starts its service's part of the trace.

    No parent: yes. A parent: the OTLP flags say whether it is remote (SDKs set
    them since proto 1.1); where they do not, a SERVER or CONSUMER span counts
    as the entry point.
    """
    if not parent_span_id:
        return True
    if type(flags) is int and flags & _HAS_IS_REMOTE:
        return bool(flags & _IS_REMOTE)
    return kind in _ENTRY_KINDS


def typical_item(
    attributes: Mapping[str, Any],
    event_time: int | None,
    trace_id: int,
    span_id: int,
    parent_id: int | None,
    is_root: bool,
    service: str | None,
    language: str | None,
    decoding: ValueDecoding,
    name: str,
    code: int,
    message: str | None,
    start: int,
    end: int,
    http: int | None,
) -> tuple[FlagEvaluationEvent, OutcomeItem] | None:
    """The record and outcome item ``Tally.add_span`` makes of a usual span, or ``None``.

    The short path both OTLP decoders share (``otlp._typical_span``,
    ``otlp_json._typical_span``), once each has checked and read the span in its own
    encoding: ids as ints, ``code`` 0 to 2, ``http`` the span's HTTP status attribute.
    ``None`` when ``map_typical`` does not map the event: ``Tally.add_span`` then does.
    """
    record = map_typical(
        attributes, event_time, trace_id, span_id, parent_id, service, language, decoding
    )
    if record is None:
        return None
    if http is None:
        # ``_outcome``'s tuple for a span without an HTTP status.
        outcome: RawOutcome = (
            name,
            code,
            message or None,
            end - start if 0 < start <= end < TIME_LIMIT else -1,
            0,
        )
    else:
        outcome = raw_outcome(name, code, message, start, end, http)
    return record, (trace_id, span_id, service, None, is_root, 1, outcome)


def _outcome(
    name: str,
    status_code: Any,
    status_message: Any,
    start_ns: Any,
    end_ns: Any,
    span_attributes: Callable[[], Any],
) -> RawOutcome:
    code = STATUS_CODES.get(status_code, 0) if type(status_code) in (int, str) else 0
    http = None
    http_status = getattr(span_attributes, "http_status", None)
    if http_status is not None:
        # The protobuf reader's lazy attributes: one key found without unwrapping all.
        http = http_status()
    else:
        attributes = span_attributes()
        if isinstance(attributes, Mapping):
            http = http_status_attribute(attributes)
    if http is None:
        # ``raw_outcome``'s tuple for a span without an HTTP status (most spans that
        # hold evaluations), built here: two Python calls less per span.
        return (
            name,
            code,
            (status_message or None) if type(status_message) is str else None,
            end_ns - start_ns
            if type(start_ns) is int and type(end_ns) is int and 0 < start_ns <= end_ns < TIME_LIMIT
            else -1,
            0,
        )
    return raw_outcome(
        name,
        code,
        status_message if type(status_message) is str else None,
        start_ns if type(start_ns) is int else None,
        end_ns if type(end_ns) is int else None,
        http,
    )
