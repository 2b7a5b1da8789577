"""The stall watchdog: catch the blocking that no patch can see.

Patches see only the primitives loopwarden lists. CPU-bound work, C
extensions and blocking through unpatched paths freeze a loop just as well.
The watchdog is one daemon thread that measures how responsive each guarded
loop is and reports a finding of family ``"stall"`` when a loop does not
come back within a threshold.

How it works:

* **Which loops.** Loops announce themselves: asyncio's, qasync's and
  QtAsyncio's ``run_forever`` all call
  ``asyncio.events._set_running_loop``, which is wrapped while the watchdog
  runs (:mod:`loopwarden.watchdog.loop_starts`), and a loop running on the thread
  that activates the warden is watched at once. Loops already running on
  other threads are found once, at start, by their driving frame on
  ``sys._current_frames()`` (``run_forever``/``run_until_complete`` of any
  loop class, or the ``asyncio.run``/``asyncio.Runner.run``/``uvloop.run``
  frame); uvloop, which binds ``_set_running_loop`` when imported and has
  no frames of its own, is looked for that way every 0.5 s once imported.
  Other threads' stacks are read only then and while sampling a stall:
  CPython 3.11 can crash when a sampler walks them (a frame object from
  ``sys._current_frames()`` dangling in ``f_back``), so a healthy process is
  never walked. None of this touches the patched primitives' fast path.
  The Qt GUI thread's own event loop (no asyncio) is watched when the Qt
  integration registered a probe for that thread in
  :data:`loopwarden.threads.thread_probes`. Not found: a uvloop loop started
  with ``loop.run_until_complete()`` outside ``asyncio.run``/``uvloop.run``
  on a thread other than the activating one; plain Qt event loops of
  threads other than the GUI thread.
* **Heartbeats.** Each watched loop runs a cheap timer that stores the
  time it ran, every ``stall_ms / 2`` (at most 50 ms): ``loop.call_later``
  for asyncio and uvloop, a ``QTimer`` in the GUI thread for loops Qt runs
  (qasync, QtAsyncio, the plain Qt loop; see
  :class:`~loopwarden.watchdog.heartbeats.QtHeartbeat` for why). The watchdog wakes
  at the same pace and only reads those times. A healthy loop pays one
  timer callback per interval. Because the beats are recorded by the loop
  itself, a busy loop that starves the watchdog of the GIL (a flood of Qt
  events can do that for a second or more) but keeps running is not
  reported.
* **Sampling.** Once a beat is overdue by ``stall_ms``, the watchdog samples
  the loop thread's stack every ``sample_ms`` (10 ms) until a beat runs
  again. The finding carries ``duration_ms`` (how long the beat was
  overdue: the time the loop could not respond), the number of samples and
  the stack seen most often (the culprit), with loopwarden's own frames
  hidden. Stalls of ``stall_ms`` plus one interval are always caught, time a loop
  spends stopped never counts (see ``Heartbeat.running_since``).
  Stalls that start while a loop is being found are measured from then.
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
* A C call that *holds* the GIL freezes the watchdog too: nothing can be
  sampled while it runs. When it returns, the watchdog gets the GIL back
  within a switch interval and takes every thread's stack first thing,
  usually before the loop thread has left the calling line: the stall is
  reported with that stack *at resume* and ``details["gil_held_ms"]`` (how
  long the watchdog itself was kept waiting). If the loop thread was
  already back in its loop, the stall is reported with its duration and
  no stack (``details["note"]`` says why). ``faulthandler.dump_traceback_later``
  could dump stacks without the GIL, but there is a single such timer per
  process (pytest's ``faulthandler_timeout`` uses it) and it writes text to a
  file descriptor, so loopwarden does not use it; set ``faulthandler_timeout``
  yourself for hard hangs.
* A loop must be found before a GIL-holding stall starts: the watchdog
  cannot look for loops while the GIL is held.
"""

from __future__ import annotations

import _thread
import asyncio
import atexit
import contextlib
import logging
import math
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopwarden import engine, threads
from loopwarden.config import MIN_STALL_MS
from loopwarden.errors import ConfigError
from loopwarden.uninterruptible import OwnLock, unpatched
from loopwarden.watchdog import loop_starts
from loopwarden.watchdog.findings import (
    Sample,
    build_finding,
    culprit,
    deliver,
    excused,
    take_sample,
)
from loopwarden.watchdog.heartbeats import (
    Clock,
    Heartbeat,
    QtHeartbeat,
    current_frames,
    find_loop,
    make_heartbeat,
    monotonic,
    prepare_qt_if_gui_thread,
)

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

#: The threshold to use when stall detection is requested without a value. The
#: lowest accepted, MIN_STALL_MS, lives with the configuration reader.
DEFAULT_STALL_MS = 100.0
#: How often a stalled thread's stack is sampled.
DEFAULT_SAMPLE_MS = 10.0
#: Longest pause between two checks of a healthy loop.
_MAX_CHECK_S = 0.05
#: Pause between two looks for uvloop loops on other threads' stacks.
_SCAN_S = 0.5
THREAD_NAME = "loopwarden-watchdog"

# The unpatched C methods: the watchdog's own waiting is never a finding, and
# a Ctrl-C cannot fall between the call and this module's code.
_lock_acquire = unpatched(_thread.LockType, "acquire")
_lock_release = unpatched(_thread.LockType, "release")


def _launched(thread: threading.Thread) -> bool:
    """Whether ``thread.start()`` got as far as handing the thread to the OS.

    ``Thread.start`` files the thread in ``threading._limbo`` before it
    launches it, and the thread leaves it once it runs. A thread outside
    ``_limbo`` whose ident is unset was never launched: a Ctrl-C interrupted
    ``start()`` before that, so nothing will ever set its ``_started`` event
    and waiting for it would only cost the full timeout.
    """
    limbo = getattr(threading, "_limbo", None)
    return limbo is None or thread in limbo


def check_stall_ms(value: object, *, minimum: float | None = None) -> float | None:
    """Return ``value`` as a threshold in milliseconds, or None (watchdog off).

    Args:
        value: The threshold, or None.
        minimum: The smallest accepted value; default :data:`MIN_STALL_MS`.

    Raises:
        ConfigError: unless ``value`` is None or a finite number >= ``minimum``.
    """
    if value is None:
        return None
    lowest = MIN_STALL_MS if minimum is None else minimum
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
    if value < lowest:
        raise ConfigError(
            f"invalid stall_ms {value!r}: the stall threshold must be at least {lowest:g} ms "
            "(shorter pauses are scheduling noise, and the watchdog would spin); "
            "None switches the watchdog off"
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


class _Frames:
    """``sys._current_frames()``, taken at most once per check and only if needed."""

    def __init__(self) -> None:
        self._tops: dict[int, Any] | None = None

    def get(self) -> dict[int, Any]:
        if self._tops is None:
            self._tops = current_frames()
        return self._tops

    def taken(self) -> dict[int, Any]:
        """The frames if already taken this check, else nothing."""
        return self._tops or {}

    def release(self) -> None:
        """Let go of the frames: each keeps its thread's locals alive."""
        self._tops = None


@dataclass
class _Stall:
    """A stall in progress on one thread."""

    since: float  # when the overdue beat was due
    last_seen: float  # last check at which it was still stalled
    samples: list[Sample] = field(default_factory=list)
    debugger: bool = False
    reported_call: bool = False
    gil_held_ms: float = 0.0


class _Watch:
    """One watched loop thread: its heartbeat, when the next beat is due, its stall."""

    def __init__(self, heartbeat: Heartbeat) -> None:
        self.heartbeat = heartbeat
        self.started = False
        #: Clock time by which the next beat should have run; None while the
        #: loop does not run (a stopped loop is not a stalled one).
        self.due: float | None = None
        self.seen_beat: float | None = None  # last_beat at the previous check
        self.stall: _Stall | None = None


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
        self.sample_ms = check_stall_ms(sample_ms, minimum=1.0) or DEFAULT_SAMPLE_MS
        self._clock = clock
        self._watches: dict[int, _Watch] = {}
        self._unwatchable: set[int] = set()  # probe threads the Qt heartbeat cannot serve
        # Stopping: a flag and a raw lock the thread sleeps on (released to
        # wake it). Not a threading.Event: its Python-level `with` on a lock
        # can be left holding the lock by a Ctrl-C in stop(), and the next
        # stop() would then deadlock.
        self._stop_requested = False
        self._finished: set[threading.Thread] = set()  # threads whose _run returned
        self._start_called: threading.Thread | None = None
        self._wake = _thread.allocate_lock()
        self._thread: threading.Thread | None = None
        self._lock = OwnLock()  # guards _watches against watch_loop() callers
        self._next_scan = 0.0  # clock time of the next look for loops on stacks

    # -- lifecycle ------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the watchdog thread runs."""
        # Not Thread.is_alive(): a Ctrl-C inside it can mark a live thread as
        # stopped for good (CPython's bpo-45274 handling releases the running
        # thread's own state lock), and a second watchdog would be started.
        thread = self._thread
        return thread is not None and thread.ident is not None and thread not in self._finished

    @property
    def interval(self) -> float:
        """Seconds between beats and between checks of healthy loops."""
        return min(self.stall_ms / 2000.0, _MAX_CHECK_S)

    def start(self) -> None:
        """Start the watchdog thread (no-op if it runs)."""
        if self.running:
            return
        self._stop_requested = False
        wake = _thread.allocate_lock()
        _lock_acquire(wake)  # held until stop() releases it
        self._wake = wake
        thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        # pydevd/debugpy: neither trace nor suspend this thread.
        thread.pydev_do_not_trace = True  # type: ignore[attr-defined]
        thread.is_pydev_daemon_thread = True  # type: ignore[attr-defined]
        self._thread = thread
        loop_starts.install(self._loop_started)
        self._start_called = thread
        thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread; stalls that ended meanwhile are reported first.

        Safe to call again after an interruption (Ctrl-C) and on a thread
        that never started.
        """
        thread = self._thread
        if thread is None:
            return
        loop_starts.uninstall()
        self._stop_requested = True
        wake = self._wake
        if wake.locked():
            # The raw C method, not the patched one: nothing runs between the
            # release and this frame.
            with contextlib.suppress(RuntimeError):  # released meanwhile
                _lock_release(wake)
        if thread.ident is None and self._start_called is thread and _launched(thread):
            # start() was interrupted while waiting for the thread to come
            # up: it is coming up, and will see the stop request at once.
            started = getattr(thread, "_started", None)
            if started is not None:
                started.wait(timeout)
        if thread.ident is not None and thread is not threading.current_thread():
            thread.join(timeout)  # never before it started (start() interrupted)
        self._thread = None

    def _loop_started(self, loop: asyncio.AbstractEventLoop, thread_id: int) -> None:
        # On the loop's thread, as it starts running (see loop_starts).
        if threads._loop_runs_here(loop):
            self.watch_loop(loop, thread_id)
            with self._lock:
                watch = self._watches.get(thread_id)
            if watch is not None and getattr(watch.heartbeat, "loop", None) is loop:
                # Exactly when it runs again: its pending beat is not late for
                # the time the loop was stopped (a loop run until complete, twice).
                watch.heartbeat.running_since = self._clock()

    def watch_loop(self, loop: asyncio.AbstractEventLoop, thread_id: int) -> None:
        """Watch ``loop``, which runs on ``thread_id``, from now on."""
        with self._lock:
            watch = self._watches.get(thread_id)
            if watch is not None and getattr(watch.heartbeat, "loop", None) is loop:
                return
            heartbeat = make_heartbeat(loop, thread_id, self._clock, self.interval)
            self._replace(thread_id, _Watch(heartbeat))

    def heartbeats(self) -> dict[int, int]:
        """Thread id -> beats so far, for each watched loop thread."""
        with self._lock:
            return {tid: watch.heartbeat.beats for tid, watch in self._watches.items()}

    # -- the thread -------------------------------------------------------------

    def _run(self) -> None:
        # The first look waits one interval: the thread that started us is
        # still unwinding its calls, and its frames are in flux.
        timeout = self.interval
        previous = self._clock()
        wake = self._wake
        try:
            while True:
                _lock_acquire(wake, True, timeout)
                if self._stop_requested:
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
        finally:
            self._finished.add(threading.current_thread())

    def _check(self, now: float, late_ms: float) -> float:
        """One round over every watched loop; returns the time to sleep."""
        # Other threads' frames are read only when needed: to find loops
        # (at start, and periodically once uvloop, which announces nothing,
        # is imported), and to sample a stall.
        frames = _Frames()
        try:
            return self._check_with(frames, now, late_ms)
        finally:
            frames.release()  # at once: not when the next check replaces it

    def _check_with(self, frames: _Frames, now: float, late_ms: float) -> float:
        if late_ms >= self.stall_ms:
            frames.get()  # first thing after a GIL hold: the stack at resume
        if now >= self._next_scan:
            self._discover(frames.get())
            self._next_scan = now + _SCAN_S if "uvloop" in sys.modules else math.inf
        stalled = False
        # First: a Qt heartbeat made here is started below in this same round,
        # not one interval later (a stall at the start of a test went unseen).
        self._watch_probe_threads()
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
                watch.heartbeat.stop()
                continue
            self._check_one(thread_id, watch, now, late_ms, frames)
            stalled = stalled or watch.stall is not None
        return self.sample_ms / 1000.0 if stalled else self.interval

    def _check_one(
        self,
        thread_id: int,
        watch: _Watch,
        now: float,
        late_ms: float,
        frames: _Frames,
    ) -> None:
        heartbeat = watch.heartbeat
        if not heartbeat.running():
            # Not a stall: the loop stopped or has not started yet.
            watch.due = None
            if watch.stall is not None:
                self._finish(thread_id, watch, watch.stall.last_seen)
            return
        if not watch.started:
            watch.started = heartbeat.start()
            watch.due = now  # the first beat is asked for now
            return
        last = heartbeat.last_beat
        if watch.due is None:
            # The loop runs again after it was seen stopped. A beat was left
            # pending in it, overdue: it runs at once (maybe it ran already),
            # and its delay is mostly time the loop was stopped, which is no
            # stall. That delay is dropped, and the next beat measures none
            # unless the loop said when it started (running_since, exact). The
            # beats since the last look are not news either. From now on a
            # beat is due: a loop that does not beat for stall_ms is stalled.
            heartbeat.discard_next = heartbeat.running_since is None
            heartbeat.take_worst_late()
            watch.seen_beat = last
            watch.due = now
            return
        if last is not None and last != watch.seen_beat:
            # Beats ran since the last check.
            watch.seen_beat = last
            worst_late = heartbeat.take_worst_late()
            if watch.stall is not None:
                self._finish(thread_id, watch, last)
            elif watch.due is not None and worst_late * 1000.0 >= self.stall_ms:
                # A stall that ended before the watchdog could look: it was
                # kept from running (the loop thread held the GIL).
                late_stall = watch.stall = _Stall(last - worst_late, now)
                top = frames.taken().get(thread_id)
                if late_ms >= self.stall_ms:
                    late_stall.gil_held_ms = late_ms
                if late_ms >= self.stall_ms and top is not None:
                    # The stacks were taken first thing after the watchdog got
                    # the GIL back: usually the loop thread was still on the
                    # line that held it. If it was already back in its loop,
                    # that stack says nothing.
                    sample = take_sample(top)
                    if not _in_loop_machinery(sample):
                        late_stall.samples.append(sample)
                        late_stall.debugger = sample.debugger
                self._finish(thread_id, watch, last)
            # Fall through: the next beat may be overdue already.
            watch.due = last + heartbeat.interval
        if (now - watch.due) * 1000.0 < self.stall_ms:
            return
        stall = watch.stall
        if stall is None:
            stall = watch.stall = _Stall(watch.due, now)
        stall.last_seen = now
        if late_ms >= self.stall_ms:
            # The watchdog was kept waiting too: the stack below is the one
            # at resume, right after the loop thread let go of the GIL.
            stall.gil_held_ms = max(stall.gil_held_ms, late_ms)
        if thread_id in engine.calls_in_progress:
            stall.reported_call = True
        top = frames.get().get(thread_id)
        if top is not None:
            sample = take_sample(top)
            stall.debugger = stall.debugger or sample.debugger
            stall.samples.append(sample)

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
        if sample is not None and _in_loop_machinery(sample):
            details["note"] = (
                "the loop thread was inside its event loop, not in your code: "
                "another thread probably held the GIL"
            )
        if sample is None:
            details["note"] = (
                "the loop thread held the GIL for the whole stall, so no stack could be sampled"
                if stall.gil_held_ms
                else "the stall ended before the watchdog could sample the stack"
            )
        deliver(build_finding(thread_id, watch.heartbeat.description, sample, details), sample)

    def _final_check(self) -> None:
        # Leaving: report stalls that ended or are still going on, so a stall
        # right before the warden exits is not lost.
        now = self._clock()
        with self._lock:
            watches = list(self._watches.items())
            self._watches.clear()
        for thread_id, watch in watches:
            heartbeat = watch.heartbeat
            last = heartbeat.last_beat
            if watch.stall is not None:
                end = watch.stall.last_seen
                if last is not None and last != watch.seen_beat:
                    end = last  # its beat came back
                self._finish(thread_id, watch, end)
            elif last is not None and last != watch.seen_beat and watch.due is not None:
                worst_late = heartbeat.take_worst_late()
                if worst_late * 1000.0 >= self.stall_ms:
                    watch.stall = _Stall(last - worst_late, now)
                    self._finish(thread_id, watch, last)
            heartbeat.stop()

    # -- discovery ------------------------------------------------------------

    def _replace(self, thread_id: int, watch: _Watch) -> None:
        # Caller holds self._lock.
        old = self._watches.get(thread_id)
        self._watches[thread_id] = watch
        if old is not None:
            old.heartbeat.stop()

    def _discover(self, stack_tops: dict[int, Any]) -> None:
        own = threading.get_ident()
        with self._lock:
            known = {
                tid
                for tid, watch in self._watches.items()
                if getattr(watch.heartbeat, "loop", None) is not None and watch.heartbeat.running()
            }
        for thread_id, top in stack_tops.items():
            if thread_id == own or thread_id in known:
                continue  # a running asyncio loop: nothing new to find here
            loop = find_loop(top)
            if loop is not None:
                # An asyncio loop wins over the plain Qt heartbeat: qasync and
                # QtAsyncio run the Qt loop, and asyncio sees their stalls too.
                self.watch_loop(loop, thread_id)

    def _watch_probe_threads(self) -> None:
        # Threads the Qt integration guards (the GUI thread) get a Qt heartbeat
        # unless an asyncio loop is watched there already.
        for thread_id in list(threads.thread_probes):
            if thread_id not in self._watches and thread_id not in self._unwatchable:
                self._watch_qt(thread_id)

    def _watch_qt(self, thread_id: int) -> None:
        try:
            heartbeat = QtHeartbeat(thread_id, self._clock, self.interval)
        except Exception:  # no Qt, or no application yet
            logger.debug("loopwarden: cannot watch the Qt loop of %s", thread_id, exc_info=True)
            return
        with self._lock:
            if thread_id not in self._watches:
                self._watches[thread_id] = _Watch(heartbeat)
                return
        heartbeat.stop()


_LOOP_MACHINERY = ("selectors", "asyncio.", "qasync", "PySide6.QtAsyncio", "uvloop")


def _in_loop_machinery(sample: Sample) -> bool:
    # The innermost frame belongs to the loop itself: it was waiting or
    # dispatching, not running the code that stalled it.
    return not sample.stack or sample.stack[-1].module.startswith(_LOOP_MACHINERY)


# -- the process-wide watchdog, driven by wardens ----------------------------------

_attach_lock = OwnLock()
_watchdog: Watchdog | None = None
_attached: list[Warden] = []
# Watchdogs that detach() took out of service and has not finished stopping.
_retired: list[Watchdog] = []


_exit_hook_registered = False


def _stop_at_exit_once() -> None:
    # A warden left active until exit (activate() without deactivate()):
    # stop the thread before the interpreter (and Qt) are torn down.
    global _exit_hook_registered
    if not _exit_hook_registered:
        _exit_hook_registered = True
        atexit.register(_stop_at_exit)


def _stop_at_exit() -> None:
    global _watchdog
    with _attach_lock:
        running = [dog for dog in (_watchdog, *_retired) if dog is not None]
        _watchdog = None
        _attached.clear()
        _retired.clear()
    for watchdog in running:
        watchdog.stop(timeout=0.5)


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
    prepare_qt_if_gui_thread()  # here if allowed, never on the watchdog thread
    with _attach_lock:
        if warden not in _attached:
            _attached.append(warden)
        stall_ms = min(w.stall_ms for w in _attached if w.stall_ms is not None)
        if _watchdog is None:
            _watchdog = Watchdog(stall_ms)
            _stop_at_exit_once()
        _watchdog.stall_ms = stall_ms
        loop = threads.running_loop()
        if loop is not None and threads._loop_runs_here(loop):
            _watchdog.watch_loop(loop, threading.get_ident())
        _watchdog.start()


def detach(warden: Warden) -> None:
    """Stop the watchdog when the last warden with ``stall_ms`` leaves.

    Idempotent, and restartable after an interruption: it converges on "a
    watchdog runs if and only if a warden with ``stall_ms`` is attached".
    """
    global _watchdog
    if warden.stall_ms is None and _watchdog is None and not _retired and warden not in _attached:
        return  # never attached, nothing retired to stop: the per-test switch's common case
    with _attach_lock:
        while warden in _attached:
            _attached.remove(warden)
        watchdog = _watchdog
        if watchdog is not None:
            if _attached:
                watchdog.stall_ms = min(w.stall_ms for w in _attached if w.stall_ms is not None)
            else:
                # Retired first, then forgotten: never lost in between.
                if watchdog not in _retired:
                    _retired.append(watchdog)
                _watchdog = None
        while _watchdog in _retired:  # retired by an interrupted round, then kept
            _retired.remove(_watchdog)
        retired = list(_retired)
    for old in retired:
        old.stop()  # outside the lock: its last check records on wardens
        with _attach_lock:
            while old in _retired:
                _retired.remove(old)
