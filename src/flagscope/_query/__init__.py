"""Queries over the store: filters, waiting, aggregates, rollups, impact, exports."""
