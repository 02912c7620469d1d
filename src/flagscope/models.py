"""The record flagscope stores for each flag evaluation."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

__all__ = ["EMPTY_MAPPING", "EvaluationReason", "FlagEvaluationEvent", "json_safe"]

EMPTY_MAPPING: Mapping[str, Any] = MappingProxyType({})


class EvaluationReason(StrEnum):
    """The semantic conventions' ``feature_flag.result.reason`` values."""

    STATIC = "static"
    DEFAULT = "default"
    TARGETING_MATCH = "targeting_match"
    SPLIT = "split"
    CACHED = "cached"
    DISABLED = "disabled"
    UNKNOWN = "unknown"
    STALE = "stale"
    ERROR = "error"


def _empty() -> Mapping[str, Any]:
    return EMPTY_MAPPING


def _freeze(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    if type(mapping) is MappingProxyType:
        return mapping
    return MappingProxyType(dict(mapping)) if mapping else EMPTY_MAPPING


@dataclass(frozen=True, slots=True)
class FlagEvaluationEvent:
    """One feature-flag evaluation.

    The first eight fields match litestar-flags' ``FlagEvaluationEvent``, so code
    written against it keeps working. Mappings are stored read-only.

    Attributes:
        timestamp: When the evaluation happened, timezone-aware UTC.
        flag_key: The evaluated flag's key.
        value: The evaluated value, JSON-decoded unless the exporter runs raw.
        reason: An ``EvaluationReason``, or the producer's own reason string.
        variant: The variant served, if the producer sent one.
        targeting_key: ``feature_flag.context.id``: who the flag was evaluated for.
        context_attributes: Evaluation-context attributes, where known.
        evaluation_duration_ms: Evaluation time, where known (OTel does not send it).
        provider_name: The flag provider's name.
        flag_set_id: ``feature_flag.set.id``, e.g. a LaunchDarkly environment.
        version: ``feature_flag.version``.
        error_type: ``error.type`` of a failed evaluation.
        error_message: The failed evaluation's message.
        trace_id: The trace's id, 32 lowercase hex characters.
        span_id: The span's id, 16 lowercase hex characters.
        service_name: The resource's ``service.name``.
        attributes: Every attribute no field took, read-only.
    """

    timestamp: datetime
    flag_key: str
    value: Any
    reason: EvaluationReason | str
    variant: str | None = None
    targeting_key: str | None = None
    context_attributes: Mapping[str, Any] = field(default_factory=_empty)
    evaluation_duration_ms: float | None = None
    provider_name: str | None = None
    flag_set_id: str | None = None
    version: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    service_name: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=_empty)

    def __post_init__(self) -> None:
        # The mapper already passes proxies; this only copies what users pass.
        if type(self.context_attributes) is not MappingProxyType:
            object.__setattr__(self, "context_attributes", _freeze(self.context_attributes))
        if type(self.attributes) is not MappingProxyType:
            object.__setattr__(self, "attributes", _freeze(self.attributes))

    @property
    def is_error(self) -> bool:
        """Whether the evaluation failed (an error type, or reason ``error``)."""
        return self.error_type is not None or self.reason == EvaluationReason.ERROR

    def to_dict(self) -> dict[str, Any]:
        """Return the record as JSON-safe data (``json.dumps`` accepts it)."""
        return {
            "timestamp": self.timestamp.isoformat(),
            "flag_key": self.flag_key,
            "value": json_safe(self.value),
            "reason": str(self.reason),
            "variant": self.variant,
            "targeting_key": self.targeting_key,
            "context_attributes": json_safe(self.context_attributes),
            "evaluation_duration_ms": self.evaluation_duration_ms,
            "provider_name": self.provider_name,
            "flag_set_id": self.flag_set_id,
            "version": self.version,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "service_name": self.service_name,
            "attributes": json_safe(self.attributes),
        }


def json_safe(value: Any) -> Any:
    """Convert a value to data ``json.dumps`` accepts without loss where possible.

    Tuples become lists, mappings get string keys, bytes become hex text,
    non-finite floats become their ``repr`` ("nan", "inf"), and anything else
    unknown becomes its ``repr``.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime):
        return value.isoformat()
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value
