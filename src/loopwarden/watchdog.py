"""The stall watchdog: catch the blocking that no patch can see.

Patches see only the primitives loopwarden lists. CPU-bound work, C
extensions and blocking through unpatched paths freeze a loop just as well.
The watchdog is one daemon thread that measures how responsive each guarded
loop is and reports a finding of family ``"stall"`` when a loop does not
come back within a threshold.

How it works:

* **Which loops.** Every check, the watchdog looks at the stacks of the
  process's threads (``sys._current_frames()``) for a frame that drives a
  loop: ``run_forever``/``run_until_complete`` of any loop class (asyncio,
  qasync, PySide6.QtAsyncio) or the ``asyncio.run``/``asyncio.Runner.run``/
  ``uvloop.run`` frame that started a uvloop loop (uvloop's own methods are
  compiled and have no frame). A loop running on the thread that activates
  the warden is registered at once. The Qt GUI thread's own event loop
  (no asyncio) is watched when the Qt integration registered a probe for
  that thread in :data:`loopwarden.threads.thread_probes`. Finding loops this
  way needs no hook in the patched primitives, so their off-loop fast path is
  untouched, and it finds loops that never call a patched primitive. Not
  found: a uvloop loop started with ``loop.run_until_complete()`` from a
  thread other than the activating one, outside ``asyncio.run``/
  ``uvloop.run``; a Qt event loop of a ``QThread`` other than the GUI thread.
* **Heartbeats.** For each loop the watchdog posts a cheap callback
  (``loop.call_soon_threadsafe`` for asyncio loops, a posted event for the
  plain Qt loop) and notes when it ran. One heartbeat is in flight per loop;
  the next is posted at the next check, every ``stall_ms / 2`` (at most
  50 ms). A healthy loop pays one wake-up per check.
* **Sampling.** Once a heartbeat has been waiting ``stall_ms``, the watchdog
  samples the loop thread's stack every ``sample_ms`` (10 ms) until the
  heartbeat comes back. The finding carries the stall's duration, the
  number of samples and the stack seen most often (the culprit), with
  loopwarden's own frames hidden. A stall is caught when it lasts at least
  ``stall_ms`` plus the check interval; shorter ones above ``stall_ms`` may
  be caught. ``duration_ms`` is measured from the heartbeat's posting, so it
  can be short of the true stall by up to one check interval.
* **Reporting.** The finding is recorded on every active warden. The
  watchdog runs on its own thread, so a stall cannot raise in the loop
  thread: in ``"raise"`` mode it is recorded and logged (the pytest plugin
  fails the test for it), in ``"warn"`` mode a
  :class:`~loopwarden.BlockingCallWarning` is issued, in ``"record"`` mode it
  is only recorded.
* **Not twice.** A stall during which a blocking call that a patch already
  reported was running (``engine.calls_in_progress``) is not reported again.
  A stall whose culprit is covered by a user allowance for ``"stall"`` (or
  for all primitives), or that happens in a tool's own code (pytest,
  coverage), is not reported.
* **Debuggers.** While pdb, pydevd or debugpy hold the loop thread paused,
  their frames are on its stack; a stall seen in such a state is dropped.
  The watchdog thread marks itself so pydevd neither traces nor suspends it.

What the GIL allows:

* A pure-Python busy loop releases the GIL every switch interval (5 ms), so
  the watchdog samples it normally.
* A C call that releases the GIL (``select``, most I/O, numpy's heavy
  kernels) is sampled normally; the culprit frame is the Python line that
  made the call.
* A C call that *holds* the GIL freezes the watchdog too: no sampling is
  possible while it runs. When it returns, the watchdog gets the GIL back
  within a switch interval, usually before the loop thread has left the
  calling line: it samples the stack *at resume* and reports the stall with
  ``details["gil_held_ms"]`` (how long the watchdog itself was kept waiting).
  If the loop has already moved on by then, the stall is reported with its
  duration and no stack. ``faulthandler.dump_traceback_later`` could dump
  stacks without the GIL, but there is a single such timer per process
  (pytest's ``faulthandler_timeout`` uses it) and it writes text to a file
  descriptor, so loopwarden does not use it; set ``PYTHONFAULTHANDLER`` or
  ``faulthandler_timeout`` yourself for hard hangs.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopwarden import engine, threads
from loopwarden.errors import ConfigError
from loopwarden.heartbeats import (
    Clock,
    Heartbeat,
    QtHeartbeat,
    current_frames,
    find_loop,
    make_heartbeat,
    monotonic,
)
from loopwarden.stall_findings import Sample, build_finding, culprit, deliver, excused, take_sample

if TYPE_CHECKING:
    from loopwarden.warden import Warden

__all__ = [
    "DEFAULT_STALL_MS",
    "Watchdog",
    "attach",
    "check_stall_ms",
    "current_watchdog",
    "detach",
    "parse_stall_ms",
]

logger = logging.getLogger("loopwarden")

#: The threshold to use when stall detection is requested without a value.
DEFAULT_STALL_MS = 100.0
#: How often a stalled thread's stack is sampled.
DEFAULT_SAMPLE_MS = 10.0
#: Longest pause between two checks of a healthy loop.
_MAX_CHECK_S = 0.05
THREAD_NAME = "loopwarden-watchdog"


def check_stall_ms(value: object) -> float | None:
    """Return ``value`` as a threshold in milliseconds, or None (watchdog off).

    Raises:
        ConfigError: unless ``value`` is None or a positive finite number.
    """
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(
            f"invalid stall_ms {value!r}: give the stall threshold as a positive number of "
            f"milliseconds (e.g. {DEFAULT_STALL_MS:g}), or None to switch the watchdog off"
        )
    return float(value)


def parse_stall_ms(text: str | None) -> float | None:
    """Parse a threshold from text (env var or command line).

    ``""``, ``"0"`` and ``"off"`` switch the watchdog off.

    Raises:
        ConfigError: for text that is not a positive number or ``"off"``.
    """
    if text is None:
        return None
    text = text.strip().lower()
    if text in ("", "0", "off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(
            f"invalid stall threshold {text!r}: give a positive number of milliseconds "
            f"(e.g. {DEFAULT_STALL_MS:g}) or 'off'"
        ) from None
    return check_stall_ms(value)


@dataclass
class _Stall:
    """A stall in progress on one thread."""

    since: float  # when its heartbeat was posted (or timing began)
    last_seen: float  # last check at which it was still stalled
    samples: list[Sample] = field(default_factory=list)
    debugger: bool = False
    reported_call: bool = False
    gil_held_ms: float = 0.0


class _Watch:
    """One watched loop thread: its heartbeat and its current stall, if any."""

    def __init__(self, heartbeat: Heartbeat) -> None:
        self.heartbeat = heartbeat
        self.stall: _Stall | None = None
        self.cpu_seen = heartbeat.cpu_time()  # loop thread CPU time at the last check


class Watchdog:
    """One daemon thread measuring the responsiveness of every guarded loop.

    Normally started and stopped by wardens created with ``stall_ms`` (see
    :func:`loopwarden.guard`); :func:`current_watchdog` returns the running
    one.

    Args:
        stall_ms: Report loops that do not respond within this many
            milliseconds.
        sample_ms: Interval between stack samples during a stall.
        clock: Monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        stall_ms: float = DEFAULT_STALL_MS,
        *,
        sample_ms: float = DEFAULT_SAMPLE_MS,
        clock: Clock = monotonic,
    ) -> None:
        self.stall_ms = check_stall_ms(stall_ms) or DEFAULT_STALL_MS
        self.sample_ms = check_stall_ms(sample_ms) or DEFAULT_SAMPLE_MS
        self._clock = clock
        self._watches: dict[int, _Watch] = {}
        self._unwatchable: set[int] = set()  # probe threads the Qt heartbeat cannot serve
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards _watches against watch_loop() callers

    # -- lifecycle ------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the watchdog thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the watchdog thread (no-op if it runs)."""
        if self.running:
            return
        self._stop.clear()
        thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        # pydevd/debugpy: neither trace nor suspend this thread.
        thread.pydev_do_not_trace = True  # type: ignore[attr-defined]
        thread.is_pydev_daemon_thread = True  # type: ignore[attr-defined]
        self._thread = thread
        thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread; stalls whose heartbeat came back are reported first."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        if thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None

    def watch_loop(self, loop: asyncio.AbstractEventLoop, thread_id: int) -> None:
        """Watch ``loop``, which runs on ``thread_id``, from now on."""
        with self._lock:
            watch = self._watches.get(thread_id)
            if watch is not None and getattr(watch.heartbeat, "loop", None) is loop:
                return
            self._replace(thread_id, _Watch(make_heartbeat(loop, thread_id, self._clock)))

    def heartbeats(self) -> dict[int, int]:
        """Thread id -> heartbeats that came back, for each watched loop thread."""
        with self._lock:
            return {tid: watch.heartbeat.beats for tid, watch in self._watches.items()}

    # -- the thread -------------------------------------------------------------

    def _run(self) -> None:
        timeout = 0.0
        previous = self._clock()
        try:
            while True:
                if self._stop.wait(timeout):
                    self._final_check()
                    return
                now = self._clock()
                # A round took much longer than its sleep: another thread held
                # the GIL (the watchdog can be stopped anywhere, mid-check too).
                late_ms = max(0.0, (now - previous - timeout) * 1000.0)
                previous = now
                timeout = self._check(now, late_ms)
        except Exception:  # the watchdog must never take the host down
            logger.exception("loopwarden: the stall watchdog failed and stopped")

    def _check_interval(self) -> float:
        return min(self.stall_ms / 2000.0, _MAX_CHECK_S)

    def _check(self, now: float, late_ms: float) -> float:
        """One round over every watched loop; returns the time to sleep."""
        stack_tops = current_frames()
        self._discover(stack_tops)
        stalled = False
        with self._lock:
            watches = list(self._watches.items())
        for thread_id, watch in watches:
            if watch.heartbeat.gone():
                if getattr(watch.heartbeat, "mismatch", False):
                    self._unwatchable.add(thread_id)
                if watch.stall is not None:
                    self._finish(thread_id, watch, watch.stall.last_seen)
                with self._lock:
                    if self._watches.get(thread_id) is watch:
                        del self._watches[thread_id]
                watch.heartbeat.close()
                continue
            self._check_one(thread_id, watch, now, late_ms, stack_tops)
            stalled = stalled or watch.stall is not None
        return self.sample_ms / 1000.0 if stalled else self._check_interval()

    def _check_one(
        self,
        thread_id: int,
        watch: _Watch,
        now: float,
        late_ms: float,
        stack_tops: dict[int, Any],
    ) -> None:
        heartbeat = watch.heartbeat
        threshold = self.stall_ms / 1000.0
        cpu_ms = self._cpu_since_last_check(watch)
        if (
            late_ms >= self.stall_ms
            and watch.stall is None
            and cpu_ms is not None
            and cpu_ms >= late_ms / 2
            and heartbeat.running()
        ):
            # The watchdog itself was kept from running (GIL held) while the
            # loop thread kept a CPU busy: the loop thread held the GIL. Its
            # stack now, right after it let go, is the best culprit we get.
            self._open_gil_stall(thread_id, watch, now, late_ms, stack_tops)
        if heartbeat.ran_at is not None:
            # The loop came back.
            if heartbeat.timed_since is not None and watch.stall is None:
                latency = heartbeat.ran_at - heartbeat.timed_since
                if latency >= threshold:
                    # A stall we could not sample: the watchdog was starved.
                    watch.stall = _Stall(heartbeat.timed_since, now, gil_held_ms=late_ms)
            if watch.stall is not None:
                self._finish(thread_id, watch, heartbeat.ran_at)
            heartbeat.ran_at = None
            heartbeat.outstanding = False
        if not heartbeat.outstanding:
            heartbeat.timed_since = now if heartbeat.running() else None
            heartbeat.outstanding = heartbeat.post()
            return
        # A heartbeat is in flight.
        if not heartbeat.running():
            # Not a stall: the loop stopped (or has not started). Its heartbeat
            # stays queued and is timed again once the loop runs.
            heartbeat.timed_since = None
            if watch.stall is not None:
                self._finish(thread_id, watch, watch.stall.last_seen)
            return
        if heartbeat.timed_since is None:
            heartbeat.timed_since = now
            return
        if now - heartbeat.timed_since < threshold:
            return
        stall = watch.stall
        if stall is None:
            stall = watch.stall = _Stall(heartbeat.timed_since, now)
        stall.last_seen = now
        if late_ms >= self.stall_ms:
            stall.gil_held_ms = max(stall.gil_held_ms, late_ms)
        if thread_id in engine.calls_in_progress:
            stall.reported_call = True
        top = stack_tops.get(thread_id)
        if top is not None:
            sample = take_sample(top)
            stall.debugger = stall.debugger or sample.debugger
            stall.samples.append(sample)

    @staticmethod
    def _cpu_since_last_check(watch: _Watch) -> float | None:
        cpu = watch.heartbeat.cpu_time()
        before, watch.cpu_seen = watch.cpu_seen, cpu
        if cpu is None or before is None:
            return None
        return (cpu - before) * 1000.0

    def _open_gil_stall(
        self,
        thread_id: int,
        watch: _Watch,
        now: float,
        late_ms: float,
        stack_tops: dict[int, Any],
    ) -> None:
        stall = watch.stall = _Stall(now - late_ms / 1000.0, now, gil_held_ms=late_ms)
        top = stack_tops.get(thread_id)
        if top is not None:
            sample = take_sample(top)
            stall.debugger = sample.debugger
            stall.samples.append(sample)
        if thread_id in engine.calls_in_progress:
            stall.reported_call = True
        heartbeat = watch.heartbeat
        if heartbeat.ran_at is not None:
            # That heartbeat came back before the hold: the stall ends when
            # the next one, posted now, comes back.
            heartbeat.ran_at = None
            heartbeat.outstanding = False

    def _finish(self, thread_id: int, watch: _Watch, end: float) -> None:
        """End the stall of ``watch`` at ``end``; report it unless excused."""
        stall, watch.stall = watch.stall, None
        if stall is None or stall.debugger or stall.reported_call:
            return
        duration_ms = (end - stall.since) * 1000.0
        if duration_ms < self.stall_ms:
            return
        sample = culprit(stall.samples)
        if sample is not None and excused(sample):
            return
        details: dict[str, Any] = {
            "duration_ms": round(duration_ms, 1),
            "samples": len(stall.samples),
            "threshold_ms": self.stall_ms,
        }
        if stall.gil_held_ms:
            details["gil_held_ms"] = round(stall.gil_held_ms, 1)
        if sample is None:
            details["note"] = (
                "the loop thread held the GIL for the whole stall, so no stack could be sampled"
                if stall.gil_held_ms
                else "the stall ended before the watchdog could sample the stack"
            )
        deliver(build_finding(thread_id, watch.heartbeat.description, sample, details), sample)

    def _final_check(self) -> None:
        # Leaving: report stalls whose heartbeat already came back, or that are
        # still going on, so a stall right before the warden exits is not lost.
        now = self._clock()
        with self._lock:
            watches = list(self._watches.items())
            self._watches.clear()
        for thread_id, watch in watches:
            heartbeat = watch.heartbeat
            if watch.stall is not None:
                end = heartbeat.ran_at if heartbeat.ran_at is not None else watch.stall.last_seen
                self._finish(thread_id, watch, end)
            elif heartbeat.ran_at is not None and heartbeat.timed_since is not None:
                latency = heartbeat.ran_at - heartbeat.timed_since
                if latency * 1000.0 >= self.stall_ms:
                    watch.stall = _Stall(heartbeat.timed_since, now)
                    self._finish(thread_id, watch, heartbeat.ran_at)
            heartbeat.close()

    # -- discovery ------------------------------------------------------------

    def _replace(self, thread_id: int, watch: _Watch) -> None:
        # Caller holds self._lock.
        old = self._watches.get(thread_id)
        self._watches[thread_id] = watch
        if old is not None:
            old.heartbeat.close()

    def _discover(self, stack_tops: dict[int, Any]) -> None:
        own = threading.get_ident()
        with self._lock:
            known = {
                tid: getattr(watch.heartbeat, "loop", None) is not None
                and watch.heartbeat.running()
                for tid, watch in self._watches.items()
            }
        for thread_id, top in stack_tops.items():
            if thread_id == own or known.get(thread_id):
                continue  # a running asyncio loop: nothing new to find here
            loop = find_loop(top)
            if loop is not None:
                # An asyncio loop wins over the plain Qt heartbeat: qasync and
                # QtAsyncio run the Qt loop, and asyncio sees their stalls too.
                self.watch_loop(loop, thread_id)
                continue
            if thread_id in known or thread_id in self._unwatchable:
                continue
            if thread_id in threads.thread_probes:
                self._watch_qt(thread_id)

    def _watch_qt(self, thread_id: int) -> None:
        try:
            heartbeat = QtHeartbeat(thread_id, self._clock)
        except Exception:  # no Qt, or no application yet
            logger.debug("loopwarden: cannot watch the Qt loop of %s", thread_id, exc_info=True)
            return
        with self._lock:
            if thread_id not in self._watches:
                self._watches[thread_id] = _Watch(heartbeat)
                return
        heartbeat.close()


# -- the process-wide watchdog, driven by wardens ----------------------------------

_attach_lock = threading.RLock()
_watchdog: Watchdog | None = None
_attached: list[Warden] = []


def current_watchdog() -> Watchdog | None:
    """The running watchdog, or None."""
    return _watchdog


def attach(warden: Warden) -> None:
    """Run the watchdog while ``warden`` (which has ``stall_ms`` set) is active.

    The watchdog uses the smallest ``stall_ms`` of the attached wardens. A
    loop running on the calling thread is watched at once.
    """
    global _watchdog
    if warden.stall_ms is None:
        return
    with _attach_lock:
        if warden not in _attached:
            _attached.append(warden)
        stall_ms = min(w.stall_ms for w in _attached if w.stall_ms is not None)
        if _watchdog is None:
            _watchdog = Watchdog(stall_ms)
        _watchdog.stall_ms = stall_ms
        loop = threads.running_loop()
        if loop is not None and threads._loop_runs_here(loop):
            _watchdog.watch_loop(loop, threading.get_ident())
        _watchdog.start()


def detach(warden: Warden) -> None:
    """Stop the watchdog when the last warden with ``stall_ms`` leaves."""
    global _watchdog
    with _attach_lock:
        if warden not in _attached:
            return
        _attached.remove(warden)
        if _watchdog is None:
            return
        if _attached:
            _watchdog.stall_ms = min(w.stall_ms for w in _attached if w.stall_ms is not None)
            return
        watchdog, _watchdog = _watchdog, None
    watchdog.stop()
