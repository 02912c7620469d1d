"""pytest plugin: the ``flag_evaluations`` fixture, the ``flagscope`` marker, flag coverage.

Registered through the ``pytest11`` entry point, so installing flagscope is
enough; ``-p no:flagscope`` turns it off. Nothing touches OpenTelemetry until a
test asks for the fixture, or ``--flagscope-coverage`` (off by default) asks for
the whole suite's flag coverage: only then is the coverage plugin imported and
registered.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import pytest

# Loading the plugin imports no OpenTelemetry module (every pytest run in a project that
# installed flagscope pays for what is imported here): the capture is imported by the fixture.
from flagscope.testing._kinds import PROCESSOR_KINDS, SpanProcessorKind

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from flagscope.testing import FlagEvaluationCapture
    from flagscope.testing._coverage_plugin import FlagCoveragePlugin

__all__ = ["flag_evaluations", "flagscope_tracer_provider"]

_MARKER: Final = "flagscope"
_MARKER_OPTIONS: Final = ("expected_flags", "strict", "processor")
_PROCESSOR_INI: Final = "flagscope_processor"
_ENDED_EARLY = pytest.StashKey[bool]()
_COVERAGE: pytest.StashKey[FlagCoveragePlugin] = pytest.StashKey()
# Flag coverage settings that are both a command-line option and an ini option.
_COVERAGE_SWITCHES: Final = (
    "flagscope_coverage",
    "flagscope_require_variants",
    "flagscope_require_flags",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare the ini options and the flag coverage command-line options."""
    parser.addini(
        _PROCESSOR_INI,
        help="span processor flag_evaluations (and flag coverage) read through: simple "
        "(default) or batch",
        default="simple",
    )
    group = parser.getgroup("flagscope", "flag coverage (flagscope)")
    group.addoption(
        "--flagscope-coverage",
        action="store_true",
        default=None,
        dest="flagscope_coverage",
        help="record every flag evaluation of the run per test and report flag coverage",
    )
    group.addoption(
        "--no-flagscope-coverage",
        action="store_false",
        dest="flagscope_coverage",
        help="turn flag coverage off, whatever the ini options say",
    )
    group.addoption(
        "--flagscope-coverage-json",
        metavar="PATH",
        default=None,
        help="write the flag coverage as JSON to PATH (turns flag coverage on)",
    )
    group.addoption(
        "--flagscope-flags",
        metavar="PATH",
        default=None,
        help="the declared flags: a flagd flag definition file or a JSON list of flag keys",
    )
    group.addoption(
        "--flagscope-require-variants",
        action="store_true",
        default=None,
        help="fail the run when a declared, enabled flag has a variant no test exercised "
        "(turns flag coverage on)",
    )
    group.addoption(
        "--flagscope-require-flags",
        action="store_true",
        default=None,
        help="fail the run when a declared, enabled flag was never evaluated (turns flag "
        "coverage on)",
    )
    for name, text in (
        ("flagscope_coverage", "record and report flag coverage (--flagscope-coverage)"),
        ("flagscope_require_variants", "as --flagscope-require-variants"),
        ("flagscope_require_flags", "as --flagscope-require-flags"),
    ):
        parser.addini(name, type="bool", default=False, help=text)
    parser.addini(
        "flagscope_flags",
        help="as --flagscope-flags; a relative path is relative to the ini file",
        default="",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, check the ini option, and turn flag coverage on if asked.

    Raises:
        pytest.UsageError: ``flagscope_processor`` is neither simple nor batch; or
            flag coverage was asked for with declared flags that are missing or
            malformed, or with a requirement but no declared flags.
    """
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(expected_flags=None, strict=False, processor=None): declare the flags "
        "the test may evaluate (strict=True fails it at teardown on any other flag) and "
        "the span processor flag_evaluations captures through ('simple' or 'batch')",
    )
    processor = config.getini(_PROCESSOR_INI)
    if processor not in PROCESSOR_KINDS:
        raise pytest.UsageError(
            f"{_PROCESSOR_INI} must be one of {', '.join(PROCESSOR_KINDS)}, got {processor!r}"
        )
    _configure_coverage(config, cast(SpanProcessorKind, processor))


def _switch(config: pytest.Config, name: str) -> bool:
    value = config.getoption(name)
    return bool(config.getini(name)) if value is None else bool(value)


def _configure_coverage(config: pytest.Config, processor: SpanProcessorKind) -> None:
    """Register the flag coverage plugin when coverage is asked for; import nothing else."""
    if config.getoption("flagscope_coverage") is False:  # --no-flagscope-coverage
        return
    enabled = {name: _switch(config, name) for name in _COVERAGE_SWITCHES}
    json_option = config.getoption("flagscope_coverage_json")
    if not any(enabled.values()) and not json_option:
        return
    from flagscope.testing._coverage_plugin import FlagCoveragePlugin

    invocation_dir = config.invocation_params.dir
    flags_option = config.getoption("flagscope_flags")
    flags_path: Path | None
    if flags_option:
        flags_path = invocation_dir / flags_option
    elif config.getini("flagscope_flags"):
        base = config.inipath.parent if config.inipath is not None else config.rootpath
        flags_path = base / str(config.getini("flagscope_flags"))
    else:
        flags_path = None
    plugin = FlagCoveragePlugin.from_config(
        config,
        processor=processor,
        flags_path=flags_path,
        json_path=invocation_dir / json_option if json_option else None,
        require_variants=enabled["flagscope_require_variants"],
        require_flags=enabled["flagscope_require_flags"],
    )
    config.stash[_COVERAGE] = plugin
    config.pluginmanager.register(plugin, "flagscope-coverage")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember a test that failed, errored in setup, or was skipped or xfailed.

    Its teardown then does not pile a flag list on it: the test ended before its
    flags meant anything (an xfail is reported as skipped).
    """
    report = yield
    if report.when in ("setup", "call") and (report.failed or report.skipped):
        item.stash[_ENDED_EARLY] = True
    return report


def _marker_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    options: dict[str, Any] = {"processor": request.config.getini(_PROCESSOR_INI)}
    marker = request.node.get_closest_marker(_MARKER)
    if marker is None:
        return options
    if marker.args:
        raise TypeError(
            f"@pytest.mark.{_MARKER} takes keyword arguments only "
            f"({', '.join(_MARKER_OPTIONS)}), got positional {marker.args!r}"
        )
    unknown = sorted(set(marker.kwargs) - set(_MARKER_OPTIONS))
    if unknown:
        raise TypeError(
            f"@pytest.mark.{_MARKER} got unknown option(s) {', '.join(unknown)}; "
            f"it takes {', '.join(_MARKER_OPTIONS)}"
        )
    options.update({key: value for key, value in marker.kwargs.items() if value is not None})
    return options


@pytest.fixture
def flagscope_tracer_provider() -> TracerProvider | None:
    """The ``TracerProvider`` ``flag_evaluations`` captures from; ``None`` means the global one.

    Override this fixture (any scope) to capture from a provider you build yourself.
    """
    return None


@pytest.fixture
def flag_evaluations(
    request: pytest.FixtureRequest, flagscope_tracer_provider: TracerProvider | None
) -> Iterator[FlagEvaluationCapture]:
    """Every flag evaluation made during the test, with assertions; empty at the start.

    Captures from ``flagscope_tracer_provider`` (the global provider unless
    overridden, installed once if none is set). ``@pytest.mark.flagscope(...)``
    sets ``expected_flags``, ``strict`` and ``processor``.
    """
    __tracebackhide__ = True
    from flagscope.testing import capture_flag_evaluations

    capture = capture_flag_evaluations(flagscope_tracer_provider, **_marker_options(request))
    capture.start()
    coverage = request.config.stash.get(_COVERAGE, None)
    if coverage is not None and capture.tracer_provider is not None:
        # A provider of the test's own (flagscope_tracer_provider) counts for coverage too.
        coverage.watch(capture.tracer_provider)
    try:
        yield capture
    finally:
        capture.stop(check_expected=not request.node.stash.get(_ENDED_EARLY, False))
