"""Shared fixtures: small factories for records, so tests say only what matters."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flagscope.models import EvaluationReason, FlagEvaluationEvent

EventFactory = Callable[..., FlagEvaluationEvent]

_BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def make_event() -> EventFactory:
    """Build distinct records: each call gets a later timestamp and a fresh value."""
    counter = itertools.count()

    def make(flag_key: str = "flag", **fields: Any) -> FlagEvaluationEvent:
        n = next(counter)
        fields.setdefault("timestamp", _BASE_TIME + timedelta(seconds=n))
        fields.setdefault("value", n)
        fields.setdefault("reason", EvaluationReason.STATIC)
        return FlagEvaluationEvent(flag_key=flag_key, **fields)

    return make
