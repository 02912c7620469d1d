"""Telemetry in: semantic conventions, the mapper, OTLP decoding, the exporters."""
