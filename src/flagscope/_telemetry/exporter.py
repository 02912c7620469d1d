"""OpenTelemetry exporters that record feature-flag evaluations into a collector."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, StatusCode

from flagscope._store.outcomes import (
    HTTP_LIMIT,
    TIME_LIMIT,
    OutcomeItem,
    RawOutcome,
    evaluation_span_item,
    http_status,
)
from flagscope._store.records import (
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
    classify_span,
    http_status_attribute,
    source_of,
)
from flagscope._telemetry.mapping import (
    VALUE_DECODINGS,
    SkipReason,
    ValueDecoding,
    map_typical,
)
from flagscope._telemetry.span_fields import (
    CONTEXT_ITEMS_HOLD,
    EVENTS_LIST,
    FIELD_READERS,
    SDK_EVENT,
    reads_fields,
)
from flagscope._telemetry.stats import ExporterStats, StatsCounter
from flagscope._validate import check_choice

__all__ = ["EventSink", "FlagEvaluationSpanExporter"]

_logger = logging.getLogger("flagscope")
_EVENT_NAMES = semconv.EVENT_NAMES
_SPAN_NAME = semconv.SPAN_NAME
_HTTP_STATUS = semconv.HTTP_RESPONSE_STATUS_CODE
_HTTP_STATUS_OLD = semconv.HTTP_STATUS_CODE_OLD
_ERROR = StatusCode.ERROR
_OK = StatusCode.OK
_HTTP_KEYS = frozenset((_HTTP_STATUS, _HTTP_STATUS_OLD))
_TRACE_ID_LIMIT = 1 << 128
_SPAN_ID_LIMIT = 1 << 64


def _NO_ATTRIBUTES() -> None:  # noqa: N802 - a constant, called only for evaluation spans
    return None


# In-process telemetry comes from hooks in this Python process, whatever the
# resource says (a hand-made Resource may lack telemetry.sdk.language).
_IN_PROCESS_LANGUAGE = "python"
_Item = TypeVar("_Item")  # what the SDK hands to export(): spans, log records
_Result = TypeVar("_Result")  # what export() answers: the SDK's result enum


class BatchOutcomes(list[OutcomeItem]):
    """One export's outcome items, and the spans its evaluation spans were made in.

    A span's parent ends after it, so it comes later in the same batch (a
    ``BatchSpanProcessor`` exports spans in the order they end): ``parents``
    tells ``_offer`` to keep it, as ``want_spans`` does across batches.
    """

    __slots__ = ("parents",)

    def __init__(self) -> None:
        super().__init__()
        self.parents: set[Any] = set()


@runtime_checkable
class EventSink(Protocol):
    """Where exporters put records: anything with a thread-safe, synchronous ``record_batch``."""

    def record_batch(self, events: list[FlagEvaluationEvent]) -> object:
        """Store the records now; called from the SDK's threads, must not block long.

        What it returns is ignored (the collector's is an already finished awaitable).
        """
        ...


def check_sink(collector: object) -> EventSink:
    """Return ``collector`` if exporters can record into it.

    Raises:
        TypeError: It has no synchronous, callable ``record_batch``.
    """
    # ``isinstance`` on a Protocol only checks that the name exists; an async
    # ``record_batch`` (litestar-flags') would return coroutines nobody awaits and lose
    # every record.
    record_batch = getattr(collector, "record_batch", None)
    if (
        not isinstance(collector, EventSink)
        or not callable(record_batch)
        or inspect.iscoroutinefunction(record_batch)
    ):
        raise TypeError(
            "collector must have a synchronous record_batch(events) method, such as "
            f"flagscope.InMemoryAnalyticsCollector; got {type(collector).__name__}"
        )
    return collector


def check_value_decoding(value_decoding: object) -> ValueDecoding:
    """Return ``value_decoding`` if it is ``"auto"``, ``"json"`` or ``"raw"``.

    Raises:
        ValueError: It is anything else (``None`` included, as it always has been).
    """
    if not isinstance(value_decoding, str):
        raise ValueError(f"value_decoding must be one of {VALUE_DECODINGS}, got {value_decoding!r}")
    return check_choice("value_decoding", value_decoding, VALUE_DECODINGS)


class BaseFlagExporter(Generic[_Item, _Result]):
    """What the span and log exporters share: sink, decoding, stats, ``export()``.

    A subclass maps one item with ``_map_item`` and passes its SDK's success
    and failure results to ``__init__``.
    """

    _ITEMS = "items"  # what the SDK hands to export(), for log messages

    def __init__(
        self,
        collector: EventSink,
        value_decoding: ValueDecoding,
        *,
        success: _Result,
        failure: _Result,
    ) -> None:
        self._collector = check_sink(collector)
        self._value_decoding = check_value_decoding(value_decoding)
        self._stats = StatsCounter(type(self).__name__)
        # (resource, Source): a provider gives every item the same resource, so
        # its name and language are read once. One tuple, so threads exporting at
        # once never pair a Source with another resource.
        self._source_cache: tuple[Any, Source | None] = (None, None)
        self._shutdown = False
        self._success = success
        self._failure = failure
        # Outcomes go where the sink can keep them (``record_with_outcomes``); its store's
        # wanted tables tell the span path, cheaply, whether a plain span may matter.
        record_outcomes = getattr(collector, "record_with_outcomes", None)
        self._record_outcomes = record_outcomes if callable(record_outcomes) else None
        store = getattr(collector, "outcomes", None) if self._record_outcomes else None
        self._want_spans: dict[Any, int] | None = getattr(store, "want_spans", None)
        self._want_requests: dict[Any, int] | None = getattr(store, "want_requests", None)
        self._outcome_store = store
        # A sink that keeps outcomes without a store of its own (the test capture's
        # dispatcher, fanning out to several collectors) is offered every local root.
        self._offer_roots = self._record_outcomes is not None and store is None
        # The store's one-span entry (``RecordStore.record_span``), for the span
        # exporter's usual export of one span.
        record_span = getattr(collector, "record_span", None) if store is not None else None
        self._record_span = record_span if callable(record_span) else None
        # And its entry for the outcome of a request some evaluation waits for.
        record_request = getattr(collector, "record_request", None) if store is not None else None
        self._record_request = record_request if callable(record_request) else None

    @property
    def collector(self) -> EventSink:
        """The collector records go to."""
        return self._collector

    @property
    def stats(self) -> ExporterStats:
        """A snapshot of what this exporter has seen, mapped, skipped and ignored."""
        return self._stats.snapshot()

    def _map_item(
        self,
        item: _Item,
        records: list[FlagEvaluationEvent],
        skipped: dict[str, int],
        outcomes: list[OutcomeItem] | None,
    ) -> bool:
        """Append ``item``'s records, count its skips; False when it is no flag telemetry.

        ``outcomes`` (``None`` when the sink keeps none) gets the outcome items
        of spans that explain evaluations, and what the evaluations want.
        """
        raise NotImplementedError

    def _source(self, resource: Any) -> Source:
        """Return the ``Source`` of items with this resource."""
        cached_resource, source = self._source_cache
        if resource is cached_resource and source is not None:
            return source
        attributes = getattr(resource, "attributes", None)
        source = source_of(
            attributes if isinstance(attributes, Mapping) else {},
            self._value_decoding,
            _IN_PROCESS_LANGUAGE,
        )
        self._source_cache = (resource, source)
        return source

    def export(self, batch: Sequence[_Item]) -> _Result:
        """Map and record the flag evaluations in ``batch``; never raises.

        Succeeds even when some telemetry was skipped (``stats`` counts it); fails
        after ``shutdown()`` and when the collector raises. An item that cannot
        be mapped is a ``mapping_error`` skip; a batch that breaks while being
        iterated keeps what was mapped before.
        """
        if self._shutdown:
            self._stats.add(items=0, mapped=0, failed=True)
            return self._failure
        records: list[FlagEvaluationEvent] = []
        skipped: dict[str, int] = {}
        count = 0
        ignored = 0
        map_item = self._map_item
        record_outcomes = self._record_outcomes
        outcomes: list[OutcomeItem] | None = (
            BatchOutcomes() if record_outcomes is not None else None
        )
        try:
            for item in batch:
                count += 1
                try:
                    if not map_item(item, records, skipped, outcomes):
                        ignored += 1
                except Exception:
                    _logger.debug("flagscope: could not map %r", item, exc_info=True)
                    reason = SkipReason.MAPPING_ERROR.value
                    skipped[reason] = skipped.get(reason, 0) + 1
        except Exception:
            # The batch itself misbehaved; keep what was mapped so far.
            _logger.warning(
                "flagscope: could not iterate the %s to export", self._ITEMS, exc_info=True
            )
        try:
            if outcomes:
                # One call, one hold of the lock: the outcomes know their records' seqs.
                record_outcomes(records, outcomes)  # type: ignore[misc]
            elif records:
                self._collector.record_batch(records)
        except Exception:
            _logger.exception("flagscope: the collector refused %d evaluation(s)", len(records))
            self._stats.add(items=count, mapped=0, ignored=ignored, skipped=skipped, failed=True)
            return self._failure
        self._stats.add_export(count, len(records), ignored, skipped)
        return self._success

    def shutdown(self) -> None:
        """Stop accepting telemetry; the collector and its records are left as they are."""
        self._shutdown = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here; always True."""
        return True


class FlagEvaluationSpanExporter(BaseFlagExporter[ReadableSpan, SpanExportResult], SpanExporter):
    """A ``SpanExporter`` that records every feature-flag evaluation span event.

    Attach it with a ``SimpleSpanProcessor`` or a ``BatchSpanProcessor``. It maps
    ``feature_flag.evaluation`` and ``feature_flag`` span events (and spans named
    ``feature_flag.evaluation`` that carry the keys themselves) and ignores the
    rest, such as ``exception`` events and LaunchDarkly's ``variation`` spans.
    ``export()`` never raises: what cannot be mapped is counted in ``stats``.

    Args:
        collector: Where records go, usually an ``InMemoryAnalyticsCollector``.
        value_decoding: ``"auto"`` (the default) decodes values as their producer
            encoded them (see the README's "What gets recorded"); ``"json"``
            decodes every JSON string; ``"raw"`` keeps attributes as sent.

    Raises:
        TypeError: ``collector`` has no synchronous ``record_batch``.
        ValueError: ``value_decoding`` is not ``"auto"``, ``"json"`` or ``"raw"``.
    """

    _ITEMS = "spans"

    def __init__(self, collector: EventSink, *, value_decoding: ValueDecoding = "auto") -> None:
        super().__init__(
            collector,
            value_decoding,
            success=SpanExportResult.SUCCESS,
            failure=SpanExportResult.FAILURE,
        )
        # The last span status read, with its code (0 unset, 1 ok, 2 error) and
        # description: one tuple, so threads exporting at once never mix two statuses.
        self._last_status: tuple[object, int, str | None] = (None, 0, None)
        # Whether ``_export_plain`` may hand a local root of the SDK's to
        # ``record_request`` while requests are wanted (set once: neither changes after
        # the import).
        self._root_path = self._record_request is not None and CONTEXT_ITEMS_HOLD

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Map and record the flag evaluations in ``spans``; never raises.

        Keeps ``SpanExporter.export``'s parameter name, so keyword callers work.
        """
        if type(spans) is tuple and len(spans) == 1 and not self._shutdown:
            # What a SimpleSpanProcessor hands over: one span. The usual one, with one
            # flag event, takes a short path; anything else, the general one below.
            try:
                result = self._export_one(spans[0])
            except Exception:  # noqa: BLE001 - the general path below says what failed
                # A span the short path cannot read (a hand-made one with odd fields)
                # raised before anything was kept: the general path maps it, or counts
                # it as skipped, and never raises.
                result = None
            if result is not None:
                return result
        return BaseFlagExporter.export(self, spans)

    def _export_one(self, span: ReadableSpan) -> SpanExportResult | None:
        """Record a span holding one usual flag event; ``None`` (nothing done) for any other.

        The usual event is ``map_typical``'s: its attributes are copied once out of
        the SDK's ``BoundedAttributes`` (each read through it is two Python calls),
        the record keeps the SDK's int ids, and the span's outcome goes to the store
        with ``record_span``, without the item tuple and lists of ``export``.
        """
        record_span = self._record_span
        if record_span is None and self._record_outcomes is not None:
            return None  # a sink keeping outcomes its own way: the general path
        fields = FIELD_READERS.get(type(span))
        if fields is None:
            fields = reads_fields(type(span))
        events: Sequence[Event]
        if fields:
            raw_events: Any = span._events
            events = tuple(raw_events._dq if type(raw_events) is EVENTS_LIST else raw_events)
        else:
            events = span.events
        if not events:
            return self._export_plain(span, fields)
        if len(events) != 1:
            return None
        event = events[0]
        if fields and type(event) is SDK_EVENT:
            # The SDK's own span and event: fields, not properties (``span_fields``).
            event_name = event._name
            attributes = event._attributes
            timestamp = event._timestamp
            name = span._name
            context = span._context
            parent = span._parent
            resource = span._resource
        else:
            fields = False
            event_name = event.name
            attributes = event.attributes
            timestamp = event.timestamp
            name = span.name
            context = span.context
            parent = span.parent
            resource = span.resource
        if event_name not in _EVENT_NAMES:
            return None
        if type(attributes) is not BoundedAttributes:
            return None
        if name == _SPAN_NAME or context is None:
            return None
        if (
            fields
            and type(context) is SpanContext
            and (parent is None or type(parent) is SpanContext)
            and CONTEXT_ITEMS_HOLD
        ):
            trace_id = context[0]
            span_id = context[1]
            parent_id = parent[1] if parent is not None else None
            is_root = parent is None or parent[2]
        else:
            trace_id = context.trace_id
            span_id = context.span_id
            parent_id = parent.span_id if parent is not None else None
            is_root = parent is None or parent.is_remote
        if (
            type(trace_id) is not int
            or not 0 < trace_id < _TRACE_ID_LIMIT
            or type(span_id) is not int
            or not 0 < span_id < _SPAN_ID_LIMIT
            or (
                parent_id is not None
                and not (type(parent_id) is int and 0 < parent_id < _SPAN_ID_LIMIT)
            )
        ):
            return None
        cached_resource, source = self._source_cache
        if resource is not cached_resource or source is None:
            source = self._source(resource)
        record = map_typical(
            # A plain dict reads at C speed: the event's own (it is immutable), else a copy.
            attributes._dict if fields else attributes.copy(),
            timestamp,
            trace_id,
            span_id,
            parent_id,
            source.service_name,
            source.language,
            source.value_decoding,
        )
        if record is None:
            return None
        if record_span is None:
            # A sink that keeps no outcomes: the record alone.
            try:
                self._collector.record_batch([record])
            except Exception:
                _logger.exception("flagscope: the collector refused 1 evaluation(s)")
                self._stats.add(items=1, mapped=0, failed=True)
                return SpanExportResult.FAILURE
            self._stats.add_one()
            return SpanExportResult.SUCCESS
        # ``_raw_outcome``, inline.
        if fields:
            status = span._status
            start = span._start_time
            end = span._end_time
            span_attributes: Mapping[str, Any] | None = span._attributes
            if type(span_attributes) is BoundedAttributes:
                span_attributes = span_attributes._dict
        else:
            status = span.status
            start = span.start_time
            end = span.end_time
            span_attributes = span.attributes
        last_status, status_code, description = self._last_status
        if status is not last_status:
            # See ``_map_item``: spans that never set a status share the SDK's default.
            code = status.status_code
            status_code = 2 if code is _ERROR else 1 if code is _OK else 0
            description = status.description if code is _ERROR else None
            self._last_status = (status, status_code, description)
        try:
            record_span(
                record,
                # The stored forms of canonical ids are these ints: the outcome
                # tables join on them.
                trace_id,
                span_id,
                source.service_name,
                is_root,
                (
                    name,
                    status_code,
                    description,
                    end - start
                    if (type(start) is int and type(end) is int and 0 < start <= end < TIME_LIMIT)
                    else -1,
                    0
                    if not span_attributes or _HTTP_KEYS.isdisjoint(span_attributes)
                    else _http_of(span_attributes),
                ),
            )
        except Exception:
            _logger.exception("flagscope: the collector refused 1 evaluation(s)")
            self._stats.add(items=1, mapped=0, failed=True)
            return SpanExportResult.FAILURE
        self._stats.add_one()
        return SpanExportResult.SUCCESS

    def _export_plain(self, span: ReadableSpan, fields: bool) -> SpanExportResult | None:
        """Export a span without events on its own: usually nothing to do.

        It matters only to an evaluation waiting for its outcome (``_offer``), or as
        an evaluation span carrying its keys itself (the general path, ``None``).
        """
        name = span._name if fields else span.name
        if name == _SPAN_NAME:
            return None
        want_requests = self._want_requests
        if want_requests and fields and self._root_path and not self._want_spans:
            # The usual wait: the request's root, ending after its evaluations.
            context = span._context
            parent = span._parent
            if type(parent) is SpanContext and not parent[2]:
                # Not a local root, and no evaluation waits for a span: nothing to keep.
                self._stats.add_plain()
                return SpanExportResult.SUCCESS
            if (
                type(context) is SpanContext
                and (parent is None or type(parent) is SpanContext)
                and type(trace_id := context[0]) is int
                and 0 < trace_id < _TRACE_ID_LIMIT
            ):
                resource = span._resource
                cached_resource, source = self._source_cache
                if resource is not cached_resource or source is None:
                    source = self._source(resource)
                # ``_raw_outcome``, inline (the SDK's span: its fields): a Python call
                # less a request.
                status = span._status
                start = span._start_time
                end = span._end_time
                attributes: Mapping[str, Any] | None = span._attributes
                if type(attributes) is BoundedAttributes:
                    attributes = attributes._dict
                last_status, status_code, description = self._last_status
                if status is not last_status:
                    code = status.status_code
                    status_code = 2 if code is _ERROR else 1 if code is _OK else 0
                    description = status.description if code is _ERROR else None
                    self._last_status = (status, status_code, description)
                # The current attribute read first, without the key check ``_raw_outcome``
                # makes: a request's root usually carries it.
                if not attributes:
                    http = 0
                elif type(value := attributes.get(_HTTP_STATUS)) is int and 0 < value < HTTP_LIMIT:
                    http = value
                elif value is None and _HTTP_STATUS_OLD not in attributes:
                    http = 0
                else:
                    http = _other_http(attributes)
                # Wanted or not, a local root goes to the store while requests are
                # wanted (``_offer`` would offer it too, to be remembered among the
                # recent roots): the store's look in the wanted table is the only one.
                try:
                    self._record_request(  # type: ignore[misc]
                        trace_id,
                        source.service_name,
                        (
                            name,
                            status_code,
                            description,
                            end - start
                            if (
                                type(start) is int
                                and type(end) is int
                                and 0 < start <= end < TIME_LIMIT
                            )
                            else -1,
                            http,
                        ),
                    )
                except Exception:
                    _logger.exception("flagscope: could not keep a span's outcome")
                    self._stats.add(items=1, mapped=0, failed=True)
                    return SpanExportResult.FAILURE
                self._stats.add_plain()
                return SpanExportResult.SUCCESS
        record_outcomes = self._record_outcomes
        if record_outcomes is not None and (self._want_spans or want_requests):
            items: list[OutcomeItem] = []
            try:
                self._offer(span, name, items, fields)
                if items:
                    record_outcomes([], items)
            except Exception:
                _logger.exception("flagscope: could not keep a span's outcome")
                self._stats.add(items=1, mapped=0, failed=True)
                return SpanExportResult.FAILURE
        self._stats.add_plain()
        return SpanExportResult.SUCCESS

    def _map_item(
        self,
        span: ReadableSpan,
        records: list[FlagEvaluationEvent],
        skipped: dict[str, int],
        outcomes: list[OutcomeItem] | None,
    ) -> bool:
        # ``span.events`` builds a new tuple on every access: read it once. A span
        # with neither flag events nor the evaluation span's name costs only that,
        # and, while evaluations wait for their spans, a look in two dicts.
        fields = FIELD_READERS.get(type(span))
        if fields is None:
            fields = reads_fields(type(span))
        events: Sequence[Event]
        if fields:
            # The SDK's span: its fields, not its properties (``span_fields``).
            raw_events: Any = span._events
            events = tuple(raw_events._dq if type(raw_events) is EVENTS_LIST else raw_events)
            name = span._name
        else:
            events = span.events
            name = span.name
        if name != _SPAN_NAME:
            for event in events:
                if event.name in _EVENT_NAMES:
                    break
            else:
                # Outcome items earlier in this batch may want this span or its
                # request: its parent and its local root end after it, in the same batch.
                if outcomes is not None and (
                    outcomes or self._want_spans or self._want_requests or self._offer_roots
                ):
                    self._offer(span, name, outcomes, fields)
                return True
        if fields:
            context = span._context
            parent = span._parent
            resource = span._resource
        else:
            context = span.context
            parent = span.parent
            resource = span.resource
        cached_resource, source = self._source_cache
        if resource is not cached_resource or source is None:
            source = self._source(resource)
        # The SDK stamps every event, so a span's own times are only read for an
        # evaluation span (its duration); each property read is a Python call here.
        evaluation_span = name == _SPAN_NAME
        before = len(records)
        classify_span(  # positional: keywords cost this hot path
            source,
            name,
            events,
            (lambda: span.attributes) if evaluation_span else _NO_ATTRIBUTES,
            context.trace_id if context is not None else None,
            context.span_id if context is not None else None,
            parent.span_id if parent is not None else None,
            span.start_time if evaluation_span else None,
            span.end_time if evaluation_span else None,
            records,
            skipped,
        )
        if outcomes is not None and len(records) > before:
            # The ids in the form the records store them (ints; no formatting): the
            # store joins on those.
            record = records[-1]
            if evaluation_span:
                # A SpanHook-style span: what it explains is the span it was made in.
                if isinstance(outcomes, BatchOutcomes):
                    outcomes.parents.add(PARENT_KEY(record))
                outcomes.append(
                    evaluation_span_item(
                        TRACE_KEY(record),
                        SPAN_KEY(record),
                        source.service_name,
                        PARENT_KEY(record),
                    )
                )
            else:
                outcomes.append(
                    (
                        TRACE_KEY(record),
                        SPAN_KEY(record),
                        source.service_name,
                        None,
                        parent is None or parent.is_remote,
                        1,
                        self._raw_outcome(span, name, fields),
                    )
                )
        # A span without flag telemetry is not counted as ignored: that count is for
        # log records, where it tells flag events from ordinary logs.
        return True

    def _offer(
        self, span: ReadableSpan, name: str, outcomes: list[OutcomeItem], fields: bool
    ) -> None:
        """Add a span without evaluations if a waiting evaluation wants it.

        ``fields``: whether the span may be read through its fields (``span_fields``).
        """
        if fields:
            context = span._context
            parent = span._parent
        else:
            context = span.context
            parent = span.parent
        if context is None:
            return
        if parent is None:
            is_root = True
        elif fields and type(parent) is SpanContext and CONTEXT_ITEMS_HOLD:
            is_root = parent[2]
        else:
            is_root = parent.is_remote
        want_spans = self._want_spans
        parents = outcomes.parents if isinstance(outcomes, BatchOutcomes) else None
        # The span's own id matters only while some span is wanted: a root otherwise
        # joins by its trace id alone.
        span_id: int | None = None
        if want_spans or parents:
            span_id = span_id_key(context.span_id)
            if (
                not is_root
                and (not want_spans or span_id not in want_spans)
                and (not parents or span_id not in parents)
            ):
                return
        elif not is_root:
            return
        # A local root nobody asked for yet is offered too: the store keeps a few
        # recent ones, for evaluations recorded after their request ended.
        resource = span._resource if fields else span.resource
        cached_resource, source = self._source_cache
        if resource is not cached_resource or source is None:
            source = self._source(resource)
        trace_id = trace_id_key(context.trace_id)
        outcomes.append(
            (
                trace_id,
                span_id,
                source.service_name,
                None,
                is_root,
                0,
                self._raw_outcome(span, name, fields),
            )
        )

    def _raw_outcome(self, span: ReadableSpan, name: str, fields: bool) -> RawOutcome:
        """Read what the outcome store keeps of an ended span (the general path's).

        Through its fields where ``fields`` says they are what its properties return
        (``span_fields``), else its properties. ``span.attributes`` wraps the SDK's
        ``BoundedAttributes``, whose ``get`` raises and catches a ``KeyError`` for a
        missing key (0.7 µs): the keys are checked first in one C-level pass, so a
        span without an HTTP status pays for no lookup. The status is read as
        ``_export_one`` reads it, through the last one read (``status_code`` is a
        property: a Python call). The current HTTP attribute, an int, is read here
        as ``_http_of`` reads it first, without its call: a request's local root
        usually carries it.
        """
        attributes: Mapping[str, Any] | None
        if fields:
            status = span._status
            start = span._start_time
            end = span._end_time
            attributes = span._attributes
            if type(attributes) is BoundedAttributes:
                attributes = attributes._dict
        else:
            status = span.status
            start = span.start_time
            end = span.end_time
            attributes = span.attributes
        last_status, status_code, description = self._last_status
        if status is not last_status:
            code = status.status_code
            status_code = 2 if code is _ERROR else 1 if code is _OK else 0
            description = status.description if code is _ERROR else None
            self._last_status = (status, status_code, description)
        if not attributes or _HTTP_KEYS.isdisjoint(attributes):
            http = 0
        else:
            value = attributes.get(_HTTP_STATUS)
            http = (
                value if type(value) is int and 0 < value < HTTP_LIMIT else _other_http(attributes)
            )
        return (
            name,
            status_code,
            description,
            end - start
            if (type(start) is int and type(end) is int and 0 < start <= end < TIME_LIMIT)
            else -1,
            http,
        )


def _http_of(attributes: Mapping[str, Any]) -> int:
    """The span's HTTP response status (the current attribute, else the older one), or 0."""
    http = attributes.get(_HTTP_STATUS)
    if type(http) is int and 0 < http < HTTP_LIMIT:
        # The usual one: the current attribute, an int (``http_status_attribute`` then
        # returns it too), read without a call.
        return http
    return _other_http(attributes)


def _other_http(attributes: Mapping[str, Any]) -> int:
    """``_http_of`` where the current attribute is not a plain int status."""
    http = http_status_attribute(attributes)
    if type(http) is not int or not 0 < http < HTTP_LIMIT:
        http = http_status(http) or 0
    return http
