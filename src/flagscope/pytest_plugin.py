"""pytest plugin: the ``flag_evaluations`` fixture and the ``flagscope`` marker.

Registered through the ``pytest11`` entry point, so installing flagscope is
enough; ``-p no:flagscope`` turns it off. Nothing touches OpenTelemetry until a
test asks for the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import pytest

from flagscope.testing import PROCESSOR_KINDS, FlagEvaluationCapture, capture_flag_evaluations

__all__ = ["flag_evaluations", "flagscope_tracer_provider"]

_MARKER: Final = "flagscope"
_MARKER_OPTIONS: Final = ("expected_flags", "strict", "processor")
_PROCESSOR_INI: Final = "flagscope_processor"
_CALL_FAILED = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare the ``flagscope_processor`` ini option."""
    parser.addini(
        _PROCESSOR_INI,
        help="span processor flag_evaluations captures through: simple (default) or batch",
        default="simple",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker and check the ini option.

    Raises:
        pytest.UsageError: ``flagscope_processor`` is neither simple nor batch.
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember a failed test body, so teardown does not pile a flag list on it."""
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_CALL_FAILED] = True
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
def flagscope_tracer_provider() -> object:
    """The ``TracerProvider`` ``flag_evaluations`` captures from; ``None`` means the global one.

    Override this fixture (any scope) to capture from a provider you build yourself.
    """
    return None


@pytest.fixture
def flag_evaluations(
    request: pytest.FixtureRequest, flagscope_tracer_provider: object
) -> Iterator[FlagEvaluationCapture]:
    """Every flag evaluation made during the test, with assertions; empty at the start.

    Captures from ``flagscope_tracer_provider`` (the global provider unless
    overridden, installed once if none is set). ``@pytest.mark.flagscope(...)``
    sets ``expected_flags``, ``strict`` and ``processor``.
    """
    __tracebackhide__ = True
    capture = capture_flag_evaluations(flagscope_tracer_provider, **_marker_options(request))
    capture.start()
    try:
        yield capture
    finally:
        capture.stop(check_expected=not request.node.stash.get(_CALL_FAILED, False))
