"""Family ``filesystem``, module ``logging_sinks``: logging handlers and loguru sinks on files."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import itertools
import logging
import logging.handlers
import queue
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import loopwarden
from rules_support import (
    Case,
    CaseTable,
    Peers,
    expect_finding,
    expect_silent_on_loop,
    family_tests,
)

CASES = CaseTable("filesystem", module="logging_sinks")
_names = itertools.count()


def _logger(peers: Peers, handler: logging.Handler) -> logging.Logger:
    """A fresh logger with ``handler`` as its only handler (closed at teardown)."""
    logger = logging.getLogger(f"loopwarden.test.logging.{next(_names)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    peers.defer(handler.close)
    peers.defer(logger.removeHandler, handler)
    return logger


def _pytest_capture_handler() -> logging.Handler:
    from _pytest.logging import LogCaptureHandler

    return LogCaptureHandler()


@CASES.add("logging.Handler.handle")
def _handle(peers: Peers, name: str) -> Case:
    to_file = _logger(peers, logging.FileHandler(peers.tmp_path / "app.log"))
    silent = [
        _logger(peers, logging.StreamHandler(sys.stderr)),
        _logger(peers, logging.StreamHandler(io.StringIO())),
        _logger(peers, logging.handlers.QueueHandler(queue.SimpleQueue())),
        _logger(peers, _pytest_capture_handler()),
    ]
    return Case(
        lambda: to_file.info("saved %s", "settings"),
        nonblocking=[
            *(lambda logger=logger: logger.info("hello") for logger in silent),
            lambda: to_file.debug("below the logger's level: no record"),
        ],
    )


_FILE_HANDLERS: dict[str, Callable[[Path], logging.Handler]] = {
    "FileHandler": lambda p: logging.FileHandler(p),
    "FileHandler(delay=True)": lambda p: logging.FileHandler(p, delay=True),
    "RotatingFileHandler": lambda p: logging.handlers.RotatingFileHandler(p, maxBytes=10_000),
    "TimedRotatingFileHandler": lambda p: logging.handlers.TimedRotatingFileHandler(p),
    "WatchedFileHandler": lambda p: logging.handlers.WatchedFileHandler(p),
    "StreamHandler(open(file))": lambda p: logging.StreamHandler(p.open("a")),
}


@pytest.mark.parametrize("kind", list(_FILE_HANDLERS))
def test_every_file_handler_fires_with_the_queue_fix(peers: Peers, kind: str) -> None:
    logger = _logger(peers, _FILE_HANDLERS[kind](peers.tmp_path / "app.log"))
    finding = expect_finding(lambda: logger.warning("disk is %s", "slow"), "logging.Handler.handle")
    assert finding.family == "filesystem"
    assert "QueueHandler" in finding.suggestion and "QueueListener" in finding.suggestion
    assert finding.user_caller.startswith(__file__)  # the logging call, not logging's code
    assert finding.details["log_call"].startswith(__file__)


def test_once_per_handler_and_call_site(peers: Peers) -> None:
    first = logging.FileHandler(peers.tmp_path / "one.log")
    logger = _logger(peers, first)
    logger.addHandler(second := logging.FileHandler(peers.tmp_path / "two.log"))
    peers.defer(second.close)

    async def main() -> None:
        for _ in range(3):
            logger.info("same line, three records")
        logger.info("another line")

    with loopwarden.guard(mode="record") as warden:
        asyncio.run(main())
    # Two call sites x two handlers, whatever the number of records.
    assert len(warden.findings) == 4
    assert {f.details["handler"] for f in warden.findings} == {"FileHandler"}
    assert (peers.tmp_path / "one.log").read_text().count("same line") == 3  # still written


def test_a_handler_filter_that_drops_the_record_is_silent(peers: Peers) -> None:
    handler = logging.FileHandler(peers.tmp_path / "app.log")
    handler.addFilter(lambda record: "keep" in record.getMessage())
    logger = _logger(peers, handler)
    expect_silent_on_loop(lambda: logger.info("dropped by the filter"))
    expect_finding(lambda: logger.info("keep this one"), "logging.Handler.handle")


class _SleepyHandler(logging.Handler):
    """An application's own handler that blocks (say, it posts each record somewhere)."""

    def emit(self, record: logging.LogRecord) -> None:
        time.sleep(0.001)


def test_blocking_inside_an_application_handler_is_still_reported(peers: Peers) -> None:
    logger = _logger(peers, _SleepyHandler())
    finding = expect_finding(lambda: logger.info("posted"), "time.sleep")
    assert finding.user_caller.startswith(__file__)


def test_root_logger_through_the_module_functions(peers: Peers) -> None:
    handler = logging.FileHandler(peers.tmp_path / "root.log")
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        expect_finding(lambda: logging.warning("via the root"), "logging.Handler.handle")
    finally:
        root.removeHandler(handler)
        handler.close()


def test_logger_adapter_fires(peers: Peers) -> None:
    adapter = logging.LoggerAdapter(
        _logger(peers, logging.FileHandler(peers.tmp_path / "a.log")), {}
    )
    expect_finding(lambda: adapter.info("adapted"), "logging.Handler.handle")


def test_queue_listener_writing_the_file_is_silent(peers: Peers) -> None:
    # The documented fix: the loop only enqueues, the listener thread writes.
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    file_handler = logging.FileHandler(peers.tmp_path / "app.log")
    peers.defer(file_handler.close)
    listener = logging.handlers.QueueListener(records, file_handler)
    listener.start()
    logger = _logger(peers, logging.handlers.QueueHandler(records))
    try:
        expect_silent_on_loop(lambda: logger.info("through the queue"))
    finally:
        listener.stop()
    assert "through the queue" in (peers.tmp_path / "app.log").read_text()


# -- loguru ------------------------------------------------------------------------------

_HAS_LOGURU = importlib.util.find_spec("loguru") is not None
if _HAS_LOGURU:
    import loguru  # imported before any guard: the rule is patched only once loguru is


def _loguru_sink(peers: Peers, sink: object, **options: object) -> Callable[[], object]:
    """A loguru sink that sees only this case's records; returns the logging call."""
    token = f"case-{next(_names)}"
    # catch=False: loguru would print our BlockingCallError instead of raising it
    # (the finding is recorded either way).
    sink_id = loguru.logger.add(
        sink,  # type: ignore[arg-type]
        filter=lambda record: record["extra"].get("case") == token,
        catch=False,
        **options,  # type: ignore[arg-type]
    )
    peers.defer(loguru.logger.remove, sink_id)
    bound = loguru.logger.bind(case=token)
    return lambda: bound.info("loguru says {}", "hi")


@CASES.add("loguru.FileSink.write", "loguru.StreamSink.write")
def _loguru(peers: Peers, name: str) -> Case:
    if not _HAS_LOGURU:
        pytest.skip("loguru is not installed")
    if name == "loguru.FileSink.write":
        to_file = _loguru_sink(peers, peers.tmp_path / "app.log")
    else:
        to_file = _loguru_sink(peers, peers.closing((peers.tmp_path / "app.log").open("a")))
    return Case(
        to_file,
        nonblocking=[
            _loguru_sink(peers, peers.tmp_path / "queued.log", enqueue=True),
            _loguru_sink(peers, sys.stderr),
            _loguru_sink(peers, io.StringIO()),
        ],
    )


@pytest.mark.skipif(not _HAS_LOGURU, reason="loguru is not installed")
def test_loguru_file_sink_names_enqueue_and_the_call_site(peers: Peers) -> None:
    call = _loguru_sink(peers, peers.tmp_path / "app.log")
    finding = expect_finding(call, "loguru.FileSink.write")
    assert "enqueue=True" in finding.suggestion
    assert finding.details["log_call"].startswith(__file__)


(
    test_every_rule_has_a_case,
    test_fires_on_loop_thread,
    test_silent_off_loop,
    test_silent_in_nonblocking_form,
) = family_tests(CASES)
