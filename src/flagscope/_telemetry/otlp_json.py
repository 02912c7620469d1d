r"""OTLP/JSON read straight from the parsed document, without building protobuf messages.

OTLP/JSON is the protobuf JSON mapping with OTLP's own rules: trace and span
ids are hex (not base64), 64-bit integers come as strings or numbers, enums as
names or numbers, and receivers accept the lowerCamelCase field names and the
original snake_case ones, and ignore fields they do not know. Every field of
the spans, events, links and log records is checked as protobuf's JSON parser
would check it (a malformed request is refused whole with ``OtlpDecodeError``),
with three tolerances for what the JavaScript exporters send:

* an ``intValue`` outside int64 (JavaScript's ``1e+21``, ``9223372036854776000``)
  or with a fraction becomes a float; one that no double holds (beyond about
  ``1.8e308``, infinite, NaN), which no JavaScript exporter writes, is refused;
* ``doubleValue: null`` (JavaScript's NaN and Infinity) is an empty value, ``None``;
* strings with lone surrogates (``"\ud800"`` escapes) are kept with U+FFFD in
  their place by the mapper, so no view or export ever fails on them.

The body is parsed by ``orjson`` where the ``server`` extra installed it (two to
three times faster than ``json.loads``), and only where its document is exactly what
``json.loads`` gives, or reads the same (``read_document``); elsewhere, and without
it, by ``json.loads``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from functools import partial
from itertools import accumulate
from math import isfinite
from operator import getitem
from types import MappingProxyType
from typing import Any, Final, TypeVar

from flagscope._telemetry import semconv
from flagscope._telemetry.classify import Source, http_status_attribute, source_of
from flagscope._telemetry.mapping import ValueDecoding
from flagscope._telemetry.otlp_batch import (
    STATUS_CODES,
    OtlpDecodeError,
    SpanEvent,
    Tally,
    is_local_root,
    typical_item,
)

__all__ = ["load_json", "read_document", "read_json_logs", "read_json_traces"]

_T = TypeVar("_T")

_EVENT_NAMES: Final = semconv.EVENT_NAMES
_SPAN_NAME: Final = semconv.SPAN_NAME
# ``tuple.__new__`` bound to the named tuple: a C call, where ``SpanEvent(...)`` is a
# Python ``__new__`` frame on 3.11.
_new_event: Final = partial(tuple.__new__, SpanEvent)
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_UINT64_MAX: Final = (1 << 64) - 1
_DOUBLE_WORDS: Final = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
# AnyValue's one-of: each spelling to its lowerCamelCase name.
_ANY_KIND: Final = {
    spelling: camel
    for camel, snake in (
        ("stringValue", "string_value"),
        ("boolValue", "bool_value"),
        ("intValue", "int_value"),
        ("doubleValue", "double_value"),
        ("arrayValue", "array_value"),
        ("kvlistValue", "kvlist_value"),
        ("bytesValue", "bytes_value"),
    )
    for spelling in (camel, snake)
}


def load_json(body: bytes) -> dict[str, Any]:
    """Parse a request body as a JSON object.

    Raises:
        OtlpDecodeError: It is not JSON, or not an object.
    """
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise OtlpDecodeError(f"invalid JSON: {error}") from None
    if not isinstance(document, dict):
        raise OtlpDecodeError("an OTLP JSON payload must be an object")
    return document


# -- orjson, where it gives json.loads's document ------------------------------------------

# orjson refuses documents nested deeper than this (checked at import, not assumed).
_ORJSON_DEPTH: Final = 1024
# json.loads refuses documents nested deeper than the recursion limit allows (about
# 990 levels at the top of a stack, fewer below it), orjson only past 1024: so orjson
# is asked to parse the body inside 256 more lists, which it refuses for a body nested
# deeper than 768 levels; json.loads, which takes that much wherever flagscope calls it,
# then parses the body and answers as it always did.
_SAFE_DEPTH: Final = 768
_WRAP: Final = _ORJSON_DEPTH - _SAFE_DEPTH
_OPEN: Final = b"[" * _WRAP
_CLOSE: Final = b"]" * _WRAP
_INDEXES: Final = (0,) * (_WRAP - 1)
# orjson reads an integer beyond 64 bits as a float, json.loads as an int. For each such
# float but one the reader answers as it does for the int (the same float, or the same
# refusal, whose message may differ: read_document reads json.loads's document then).
# The one: a float of -2**63, an int64 to the reader, from a literal of -2**63 - 1 down
# to -2**63 - 1024, each of which starts with this.
_NEAR_INT64_MIN: Final = b"-922337203685477"


def _orjson_loads() -> Callable[[bytes], Any] | None:
    """The ``loads`` of orjson, if installed and refusing what the depth guard expects."""
    try:
        import orjson
    except ImportError:
        return None

    def nested(depth: int) -> bytes:
        return b"[" * depth + b"]" * depth

    try:
        orjson.loads(nested(_ORJSON_DEPTH))
    except orjson.JSONDecodeError:
        return None
    try:
        orjson.loads(nested(_ORJSON_DEPTH + 1))
    except orjson.JSONDecodeError:
        loads: Callable[[bytes], Any] = orjson.loads
        return loads
    return None


_fast_loads = _orjson_loads()


def _fast_document(body: bytes) -> Any:
    """The body parsed by orjson where that gives json.loads's document, else ``None``.

    Where orjson refuses the body (not UTF-8 or with a BOM, NaN and Infinity, numbers
    beyond a double, lone surrogates, too deep), json.loads has the say.
    """
    loads = _fast_loads
    if loads is None or _NEAR_INT64_MIN in body:
        return None
    try:
        wrapped = loads(_OPEN + body + _CLOSE)
    except ValueError:  # orjson.JSONDecodeError
        return None
    # The wrapping lists hold one item each unless the body is not one JSON value and
    # closes some of them (``1],[2``): then it is refused here as json.loads refuses it.
    lists = list(accumulate(_INDEXES, getitem, initial=wrapped))
    if max(map(len, lists)) != 1 or len(lists[-1]) != 1:
        return None
    return lists[-1][0]


def read_document(body: bytes, read: Callable[[dict[str, Any]], _T]) -> _T:
    """``read`` the request body's JSON object, answering as for ``json.loads``'s document.

    ``read`` must keep nothing of a document it refuses: a document read from orjson's
    parse and refused is read again from ``json.loads``'s, for its message.

    Raises:
        OtlpDecodeError: The body is not a JSON object, or ``read`` refused it.
    """
    document = _fast_document(body)
    if type(document) is dict:
        try:
            return read(document)
        except OtlpDecodeError:
            pass  # an integer beyond 64 bits, read as a float, may have changed the message
    return read(load_json(body))


# -- field readers: each returns the field's value or raises OtlpDecodeError --------------


def _field(message: dict[str, Any], camel: str, snake: str) -> Any:
    value = message.get(camel)
    return message.get(snake) if value is None else value


def _message(value: Any, where: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise OtlpDecodeError(f"{where} must be an object, got {_kind(value)}")
    return value


def _repeated(message: dict[str, Any], camel: str, snake: str, where: str) -> list[Any]:
    value = _field(message, camel, snake)
    if value is None:
        return []
    if type(value) is not list:
        raise OtlpDecodeError(f"{where}.{camel} must be an array, got {_kind(value)}")
    return value


def _string(value: Any, where: str) -> str:
    if value is None:
        return ""
    if type(value) is not str:
        raise OtlpDecodeError(f"{where} must be a string, got {_kind(value)}")
    return value


def _integer(value: Any, where: str, low: int, high: int, field: str = "") -> int:
    """An integer field: a JSON number or a string holding one, as protobuf reads them.

    ``where`` and ``field`` name it in a refusal (joined only then: formatting the
    name per field costs more than reading it).
    """
    if value is None:
        return 0
    kind = type(value)
    number: Any = value
    if kind is str:
        try:
            number = int(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                raise OtlpDecodeError(
                    f"{_at(where, field)} must be an integer, got {value[:40]!r}"
                ) from None
        kind = type(number)
    if kind is float:
        if not number.is_integer():
            raise OtlpDecodeError(f"{_at(where, field)} must be an integer, got {value!r}")
        number = int(number)
    elif kind is not int:
        raise OtlpDecodeError(f"{_at(where, field)} must be an integer, got {_kind(value)}")
    if not low <= number <= high:
        raise OtlpDecodeError(f"{_at(where, field)} is out of range: {value!r}")
    result: int = number
    return result


def _at(where: str, field: str) -> str:
    return f"{where}.{field}" if field else where


def _time(message: dict[str, Any], camel: str, snake: str, where: str) -> int:
    value = message.get(camel)
    if value is None:
        value = message.get(snake)
    if type(value) is str and value.isdecimal() and len(value) < 20:
        # The usual spelling (decimal digits, below 10**19 <= 2**64 - 1): int() takes it.
        return int(value)
    return _integer(value, where, 0, _UINT64_MAX, camel)


def _count(message: dict[str, Any], camel: str, snake: str, where: str) -> None:
    value = message.get(camel)
    if value is None:
        value = message.get(snake)
        if value is None:
            return
    if type(value) is not int or not 0 <= value <= 0xFFFFFFFF:
        _integer(value, where, 0, 0xFFFFFFFF, camel)


def _enum(value: Any, where: str) -> None:
    # Names protobuf does not know are ignored, as with ignore_unknown_fields.
    if value is not None and type(value) is not str:
        _integer(value, where, -(1 << 31), (1 << 31) - 1)


def _enum_value(value: Any, where: str) -> Any:
    """An enum field that is neither an int, None nor a name, as protobuf's parser reads it.

    ``_read_span`` passes ints, None and names (text starting with a letter) as
    they are, without this call. Protobuf takes a number as text too ("2", " +2"),
    by ``int()``: such text is read as that number, and refused out of the enum's
    32-bit range as protobuf refuses it; other text reads as an unknown name (0).
    A float is checked by ``_enum`` first.
    """
    if type(value) is str:
        try:
            number = int(value)
        except ValueError:
            return value
        if not -(1 << 31) <= number < (1 << 31):
            raise OtlpDecodeError(f"{where} is out of range: {value[:40]!r}")
        return number
    return _integer(value, where, -(1 << 31), (1 << 31) - 1)


def _hex_id(message: dict[str, Any], camel: str, snake: str, where: str) -> str | None:
    value = message.get(camel)
    if value is None:
        value = message.get(snake)
    if value is None or value == "":
        return None
    if type(value) is not str:
        raise OtlpDecodeError(f"{where}.{camel} must be hex text, got {_kind(value)}")
    try:
        bytes.fromhex(value)
    except ValueError:
        raise OtlpDecodeError(f"{camel} must be hex, got {value[:40]!r}") from None
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


# -- values --------------------------------------------------------------------------------


def _any_value(value: Any, where: str) -> Any:
    """Unwrap an ``AnyValue`` as ``otlp.any_value`` unwraps the protobuf one."""
    if value is None:
        return None
    if type(value) is not dict:
        raise OtlpDecodeError(f"{where} must be an object, got {_kind(value)}")
    kind = ""
    found: Any = None
    # Walk the (usually one) keys present rather than look up all fourteen spellings.
    for name, item in value.items():
        known = _ANY_KIND.get(name)
        if known is None or item is None:
            continue  # unknown fields are ignored; null is unset (doubleValue: null is NaN)
        if kind:
            raise OtlpDecodeError(f"{where} sets both {kind} and {known}")
        kind, found = known, item
    if kind == "stringValue":
        if type(found) is str:
            return found
        raise OtlpDecodeError(f"{where}.stringValue must be a string, got {_kind(found)}")
    if not kind:
        return None  # an empty value
    if kind == "boolValue":
        if type(found) is not bool:
            raise OtlpDecodeError(f"{where}.boolValue must be true or false, got {_kind(found)}")
        return found
    if kind == "intValue":
        return _int_value(found, f"{where}.intValue")
    if kind == "doubleValue":
        return _double_value(found, f"{where}.doubleValue")
    if kind == "arrayValue":
        array = _message(found, f"{where}.arrayValue")
        items = _repeated(array, "values", "values", f"{where}.arrayValue")
        return tuple(_any_value(item, f"{where}.arrayValue.values") for item in items)
    if kind == "kvlistValue":
        kvlist = _message(found, f"{where}.kvlistValue")
        pairs = _repeated(kvlist, "values", "values", f"{where}.kvlistValue")
        return MappingProxyType(_attributes(pairs, f"{where}.kvlistValue"))
    if type(found) is not str:
        raise OtlpDecodeError(f"{where}.bytesValue must be base64 text, got {_kind(found)}")
    try:
        return base64.b64decode(found, validate=True)
    except (binascii.Error, ValueError):
        raise OtlpDecodeError(f"{where}.bytesValue is not base64: {found[:40]!r}") from None


def _int_value(value: Any, where: str) -> int | float:
    kind = type(value)
    if kind is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            integer: int = value
            return integer
        # JavaScript writes integral numbers of 2**63 and more as out-of-range ints, up to
        # the largest double; beyond that, no exporter's number: refused, as protobuf does.
        return _int_as_float(value, where)
    if kind is float:
        if value.is_integer():
            return int(value) if _INT64_MIN <= value <= _INT64_MAX else value
        if not isfinite(value):  # json.loads reads 1e400 as inf
            raise OtlpDecodeError(f"{where} must be a finite number, got {value!r}")
        fraction: float = value
        return fraction
    if kind is str:
        number: int | float
        try:
            number = int(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                raise OtlpDecodeError(f"{where} must be an integer, got {value[:40]!r}") from None
        return _int_value(number, where)
    raise OtlpDecodeError(f"{where} must be an integer, got {_kind(value)}")


def _int_as_float(value: int, where: str) -> float:
    try:
        return float(value)
    except OverflowError:
        raise OtlpDecodeError(
            f"{where} is out of range: an integer of {value.bit_length()} bits,"
            " beyond what a double holds"
        ) from None


def _double_value(value: Any, where: str) -> float:
    kind = type(value)
    if kind is float:
        result: float = value
        return result
    if kind is int:
        return _int_as_float(value, where)
    if kind is str:
        word = _DOUBLE_WORDS.get(value)
        if word is not None:
            return word
        try:
            return float(value)
        except ValueError:
            pass
    raise OtlpDecodeError(f"{where} must be a number, got {_kind(value)}")


def _attributes(pairs: list[Any], where: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for pair in pairs:
        if type(pair) is not dict:
            raise OtlpDecodeError(f"{where}.attributes must hold objects, got {_kind(pair)}")
        key = pair.get("key")
        if type(key) is not str:
            key = _string(key, f"{where}.attributes.key")
        value = pair.get("value")
        if type(value) is dict and len(value) == 1:
            # The usual value, text alone: what _any_value gives for it, without the call.
            text = value.get("stringValue")
            if type(text) is str:
                attributes[key] = text
                continue
        try:
            attributes[key] = _any_value(value, "value")
        except OtlpDecodeError as error:
            # Where it failed is spelt out only on failure: formatting it per attribute costs.
            raise OtlpDecodeError(f"{where}.attributes[{key!r}].{error}") from None
    return attributes


def _attribute_list(message: dict[str, Any], where: str) -> dict[str, Any]:
    pairs = message.get("attributes")
    if pairs is None:
        return {}
    if type(pairs) is not list:
        raise OtlpDecodeError(f"{where}.attributes must be an array, got {_kind(pairs)}")
    return _attributes(pairs, where)


def _source(
    resource_message: dict[str, Any], decoding: ValueDecoding, language: str | None
) -> Source:
    resource = resource_message.get("resource")
    attributes: Mapping[str, Any] = {}
    if resource is not None:
        resource = _message(resource, "resource")
        attributes = _attribute_list(resource, "resource")
        _count(resource, "droppedAttributesCount", "dropped_attributes_count", "resource")
    return source_of(attributes, decoding, language)


def _scope(scope_message: dict[str, Any]) -> None:
    scope = scope_message.get("scope")
    if scope is not None:
        scope = _message(scope, "scope")
        _string(scope.get("name"), "scope.name")
        _string(scope.get("version"), "scope.version")
        _attribute_list(scope, "scope")
    _string(_field(scope_message, "schemaUrl", "schema_url"), "schemaUrl")


# -- traces ---------------------------------------------------------------------------------


def read_json_traces(
    document: dict[str, Any], decoding: ValueDecoding, tally: Tally, language: str | None = None
) -> None:
    """Map a parsed OTLP/JSON trace request into ``tally``.

    ``language`` is the producer's where a resource does not say.

    Raises:
        OtlpDecodeError: The document is not a valid ``ExportTraceServiceRequest``.
    """
    _checked(_read_traces, document, decoding, tally, language)


def _checked(
    read: Callable[[dict[str, Any], ValueDecoding, Tally, str | None], None],
    document: dict[str, Any],
    decoding: ValueDecoding,
    tally: Tally,
    language: str | None,
) -> None:
    try:
        read(document, decoding, tally, language)
    except OtlpDecodeError as error:
        raise OtlpDecodeError(f"invalid OTLP JSON payload: {error}") from None
    except RecursionError:
        raise OtlpDecodeError("invalid OTLP JSON payload: values nested too deeply") from None


def _read_traces(
    document: dict[str, Any], decoding: ValueDecoding, tally: Tally, language: str | None
) -> None:
    for resource_spans in _repeated(document, "resourceSpans", "resource_spans", "request"):
        resource_spans = _message(resource_spans, "resourceSpans")
        source = _source(resource_spans, decoding, language)
        _string(_field(resource_spans, "schemaUrl", "schema_url"), "schemaUrl")
        for scope_spans in _repeated(resource_spans, "scopeSpans", "scope_spans", "resourceSpans"):
            scope_spans = _message(scope_spans, "scopeSpans")
            _scope(scope_spans)
            for span in _repeated(scope_spans, "spans", "spans", "scopeSpans"):
                _read_span(_message(span, "span"), source, tally)


def _read_span(span: dict[str, Any], source: Source, tally: Tally) -> None:
    # Checks that pass for the usual field are made here; the helpers they call
    # refuse the rest with the same messages.
    name = span.get("name")
    if type(name) is not str:
        name = _string(name, "span.name")
    trace_id = _hex_id(span, "traceId", "trace_id", "span")
    span_id = _hex_id(span, "spanId", "span_id", "span")
    parent_span_id = _hex_id(span, "parentSpanId", "parent_span_id", "span")
    start_ns = _time(span, "startTimeUnixNano", "start_time_unix_nano", "span")
    end_ns = _time(span, "endTimeUnixNano", "end_time_unix_nano", "span")
    attributes = _attribute_list(span, "span")
    flag_events: list[SpanEvent] = []
    for event in _repeated(span, "events", "events", "span"):
        if type(event) is not dict:
            _message(event, "span.events")
        event_name = event.get("name")
        if type(event_name) is not str:
            event_name = _string(event_name, "event.name")
        event_attributes = _attribute_list(event, "event")
        timestamp = _time(event, "timeUnixNano", "time_unix_nano", "event")
        _count(event, "droppedAttributesCount", "dropped_attributes_count", "event")
        if event_name in _EVENT_NAMES:
            flag_events.append(_new_event((event_name, event_attributes, timestamp)))
    _check_span_rest(span)
    status = span.get("status") or {}
    flags = span.get("flags")
    if type(flags) is not int:  # an int is in range: _check_span_rest counted it
        flags = _integer(flags, "span.flags", 0, 0xFFFFFFFF)
    # Enums come as ints (checked by _check_span_rest) or names: neither needs a call.
    code = status.get("code")
    if (
        code is not None
        and type(code) is not int
        and not (type(code) is str and code[:1].isalpha())
    ):
        code = _enum_value(code, "span.status.code")
    kind = span.get("kind")
    if (
        kind is not None
        and type(kind) is not int
        and not (type(kind) is str and kind[:1].isalpha())
    ):
        kind = _enum_value(kind, "span.kind")
    if len(flag_events) == 1 and name != _SPAN_NAME:
        try:
            made = _typical_span(
                name,
                flag_events[0],
                attributes,
                trace_id,
                span_id,
                parent_span_id,
                start_ns,
                end_ns,
                code,
                status.get("message"),
                flags,
                kind,
                source,
            )
        except Exception:  # noqa: BLE001 - add_span maps it again, and counts it
            made = None
        if made is not None:
            # ``Tally.add_span``'s work for the usual span, done (as ``otlp.map_traces``).
            tally.received += 1
            tally.events.append(made[0])
            tally.outcomes.append(made[1])
            return
    tally.add_span(
        source,
        name,
        flag_events,
        lambda: attributes,
        trace_id,
        span_id,
        parent_span_id,
        start_ns,
        end_ns,
        code,
        status.get("message"),
        flags,
        kind,
    )


def _typical_span(
    name: str,
    event: SpanEvent,
    span_attributes: dict[str, Any],
    trace_hex: str | None,
    span_hex: str | None,
    parent_hex: str | None,
    start: int,
    end: int,
    code: Any,
    message: Any,
    flags: Any,
    kind: Any,
    source: Source,
) -> tuple[Any, Any] | None:
    """The record and outcome item ``Tally.add_span`` makes of a usual span, or ``None``.

    ``otlp._typical_span`` for OTLP/JSON: one flag event that ``map_typical`` maps,
    valid ids, no evaluation span. ``None`` leaves the span to ``Tally.add_span``.
    """
    # The ids as ``trace_id_key`` reads hex text: ``_hex_id`` checked it is hex, and
    # ``isalnum`` that no whitespace (which ``bytes.fromhex`` allows) is in it.
    if (
        trace_hex is None
        or span_hex is None
        or len(trace_hex) != 32
        or len(span_hex) != 16
        or not trace_hex.isalnum()
        or not span_hex.isalnum()
    ):
        return None
    trace_id = int(trace_hex, 16)
    span_id = int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    if parent_hex is None:
        parent_id = None
        is_root = True
    else:
        if len(parent_hex) != 16 or not parent_hex.isalnum():
            return None
        parent_id = int(parent_hex, 16)
        if not parent_id:
            return None
        is_root = is_local_root(parent_hex, flags, kind)
    return typical_item(
        event[1],
        event[2] or end or start or None,
        trace_id,
        span_id,
        parent_id,
        is_root,
        source.service_name,
        source.language,
        source.value_decoding,
        name,
        STATUS_CODES.get(code, 0),
        message,
        start,
        end,
        http_status_attribute(span_attributes) if span_attributes else None,
    )


def _check_span_rest(span: dict[str, Any]) -> None:
    """Check the span's fields flagscope does not read, as protobuf's parser would."""
    state = span.get("traceState")
    if state is None:
        state = span.get("trace_state")
    if state is not None and type(state) is not str:
        _string(state, "span.traceState")
    _count(span, "flags", "flags", "span")
    kind = span.get("kind")
    if kind is not None and type(kind) is not str:
        _enum(kind, "span.kind")
    for camel, snake in (
        ("droppedAttributesCount", "dropped_attributes_count"),
        ("droppedEventsCount", "dropped_events_count"),
        ("droppedLinksCount", "dropped_links_count"),
    ):
        _count(span, camel, snake, "span")
    for link in _repeated(span, "links", "links", "span") if "links" in span else ():
        link = _message(link, "span.links")
        _hex_id(link, "traceId", "trace_id", "link")
        _hex_id(link, "spanId", "span_id", "link")
        _string(_field(link, "traceState", "trace_state"), "link.traceState")
        _attribute_list(link, "link")
        _count(link, "droppedAttributesCount", "dropped_attributes_count", "link")
        _count(link, "flags", "flags", "link")
    status = span.get("status")
    if status is not None:
        if type(status) is not dict:
            _message(status, "span.status")
        message = status.get("message")
        if message is not None and type(message) is not str:
            _string(message, "span.status.message")
        code = status.get("code")
        if code is not None and type(code) is not str:
            _enum(code, "span.status.code")


# -- logs -----------------------------------------------------------------------------------


def read_json_logs(
    document: dict[str, Any], decoding: ValueDecoding, tally: Tally, language: str | None = None
) -> None:
    """Map a parsed OTLP/JSON logs request into ``tally``.

    ``language`` is the producer's where a resource does not say.

    Raises:
        OtlpDecodeError: The document is not a valid ``ExportLogsServiceRequest``.
    """
    _checked(_read_logs, document, decoding, tally, language)


def _read_logs(
    document: dict[str, Any], decoding: ValueDecoding, tally: Tally, language: str | None
) -> None:
    for resource_logs in _repeated(document, "resourceLogs", "resource_logs", "request"):
        resource_logs = _message(resource_logs, "resourceLogs")
        source = _source(resource_logs, decoding, language)
        _string(_field(resource_logs, "schemaUrl", "schema_url"), "schemaUrl")
        for scope_logs in _repeated(resource_logs, "scopeLogs", "scope_logs", "resourceLogs"):
            scope_logs = _message(scope_logs, "scopeLogs")
            _scope(scope_logs)
            for record in _repeated(scope_logs, "logRecords", "log_records", "scopeLogs"):
                _read_log_record(_message(record, "logRecord"), source, tally)


def _read_log_record(record: dict[str, Any], source: Source, tally: Tally) -> None:
    where = "logRecord"
    event_name = _string(_field(record, "eventName", "event_name"), f"{where}.eventName")
    attributes = _attribute_list(record, where)
    body = _any_value(record.get("body"), f"{where}.body")
    time_ns = _time(record, "timeUnixNano", "time_unix_nano", where)
    observed_ns = _time(record, "observedTimeUnixNano", "observed_time_unix_nano", where)
    trace_id = _hex_id(record, "traceId", "trace_id", where)
    span_id = _hex_id(record, "spanId", "span_id", where)
    _enum(_field(record, "severityNumber", "severity_number"), f"{where}.severityNumber")
    _string(_field(record, "severityText", "severity_text"), f"{where}.severityText")
    _count(record, "droppedAttributesCount", "dropped_attributes_count", where)
    _count(record, "flags", "flags", where)
    tally.add_log(
        source,
        event_name=event_name,
        attributes=attributes,
        body=body,
        time_ns=time_ns,
        observed_ns=observed_ns,
        trace_id=trace_id,
        span_id=span_id,
    )
