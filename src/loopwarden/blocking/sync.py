"""Family ``sync``: waiting on locks, events, queues, threads and futures.

Everything here is a finding only when it would really wait:

* locks (``acquire()`` and ``with lock:``) only when another thread holds
  them: the rule first tries the original ``acquire(False)``, and an
  uncontended lock is taken right there, at the cost of one extra call;
* ``Queue.get``/``put`` only when the queue is empty/full (tried the same
  way), ``Event.wait`` only when the event is not set, ``Thread.join`` only
  while the thread runs, ``Future.result`` only while the future is pending.

The standard library takes its own private locks for a few instructions at a
time (``concurrent.futures``, ``queue``, asyncio's policy lock, ...). When such
a lock is momentarily held by another thread, that is not the application
waiting on something: those modules are excused for the lock rules only.
"""

from __future__ import annotations

import _thread
import asyncio
import collections.abc
import concurrent.futures
import contextvars
import functools
import gc
import queue
import threading
import types
from collections.abc import Callable
from typing import Any

from loopwarden import lock_owners
from loopwarden.rules import NOT_BLOCKED, Attempt, Rule
from loopwarden.threads import running_loop

__all__ = ["RULES", "completed_by_blocked_loop", "completes_on_running_loop"]

_LOCK = (
    "Another thread holds this lock, so the loop stops until it lets go. Keep critical "
    "sections shared with threads tiny, use asyncio.Lock between coroutines, or do the "
    "locked work in a worker: `await asyncio.to_thread(...)`."
)
_WAIT = (
    "Between coroutines use the asyncio primitives (asyncio.Event, Condition, Semaphore, "
    "Barrier). To wait for a thread, `await asyncio.to_thread(...)` the wait, or let the "
    "thread wake the loop with `loop.call_soon_threadsafe(...)`; in Qt code connect to a signal."
)
_QUEUE = (
    "Use asyncio.Queue between coroutines (janus for a queue shared with threads), "
    "`get_nowait()`/`put_nowait()`, or `await asyncio.to_thread(q.get)`."
)
_QUEUE_JOIN = (
    "Queue.join() waits until every item put was marked done with task_done(). Between "
    "coroutines use asyncio.Queue and `await q.join()`; for a queue shared with threads, "
    "`await asyncio.to_thread(q.join)`, or let the last worker tell the loop "
    "(`loop.call_soon_threadsafe(...)`)."
)
_JOIN = (
    "Let the thread tell the loop when it is done (`loop.call_soon_threadsafe(...)` or a "
    "Qt signal), or `await asyncio.to_thread(thread.join)`; QThread has a finished signal."
)
_FUTURE = (
    "`await asyncio.wrap_future(future)` instead of calling `future.result()`; "
    "`loop.run_in_executor(...)` and `asyncio.to_thread(...)` return awaitables already."
)
_FUTURES_WAIT = (
    "`await asyncio.wait([asyncio.wrap_future(f) for f in futures])` or "
    "`asyncio.as_completed(...)` on the wrapped futures."
)
_SHUTDOWN = (
    "`executor.shutdown(wait=False)`, or `await asyncio.to_thread(executor.shutdown)`. "
    "Leaving a `with ThreadPoolExecutor():` block on the loop thread waits for every task."
)
_SELF_DEADLOCK = (
    "This will deadlock: this thread already holds this threading.Lock{where}, and a Lock is "
    "not reentrant, so acquiring it again waits for a release only this thread could make. "
    "Use threading.RLock if the same thread may take it again, or restructure so that it is "
    "taken once (a locked public function calling an unlocked helper)."
)
_SELF_HELD = (
    "This thread already holds this threading.Lock{where}, and a Lock is not reentrant: "
    "this acquire waits its whole timeout and then fails. Use threading.RLock if the same "
    "thread may take it again, or restructure so that it is taken once."
)
_DEADLOCK = (
    "This will deadlock: the future is completed by a coroutine scheduled on this same event "
    "loop (asyncio.run_coroutine_threadsafe targeting the running loop), and that coroutine "
    "cannot run while the loop thread waits for it. `await` the coroutine directly, or "
    "`await asyncio.wrap_future(future)`."
)

_QUEUED_COMPLETION = (
    "This will deadlock: the only completion of this future is a callback queued on this same "
    "event loop (loop.call_soon_threadsafe(future.set_result, ...) or similar), and it cannot "
    "run while the loop thread waits. `await asyncio.wrap_future(future)` instead, or complete "
    "an asyncio future: `loop.create_future()` and `await` it."
)


def _original(owner: type, name: str) -> Any:
    """The unpatched attribute, even if this module is imported while patches are in."""
    value = owner.__dict__[name]
    if getattr(value, "__loopwarden_rule__", None) is not None:
        return value.__wrapped__
    return value


# Captured at import, before any patching: the attempts below must take the
# locks without going through our own wrappers.
#: (patch target prefix, display name, type) of the C lock types.
_LOCK_TYPES: tuple[tuple[str, str, type], ...] = (
    ("_thread:LockType", "threading.Lock", _thread.LockType),
    ("_thread:RLock", "threading.RLock", _thread.RLock),
)


def _lock_attempt(acquire: Callable[[Any, bool], bool]) -> Attempt:
    track = lock_owners.acquire

    def attempt(original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        # acquire() and __enter__() both return True once the lock is held.
        # 3: this, _checked_call, the wrapper, then who called the lock.
        return True if track(args[0], acquire, False, 3) else NOT_BLOCKED

    return attempt


def _lock_precheck(acquire: Callable[[Any, bool], bool]) -> Attempt:
    # A threading.Lock taken here gets its owner remembered (lock_owners), so
    # that taking it again on this thread is known for the deadlock it is.
    track = lock_owners.acquire

    def precheck(
        original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if len(args) == 1 and not kwargs:
            # `lock.acquire()` and `with lock:`: a free lock is taken at once,
            # which is all the blocking call would do; a held one takes the
            # full path.
            return True if track(args[0], acquire, False, 2) else NOT_BLOCKED
        if len(args) == 2 and args[1] is False and not kwargs:
            # Condition._is_owned() on every notify()
            return track(args[0], acquire, False, 2)
        try:
            would_block = _acquire_blocks(*args, **kwargs)
        except Exception:  # noqa: BLE001 - bad arguments: the full path reports them
            return NOT_BLOCKED
        if would_block:
            return NOT_BLOCKED
        # acquire(blocking=False) or timeout=0 never waits.
        return track(args[0], _call_with(original, args[1:], kwargs), None, 2)

    return precheck


def _call_with(
    original: Callable[..., Any], rest: tuple[Any, ...], kwargs: dict[str, Any]
) -> Callable[[Any, Any], Any]:
    def call(lock: Any, _: Any) -> Any:
        return original(lock, *rest, **kwargs)

    return call


def _diagnose_lock(
    lock: object, blocking: object = True, timeout: object = -1, *_: object, **__: object
) -> dict[str, Any]:
    """A threading.Lock that this very thread holds: a self-deadlock."""
    site = lock_owners.acquired_at(lock)
    if site is None:
        return {}
    where = f" (taken at {site})" if site else ""
    forever = bool(blocking) and isinstance(timeout, (int, float)) and timeout < 0
    details: dict[str, Any] = {"deadlock": True, "hangs_forever": forever, "self_held": True}
    if site:
        details["held_since"] = site
    details["suggestion"] = (_SELF_DEADLOCK if forever else _SELF_HELD).format(where=where)
    return details


def _queue_precheck(blocks: Callable[..., bool], attempt: Attempt, arity: int) -> Attempt:
    def precheck(
        original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if len(args) == arity and len(kwargs) == 1 and kwargs.get("block", True) is False:
            return original(*args, **kwargs)  # get_nowait() and put_nowait(), as they call it
        try:
            would_block = blocks(*args, **kwargs)
        except Exception:  # noqa: BLE001 - bad arguments: the full path reports them
            return NOT_BLOCKED
        if not would_block:
            # get_nowait(), put(block=False), timeout=0: never waits. The
            # queue's own mutex is excused (a stdlib critical section), so
            # running it unmarked changes no verdict.
            return original(*args, **kwargs)
        # A blocking get on a non-empty queue (put on a non-full one) takes
        # the item now, exactly as the blocking call would.
        return attempt(original, args, kwargs)

    return precheck


def _would_wait(timeout: float | None) -> bool:
    # None waits forever; a positive timeout waits; 0 or less only polls.
    return timeout is None or timeout > 0


def _acquire_blocks(lock: object, blocking: bool = True, timeout: float = -1) -> bool:
    return bool(blocking) and timeout != 0


def _semaphore_blocks(sem: object, blocking: bool = True, timeout: float | None = None) -> bool:
    return bool(blocking) and _would_wait(timeout)


def _semaphore_attempt(
    original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    return True if original(args[0], False) else NOT_BLOCKED


def _condition_wait_blocks(cond: object, timeout: float | None = None) -> bool:
    return _would_wait(timeout)


def _event_wait_blocks(event: threading.Event, timeout: float | None = None) -> bool:
    return not event.is_set() and _would_wait(timeout)


def _barrier_wait_blocks(barrier: threading.Barrier, timeout: float | None = None) -> bool:
    # The last party to arrive trips the barrier and does not wait.
    if barrier.broken or not _would_wait(timeout):
        return False
    return barrier.n_waiting + 1 < barrier.parties


def _get_blocks(q: object, block: bool = True, timeout: float | None = None) -> bool:
    return bool(block) and _would_wait(timeout)


def _put_blocks(q: object, item: object, block: bool = True, timeout: float | None = None) -> bool:
    return bool(block) and _would_wait(timeout)


def _queue_join_blocks(q: Any) -> bool:
    # Read without the queue's mutex: a stale count only changes which rule
    # names the wait (this one, or the Condition.wait inside it).
    return bool(getattr(q, "unfinished_tasks", 0))


def _get_attempt(
    original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    try:
        return original(args[0], False)
    except queue.Empty:
        return NOT_BLOCKED


def _put_attempt(
    original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    item = args[1] if len(args) > 1 else kwargs["item"]
    try:
        return original(args[0], item, False)
    except queue.Full:
        return NOT_BLOCKED


def _join_blocks(thread: threading.Thread, timeout: float | None = None) -> bool:
    if not thread.is_alive() or not _would_wait(timeout):
        return False
    if type(thread).run is threading.Thread.run and not hasattr(thread, "_target"):
        # Thread.run() deletes _target once the target returned: the thread is
        # only tidying up, and the join ends at once.
        return False
    return not _is_loop_shutdown_thread(thread)


def _is_loop_shutdown_thread(thread: threading.Thread) -> bool:
    """The thread an event loop starts to shut its default executor down.

    uvloop joins it on the loop thread once it has reported back (asyncio's
    own version is covered by a default allowance; uvloop's is compiled, so
    there is no frame to allow).
    """
    target = getattr(thread, "_target", None)
    return getattr(target, "__name__", "") == "_do_shutdown" and isinstance(
        getattr(target, "__self__", None), asyncio.AbstractEventLoop
    )


def _result_blocks(future: concurrent.futures.Future[Any], timeout: float | None = None) -> bool:
    return not future.done() and _would_wait(timeout)


def _closure_value(function: object, name: str) -> Any:
    """The value of free variable ``name`` in ``function``'s closure, or None."""
    code = getattr(function, "__code__", None)
    closure = getattr(function, "__closure__", None)
    if code is None or not closure or name not in code.co_freevars:
        return None
    try:
        return closure[code.co_freevars.index(name)].cell_contents
    except ValueError:  # an empty cell
        return None


def completes_on_running_loop(future: object) -> bool:
    """True if ``future`` is completed by a coroutine on this thread's running loop.

    That is what ``asyncio.run_coroutine_threadsafe(coro, loop)`` makes when
    ``loop`` is the running loop: waiting for it on the loop thread can never
    end. Two states are recognised: the scheduling callback is still queued on
    the loop (asyncio's pure-Python loops), or it ran and chained the
    coroutine's task to the future (any loop).
    """
    loop = running_loop()
    if loop is None:
        return False
    for callback in list(getattr(future, "_done_callbacks", ())):
        if (
            getattr(callback, "__name__", "") == "_call_check_cancel"
            and _closure_value(callback, "source_loop") is loop
        ):
            return True
    for handle in list(getattr(loop, "_ready", ())):
        callback = getattr(handle, "_callback", None)
        if getattr(callback, "__qualname__", "").startswith("run_coroutine_threadsafe.") and (
            _closure_value(callback, "future") is future
            and _closure_value(callback, "loop") is loop
        ):
            return True
    return _scheduled_elsewhere(future, loop)


def _is_scheduler_of(function: object, future: object, loop: object) -> bool:
    return (
        getattr(function, "__qualname__", "").startswith("run_coroutine_threadsafe.")
        and _closure_value(function, "future") is future
        and _closure_value(function, "loop") is loop
    )


def _scheduled_elsewhere(future: object, loop: object) -> bool:
    """The scheduling callback is queued where Python cannot list it.

    qasync and QtAsyncio post ``call_soon_threadsafe`` callbacks through Qt's
    event queue (and uvloop keeps them in C), so the loop has no ``_ready``
    to look in. The callback is still a Python closure over the future: find
    it through the garbage collector's referrers (future -> closure cell ->
    closure tuple -> function). That walks the heap, but only runs for a
    pending ``result()`` on a loop thread, which is a finding anyway.
    """
    cells = [r for r in gc.get_referrers(future) if type(r) is types.CellType]
    if not cells:
        return False
    closures = [r for r in gc.get_referrers(*cells) if type(r) is tuple]
    if not closures:
        return False
    return any(
        _is_scheduler_of(f, future, loop)
        for f in gc.get_referrers(*closures)
        if type(f) is types.FunctionType
    )


#: Methods of a concurrent Future that complete it.
_COMPLETERS = frozenset({"set_result", "set_exception", "cancel"})


def _completer_of(callback: object, future: object) -> bool:
    """``future.set_result`` (or set_exception, cancel), maybe in a partial or trampoline."""
    for _ in range(3):  # a trampoline around a partial around the bound method
        if type(callback) is types.MethodType:
            return callback.__self__ is future and callback.__func__.__name__ in _COMPLETERS
        inner = None
        if _is_trampoline(callback):
            inner = callback.callback  # type: ignore[attr-defined]
        elif type(callback) is functools.partial:
            inner = callback.func
        if inner is None:
            return False
        callback = inner
    return False


def _pending_handle(handle: object, future: object, loop: object) -> bool:
    """A pending asyncio(-like) handle of ``loop`` whose callback completes ``future``."""
    if getattr(handle, "_loop", None) is not loop or getattr(handle, "_cancelled", False):
        return False
    state = getattr(handle, "_state", None)  # QtAsyncio's handles: PENDING, CANCELLED, DONE
    if state is not None and getattr(state, "name", "") != "PENDING":
        return False
    return _completer_of(getattr(handle, "_callback", None), future)


def completed_by_blocked_loop(future: object) -> bool:
    """True if only a callback queued on this thread's running loop would complete ``future``.

    ``loop.call_soon_threadsafe(future.set_result, value)`` from a worker
    queues the completion on the loop; ``future.result()`` on the loop thread
    then waits for a callback that cannot run. Found where the queue can be
    read: asyncio's ``_ready`` and ``_scheduled``; elsewhere through the
    garbage collector's referrers of the future (QtAsyncio's handles, uvloop's
    ready queue). Not under qasync: its ``call_soon_threadsafe`` holds the
    callback inside a Qt event, where Python cannot see it. A future an
    executor has started (RUNNING) or still has queued is not claimed.
    """
    loop = running_loop()
    if loop is None or getattr(future, "_state", None) != "PENDING":
        return False
    queued = [*getattr(loop, "_ready", ()), *getattr(loop, "_scheduled", ())]
    found = any(_pending_handle(h, future, loop) for h in queued)
    if not found:
        found = _queued_elsewhere(future, loop)
    return found and not _executor_owns(future)


def _queued_elsewhere(future: object, loop: object) -> bool:
    referrers = gc.get_referrers(future)
    methods = [r for r in referrers if type(r) is types.MethodType and r.__self__ is future]
    if not methods:
        return False
    frontier: list[Any] = methods
    for _ in range(3):  # the method, maybe in a partial, maybe in a trampoline
        holders = gc.get_referrers(*frontier)
        for holder in holders:
            if _pending_handle(holder, future, loop) or _in_uvloop_ready(holder, future, loop):
                return True
            if type(holder) is dict:  # an instance __dict__ (QtAsyncio's handles)
                for owner in gc.get_referrers(holder):
                    if getattr(owner, "__dict__", None) is holder and _pending_handle(
                        owner, future, loop
                    ):
                        return True
        frontier = [h for h in holders if type(h) is functools.partial or _is_trampoline(h)]
        if not frontier:
            return False
    return False


def _is_trampoline(obj: object) -> bool:
    kind = type(obj)
    return kind.__name__ == "Scheduled" and kind.__module__ == "loopwarden.scheduling"


def _in_uvloop_ready(handle: object, future: object, loop: object) -> bool:
    """A pending uvloop Handle of ``loop`` whose callback completes ``future``.

    Its fields are C, but the garbage collector lists them in declaration
    order: the loop, the context, then the callback and its arguments.
    """
    kind = type(handle)
    if kind.__module__ != "uvloop.loop" or kind.__name__ != "Handle":
        return False
    cancelled = getattr(handle, "cancelled", None)
    if cancelled is None or cancelled():
        return False
    fields = gc.get_referents(handle)
    if not fields or fields[0] is not loop:
        return False
    rest = [f for f in fields[1:] if not isinstance(f, contextvars.Context)]
    return bool(rest) and _completer_of(rest[0], future)


def _executor_owns(future: object) -> bool:
    """An executor holds a work item for ``future``: a worker may still complete it."""
    return any(
        getattr(r, "future", None) is future and type(r).__name__ == "_WorkItem"
        for r in gc.get_referrers(future)
    )


def _deadlock(timeout: object) -> dict[str, Any]:
    # Without a timeout the wait can never end: the engine then raises in every
    # mode, since letting the call proceed would hang the program for good.
    return {"deadlock": True, "hangs_forever": timeout is None, "suggestion": _DEADLOCK}


def _diagnose_result(
    future: object, timeout: float | None = None, *_: object, **__: object
) -> dict[str, Any]:
    if completes_on_running_loop(future):
        return _deadlock(timeout)
    if completed_by_blocked_loop(future):
        return {**_deadlock(timeout), "suggestion": _QUEUED_COMPLETION}
    return {}


def _futures(fs: object) -> list[Any] | None:
    # Only re-iterable collections: consuming a generator would starve the call.
    if isinstance(fs, collections.abc.Collection):
        return list(fs)
    return None


def _wait_blocks(
    fs: object, timeout: float | None = None, return_when: str = concurrent.futures.ALL_COMPLETED
) -> bool:
    futures = _futures(fs)
    if futures is None:
        return _would_wait(timeout)
    if not _would_wait(timeout):
        return False
    done = [f for f in futures if f.done()]
    if return_when == concurrent.futures.FIRST_COMPLETED and done:
        return False
    if return_when == concurrent.futures.FIRST_EXCEPTION and any(
        not f.cancelled() and f.exception(timeout=0) is not None for f in done
    ):
        return False
    return len(done) < len(futures)


def _as_completed_blocks(fs: object, timeout: float | None = None) -> bool:
    futures = _futures(fs)
    if futures is None:
        return True
    return not all(f.done() for f in futures)


def _diagnose_wait(
    fs: object, timeout: float | None = None, *_: object, **__: object
) -> dict[str, Any]:
    futures = _futures(fs) or []
    if any(completes_on_running_loop(f) for f in futures):
        return _deadlock(timeout)
    if futures and all(completed_by_blocked_loop(f) for f in futures):
        # Only when no future can complete otherwise: FIRST_COMPLETED with
        # one future of a worker still returns.
        return {**_deadlock(timeout), "suggestion": _QUEUED_COMPLETION}
    return {}


def _thread_pool_shutdown_blocks(
    executor: concurrent.futures.ThreadPoolExecutor, wait: bool = True, **_: object
) -> bool:
    threads = getattr(executor, "_threads", ())
    return bool(wait) and any(t.is_alive() for t in threads)


#: How long idle workers get to see the shutdown sentinel and exit.
_IDLE_WORKERS_GRACE = 0.005


def _shutdown_idle_pool(
    original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Shut down without waiting; wait only if the workers do not exit at once.

    Leaving ``with ThreadPoolExecutor():`` after every task was awaited only
    joins idle workers, which takes microseconds: that is not a finding. Tasks
    still queued or running keep a worker alive past the grace period, and
    then the real, waiting shutdown runs and is reported.
    """
    executor = args[0]
    cancel = kwargs.get("cancel_futures", args[2] if len(args) > 2 else False)
    original(executor, wait=False, cancel_futures=cancel)
    for thread in list(getattr(executor, "_threads", ())):
        thread.join(_IDLE_WORKERS_GRACE)
        if thread.is_alive():
            return NOT_BLOCKED
    return None


def _process_pool_shutdown_blocks(executor: Any, wait: bool = True, **_: object) -> bool:
    started = getattr(executor, "_executor_manager_thread", None) is not None
    return bool(wait) and (started or bool(getattr(executor, "_processes", None)))


#: Standard-library code whose own private locks are held for a few instructions;
#: another thread holding one for a moment is not the application waiting.
_STDLIB_CRITICAL_SECTIONS = frozenset(
    {
        "concurrent.futures._base",
        "concurrent.futures.thread",
        "concurrent.futures.process",
        "queue",  # the queue's mutex; waiting for items is the Queue.get/put rule
        "asyncio.events",
        "asyncio.base_events",
        "asyncio.futures",
        "asyncio.unix_events",
        "asyncio.windows_events",
        "functools",  # cached_property's lock (3.11)
        "tempfile",
        "http.cookiejar",
        "multiprocessing.queues",
        "multiprocessing.util",
        "threading:Event.set",
        "threading:Event.clear",
        "threading:Semaphore.release",
        "threading:BoundedSemaphore.release",
        "threading:Barrier.reset",
        "threading:Barrier.abort",
        "threading:enumerate",
        "threading:active_count",
        "threading:_DummyThread.__init__",
        "threading:_maintain_shutdown_locks",
    }
)


def _rule(target: str, suggestion: str, **options: Any) -> Rule:
    return Rule(target=target, family="sync", suggestion=suggestion, **options)


def _lock_condition(method: str, self_deadlock: bool) -> str:
    held = (
        "the lock is held and the call waits (blocking=True, timeout != 0)"
        if method == "acquire"
        else "the lock is held (`with lock:`)"
    )
    if self_deadlock:
        held += (
            "; held by this very thread (taken here earlier, not released): a self-deadlock, "
            "raised in every mode when the call has no timeout"
        )
    return held + "; the standard library's own short critical sections are excused"


_LOCK_RULES = tuple(
    _rule(
        f"{target}.{method}",
        _LOCK,
        name=f"{label}.{method}",
        blocks_when=_acquire_blocks,
        attempt=_lock_attempt(_original(cls, "acquire")),
        precheck=_lock_precheck(_original(cls, "acquire")),
        # An RLock knows its owner and may be taken again by it: never a deadlock.
        diagnose=_diagnose_lock if cls is _thread.LockType else None,
        condition=_lock_condition(method, cls is _thread.LockType),
        allowed_in=_STDLIB_CRITICAL_SECTIONS,
        undo=_original(cls, "release"),
    )
    for target, label, cls in _LOCK_TYPES
    for method in ("acquire", "__enter__")
)

RULES: tuple[Rule, ...] = (
    *_LOCK_RULES,
    _rule(
        "threading:Condition.wait",
        _WAIT,
        blocks_when=_condition_wait_blocks,
        condition="timeout is None or > 0",
    ),
    _rule(
        "threading:Event.wait",
        _WAIT,
        blocks_when=_event_wait_blocks,
        condition="the event is not set and timeout is None or > 0",
    ),
    # BoundedSemaphore first: it inherits acquire, and a rule patched on the
    # base class first would hide it (findings would all say Semaphore).
    *(
        _rule(
            f"threading:{cls}.acquire",
            _WAIT,
            blocks_when=_semaphore_blocks,
            attempt=_semaphore_attempt,
            condition="the counter is zero and the call waits (blocking=True, timeout != 0)",
        )
        for cls in ("BoundedSemaphore", "Semaphore")
    ),
    _rule(
        "threading:Barrier.wait",
        _WAIT,
        blocks_when=_barrier_wait_blocks,
        condition="other parties are still missing (this call does not trip the barrier)",
    ),
    _rule(
        "queue:Queue.get",
        _QUEUE,
        blocks_when=_get_blocks,
        attempt=_get_attempt,
        precheck=_queue_precheck(_get_blocks, _get_attempt, 1),
        condition="the queue is empty and block=True (timeout is None or > 0)",
    ),
    _rule(
        "queue:Queue.put",
        _QUEUE,
        blocks_when=_put_blocks,
        attempt=_put_attempt,
        precheck=_queue_precheck(_put_blocks, _put_attempt, 2),
        condition="the queue is full and block=True (timeout is None or > 0)",
    ),
    _rule(
        "queue:Queue.join",
        _QUEUE_JOIN,
        blocks_when=_queue_join_blocks,
        condition="items put are not all marked done yet (unfinished_tasks > 0)",
    ),
    _rule(
        "queue:SimpleQueue.get",
        _QUEUE,
        blocks_when=_get_blocks,
        attempt=_get_attempt,
        precheck=_queue_precheck(_get_blocks, _get_attempt, 1),
        condition="the queue is empty and block=True (timeout is None or > 0)",
    ),
    _rule(
        "threading:Thread.join",
        _JOIN,
        blocks_when=_join_blocks,
        condition="the thread is still running its target and timeout is None or > 0 "
        "(not an event loop's own executor-shutdown thread)",
    ),
    *(
        _rule(
            f"concurrent.futures:Future.{method}",
            _FUTURE,
            blocks_when=_result_blocks,
            diagnose=_diagnose_result,
            condition="the future is not done and timeout is None or > 0 "
            "(a future completed on the running loop itself: a deadlock)",
        )
        for method in ("result", "exception")
    ),
    _rule(
        "concurrent.futures:wait",
        _FUTURES_WAIT,
        blocks_when=_wait_blocks,
        diagnose=_diagnose_wait,
        condition="return_when is not met yet and timeout is None or > 0",
    ),
    _rule(
        "concurrent.futures:as_completed",
        _FUTURES_WAIT,
        blocks_when=_as_completed_blocks,
        diagnose=_diagnose_wait,
        iterates=True,
        condition="some futures are not done yet (iterating waits for them)",
    ),
    _rule(
        "concurrent.futures.thread:ThreadPoolExecutor.shutdown",
        _SHUTDOWN,
        name="concurrent.futures.ThreadPoolExecutor.shutdown",
        blocks_when=_thread_pool_shutdown_blocks,
        attempt=_shutdown_idle_pool,
        condition="wait=True and tasks are still queued or running (idle workers get 5 ms to exit)",
    ),
    _rule(
        "concurrent.futures.process:ProcessPoolExecutor.shutdown",
        _SHUTDOWN,
        name="concurrent.futures.ProcessPoolExecutor.shutdown",
        blocks_when=_process_pool_shutdown_blocks,
        # Importing it pulls in multiprocessing; patch it only if the app uses it.
        import_module=False,
        condition="wait=True and worker processes were started",
    ),
)
