"""The package's layers, pinned: an import that points up (or across) fails here.

Telemetry comes in, is stored, is queried, and is shown::

    views:      flagscope.testing, flagscope.server, flagscope._cli
                  |           \\
    query:      flagscope._query      telemetry in:  flagscope._telemetry
                  |                     |
    store:      flagscope._store  <-----+
                  |
    base:       flagscope._validate, flagscope._extras

A module imports only from its own layer's package or from a layer below it. The two
middle layers are siblings: telemetry in (semantic conventions, mapping, OTLP decoding,
the exporters) writes records into the store and knows nothing of queries; the query
layer (filters, waiting, aggregates, rollups, impact, exports) reads the store and knows
nothing of where records came from. The views may use each other. Only the package root
``flagscope/__init__.py`` re-exports from every layer, lazily (and ``__main__`` runs
the command line). Every import statement
counts, inside functions and ``if TYPE_CHECKING:`` blocks too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "src" / "flagscope"

# Each package and its rank; siblings share a rank and may not import each other.
LAYERS: dict[str, int] = {
    "flagscope._validate": 0,
    "flagscope._extras": 0,
    "flagscope._store": 1,
    "flagscope._telemetry": 2,
    "flagscope._query": 2,
    "flagscope.testing": 3,
    "flagscope.server": 3,
    "flagscope._cli": 3,
}
VIEWS = 3
# The package root re-exports every layer; ``python -m flagscope`` runs the CLI.
ROOTS = frozenset({"flagscope", "flagscope.__main__"})


def layer_of(module: str) -> str | None:
    """The layer package ``module`` belongs to, or ``None`` outside flagscope's layers."""
    best = None
    for package in LAYERS:
        if (module == package or module.startswith(package + ".")) and (
            best is None or len(package) > len(best)
        ):
            best = package
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every module an import statement in ``source`` names, with its line."""
    found: list[tuple[int, str]] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "flagscope":
                # ``from flagscope import _validate`` imports a module, not the root's names.
                found.extend((node.lineno, f"flagscope.{alias.name}") for alias in node.names)
                continue
            found.append((node.lineno, target))
            # ``from flagscope._store import records`` names a module too.
            found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
    return found


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """The imports in ``source`` (the code of ``module``) that break the layering."""
    own = layer_of(module)
    if module in ROOTS:
        return []
    problems = []
    for line, target in imported_modules(source, module, is_package):
        if target != "flagscope" and not target.startswith("flagscope."):
            continue
        if target == "flagscope" or target.startswith("flagscope.__"):
            problems.append(f"{module}:{line} imports the package root ({target})")
            continue
        if target.count(".") == 1 and layer_of(target) is None:
            problems.append(f"{module}:{line} imports {target} from the package root")
            continue
        theirs = layer_of(target)
        if theirs is None:
            # ``from flagscope._store import records`` also lists ``..._store.records``;
            # a name that is not a module (a function) has no layer of its own to check.
            if layer_of(target.rpartition(".")[0]) is not None:
                continue
            problems.append(f"{module}:{line} imports {target}, which belongs to no layer")
            continue
        if own is None:
            problems.append(f"{module} belongs to no layer")
            continue
        if theirs == own:
            continue
        if LAYERS[theirs] > LAYERS[own] or (LAYERS[theirs] == LAYERS[own] and LAYERS[own] != VIEWS):
            problems.append(f"{module}:{line} ({own}) imports {target} ({theirs})")
    return problems


MODULES = sorted(SOURCE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda path: module_name(path))
def test_no_module_imports_up_or_across_the_layers(path: Path) -> None:
    module = module_name(path)
    source = path.read_text(encoding="utf-8")
    assert violations(source, module, path.name == "__init__.py") == []


def test_every_module_belongs_to_a_layer() -> None:
    outside = [
        module_name(path)
        for path in MODULES
        if layer_of(module_name(path)) is None and module_name(path) not in ROOTS
    ]
    assert outside == []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("flagscope._store.ring", "from flagscope._query.rollup import Rollups"),
        ("flagscope._store.ring", "def f():\n    from flagscope._query import query"),
        (
            "flagscope._store.ring",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from flagscope._query.query import CollectorQuery",
        ),
        ("flagscope._telemetry.exporter", "from flagscope._query.filters import build_filter"),
        ("flagscope._query.filters", "from flagscope._telemetry.mapping import normalize"),
        ("flagscope._query.filters", "from flagscope.testing import capture_flag_evaluations"),
        ("flagscope._store.records", "import flagscope._telemetry.semconv"),
        ("flagscope._store.ring", "from .. import _query"),
        ("flagscope._query.query", "from flagscope import InMemoryAnalyticsCollector"),
    ],
)
def test_the_check_catches_an_upward_or_sideways_import(module: str, source: str) -> None:
    assert violations(source, module) != []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("flagscope._query.query", "from flagscope._store.ring import RecordStore"),
        ("flagscope._telemetry.exporter", "from flagscope._store import records"),
        ("flagscope._store.ring", "from flagscope._validate import check_int"),
        ("flagscope.server._app", "from flagscope._query.query import CollectorQuery"),
        ("flagscope._cli.main", "from flagscope.server import create_app"),
        ("flagscope._store.ring", "from . import records"),
    ],
)
def test_the_check_allows_imports_that_point_down(module: str, source: str) -> None:
    assert violations(source, module) == []
