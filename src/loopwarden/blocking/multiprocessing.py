"""Family ``process``: waiting on other processes through :mod:`multiprocessing`.

Queues, pipes, events, locks and semaphores shared with other processes, and
waits for processes and pools. Each is a finding only when it would wait:

* ``Queue.get``/``put`` only when empty/full (tried with ``block=False``
  first), ``Connection.recv`` only when nothing is queued,
  ``Connection.poll(timeout)`` only when nothing arrives at once;
* ``Event.wait`` only while the event is clear; ``Lock``/``RLock``/
  ``Semaphore`` acquires only when contended (tried with ``block=False``);
* ``Process.join`` only while the process runs; ``AsyncResult.get``/``wait``
  only while the result is pending; ``Pool.join`` only while workers live.

The rules are patched only once the application imported the module (no
``multiprocessing`` import is added to anyone's start-up). A lock's
``acquire`` is bound to each lock when it is made, so locks made before
loopwarden was activated keep the unpatched one (``with lock:`` is seen
either way).
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

from loopwarden.rules import NOT_BLOCKED, Rule

__all__ = ["RULES"]

_QUEUE = (
    "A multiprocessing queue waits for the other process. Use `get_nowait()`/`put_nowait()`, "
    "or wait in a worker: `await asyncio.to_thread(q.get)`; for results of work in other "
    "processes, `await loop.run_in_executor(ProcessPoolExecutor(), ...)` is awaitable."
)
_PIPE = (
    "Waiting on a pipe or connection stops the loop until the other end sends. Check "
    "`conn.poll()` (no timeout) first, let the loop watch it "
    "(`loop.add_reader(conn.fileno(), callback)`), or `await asyncio.to_thread(conn.recv)`."
)
_SYNC = (
    "Another process (or thread) holds this lock or has not set this event yet. Wait in a "
    "worker: `await asyncio.to_thread(lock.acquire)` / `await asyncio.to_thread(event.wait)`, "
    "or use `acquire(block=False)` / `event.is_set()` and retry with `await asyncio.sleep(...)`."
)
_PROCESS = (
    "Waiting for a process or a pool stops the loop until its work is done. Use "
    "`await loop.run_in_executor(ProcessPoolExecutor(), fn, ...)`, "
    "`await asyncio.to_thread(process.join)`, or `pool.apply_async(..., callback=...)` with "
    "`loop.call_soon_threadsafe` in the callback."
)


def _would_wait(timeout: object) -> bool:
    return timeout is None or (isinstance(timeout, (int, float)) and timeout > 0)


def _arg(
    args: tuple[Any, ...], kwargs: dict[str, Any], position: int, name: str, default: Any
) -> Any:
    return args[position] if len(args) > position else kwargs.get(name, default)


# -- queues ------------------------------------------------------------------------


def _get_blocks(q: object, *args: Any, **kwargs: Any) -> bool:
    return bool(_arg(args, kwargs, 0, "block", True)) and _would_wait(
        _arg(args, kwargs, 1, "timeout", None)
    )


def _put_blocks(q: object, obj: object = None, *args: Any, **kwargs: Any) -> bool:
    return bool(_arg(args, kwargs, 0, "block", True)) and _would_wait(
        _arg(args, kwargs, 1, "timeout", None)
    )


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
    item = args[1] if len(args) > 1 else kwargs["obj"]
    try:
        return original(args[0], item, False)
    except queue.Full:
        return NOT_BLOCKED


def _joinable_join_blocks(q: Any) -> bool:
    unfinished = getattr(q, "_unfinished_tasks", None)
    semlock = getattr(unfinished, "_semlock", None)
    return semlock is None or not semlock._is_zero()


# -- connections ---------------------------------------------------------------------


def _nothing_queued(conn: Any) -> bool:
    try:
        return not conn.poll(0)
    except (OSError, ValueError, EOFError):
        return False  # closed or broken: the call fails at once


def _recv_blocks(conn: Any, *_: object, **__: object) -> bool:
    return _nothing_queued(conn)


def _poll_blocks(conn: Any, timeout: object = 0.0) -> bool:
    return _would_wait(timeout) and _nothing_queued(conn)


# -- events, locks, semaphores -------------------------------------------------------


def _event_wait_blocks(event: Any, timeout: object = None) -> bool:
    return _would_wait(timeout) and not event.is_set()


def _acquire_blocks(lock: object, block: bool = True, timeout: object = None) -> bool:
    return bool(block) and _would_wait(timeout)


def _acquire_attempt(
    original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    # acquire() and __enter__() both return True once the lock is held.
    return True if original(args[0], False) else NOT_BLOCKED


def _enter_attempt(
    original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    semlock = getattr(args[0], "_semlock", None)
    if semlock is None:
        return NOT_BLOCKED
    return True if semlock.acquire(False) else NOT_BLOCKED


def _lock_kind(semlock: Any) -> dict[str, Any]:
    kind = getattr(semlock, "kind", None)
    maxvalue = getattr(semlock, "maxvalue", None)
    if kind == 0:
        return {"lock": "RLock"}
    if maxvalue == 1:
        return {"lock": "Lock (or a semaphore of one)"}
    return {"lock": "Semaphore"}


def _diagnose_acquire(semlock: Any, *_: object, **__: object) -> dict[str, Any]:
    return _lock_kind(semlock)


def _diagnose_enter(lock: Any, *_: object, **__: object) -> dict[str, Any]:
    return _lock_kind(getattr(lock, "_semlock", None))


# -- processes and pools ---------------------------------------------------------------


def _process_join_blocks(process: Any, timeout: object = None) -> bool:
    if not _would_wait(timeout):
        return False
    try:
        return bool(process.is_alive())
    except (AssertionError, ValueError):
        return False  # not our child, or closed: join fails at once


def _result_blocks(result: Any, timeout: object = None) -> bool:
    return _would_wait(timeout) and not result.ready()


def _pool_join_blocks(pool: Any) -> bool:
    threads = [
        getattr(pool, name, None)
        for name in ("_worker_handler", "_task_handler", "_result_handler")
    ]
    if any(t is not None and t.is_alive() for t in threads):
        return True
    return any(p.is_alive() for p in list(getattr(pool, "_pool", ())))


#: multiprocessing's own short critical sections (an event's condition lock,
#: a queue's feeder lock) that another process holds for a moment.
_OWN_CRITICAL_SECTIONS = frozenset(
    {
        "multiprocessing.synchronize",
        "multiprocessing.queues",
        "multiprocessing.pool",
        "multiprocessing.managers",
        "multiprocessing.util",
        "multiprocessing.heap",
        "multiprocessing.resource_tracker",
        "concurrent.futures.process",
    }
)


def _rule(target: str, suggestion: str, **options: Any) -> Rule:
    # Patch only when the application already imported the module.
    return Rule(
        target=target,
        family="process",
        suggestion=suggestion,
        import_module=False,
        **options,
    )


_EMPTY = "the queue is empty and block=True (timeout is None or > 0; tried with block=False)"
_FULL = "the queue is full and block=True (timeout is None or > 0; tried with block=False)"

RULES: tuple[Rule, ...] = (
    _rule(
        "multiprocessing.queues:Queue.get",
        _QUEUE,
        name="multiprocessing.Queue.get",
        blocks_when=_get_blocks,
        attempt=_get_attempt,
        condition=_EMPTY,
    ),
    # JoinableQueue overrides put (its get is Queue's): it needs a rule of its own.
    _rule(
        "multiprocessing.queues:JoinableQueue.put",
        _QUEUE,
        name="multiprocessing.JoinableQueue.put",
        blocks_when=_put_blocks,
        attempt=_put_attempt,
        condition=_FULL,
    ),
    _rule(
        "multiprocessing.queues:Queue.put",
        _QUEUE,
        name="multiprocessing.Queue.put",
        blocks_when=_put_blocks,
        attempt=_put_attempt,
        condition=_FULL,
    ),
    _rule(
        "multiprocessing.queues:JoinableQueue.join",
        _QUEUE,
        name="multiprocessing.JoinableQueue.join",
        blocks_when=_joinable_join_blocks,
        condition="tasks are still unfinished (task_done() not called for every item)",
    ),
    *(
        _rule(
            f"multiprocessing.connection:{cls}.{method}",
            _PIPE,
            name=f"multiprocessing.connection.Connection.{method}",
            blocks_when=_recv_blocks,
            condition="nothing is queued on the connection yet (poll() is False)",
        )
        for cls in ("Connection", "PipeConnection")
        for method in ("recv", "recv_bytes", "recv_bytes_into")
    ),
    *(
        _rule(
            f"multiprocessing.connection:{cls}.poll",
            _PIPE,
            name="multiprocessing.connection.Connection.poll",
            blocks_when=_poll_blocks,
            condition="timeout is None or > 0 and nothing is queued yet (poll() and poll(0) "
            "never wait)",
        )
        for cls in ("Connection", "PipeConnection")
    ),
    _rule(
        "multiprocessing.synchronize:Event.wait",
        _SYNC,
        name="multiprocessing.Event.wait",
        blocks_when=_event_wait_blocks,
        condition="the event is not set and timeout is None or > 0",
    ),
    _rule(
        "_multiprocessing:SemLock.acquire",
        _SYNC,
        name="multiprocessing.Lock.acquire",
        blocks_when=_acquire_blocks,
        attempt=_acquire_attempt,
        diagnose=_diagnose_acquire,
        allowed_in=_OWN_CRITICAL_SECTIONS,
        condition="another process or thread holds the Lock/RLock, or the Semaphore is zero, "
        "and block=True (tried with block=False); multiprocessing's own short critical "
        "sections are excused",
    ),
    _rule(
        "multiprocessing.synchronize:SemLock.__enter__",
        _SYNC,
        name="multiprocessing.Lock.__enter__",
        attempt=_enter_attempt,
        diagnose=_diagnose_enter,
        allowed_in=_OWN_CRITICAL_SECTIONS,
        condition="`with lock:` while another process or thread holds it (or the semaphore "
        "is zero); multiprocessing's own short critical sections are excused",
    ),
    _rule(
        "multiprocessing.process:BaseProcess.join",
        _PROCESS,
        name="multiprocessing.Process.join",
        blocks_when=_process_join_blocks,
        condition="the process is still running and timeout is None or > 0",
    ),
    *(
        _rule(
            f"multiprocessing.pool:Pool.{method}",
            _PROCESS,
            name=f"multiprocessing.pool.Pool.{method}",
            condition="always: waits for the workers to finish the tasks",
        )
        for method in ("map", "starmap", "apply")
    ),
    _rule(
        "multiprocessing.pool:Pool.join",
        _PROCESS,
        name="multiprocessing.pool.Pool.join",
        blocks_when=_pool_join_blocks,
        condition="worker processes or the pool's threads are still running",
    ),
    *(
        _rule(
            f"multiprocessing.pool:ApplyResult.{method}",
            _PROCESS,
            name=f"multiprocessing.pool.AsyncResult.{method}",
            blocks_when=_result_blocks,
            condition="the result is not ready and timeout is None or > 0",
        )
        for method in ("get", "wait")
    ),
)
