"""The report ``LOOPWARDEN_REPORT`` asks for, kept safe for the whole life of the app.

:func:`activate_from_env` hands the path and the collector to :func:`arm`:

* the path is checked at once (one line on stderr if it cannot be written;
  the app and detection carry on without a report);
* each process gets its own file (:func:`loopwarden.report.files.path_for_process`);
* the report is written at exit, on SIGTERM (before the handler that was
  there runs; it is put back when detection is switched off) and every
  :data:`FLUSH_INTERVAL_S` seconds while new findings come in, always
  atomically.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from types import FrameType
from typing import Any

from loopwarden import engine, signal_watch
from loopwarden.report import FindingCollector, write_report
from loopwarden.report.files import OWNER_VARIABLE, check_writable, path_for_process

__all__ = ["FLUSH_INTERVAL_S", "arm", "disarm", "flush"]

#: Seconds between two writes of the report while the app runs (only when
#: there are new findings): a crash or ``kill -9`` loses at most this much.
FLUSH_INTERVAL_S = 60.0
#: How long the SIGTERM handler waits for the report to be written before it
#: goes on to the app's handler (the write may wait for a lock the interrupted
#: main thread holds: it must never hang the app's exit).
SIGTERM_WRITE_TIMEOUT_S = 5.0

_lock = threading.RLock()  # re-entrant: SIGTERM may arrive during a write on the same thread
_armed: dict[str, Any] = {}  # collector, path, written (total at the last write)
_atexit_registered = False
_previous_sigterm: Any = None
_flusher: threading.Thread | None = None
_stop = threading.Event()
#: Serialises the SIGTERM writes of the main thread's handler and the signal
#: watcher; "final" is set once a report was written for a SIGTERM that ends
#: the process, so the other one does not write (and announce) it again.
_sigterm_write_lock = threading.Lock()
_sigterm_written: dict[str, bool] = {"final": False}


def claim(environ: Mapping[str, str] | None) -> str | None:
    """Mark this process as the owner of the inherited report path; return the owner's pid.

    The first process that activates claims it; child processes inherit the
    variable and so write ``name.pid<N>.ext`` instead of the parent's file.
    """
    env = os.environ if environ is None else environ
    owner = env.get(OWNER_VARIABLE)
    if owner is None and environ is None:
        os.environ[OWNER_VARIABLE] = owner = str(os.getpid())
    return owner


def arm(
    collector: FindingCollector,
    path: str,
    owner: str | None,
    *,
    flush_interval: float | None = None,
) -> bool:
    """Check ``path`` and keep the report written from now on; False if it is unusable."""
    global _atexit_registered
    problem = check_writable(path_for_process(path, owner))
    if problem is not None:
        print(
            f"loopwarden: cannot write the report {path!r} ({problem}); detection stays on "
            "but no report will be written: set LOOPWARDEN_REPORT to a writable path",
            file=sys.stderr,
        )
        disarm()
        return False
    with _lock:
        _armed.clear()
        _armed.update(collector=collector, path=path, owner=owner, written=-1)
        if not _atexit_registered:
            atexit.register(_at_exit)
            _atexit_registered = True
    _install_sigterm()
    _start_flusher(FLUSH_INTERVAL_S if flush_interval is None else flush_interval)
    return True


def disarm() -> None:
    """Forget the report (not written any more) and put the SIGTERM handler back."""
    with _lock:
        _armed.clear()
    _stop_flusher()
    _restore_sigterm()


def release() -> None:
    """Detection was switched off: put the SIGTERM handler back, stop flushing.

    The report is still written at exit, with what was found while on.
    """
    _stop_flusher()
    _restore_sigterm()


@contextlib.contextmanager
def _unchecked() -> Iterator[None]:
    # Our own file writes must not be reported (or raise) when a SIGTERM
    # handler runs them on the loop thread.
    tls = engine._tls
    outer = getattr(tls, "busy", False)
    tls.busy = True
    try:
        yield
    finally:
        tls.busy = outer


def flush(*, final: bool = False, announce: bool = False) -> str | None:
    """Write the report now if there is anything new; return the path written.

    Never raises: a failure prints one line on stderr.
    """
    with _lock, _unchecked():
        collector: FindingCollector | None = _armed.get("collector")
        if collector is None:
            return None
        if not final and collector.total == _armed["written"]:
            return None
        path = path_for_process(_armed["path"], _armed["owner"])
        total = collector.total
        try:
            if final:
                collector.finish()
            written = write_report(collector, path)
        except Exception as exc:  # noqa: BLE001 - the app must not fail because of us
            print(f"loopwarden: could not write report {path!r}: {exc}", file=sys.stderr)
            return None
        _armed["written"] = total
    if announce:
        noun = "finding" if total == 1 else "findings"
        print(f"loopwarden: {total} {noun}; report written to {written}", file=sys.stderr)
    return str(written)


def _at_exit() -> None:
    _stop_flusher()
    flush(final=True, announce=True)
    with _lock:
        _armed.clear()


# -- SIGTERM ------------------------------------------------------------------------------


def _dies_by_default(previous: Any) -> bool:
    """True if SIGTERM, once we are done with it, ends the process (no app handler)."""
    return not callable(previous) and previous != signal.SIG_IGN


def _write_at_sigterm(ends_process: bool) -> None:
    with _sigterm_write_lock:
        if _sigterm_written["final"]:
            return  # the other path wrote it for this same, last SIGTERM
        flush(final=True, announce=True)
        _sigterm_written["final"] = ends_process


def _write_within_bound(ends_process: bool) -> None:
    # Written from another thread: the signal may have interrupted the main
    # thread while it held the collector's lock (inside an on_finding call).
    writer = threading.Thread(
        target=_write_at_sigterm,
        args=(ends_process,),
        name="loopwarden-sigterm-report",
        daemon=True,
    )
    writer.start()
    writer.join(SIGTERM_WRITE_TIMEOUT_S)
    if writer.is_alive():
        print(
            "loopwarden: the report could not be written at SIGTERM in time "
            f"(waited {SIGTERM_WRITE_TIMEOUT_S:g} s); it is written at exit if the app exits",
            file=sys.stderr,
        )


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    previous = _previous_sigterm
    _write_within_bound(_dies_by_default(previous))
    if callable(previous):
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    # The default action (or a handler set outside Python): die by the signal,
    # as the app would have, so the exit status still says SIGTERM.
    # No lock here: the writer may still hold it, waiting for the main thread.
    with contextlib.suppress(Exception):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _on_sigterm_off_main() -> None:
    """The signal watcher heard SIGTERM: end the process now if SIGTERM would.

    The main thread runs :func:`_on_sigterm` only once it runs Python code
    again; an idle loop (or Qt's, which retries its poll on EINTR) may not for
    minutes. An app's own handler can only run there, so it is left to it.
    """
    if signal.getsignal(signal.SIGTERM) is not _on_sigterm:
        return  # replaced by the app since (or put back): not ours to act on
    if not _dies_by_default(_previous_sigterm):
        return
    _write_within_bound(True)
    signal_watch.die_by(signal.SIGTERM)


def _install_sigterm() -> None:
    global _previous_sigterm
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    try:
        current = signal.getsignal(signal.SIGTERM)
        if current is not _on_sigterm:
            signal.signal(signal.SIGTERM, _on_sigterm)
            _previous_sigterm = current
    except (ValueError, OSError):  # an embedded interpreter without signals
        return
    signal_watch.start(signal.SIGTERM, _on_sigterm_off_main)


def _restore_sigterm() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        # Only ours: a handler the app set after us stays in place.
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            previous = _previous_sigterm
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    except (ValueError, OSError, TypeError):
        return
    finally:
        signal_watch.stop()


# -- periodic flush ----------------------------------------------------------------------


def _start_flusher(interval: float) -> None:
    global _flusher
    _stop_flusher()
    if interval <= 0:
        return
    stop = _stop
    stop.clear()

    def run() -> None:
        while not stop.wait(interval):
            flush()

    _flusher = threading.Thread(target=run, name="loopwarden-report-flush", daemon=True)
    _flusher.start()


def _stop_flusher() -> None:
    global _flusher
    thread, _flusher = _flusher, None
    if thread is not None:
        _stop.set()
        if thread is not threading.current_thread():
            thread.join(timeout=5)
