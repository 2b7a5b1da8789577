"""The asyncio half of the ``thread`` family: loop-bound objects used from other threads.

asyncio is not thread-safe: only ``call_soon_threadsafe`` and
``run_coroutine_threadsafe`` may be called from a thread other than the one
running the loop. Each entry below names the class that *defines* the method
(subclasses inherit the patch); loops that override a method (qasync,
PySide6.QtAsyncio, uvloop) get their own entry. Third-party targets are
patched only when the application imported the module already.

``call_soon_threadsafe`` itself is never patched and never reaches a patched
method: asyncio's calls the private ``_call_soon``, qasync's emits a signal,
QtAsyncio's and uvloop's go straight to their internals.
"""

from __future__ import annotations

from loopwarden.affinity.checks import asyncio_owned
from loopwarden.affinity.tables import method_rules
from loopwarden.rules import Rule

__all__ = ["RULES"]

LOOP = (
    "asyncio loops are not thread-safe. From another thread, use "
    "`loop.call_soon_threadsafe(callback, *args)` to run code on the loop, or "
    "`asyncio.run_coroutine_threadsafe(coro, loop)` to run a coroutine there (it returns a "
    "concurrent.futures.Future the worker can wait on)."
)
FUTURE = (
    "A Future belongs to the thread of its loop. Resolve it there: "
    "`loop.call_soon_threadsafe(fut.set_result, value)`; or let asyncio do it by running the "
    "work with `await loop.run_in_executor(None, work)` / `await asyncio.to_thread(work)`."
)
TRANSPORT = (
    "Transports and streams are not thread-safe. Write and close them on the loop thread: "
    "`loop.call_soon_threadsafe(transport.write, data)`, or "
    "`asyncio.run_coroutine_threadsafe(send(data), loop)` for a coroutine that writes and drains."
)
PRIMITIVE = (
    "asyncio.Queue, Event, Condition, Lock and Semaphore are not thread-safe. Call them on the "
    "loop thread: `loop.call_soon_threadsafe(queue.put_nowait, item)` (or `event.set`), or hand "
    "data over in a `queue.Queue` that a coroutine reads with `await asyncio.to_thread(q.get)`."
)

_LOOP_WHEN = (
    "called from a thread other than the one running the loop (a loop that is not running "
    "yet, or any more, is free to use from any thread)"
)
_BOUND_WHEN = (
    "called from a thread other than the one running the object's loop (objects of a loop "
    "that is not running, and objects not bound to a loop yet, are free to use)"
)

#: (module, class, methods, import_module): loop classes that define loop methods.
_LOOP_CLASSES: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    (
        "asyncio.base_events",
        "BaseEventLoop",
        ("call_soon", "call_later", "call_at", "create_task", "run_in_executor", "stop"),
        True,
    ),
    (
        "asyncio.selector_events",
        "BaseSelectorEventLoop",
        ("add_reader", "add_writer", "remove_reader", "remove_writer"),
        True,
    ),
    (
        "qasync",
        "_QEventLoop",
        ("call_soon", "call_later", "call_at", "run_in_executor", "stop"),
        False,
    ),
    (
        "PySide6.QtAsyncio.events",
        "QAsyncioEventLoop",
        ("call_soon", "call_later", "call_at", "create_task", "run_in_executor", "stop"),
        False,
    ),
    # uvloop.Loop is a Python subclass of the C loop: its methods can be
    # shadowed on it (the C type itself refuses new attributes).
    (
        "uvloop",
        "Loop",
        (
            "call_soon",
            "call_later",
            "call_at",
            "create_task",
            "run_in_executor",
            "stop",
            "add_reader",
            "add_writer",
            "remove_reader",
            "remove_writer",
        ),
        False,
    ),
)

#: (module, class, display prefix, methods, suggestion, import_module): loop-bound objects.
_BOUND_CLASSES: tuple[tuple[str, str, str, tuple[str, ...], str, bool], ...] = (
    (
        "asyncio.futures",
        "Future",
        "asyncio.Future",
        ("set_result", "set_exception", "cancel", "add_done_callback"),
        FUTURE,
        True,
    ),
    ("asyncio.tasks", "Task", "asyncio.Task", ("cancel", "add_done_callback"), FUTURE, True),
    (
        "PySide6.QtAsyncio.futures",
        "QAsyncioFuture",
        "asyncio.Future",
        ("set_result", "set_exception", "cancel", "add_done_callback"),
        FUTURE,
        False,
    ),
    ("PySide6.QtAsyncio.tasks", "QAsyncioTask", "asyncio.Task", ("cancel",), FUTURE, False),
    (
        "asyncio.selector_events",
        "_SelectorSocketTransport",
        "asyncio.Transport",
        ("write", "write_eof"),
        TRANSPORT,
        True,
    ),
    (
        "asyncio.selector_events",
        "_SelectorTransport",
        "asyncio.Transport",
        ("close", "abort"),
        TRANSPORT,
        True,
    ),
    (
        "asyncio.selector_events",
        "_SelectorDatagramTransport",
        "asyncio.DatagramTransport",
        ("sendto",),
        TRANSPORT,
        True,
    ),
    (
        "asyncio.sslproto",
        "_SSLProtocolTransport",
        "asyncio.Transport",
        ("write", "writelines", "close", "abort"),
        TRANSPORT,
        True,
    ),
    (
        "asyncio.unix_events",
        "_UnixWritePipeTransport",
        "asyncio.Transport",
        ("write", "close"),
        TRANSPORT,
        True,
    ),
    (
        "asyncio.unix_events",
        "_UnixReadPipeTransport",
        "asyncio.Transport",
        ("close",),
        TRANSPORT,
        True,
    ),
    (
        "asyncio.queues",
        "Queue",
        "asyncio.Queue",
        ("put_nowait", "get_nowait", "task_done", "shutdown"),
        PRIMITIVE,
        True,
    ),
    ("asyncio.locks", "Event", "asyncio.Event", ("set", "clear"), PRIMITIVE, True),
    ("asyncio.locks", "Condition", "asyncio.Condition", ("notify", "notify_all"), PRIMITIVE, True),
    ("asyncio.locks", "Lock", "asyncio.Lock", ("release",), PRIMITIVE, True),
    ("asyncio.locks", "Semaphore", "asyncio.Semaphore", ("release",), PRIMITIVE, True),
)


def _rules() -> tuple[Rule, ...]:
    rules: list[Rule] = []
    on_loop = asyncio_owned(bound=False)
    on_bound = asyncio_owned(bound=True)
    for module, cls, methods, import_module in _LOOP_CLASSES:
        rules += method_rules(
            module,
            cls,
            methods,
            prefix="loop",
            suggestion=LOOP,
            condition=_LOOP_WHEN,
            import_module=import_module,
            wrap=on_loop,
        )
    for module, cls, prefix, methods, suggestion, import_module in _BOUND_CLASSES:
        rules += method_rules(
            module,
            cls,
            methods,
            prefix=prefix,
            suggestion=suggestion,
            condition=_BOUND_WHEN,
            import_module=import_module,
            wrap=on_bound,
        )
    return tuple(rules)


#: The asyncio rules of the ``thread`` family.
RULES: tuple[Rule, ...] = _rules()
