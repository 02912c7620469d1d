"""The error for a feature whose optional extra is not installed."""

from __future__ import annotations

__all__ = ["missing_extra"]


def missing_extra(error: ImportError, feature: str, extra: str) -> ImportError:
    """Return the ``ImportError`` that names the missing package and the extra to install.

    Raise it ``from`` the original error, in the ``except ImportError`` around a
    module's optional imports.

    Args:
        error: The ``ImportError`` the optional import raised.
        feature: What needs the extra, e.g. ``"flagscope.server"``.
        extra: The extra's name, e.g. ``"server"``.
    """
    return ImportError(
        f"{feature} needs the '{extra}' extra ({error.name} is missing): "
        f"pip install 'flagscope[{extra}]'"
    )
