"""The span processor kinds a capture reads through (no OpenTelemetry import here).

The pytest plugin checks its ini option against these at load, before any test
asks for the fixture: this module keeps that check from importing the SDK.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["PROCESSOR_KINDS", "SpanProcessorKind"]

SpanProcessorKind = Literal["simple", "batch"]
PROCESSOR_KINDS: Final = ("simple", "batch")
