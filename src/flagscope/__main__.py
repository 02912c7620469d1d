"""``python -m flagscope`` and the ``flagscope`` console script.

The command needs the ``server`` extra: without it, this says so in one line on
stderr and exits 1, instead of an import traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``flagscope`` command."""
    try:
        from flagscope._cli.main import main as run
    except ImportError as error:
        print(f"flagscope: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    run(argv)


if __name__ == "__main__":
    main()
