"""The README and docs/: every link resolves and every Python example is code the tests run.

A Python block in the documentation must be an excerpt of a file under ``examples/``
(whose scripts ``tests/test_examples.py`` runs and whose tests ``make test`` collects):
its lines appear in that file in the same order, a line of ``...`` standing for lines
left out. So an example cannot drift from code that runs.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = sorted((ROOT / "examples").rglob("*.py"))

_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
_HEADING = re.compile(r"^(#{1,6}) (.+)$", re.M)


def _without_code(text: str) -> str:
    return _FENCE.sub("", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for _, heading in _HEADING.findall(_without_code(page.read_text(encoding="utf-8"))):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _links() -> list[tuple[Path, str]]:
    return [
        (page, target)
        for page in PAGES
        for target in _LINK.findall(_without_code(page.read_text(encoding="utf-8")))
        if not target.startswith(("http://", "https://", "mailto:"))
    ]


@pytest.mark.parametrize(
    ("page", "target"), _links(), ids=lambda value: getattr(value, "name", value)
)
def test_every_relative_link_resolves_to_a_file_and_heading(page: Path, target: str) -> None:
    path, _, anchor = target.partition("#")
    destination = (page.parent / unquote(path)).resolve() if path else page
    assert destination.exists(), f"{page.name}: {target} names no file"
    if anchor:
        assert anchor in _anchors(destination), f"{page.name}: {target} names no heading"


def _python_blocks() -> list[tuple[str, str]]:
    blocks = []
    for page in PAGES:
        for number, (language, body) in enumerate(_FENCE.findall(page.read_text(encoding="utf-8"))):
            if language == "python":
                blocks.append((f"{page.name}#{number}", body))
    return blocks


def _is_excerpt(block: str, source: str) -> bool:
    lines = source.splitlines()
    position = 0
    for wanted in textwrap.dedent(block).splitlines():
        wanted = wanted.strip()
        if not wanted or wanted == "...":
            continue
        while position < len(lines) and lines[position].strip() != wanted:
            position += 1
        if position == len(lines):
            return False
        position += 1
    return True


def test_the_documentation_has_python_examples() -> None:
    assert len(_python_blocks()) >= 8


@pytest.mark.parametrize(("where", "block"), _python_blocks(), ids=lambda value: value)
def test_every_python_example_is_an_excerpt_of_an_example_that_runs(where: str, block: str) -> None:
    sources = [path.read_text(encoding="utf-8") for path in EXAMPLES]
    assert any(_is_excerpt(block, source) for source in sources), (
        f"{where} is not an excerpt of any file under examples/:\n{block}"
    )
