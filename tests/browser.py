"""Which Chromium the dashboard's browser test drives, found the same way by tests and make.

In order: the ``FLAGSCOPE_CHROMIUM`` environment variable (a path), a Chromium or
Chrome on the ``PATH`` (Debian's ``chromium``, Ubuntu's ``chromium-browser``, a snap,
Google Chrome), then the browsers Playwright installed (``playwright install
chromium``, under ``PLAYWRIGHT_BROWSERS_PATH`` or its cache directory; macOS
included). ``make test`` runs this file: exit status 1 (nothing found) makes it
install Debian's package.

    python tests/browser.py   # prints the path, or exits 1
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

VARIABLE = "FLAGSCOPE_CHROMIUM"
_ON_PATH = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
# Playwright's own downloads, per platform (the full browser first, then its headless shell).
_PLAYWRIGHT_GLOBS = (
    "chromium-*/chrome-linux*/chrome",
    "chromium-*/chrome-mac*/Chromium.app/Contents/MacOS/Chromium",
    "chromium-*/chrome-mac*/Google Chrome for Testing.app/Contents/MacOS/Google Chrome for Testing",
    "chromium-*/chrome-win*/chrome.exe",
    "chromium_headless_shell-*/chrome-linux*/headless_shell",
    "chromium_headless_shell-*/chrome-mac*/headless_shell",
)


def _playwright_dirs() -> list[Path]:
    configured = os.environ.get("PLAYWRIGHT_BROWSERS_PATH")
    if configured and configured != "0":
        return [Path(configured)]
    home = Path.home()
    return [
        home / ".cache" / "ms-playwright",
        home / "Library" / "Caches" / "ms-playwright",
        Path(os.environ.get("LOCALAPPDATA", home)) / "ms-playwright",
    ]


def find_chromium() -> str | None:
    """Return the path of a Chromium to drive, or ``None`` when there is none.

    Raises:
        FileNotFoundError: ``FLAGSCOPE_CHROMIUM`` names a file that does not exist.
    """
    configured = os.environ.get(VARIABLE, "").strip()
    if configured:
        if not Path(configured).is_file():
            raise FileNotFoundError(f"{VARIABLE}={configured!r} is not a file")
        return configured
    for name in _ON_PATH:
        found = shutil.which(name)
        if found:
            return found
    for directory in _playwright_dirs():
        for pattern in _PLAYWRIGHT_GLOBS:
            for candidate in sorted(directory.glob(pattern), reverse=True):
                if candidate.is_file() and os.access(candidate, os.X_OK):
                    return str(candidate)
    return None


if __name__ == "__main__":
    try:
        path = find_chromium()
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        sys.exit(2)
    if path is None:
        sys.exit(1)
    print(path)
