"""Family ``filesystem``: logging handlers and loguru sinks that write records to a file.

A handler that writes to a file waits on the disk for every record, on the
thread that logs. The rules look at each handler as it is handed a record:

* :mod:`logging`: ``FileHandler`` and its subclasses (rotating, timed,
  watched), and a ``StreamHandler`` whose stream is a real, blocking file;
* loguru: a file sink (``logger.add("app.log")``) or a stream sink on a real
  file, added without ``enqueue=True`` (the rules wrap the sinks' ``write``,
  which loguru calls on the logging thread only without it).

Console handlers (the current ``sys.stdout``/``sys.stderr``, terminals),
in-memory streams and pytest's own handlers (log capture, live logging, the
``--log-file`` handler) are silent, and so are handlers that hand records to
a queue. Each handler is reported once per logging call site (the file and
line of the ``logger.info(...)`` call) and warden, not once per record: it is
one fix, however often the line logs. What the standard library's handlers
do inside (formatting, writing, rotating files) is part of that finding and
excused; blocking in a handler of the application's own is still reported.

``logging``'s own dispatch from a logger call to its handlers is therefore not
covered by the default ``logging`` allowance (see
:data:`loopwarden.allowances.DEFAULT_ALLOWANCES`); the rest of ``logging``
(configuration, handler set-up, its module lock) still is.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any

from loopwarden import console_streams, engine
from loopwarden.blocking.filesystem import _file_io_blocks
from loopwarden.rules import NOT_BLOCKED, Rule

__all__ = ["RULES"]

_LOGGING = (
    "This handler writes every record to a file on the loop thread and waits on the disk. "
    "Log through a queue: put a `logging.handlers.QueueHandler(queue.SimpleQueue())` on the "
    "logger, and start a `logging.handlers.QueueListener(that_queue, file_handler)` at "
    "start-up; the listener writes in its own thread. Console handlers are not reported."
)
_LOGURU = (
    "This loguru sink writes every record to a file on the loop thread and waits on the "
    "disk. Add it with `enqueue=True` (`logger.add(path, enqueue=True)`): records then go "
    "through a queue to loguru's writer thread. Console sinks are not reported."
)

#: warden -> (handler id, file, line) already reported while it is active.
_reported: weakref.WeakKeyDictionary[Any, set[tuple[int, str, int]]] = weakref.WeakKeyDictionary()


def _first_report(handler: object, path: object, line: object) -> bool:
    """True the first time this handler is seen for this call site (per innermost warden)."""
    wardens = engine.active_wardens
    if not wardens:
        return True
    seen = _reported.setdefault(wardens[-1], set())
    key = (id(handler), str(path), line if isinstance(line, int) else 0)
    if key in seen:
        return False
    seen.add(key)
    return True


def _is_pytest_handler(handler: object) -> bool:
    return _is_pytest_handler_type(type(handler))


def _is_pytest_handler_type(kind: type) -> bool:
    verdict = _pytest_handler_types.get(kind)
    if verdict is None:
        module = kind.__module__ or ""
        verdict = _pytest_handler_types[kind] = module.startswith(("_pytest", "pytest"))
    return verdict


#: Handler type -> whether it is pytest's own: asked for every record on the loop.
#: Handler classes are few and live as long as the process.
_pytest_handler_types: dict[type, bool] = {}


def _writes_to_file(handler: object) -> bool:
    """A logging handler whose records go to a real, blocking file."""
    if _is_pytest_handler(handler):
        return False
    if isinstance(handler, logging.FileHandler):
        return True  # its stream may not be open yet (delay=True)
    if isinstance(handler, logging.StreamHandler):
        return _file_io_blocks(handler.stream)
    return False


def _handle_blocks(handler: Any, record: Any = None, *_: object) -> bool:
    if not _writes_to_file(handler):
        return False
    if record is not None and record.levelno < handler.level:
        return False  # dropped by the handler's level
    if handler.filters and not handler.filter(record):
        return False  # dropped by the handler's filters (asked once more: filters are pure)
    return _first_report(handler, getattr(record, "pathname", ""), getattr(record, "lineno", 0))


def _handler_kind(kind: type) -> bool | None:
    """What the C wrapper may know of a handler type (console_streams.handler_kinds).

    True: a StreamHandler, whose records go to its stream; False: records of
    this type never reach a file (pytest's handlers, handlers that are no
    StreamHandler); None: a file handler, which the Python path judges.
    """
    if _is_pytest_handler_type(kind) or not issubclass(kind, logging.StreamHandler):
        return False
    return None if issubclass(kind, logging.FileHandler) else True


#: Handler types at most in console_streams.handler_kinds: types made on the fly
#: must not pile up there.
_HANDLER_KINDS_BOUND = 256


def _note_handler_kind(handler: object) -> None:
    kinds = console_streams.handler_kinds
    kind = type(handler)
    if kind in kinds:
        return
    verdict = _handler_kind(kind)
    if verdict is not None:
        if len(kinds) >= _HANDLER_KINDS_BOUND:
            kinds.clear()
        kinds[kind] = verdict


def _handle_precheck(
    original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    # Console and in-memory handlers never write to a file: hand the record
    # over at once. Only _writes_to_file is asked here: _handle_blocks counts
    # the first report of each call site, so it must run once, on the full path.
    try:
        to_file = not args or _writes_to_file(args[0])
        if args:
            _note_handler_kind(args[0])  # the C wrapper decides the next ones
    except Exception:  # noqa: BLE001 - a strange handler: the full path decides
        return NOT_BLOCKED
    return NOT_BLOCKED if to_file else original(*args, **kwargs)


console_streams.handler_prechecks.add(_handle_precheck)


def _diagnose_handle(handler: Any, record: Any = None, *_: object) -> dict[str, Any]:
    stream = getattr(handler, "stream", None)
    return {
        "handler": type(handler).__name__,
        "file": getattr(handler, "baseFilename", None) or getattr(stream, "name", None),
        "log_call": f"{getattr(record, 'pathname', '?')}:{getattr(record, 'lineno', '?')}",
    }


def _loguru_call_site(message: Any) -> tuple[str, int]:
    """File and line of the loguru call that produced ``message`` (loguru's Message)."""
    try:
        record = message.record
        return str(record["file"].path), int(record["line"])
    except (AttributeError, KeyError, TypeError, ValueError):
        return "", 0


def _loguru_file_sink_blocks(sink: Any, message: Any = None, *_: object) -> bool:
    return _first_report(sink, *_loguru_call_site(message))


def _loguru_stream_sink_blocks(sink: Any, message: Any = None, *_: object) -> bool:
    return _file_io_blocks(getattr(sink, "_stream", None)) and _first_report(
        sink, *_loguru_call_site(message)
    )


def _diagnose_loguru(sink: Any, message: Any = None, *_: object) -> dict[str, Any]:
    path, line = _loguru_call_site(message)
    stream = getattr(sink, "_file", None) or getattr(sink, "_stream", None)
    return {"sink": getattr(stream, "name", type(sink).__name__), "log_call": f"{path}:{line}"}


RULES: tuple[Rule, ...] = (
    Rule(
        target="logging:Handler.handle",
        family="filesystem",
        suggestion=_LOGGING,
        name="logging.Handler.handle",
        blocks_when=_handle_blocks,
        precheck=_handle_precheck,
        # Keep checking inside: a handler of the application's own (one that posts
        # records over HTTP) is still reported; logging's own frames are excused.
        check_nested=True,
        diagnose=_diagnose_handle,
        condition="the handler writes to a file (FileHandler, RotatingFileHandler, "
        "TimedRotatingFileHandler, WatchedFileHandler, a StreamHandler on a real file); "
        "once per handler and logging call site. Console, in-memory and pytest's own "
        "handlers are silent",
    ),
    # loguru calls its sink's write() on the logging thread only without
    # enqueue=True (with it, loguru's writer thread does), after the sink's
    # level and filter: a call here is a record really written.
    Rule(
        target="loguru._file_sink:FileSink.write",
        family="filesystem",
        suggestion=_LOGURU,
        name="loguru.FileSink.write",
        blocks_when=_loguru_file_sink_blocks,
        diagnose=_diagnose_loguru,
        import_module=False,  # patched only when the application imported loguru
        condition="a loguru file sink added without enqueue=True; once per sink and "
        "logging call site",
    ),
    Rule(
        target="loguru._simple_sinks:StreamSink.write",
        family="filesystem",
        suggestion=_LOGURU,
        name="loguru.StreamSink.write",
        blocks_when=_loguru_stream_sink_blocks,
        diagnose=_diagnose_loguru,
        import_module=False,
        condition="a loguru stream sink on a real, blocking file (not the console) added "
        "without enqueue=True; once per sink and logging call site",
    ),
)
