"""A small shop application whose checkout is steered by feature flags."""
