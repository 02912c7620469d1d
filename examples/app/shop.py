"""Checkout for a small shop, steered by feature flags evaluated through OpenFeature.

The OpenTelemetry ``TracingHook`` adds a ``feature_flag.evaluation`` event to the
current span for every evaluation, so ``checkout`` evaluates its flags inside a
span. The application knows nothing of flagscope: its tests do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openfeature import api
from openfeature.contrib.hook.opentelemetry import TracingHook
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider
from opentelemetry import trace

# Obtained at import, before any TracerProvider is set: a proxy tracer that follows
# whichever provider is set globally later.
tracer = trace.get_tracer("shop")

# The shop's own OpenFeature domain and client, so its hook and flags stay its own.
DOMAIN = "shop"
client = api.get_client(DOMAIN)
client.add_hooks([TracingHook()])

BETA_USERS = frozenset({"beta-tester"})
FALLBACK_SHIPPING = {"methods": ["post"], "free_over_cents": 10_000}


def _beta_only(flag: InMemoryFlag[Any], context: EvaluationContext) -> FlagResolutionDetails[Any]:
    variant = "on" if context.targeting_key in BETA_USERS else "off"
    return FlagResolutionDetails(
        value=flag.variants[variant], variant=variant, reason=Reason.TARGETING_MATCH
    )


def default_flags() -> dict[str, InMemoryFlag[Any]]:
    """The flags the shop ships with."""
    return {
        "new-checkout": InMemoryFlag(
            "off", {"on": True, "off": False}, context_evaluator=_beta_only
        ),
        "discount-percent": InMemoryFlag("ten", {"none": 0, "ten": 10}),
        "shipping-options": InMemoryFlag(
            "standard", {"standard": {"methods": ["post"], "free_over_cents": 5000}}
        ),
    }


def configure_flags(flags: dict[str, InMemoryFlag[Any]] | None = None) -> None:
    """Install the shop's flag provider (tests pass their own flags)."""
    api.set_provider(InMemoryProvider(default_flags() if flags is None else flags), DOMAIN)


@dataclass(frozen=True)
class Receipt:
    """What checkout returns."""

    total_cents: int
    shipping_methods: tuple[str, ...]
    free_shipping: bool


def checkout(user_id: str, prices_cents: list[int]) -> Receipt:
    """Price a cart for a user; the new checkout flow applies a discount."""
    with tracer.start_as_current_span("checkout"):
        context = EvaluationContext(targeting_key=user_id)
        total = sum(prices_cents)
        if client.get_boolean_value("new-checkout", False, context):
            percent = client.get_integer_value("discount-percent", 0, context)
            total -= total * percent // 100
        shipping: Any = client.get_object_value("shipping-options", FALLBACK_SHIPPING, context)
        methods = tuple(shipping["methods"])
        return Receipt(total, methods, free_shipping=total >= shipping["free_over_cents"])
