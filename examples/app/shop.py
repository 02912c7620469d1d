"""Checkout for a small shop, steered by feature flags evaluated through OpenFeature.

The flags are defined in ``flags.json``, in flagd's flag definition format, and
served by the flagd provider in its offline file mode (no flagd daemon: the
provider reads and evaluates the file in process, targeting rules included).
The OpenTelemetry ``TracingHook`` adds a ``feature_flag.evaluation`` event to the
current span for every evaluation, so ``checkout`` evaluates its flags inside a
span. The application knows nothing of flagscope: its tests do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openfeature import api
from openfeature.contrib.hook.opentelemetry import TracingHook
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from opentelemetry import trace

# Obtained at import, before any TracerProvider is set: a proxy tracer that follows
# whichever provider is set globally later.
tracer = trace.get_tracer("shop")

# The shop's own OpenFeature domain and client, so its hook and flags stay its own.
DOMAIN = "shop"
client = api.get_client(DOMAIN)
client.add_hooks([TracingHook()])

FLAGS_FILE = Path(__file__).with_name("flags.json")
FALLBACK_SHIPPING = {"methods": ["post"], "free_over_cents": 10_000}


def configure_flags(flags_file: Path = FLAGS_FILE) -> None:
    """Serve the shop's flags from a flagd definitions file (tests may pass their own)."""
    provider = FlagdProvider(
        resolver_type=ResolverType.FILE, offline_flag_source_path=str(flags_file)
    )
    api.set_provider_and_wait(provider, DOMAIN)


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
