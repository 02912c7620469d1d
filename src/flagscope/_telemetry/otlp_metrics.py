"""OTLP metrics payloads: every one is accepted; flag evaluation counters are read.

``POST /v1/metrics`` and the gRPC ``MetricsService`` accept any OTLP metrics request
(an instrumented application exports metrics by default, and would log an error every
interval on a 404). Data points are counted, not stored, except the flag evaluation
counters OpenFeature's ``MetricsHook`` sends (``@openfeature/open-telemetry-hooks``
1.0.0, meter ``js.openfeature.dev``; recorded in ``tests/fixtures/otlp-js/of-metrics-*``):

* ``feature_flag.evaluation_success_total``: ``feature_flag.key``,
  ``feature_flag.provider.name``, ``feature_flag.result.variant`` (the value as
  text when there is no variant) and ``feature_flag.result.reason`` (uppercase, as
  the SDK reports it; lowercased here as everywhere in flagscope);
* ``feature_flag.evaluation_error_total``: key, provider and ``exception`` (the
  error's message), counted under the reason ``error``;
* ``feature_flag.evaluation_requests_total``: key and provider (every evaluation);
* ``feature_flag.evaluation_active_count`` (an up-down counter): not kept.

The SDKs export counters cumulatively by default: each export repeats the running
total, so a series (resource, scope, metric, attributes, start time) is replaced by
its latest value, never added to. Delta series are added.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

from flagscope._extras import missing_extra
from flagscope._telemetry import semconv
from flagscope._telemetry.otlp import Encoding, any_value
from flagscope._telemetry.otlp import _hex_ids_to_base64 as hex_ids_to_base64
from flagscope._telemetry.otlp import _items as items
from flagscope._telemetry.otlp import _parse_json as parse_json
from flagscope._telemetry.otlp import _parse_protobuf as parse_protobuf
from flagscope._telemetry.otlp_batch import OtlpBatch
from flagscope._telemetry.otlp_json import load_json

try:
    from google.protobuf import json_format
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
        ExportMetricsServiceResponse,
    )
    from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise missing_extra(error, "flagscope._telemetry.otlp_metrics", "server") from error

__all__ = [
    "FLAG_METRIC_NAMES",
    "FlagSeries",
    "MetricsBatch",
    "decode_metrics",
    "map_metrics",
    "metrics_response",
    "read_metrics",
]

SUCCESS_TOTAL: Final = "feature_flag.evaluation_success_total"
ERROR_TOTAL: Final = "feature_flag.evaluation_error_total"
REQUESTS_TOTAL: Final = "feature_flag.evaluation_requests_total"
FLAG_METRIC_NAMES: Final = frozenset({SUCCESS_TOTAL, ERROR_TOTAL, REQUESTS_TOTAL})
_ERROR_REASON: Final = "error"
_UNKNOWN_REASON: Final = "unknown"
_DELTA: Final = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
_DATA_KINDS: Final = ("gauge", "sum", "histogram", "exponential_histogram", "summary")

SeriesKind = Literal["success", "error", "requests"]
_KINDS: Final[dict[str, SeriesKind]] = {
    SUCCESS_TOTAL: "success",
    ERROR_TOTAL: "error",
    REQUESTS_TOTAL: "requests",
}


@dataclass(frozen=True, slots=True)
class FlagSeries:
    """One data point of a flag evaluation counter.

    Attributes:
        identity: What makes the series itself (resource, scope, metric name,
            attributes, start time): a cumulative point replaces the last one with
            the same identity.
        kind: ``"success"``, ``"error"`` or ``"requests"``.
        flag_key: ``feature_flag.key``.
        variant: The variant (``None`` for errors and requests).
        reason: The lowercased reason (``"error"`` for errors, ``None`` for requests).
        provider_name: ``feature_flag.provider.name``, when sent.
        value: The counter's value at this point.
        cumulative: Whether ``value`` is a running total (else a delta).
    """

    identity: str
    kind: SeriesKind
    flag_key: str
    variant: str | None
    reason: str | None
    provider_name: str | None
    value: int
    cumulative: bool


@dataclass(frozen=True, slots=True)
class MetricsBatch(OtlpBatch):
    """What one OTLP metrics request held: ``received`` counts its data points.

    ``events`` is always empty (metrics are not evaluations) and nothing is
    rejected: every metrics payload that decodes is acknowledged.

    Attributes:
        series: The flag evaluation counters' data points, in payload order.
    """

    series: tuple[FlagSeries, ...] = ()


def decode_metrics(body: bytes, encoding: Encoding) -> ExportMetricsServiceRequest:
    """Decode an ``ExportMetricsServiceRequest``.

    Raises:
        OtlpDecodeError: The body is not a valid request in that encoding.
    """
    request = ExportMetricsServiceRequest()
    if encoding == "protobuf":
        parse_protobuf(request, body)
        return request
    document = load_json(body)
    for resource in items(document, "resourceMetrics", "resource_metrics"):
        for scope in items(resource, "scopeMetrics", "scope_metrics"):
            for metric in items(scope, "metrics"):
                if not isinstance(metric, dict):
                    continue
                for data in metric.values():
                    for point in items(data, "dataPoints", "data_points"):
                        for exemplar in items(point, "exemplars"):
                            # OTLP/JSON ids are hex; protobuf's JSON mapping wants base64.
                            hex_ids_to_base64(
                                exemplar, ("traceId", "trace_id"), ("spanId", "span_id")
                            )
    parse_json(request, document)
    return request


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _count(point: Any) -> int | None:
    kind = point.WhichOneof("value")
    if kind == "as_int":
        return int(point.as_int)
    if kind == "as_double" and point.as_double >= 0 and point.as_double.is_integer():
        return int(point.as_double)
    return None


def _identity(*parts: Any) -> str:
    return json.dumps(parts, separators=(",", ":"), default=repr)


def _attributes(pairs: Iterable[Any]) -> dict[str, Any]:
    return {pair.key: any_value(pair.value) for pair in pairs}


def _sorted_items(attributes: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((key, repr(value)) for key, value in attributes.items())


def map_metrics(request: ExportMetricsServiceRequest) -> MetricsBatch:
    """Count a decoded metrics request's data points and read its flag counters.

    Never raises for content: a flag counter point without a string
    ``feature_flag.key`` or a count is left out.
    """
    received = 0
    series: list[FlagSeries] = []
    for resource_metrics in request.resource_metrics:
        resource: list[tuple[str, str]] | None = None
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind not in _DATA_KINDS:
                    continue
                points = getattr(metric, kind).data_points
                received += len(points)
                flag_kind = _KINDS.get(metric.name)
                if flag_kind is None or kind != "sum":
                    continue
                if resource is None:
                    resource = _sorted_items(_attributes(resource_metrics.resource.attributes))
                cumulative = metric.sum.aggregation_temporality != _DELTA
                for point in points:
                    attributes = _attributes(point.attributes)
                    flag_key = _text(attributes.get(semconv.KEY))
                    value = _count(point)
                    if flag_key is None or value is None:
                        continue
                    variant = reason = None
                    if flag_kind == "success":
                        variant = _text(attributes.get(semconv.RESULT_VARIANT))
                        reason = (
                            _text(attributes.get(semconv.RESULT_REASON)) or _UNKNOWN_REASON
                        ).lower()
                    elif flag_kind == "error":
                        reason = _ERROR_REASON
                    series.append(
                        FlagSeries(
                            _identity(
                                resource,
                                scope_metrics.scope.name,
                                metric.name,
                                _sorted_items(attributes),
                                point.start_time_unix_nano,
                            ),
                            flag_kind,
                            flag_key,
                            variant,
                            reason,
                            _text(attributes.get(semconv.PROVIDER_NAME)),
                            value,
                            cumulative,
                        )
                    )
    return MetricsBatch((), received, series=tuple(series))


def read_metrics(body: bytes, encoding: Encoding, **_: Any) -> MetricsBatch:
    """Decode and map an OTLP metrics request body (what ``POST /v1/metrics`` receives).

    Keyword arguments (the trace and log readers' value options) are accepted and
    ignored: counters carry no flag values.

    Raises:
        OtlpDecodeError: The body is not a valid request; nothing of it is kept.
    """
    return map_metrics(decode_metrics(body, encoding))


def metrics_response(batch: OtlpBatch, encoding: Encoding) -> bytes:
    """Encode the ``ExportMetricsServiceResponse``: every data point is accepted."""
    response = ExportMetricsServiceResponse()
    if encoding == "protobuf":
        data: bytes = response.SerializeToString()
        return data
    return json.dumps(json_format.MessageToDict(response), separators=(",", ":")).encode()
