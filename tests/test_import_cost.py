"""What importing flagscope costs: the pytest plugin loads without the OpenTelemetry SDK."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import flagscope

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _modules_after(code: str) -> list[str]:
    probe = textwrap.dedent(code) + (
        "\nimport sys\nprint(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    modules: list[str] = eval(result.stdout)  # a printed list of module names
    return modules


def test_loading_the_pytest_plugin_imports_no_opentelemetry_module() -> None:
    assert _modules_after("import pytest, flagscope.testing._plugin") == []


def test_import_flagscope_imports_no_opentelemetry_module_until_a_name_needs_it() -> None:
    assert _modules_after("import flagscope") == []
    assert "opentelemetry.sdk.trace" in _modules_after(
        "import flagscope; flagscope.FlagEvaluationSpanExporter"
    )


def test_a_pytest_run_that_never_asks_for_the_fixture_imports_no_opentelemetry_module(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_plain.py").write_text(
        "import sys\n\n\ndef test_nothing_imported():\n"
        "    assert 'flagscope.testing._plugin' in sys.modules\n"
        "    assert not [m for m in sys.modules if m.startswith('opentelemetry')]\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_plain.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_every_public_name_resolves_and_unknown_names_raise_attribute_error() -> None:
    for name in flagscope.__all__:
        assert getattr(flagscope, name) is not None
    assert set(flagscope.__all__) <= set(dir(flagscope))
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = flagscope.no_such_name


def test_bench_plugin_import_prints_the_import_time_with_its_target_and_verdict() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_plugin_import.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.startswith("quick mode:")
    assert re.search(
        r"^plugin import, python -X importtime, median of 3 fresh interpreters: "
        r"[0-9.]+ ms \(min [0-9.]+, max [0-9.]+\) \(target < 5 ms\) (PASS|MISS)$",
        result.stdout,
        re.M,
    )
    assert "OpenTelemetry modules imported by loading the plugin: none\n" in result.stdout
