"""Whether a span's fields may be read in place of its ``ReadableSpan`` properties.

Every property read of an SDK span is a Python call: on 3.11 about a thousand
instructions, so the seven an exporter needs per span cost more than the rest
of recording an evaluation's outcome. The SDK's properties only return its
fields (``status`` is ``return self._status``). Where that holds, checked once
here from the getters' own code, and a span's class overrides none of them
(checked once per class), the span exporter reads the fields; any other span,
or an SDK whose properties do more, is read through the properties.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import SpanContext

__all__ = [
    "CONTEXT_ITEMS_HOLD",
    "EVENTS_LIST",
    "FIELD_READERS",
    "FIELD_READS_HOLD",
    "SDK_EVENT",
    "reads_fields",
]

# Property -> the names its getter's code uses: exactly these, or the fields are not read.
_GETTERS: Final = {
    "name": ("_name",),
    "context": ("_context",),
    "parent": ("_parent",),
    "resource": ("_resource",),
    "status": ("_status",),
    "start_time": ("_start_time",),
    "end_time": ("_end_time",),
    "events": ("tuple", "_events"),
    # ``MappingProxyType(self._attributes or {})``: the same mapping, read-only.
    "attributes": ("MappingProxyType", "_attributes"),
}


_EVENT_GETTERS: Final = {
    "name": ("_name",),
    "timestamp": ("_timestamp",),
    "attributes": ("_attributes",),
}


def _getter_names(owner: type, name: str) -> tuple[str, ...] | None:
    prop = next((vars(klass)[name] for klass in owner.__mro__ if name in vars(klass)), None)
    getter = getattr(prop, "fget", None) if isinstance(prop, property) else None
    code = getattr(getter, "__code__", None)
    return getattr(code, "co_names", None)


def _field_reads_hold() -> bool:
    """Whether this SDK's ``ReadableSpan`` properties return its fields as they are."""
    if any(_getter_names(ReadableSpan, name) != names for name, names in _GETTERS.items()):
        return False
    # An attributes mapping is read through its dict (``__getitem__`` is ``self._dict[key]``).
    getitem = getattr(BoundedAttributes.__dict__.get("__getitem__"), "__code__", None)
    return getattr(getitem, "co_names", None) == ("_dict",)


def _context_items_hold() -> bool:
    """Whether a ``SpanContext``'s ids and remote flag are its first three items."""
    if any(_getter_names(SpanContext, name) != () for name in ("trace_id", "span_id", "is_remote")):
        return False
    context = SpanContext(trace_id=3, span_id=5, is_remote=True)
    return context[:3] == (3, 5, True) == (context.trace_id, context.span_id, context.is_remote)


def _events_list() -> type | None:
    """``BoundedList``, if its items are those of its ``_dq`` deque, as its ``__iter__`` reads.

    A span's events are a ``BoundedList``, whose ``__iter__`` (a Python call that
    takes a lock and copies the deque to a list) costs a third of a microsecond; an
    ended span's events no longer change, so its deque is copied straight to a tuple.
    """
    iterate = getattr(BoundedList.__dict__.get("__iter__"), "__code__", None)
    if "_dq" not in getattr(iterate, "co_names", ()):
        return None
    probe: BoundedList[int] = BoundedList(2)
    probe.extend((1, 2, 3))
    items = getattr(probe, "_dq", None)
    if type(items) is not deque or tuple(items) != tuple(probe) or tuple(probe) != (2, 3):
        return None
    return BoundedList


FIELD_READS_HOLD: Final = _field_reads_hold()
CONTEXT_ITEMS_HOLD: Final = _context_items_hold()
# The SDK's list of a span's events, when read through its deque (``_events_list``).
EVENTS_LIST: Final[Any] = _events_list()
# The SDK's event class, when its properties return its fields; else ``None``.
SDK_EVENT: Final = (
    Event
    if all(_getter_names(Event, name) == names for name, names in _EVENT_GETTERS.items())
    else None
)

# Span class -> ``reads_fields``'s answer, for callers that look before they call.
FIELD_READERS: dict[type, bool] = {}


def reads_fields(cls: type) -> bool:
    """Whether spans of ``cls`` may be read through their fields; answered once per class."""
    known = FIELD_READERS.get(cls)
    if known is None:
        known = (
            FIELD_READS_HOLD
            and issubclass(cls, ReadableSpan)
            and all(getattr(cls, name) is getattr(ReadableSpan, name) for name in _GETTERS)
        )
        FIELD_READERS[cls] = known
    return known
