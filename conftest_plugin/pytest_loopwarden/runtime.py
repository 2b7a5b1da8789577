"""The per-test machinery, registered only when ``--block-detect`` is on.

Patches are installed once for the session (``loopwarden.keep_installed()``);
each test phase (setup, call, teardown) enters and leaves the test's own
:class:`~pytest_loopwarden.wardens.TestWarden`, which costs a list append and
removal. Our phase wrappers run outermost (``tryfirst``, registered last), so
what other plugins do around a phase is guarded too (pytest-qt processes
pending Qt events after each phase); their own frames are tool frames, which
the engine never reports. When pytest-qt fails a phase for exceptions caught
in the Qt event loop, our findings are added to that failure as a section.

A phase fails when its warden gained findings, whatever happened to the
exception: the engine records a finding on the warden *before* raising, so
errors swallowed by a broad ``except``, a Qt slot, an asyncio callback, a
never-awaited task or a loop's exception handler still fail the test.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Generator
from contextlib import AbstractContextManager
from typing import Any

import pytest

import loopwarden
from loopwarden import Allowance, Rule, Warden, engine, frames
from loopwarden.allowances import check_allowance
from loopwarden.errors import ConfigError
from loopwarden.registry import registry
from pytest_loopwarden import reporting, summary, xdist_support
from pytest_loopwarden.markers import ItemOptions, check_marker_names, item_options
from pytest_loopwarden.options import Settings, warden_mode_for
from pytest_loopwarden.records import Record, blocked_long_enough, origin_of
from pytest_loopwarden.wardens import TestWarden

__all__ = ["BlockDetectPlugin"]


@dataclasses.dataclass
class _ItemState:
    options: ItemOptions
    warden: TestWarden | None


_STATE_KEY = pytest.StashKey[_ItemState]()
_SITE_MARKERS = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


class BlockDetectPlugin:
    """Guards every test phase; collects findings; reports them at the end."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.records: list[Record] = []
        self._test_files: set[str] = set()
        self._hold: AbstractContextManager[None] | None = None
        self._rules: list[Rule] = []
        self._allowances: list[Allowance] = []
        self._worker = xdist_support.worker_id(config)
        self._extra: dict[str, Any] = {}
        self._report_error = ""
        self._own_code: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
        self._failed_phases = 0  # phases failed for their findings: the footer is shown once
        self._warned = 0  # records already shown as warnings (warn mode)
        if settings.stall_ms is not None:
            self._extra["stall_ms"] = settings.stall_ms
        rule_names = [rule.name for rule in settings.project.rules]
        for allowance in settings.allowances:
            try:
                check_allowance(allowance, where="allowance", extra_names=rule_names)
            except ConfigError as exc:
                raise pytest.UsageError(str(exc)) from None

    # -- session ------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Install the patches once, unless this is the xdist controller."""
        if xdist_support.is_controller(self.config):
            return
        hold = loopwarden.keep_installed()
        hold.__enter__()
        self._hold = hold
        # A finding names the nearest frame of the project (or of the scope)
        # as the place to fix, with the library frame beside it.
        self._own_code = frames.own_code()
        frames.set_own_code(self.settings.scope, (str(self.config.rootpath),))
        for rule in self.settings.project.rules:
            registry.add_rule(rule)
            self._rules.append(rule)
        for allowance in self.settings.allowances:
            engine.global_allowances.append(allowance)
            self._allowances.append(allowance)

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Remember the test files: findings there are labelled "test code"."""
        if not xdist_support.is_worker(self.config):
            # A usage error raised on an xdist worker would be an internal error of
            # the controller; there each test with a bad marker errors instead.
            check_marker_names(items)
        self._test_files.update(str(item.path) for item in items)

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        """Show the active settings."""
        return self.settings.header()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """On the xdist controller, take the findings of a finished worker."""
        self.records.extend(xdist_support.records_from_node(node))
        counts = xdist_support.counts_from_node(node)
        self._failed_phases += counts.get("failed_phases", 0)
        self._warned += counts.get("warned", 0)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Hand the findings to the controller, or write the JSON report."""
        if xdist_support.is_worker(self.config):
            xdist_support.send_records(self.config, self.records)
            xdist_support.send_counts(
                self.config, {"failed_phases": self._failed_phases, "warned": self._warned}
            )
        elif self.settings.report is not None:
            try:
                reporting.write_report_file(self.settings.report, self.settings, self.records)
            except OSError as exc:  # a bad path must not turn the run into an internal error
                self._report_error = f"could not write the report: {exc}"

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Findings grouped by place to fix, largest first, capped to fit a screen."""
        if self._report_error:
            terminalreporter.write_line(f"loopwarden: {self._report_error}", red=True)
        if not self.records:
            return
        report = self.settings.report if not self._report_error else None
        title, lines = summary.summary_lines(
            self.records,
            verbosity=int(self.config.getoption("verbose") or 0),
            scope=self.settings.scope,
            report=report,
            failed=self._failed_phases > 0,
        )
        shown_as_warnings = self.config.pluginmanager.has_plugin("warnings")
        if shown_as_warnings and self._warned == len(self.records):
            # warn mode: each finding was printed once already, as a warning
            # (unless -p no:warnings hid them: then this summary lists them).
            lines = ["(each one is listed once in the warnings summary above)"]
            if report is not None:
                lines.append(f"Full report: {report}")
        terminalreporter.write_sep("=", title, yellow=True)
        for line in lines:
            terminalreporter.write_line(line)
        min_ms = self.settings.min_ms
        short = sum(1 for r in self.records if not blocked_long_enough(r.finding, min_ms))
        if short:
            terminalreporter.write_line(
                f"loopwarden: {short} of these call(s) blocked less than "
                f"--block-detect-min-ms={min_ms:g} ms and failed no test"
            )

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Remove the patches and the pyproject rules and allowances."""
        for allowance in self._allowances:
            loopwarden.disallow(allowance)
        for rule in self._rules:
            registry.remove_rule(rule)
        self._allowances.clear()
        self._rules.clear()
        if self._hold is not None:
            self._hold.__exit__(None, None, None)
            self._hold = None
            frames.set_own_code(*self._own_code)

    # -- tests ----------------------------------------------------------------

    def warden_for(self, item: pytest.Item) -> TestWarden | None:
        """The warden of ``item`` (None when detection is off for it)."""
        return self._state(item).warden

    def _state(self, item: pytest.Item) -> _ItemState:
        state = item.stash.get(_STATE_KEY, None)
        if state is None:
            options = item_options(item, self.settings.mode)
            warden = None
            if options.error is None and options.mode != "off":
                warden = TestWarden(
                    warden_mode_for(options.mode, self.settings.min_ms),
                    scope=self.settings.scope,
                    allowed=options.allowed,
                    allow_all=options.allow_all,
                    **self._extra,
                )
            state = item.stash[_STATE_KEY] = _ItemState(options, warden)
        return state

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, object, object]:
        """Guard fixture setup."""
        __tracebackhide__ = True  # a traceback starts in the user's code, not here
        return (yield from self._guard_phase(item, "setup"))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        """Guard the test function."""
        __tracebackhide__ = True  # a traceback starts in the user's code, not here
        return (yield from self._guard_phase(item, "call"))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, object, object]:
        """Guard fixture teardown, then forget the test's warden."""
        __tracebackhide__ = True
        try:
            return (yield from self._guard_phase(item, "teardown"))
        finally:
            if _STATE_KEY in item.stash:
                del item.stash[_STATE_KEY]

    def _guard_phase(self, item: pytest.Item, phase: str) -> Generator[None, object, object]:
        __tracebackhide__ = True
        state = self._state(item)
        if state.options.error is not None:
            # Fail after the phase ran: the plugins inside us expect their setup
            # to have happened when teardown comes.
            result = yield
            if phase == "setup":
                pytest.fail(state.options.error, pytrace=False)
            return result
        warden = state.warden
        if warden is None:
            return (yield)
        start = len(warden.findings)
        try:
            with warden:
                result = yield
        except BaseException as exc:
            self._close_phase(item, state.options, warden, phase, start, exc)
            if isinstance(exc, loopwarden.BlockingCallError) and _start_at_user_code(exc):
                # Not a bare raise: Python 3.10 would re-raise the traceback
                # it holds for the handled exception, not the shortened one.
                raise exc
            raise
        self._close_phase(item, state.options, warden, phase, start, None)
        return result

    def _close_phase(
        self,
        item: pytest.Item,
        options: ItemOptions,
        warden: Warden,
        phase: str,
        start: int,
        exc: BaseException | None,
    ) -> None:
        new = warden.findings[start:]
        if not new:
            return
        records = [Record(f, item.nodeid, phase, self._origin(f), self._worker) for f in new]
        self.records.extend(records)
        if options.mode == "warn":
            self._warned += len(records)
        if options.mode not in ("fail", "raise"):
            return
        # --block-detect-min-ms: shorter calls stay in the records (summary,
        # JSON report) but do not fail the phase.
        min_ms = self.settings.min_ms
        records = [r for r in records if blocked_long_enough(r.finding, min_ms)]
        if not records:
            return
        self._failed_phases += 1
        text = summary.phase_failure(
            phase,
            records,
            options.mode,
            self.settings.scope,
            verbosity=int(self.config.getoption("verbose") or 0),
        )
        if exc is None:
            pytest.fail(text, pytrace=False)
        # The phase failed already (or was skipped or interrupted): keep its own
        # error and traceback, and list the findings in a report section.
        item.add_report_section(phase, "loopwarden", text)

    def _origin(self, finding: loopwarden.Finding) -> str:
        return origin_of(finding, self._test_files, self.settings.scope)


def _start_at_user_code(exc: BaseException) -> bool:
    """Start ``exc``'s traceback at the user's first frame (not a tool, not installed).

    A ``BlockingCallError`` raised in a fixture of a conftest.py reaches us
    through the frames of pytest-asyncio, pytest-qt and asyncio's runner,
    which pytest cannot cut (it cuts at the test function's own file): the
    traceback would start in other plugins' machinery. It starts at the
    user's code instead, as the error itself is about that code. Returns
    whether the traceback was shortened.
    """
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        filename = os.path.normcase(frame.f_code.co_filename)
        if frames.classify(frame.f_code, frame.f_globals).category == frames.USER and not any(
            marker in filename for marker in _SITE_MARKERS
        ):
            exc.__traceback__ = tb
            return True
        tb = tb.tb_next
    return False
