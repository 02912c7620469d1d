"""Shared fixtures: record factories, OTel pipelines, and recorded checkout traffic."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flagscope._query.query import CollectorQuery
from flagscope._store.records import EvaluationReason, FlagEvaluationEvent
from producers import PROCESSORS, Pipeline, make_pipeline
from traffic import Traffic, checkout_traffic

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


@pytest.fixture(params=PROCESSORS)
def otel(request: pytest.FixtureRequest) -> Iterator[Pipeline]:
    """A fresh pipeline through each processor users attach (simple, then batch)."""
    pipeline = make_pipeline(request.param)
    try:
        yield pipeline
    finally:
        pipeline.provider.shutdown()


@pytest.fixture(scope="module")
def traffic() -> Iterator[Traffic]:
    """``checkout_traffic()``, recorded once per test module: tests only read it."""
    traffic = checkout_traffic()
    try:
        yield traffic
    finally:
        traffic.pipeline.provider.shutdown()


@pytest.fixture
def query(traffic: Traffic) -> CollectorQuery:
    """The query API over the module's checkout traffic."""
    return traffic.pipeline.collector.query
