"""Realistic flag traffic for the query tests: OpenFeature + TracingHook -> span exporter.

Each request is a root span (its own trace) in which the application evaluates flags
through the real OpenFeature SDK with the in-memory provider, exactly as a user would.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.hook.opentelemetry import TracingHook
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

from producers import Pipeline, hex_ids, make_pipeline

PROVIDER_NAME = "In-Memory Provider"
THEME = {"palette": {"accent": "#c05543"}, "sizes": [1, 2]}


def vip_only(flag: InMemoryFlag[Any], context: EvaluationContext) -> FlagResolutionDetails[Any]:
    """An in-memory flag evaluator: variant "on" for the "vip" plan, "off" (default) else."""
    if context.attributes.get("plan") == "vip":
        return FlagResolutionDetails(
            flag.variants["on"], variant="on", reason=Reason.TARGETING_MATCH
        )
    return FlagResolutionDetails(flag.variants["off"], variant="off", reason=Reason.DEFAULT)


FLAGS: dict[str, InMemoryFlag[Any]] = {
    "new-checkout": InMemoryFlag("off", {"on": True, "off": False}, context_evaluator=vip_only),
    "banner-color": InMemoryFlag("red", {"red": "#c05543", "blue": "#1f6feb"}),
    "theme": InMemoryFlag("dark", {"dark": THEME}),
    "max-items": InMemoryFlag("forty-two", {"forty-two": 42}),
}


@contextmanager
def openfeature_client(
    flags: Mapping[str, InMemoryFlag[Any]] = FLAGS,
) -> Iterator[OpenFeatureClient]:
    """An OpenFeature client on the in-memory provider of ``flags``, with the tracing hook.

    OpenFeature's API state (providers, hooks, context) is global: start clean and clean up.
    """
    api.shutdown()
    api.set_provider_and_wait(InMemoryProvider(dict(flags)))
    api.add_hooks([TracingHook()])
    try:
        yield api.get_client()
    finally:
        api.shutdown()


def context(user: str | None, **attributes: Any) -> EvaluationContext:
    """Return an evaluation context for ``user`` (``None``: no targeting key)."""
    return EvaluationContext(targeting_key=user, attributes=attributes)


@dataclass
class Traffic:
    """The pipeline after the requests, and each request's hex trace and span ids."""

    pipeline: Pipeline
    ids: dict[str, tuple[str, str]]


def request(
    pipeline: Pipeline, client: OpenFeatureClient, name: str, evaluations: list[Any]
) -> None:
    """Run one request span in which each callable of ``evaluations`` evaluates a flag."""
    with pipeline.tracer().start_as_current_span(name):
        for evaluate in evaluations:
            evaluate(client)


def checkout_traffic(pipeline: Pipeline | None = None) -> Traffic:
    """Send four requests through OpenFeature and return what the collector saw.

    - ``alice`` (vip): new-checkout on (targeting_match), banner-color red (static)
    - ``bob``: new-checkout off (default), theme (an object value)
    - ``carol``: ghost (flag_not_found), max-items read as a string (type_mismatch)
    - anonymous: new-checkout three times in one request (off, default)
    """
    pipeline = pipeline if pipeline is not None else make_pipeline("simple")
    alice = context("alice", plan="vip")
    bob = context("bob")
    carol = context("carol")
    anonymous = context(None)
    with openfeature_client() as client:
        request(
            pipeline,
            client,
            "alice",
            [
                lambda c: c.get_boolean_value("new-checkout", False, alice),
                lambda c: c.get_string_value("banner-color", "", alice),
            ],
        )
        request(
            pipeline,
            client,
            "bob",
            [
                lambda c: c.get_boolean_value("new-checkout", False, bob),
                lambda c: c.get_object_value("theme", {}, bob),
            ],
        )
        request(
            pipeline,
            client,
            "carol",
            [
                lambda c: c.get_boolean_value("ghost", False, carol),
                lambda c: c.get_string_value("max-items", "none", carol),
            ],
        )
        request(
            pipeline,
            client,
            "anonymous",
            [lambda c: c.get_boolean_value("new-checkout", False, anonymous)] * 3,
        )
    pipeline.flush()
    ids = {
        name: hex_ids(pipeline.span_named(name)) for name in ("alice", "bob", "carol", "anonymous")
    }
    return Traffic(pipeline, ids)
