"""The pytest side of flag coverage: registered only when ``--flagscope-coverage`` is on.

``flagscope.testing._plugin`` imports this module and registers ``FlagCoveragePlugin``
from ``pytest_configure`` when coverage is asked for, so a run without it loads and
runs nothing of this.

How evaluations reach the right test: the plugin adds a ``CoverageRecorder`` to the
shared exporter of the global ``TracerProvider`` (and of any provider a
``flag_evaluations`` fixture captures from), through the span processor kind the
``flagscope_processor`` ini setting names. Around each test (setup, call and
teardown) the recorder is told the test's node id; with the batch processor the
processor is flushed before the test ends, so the test's spans are exported while
it is still the running test. Under pytest-xdist each worker sends its tallies to
the controller when it finishes, and the controller reports, writes the JSON and
fails the run as a serial run would.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Generator
from pathlib import Path
from typing import Any, Final

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

from flagscope.testing._attachment import (
    FLUSH_TIMEOUT_MILLIS,
    Attachment,
    SpanProcessorKind,
    attach,
    resolve_tracer_provider,
)
from flagscope.testing._coverage import (
    CoverageRecorder,
    CoverageReport,
    build_report,
    describe_missing,
    render_summary,
)
from flagscope.testing._declarations import DeclaredFlag, FlagDefinitionsError, load_declared_flags

__all__ = ["FlagCoveragePlugin"]

# The key a pytest-xdist worker's tallies travel under, in its workeroutput.
_WORKER_OUTPUT_KEY: Final = "flagscope_coverage"


class FlagCoveragePlugin:
    """Records every flag evaluation of the run per test; reports, writes JSON, fails.

    Build it with ``from_config``; ``flagscope.testing._plugin`` registers it.
    """

    def __init__(
        self,
        *,
        processor: SpanProcessorKind,
        declared: dict[str, DeclaredFlag] | None = None,
        json_path: Path | None = None,
        require_variants: bool = False,
        require_flags: bool = False,
        is_worker: bool = False,
        verbose: bool = False,
        collect_only: bool = False,
    ) -> None:
        self._kind: SpanProcessorKind = processor
        self._declared = declared
        self._json_path = json_path
        self._require_variants = require_variants
        self._require_flags = require_flags
        self._is_worker = is_worker
        self._verbose = verbose
        self._collect_only = collect_only
        self._recorder = CoverageRecorder()
        # Each provider watched, while it lives, with its attachment: weak, so that a
        # provider made per test (a function-scoped flagscope_tracer_provider) is
        # neither kept alive nor walked again by every later test.
        self._providers: weakref.WeakKeyDictionary[SdkTracerProvider, Attachment] = (
            weakref.WeakKeyDictionary()
        )
        self._global: object = None
        self._problem: str | None = None
        self._report: CoverageReport | None = None
        self._json_written = False
        self._json_error: str | None = None

    @classmethod
    def from_config(
        cls,
        config: pytest.Config,
        *,
        processor: SpanProcessorKind,
        flags_path: Path | None,
        json_path: Path | None,
        require_variants: bool,
        require_flags: bool,
    ) -> FlagCoveragePlugin:
        """Build the plugin for this run, reading the declared flags (not on xdist workers).

        Raises:
            pytest.UsageError: A requirement without declared flags, or a declared
                flags file that is missing or malformed.
        """
        is_worker = hasattr(config, "workerinput")
        declared = None
        if not is_worker:
            for wanted, option in (
                (require_variants, "--flagscope-require-variants"),
                (require_flags, "--flagscope-require-flags"),
            ):
                if wanted and flags_path is None:
                    raise pytest.UsageError(
                        f"{option} needs the declared flags: pass --flagscope-flags=PATH or "
                        "set the flagscope_flags ini option"
                    )
            if flags_path is not None:
                try:
                    declared = load_declared_flags(flags_path)
                except FlagDefinitionsError as error:
                    raise pytest.UsageError(f"flagscope declared flags: {error}") from None
            if json_path is not None and json_path.is_dir():
                raise pytest.UsageError(
                    f"--flagscope-coverage-json: {json_path} is a directory, not a file name"
                )
        return cls(
            processor=processor,
            declared=declared,
            json_path=json_path,
            require_variants=require_variants,
            require_flags=require_flags,
            is_worker=is_worker,
            verbose=config.option.verbose > 0,
            collect_only=bool(config.option.collectonly),
        )

    # -- recording ----------------------------------------------------------------------

    def watch(self, provider: SdkTracerProvider) -> None:
        """Record the evaluations of spans ``provider`` ends, from now on."""
        # attach() returns the same attachment each time, or a new one after the
        # provider was shut down (which shut its exporter down too).
        attachment = attach(provider, self._kind, "json")
        if self._providers.get(provider) is not attachment:
            attachment.dispatcher.add(self._recorder)
            self._providers[provider] = attachment

    def _watch_global(self) -> None:
        provider = trace.get_tracer_provider()
        if provider is self._global:
            if isinstance(provider, SdkTracerProvider):
                attachment = self._providers.get(provider)
                if attachment is not None and attachment.exporter.is_shut_down:
                    self.watch(provider)
            return
        try:
            # Installs an SDK provider when none is set yet, as the fixture does.
            resolved = resolve_tracer_provider(None)
        except TypeError as error:
            self._global = provider
            self._problem = str(error)
            return
        self._global = resolved
        self.watch(resolved)

    def _flush(self) -> None:
        if self._kind == "batch":
            for attachment in list(self._providers.values()):
                attachment.processor.force_flush(FLUSH_TIMEOUT_MILLIS)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        """Count the evaluations of the test's setup, call and teardown for it."""
        self._watch_global()
        self._recorder.begin(item.nodeid)
        try:
            return (yield)
        finally:
            try:
                self._flush()
            finally:
                self._recorder.end()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """pytest-xdist: add a finished worker's tallies to the controller's."""
        data = getattr(node, "workeroutput", {}).get(_WORKER_OUTPUT_KEY)
        if data is not None:
            self._recorder.merge_data(data)

    # -- reporting ----------------------------------------------------------------------

    def report(self) -> CoverageReport:
        """The run's coverage so far, joined with the declared flags."""
        return build_report(self._recorder.to_data(), self._declared)

    def _failures(self, report: CoverageReport) -> list[str]:
        failures = []
        missing = report.missing_variants
        if self._require_variants and missing:
            failures.append(
                "--flagscope-require-variants: declared variants never exercised: "
                + describe_missing(missing)
            )
        if self._require_flags and report.never_evaluated:
            failures.append(
                "--flagscope-require-flags: declared flags never evaluated: "
                + ", ".join(report.never_evaluated)
            )
        return failures

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        """After the last test (and every xdist worker): fail the run on a requirement."""
        result = yield
        if not self._is_worker and not self._collect_only:
            self._report = self.report()
            if self._failures(self._report):
                # As pytest-cov does for --cov-fail-under: pytest then exits with
                # TESTS_FAILED, the status of a run with failures.
                session.testsfailed += 1
        return result

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Workers send their tallies; the controller (or a serial run) writes the JSON."""
        if self._is_worker:
            workeroutput: dict[str, Any] = session.config.workeroutput  # type: ignore[attr-defined]
            workeroutput[_WORKER_OUTPUT_KEY] = self._recorder.to_data()
            return
        if self._json_path is None or self._collect_only:
            return
        report = self._report or self.report()
        text = json.dumps(report.to_dict(), indent=2, sort_keys=True, ensure_ascii=False)
        try:
            self._json_path.parent.mkdir(parents=True, exist_ok=True)
            # A lone surrogate in a key becomes a JSON \udcxx escape, still valid JSON.
            self._json_path.write_text(text + "\n", encoding="utf-8", errors="backslashreplace")
        except OSError as error:
            self._json_error = f"flag coverage JSON not written: {error}"
        else:
            self._json_written = True

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """The coverage section: per flag, evaluations, tests, and tests per variant."""
        if self._is_worker or self._collect_only:
            return
        report = self._report or self.report()
        terminalreporter.write_sep("=", "flag coverage")
        if self._problem is not None:
            terminalreporter.write_line(self._problem, yellow=True)
        for line in render_summary(report, verbose=self._verbose):
            terminalreporter.write_line(line)
        if self._json_written and self._json_path is not None:
            terminalreporter.write_line(f"flag coverage JSON written to {self._json_path}")
        if self._json_error is not None:
            terminalreporter.write_line(self._json_error, red=True, bold=True)
        for failure in self._failures(report):
            terminalreporter.write_line(f"FAILED {failure}", red=True, bold=True)

    def pytest_unconfigure(self) -> None:
        """Detach the recorder, so an in-process pytest run leaves nothing behind."""
        for attachment in list(self._providers.values()):
            attachment.dispatcher.remove(self._recorder)
        self._providers.clear()
