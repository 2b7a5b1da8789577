"""Which guarded thread holds which ``threading.Lock``: certain self-deadlocks.

A ``threading.Lock`` is not reentrant and CPython keeps no owner for it, so
``lock.acquire()`` by the thread that already holds it waits forever, and
nothing in the lock says so. loopwarden answers "does this thread hold it?"
only where it matters, and puts the cost where it belongs:

* The lock rules (:mod:`loopwarden.families.sync`) take a lock for a guarded
  thread with a non-blocking acquire (their precheck and attempt, already the
  checked path). :func:`acquire` writes an owner entry *before* that acquire
  and removes it again if the acquire fails, so an entry can claim a lock only
  while its thread is inside that call or has taken the lock since.
* An entry is forgotten when *another* acquisition of the lock succeeds (the
  lock was released meanwhile): every other path of the lock rules' wrapper
  (:func:`loopwarden.engine.make_wrapper`) first tests ``if not held`` and
  ``id(lock) not in held`` and only then takes the lock through
  :func:`forgetting`, which pops the entry in the same C call as the acquire,
  so no thread can look at the entry between the two. Releases are not
  wrapped: ``release()`` and ``__exit__`` stay the C originals, atomic under
  Ctrl-C, and free for every thread.

A wrong "this thread holds it" would raise on a legal wait in every mode, so
every doubt counts as "not known" (the call is then an ordinary finding and
waits as before): an entry of a lock that died, of an earlier installation of
the patches, or of a lock that also has an *unpatched* bound ``acquire`` or
``__enter__`` alive (a ``Condition`` made before the patches went in stores
``lock.acquire``; an acquire through it would go unseen) is never believed.
Not tracked: a Lock the guarded thread took after *waiting* for it, and the
deprecated ``acquire_lock()`` alias.
"""

from __future__ import annotations

import _thread
import gc
import os
import sys
import threading
import types
import weakref
from collections.abc import Callable, Iterator
from functools import partial as _partial
from itertools import chain as _chain
from itertools import starmap as _starmap
from types import CodeType
from typing import Any

__all__ = ["acquire", "acquired_at", "forgetting", "held", "observed", "tracks"]

#: id(lock) -> [owner thread id, weak reference to the lock, code, f_lasti] of
#: each Lock a guarded thread took through the lock rules.
#: A list, so that a new site can be written into an entry of the same owner.
_held: dict[int, list[Any]] = {}

_LOCK_TYPE = _thread.LockType
_get_ident = threading.get_ident
_ref = weakref.ref
_getframe = sys._getframe
_pop = _held.pop
_BuiltinMethod = types.BuiltinMethodType

#: The unpatched acquiring methods of a Lock.
_ACQUIRERS = frozenset({_LOCK_TYPE.__dict__["acquire"], _LOCK_TYPE.__dict__["__enter__"]})
_ACQUIRER_NAMES = frozenset({"acquire", "__enter__", "acquire_lock"})

#: The owner table itself, for the wrapper's ``if not held`` test.
held = _held


def _forget_dead(reference: weakref.ref[Any], held: dict[int, list[Any]] = _held) -> None:
    # A lock that died while held: drop its entry (called by the weakref;
    # `held` is bound here, since module globals may be gone at exit).
    for key, entry in list(held.items()):
        if entry[1] is reference:
            held.pop(key, None)


def acquire(lock: Any, take: Callable[..., bool], *args: Any, depth: int = 1) -> bool:
    """``take(lock, *args)``, remembering this thread as the owner if it got ``lock``.

    Args:
        lock: The lock; only a ``threading.Lock`` (``_thread.lock``) is
            tracked, anything else is just taken.
        take: The unpatched acquire (or the call's original) that must not
            wait: ``acquire(False)``, ``acquire(timeout=0)``...
        *args: Its arguments after ``lock``.
        depth: Frames between this function's caller and the code that
            called the lock, for the site named in a self-deadlock message.

    Returns:
        What ``take`` returned.
    """
    if type(lock) is not _LOCK_TYPE:
        return take(lock, *args)
    key = id(lock)
    ident = _get_ident()
    known = _held.get(key)
    if known is not None and known[0] == ident and known[1]() is lock:
        # No other acquisition took the lock since this thread did: it still
        # holds it (the attempt fails, the entry stays for the diagnosis), or
        # released it and nobody took it since (the attempt takes it again).
        taken = take(lock, *args)
        if taken:
            try:
                frame = _getframe(depth + 1)
                known[2:] = [frame.f_code, frame.f_lasti]  # only the site changes
            except ValueError:
                known[2:] = [None, 0]
        return taken
    entry = None
    try:
        try:
            frame = _getframe(depth + 1)
            # The instruction, not the line: f_lineno costs a table lookup.
            entry = [ident, _ref(lock, _forget_dead), frame.f_code, frame.f_lasti]
        except ValueError:  # no such frame
            entry = [ident, _ref(lock, _forget_dead), None, 0]
        # Written first: written after, it could claim a lock that another
        # thread released (legal for a Lock) and a third one took meanwhile.
        _held[key] = entry
        taken = take(lock, *args)
    except BaseException:
        # An exception (Ctrl-C) anywhere here: claiming nothing is the safe side.
        _drop(key, entry)
        raise
    if not taken:
        _drop(key, entry)
    return taken


def _drop(key: int, entry: object) -> None:
    try:
        if _held[key] is entry:
            del _held[key]
    except KeyError:  # another acquisition forgot it meanwhile
        pass


def acquired_at(lock: Any) -> str | None:
    """Where this thread took ``lock``, if it holds it for certain; else None.

    Returns:
        ``"file:line in function"`` (``""`` if the site is unknown) when
        this thread took the ``threading.Lock`` through the lock rules and has
        not released it; None when that is not known for certain.
    """
    entry = _held.get(id(lock))
    if entry is None or entry[0] != _get_ident() or entry[1]() is not lock:
        return None
    if _unseen_acquirer(lock):
        return None  # an acquire may have gone unseen
    code, lasti = entry[2], entry[3]
    if code is None:
        return ""
    line = _line_of(code, lasti)
    function = getattr(code, "co_qualname", code.co_name)  # co_qualname: Python 3.11+
    return f"{code.co_filename}:{line} in {function}"


def _line_of(code: CodeType, lasti: int) -> int | None:
    for start, end, line in code.co_lines():
        if start <= lasti < end:
            return line
    return None


def _unseen_acquirer(lock: Any) -> bool:
    """An unpatched bound acquire of ``lock`` exists (made before the patches)."""
    return any(
        type(r) is _BuiltinMethod and r.__self__ is lock and r.__name__ in _ACQUIRER_NAMES
        for r in gc.get_referrers(lock)
    )


def tracks(original: object) -> bool:
    """True if ``original`` is an unpatched acquire or ``__enter__`` of ``threading.Lock``."""
    return original in _ACQUIRERS


def forgetting(original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``original(*args, **kwargs)``, then forget the owner entry of the lock ``args[0]``.

    Called when the lock has an entry and this call is not the tracked
    acquire of a guarded thread: if it takes the lock, the lock was released
    since the entry was written. The pop runs right after the acquire inside
    one C call (``list.extend`` over a chain of two ``starmap``), so no other
    thread, and no Ctrl-C, gets in between. It runs after a failed attempt too
    (the entry is then dropped for nothing: only a self-deadlock goes unseen).
    """
    call = _partial(original, **kwargs) if kwargs else original
    box: list[Any] = []
    box.extend(_chain(_starmap(call, (args,)), _starmap(_pop, ((id(args[0]), None),))))
    return box[0]


def feed(call: Callable[..., Any], args: tuple[Any, ...]) -> Iterator[Any]:
    """For the wrapper's Ctrl-C-safe path: an iterator whose first item is ``call(*args)``.

    ``list.extend`` consumes it in C, so the result is stored before any
    bytecode runs, and the owner entry of the lock ``args[0]`` is popped in the
    same C call.
    """
    return _chain(_starmap(call, (args,)), _starmap(_pop, ((id(args[0]), None),)))


def observed(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` as the checked path calls it: forgetting the lock's entry if it has one.

    Building it means a new installation of the patches: acquisitions made
    while they were out went unseen, so no entry made before is believed.
    """
    _held.clear()

    def call(*args: Any, **kwargs: Any) -> Any:
        if not _held or id(args[0]) not in _held:
            return original(*args, **kwargs)
        return forgetting(original, args, kwargs)

    return call


def _after_fork_in_child() -> None:
    # Thread ids of the parent mean nothing here, and threading reinitialises
    # some locks: forget everything (a miss is the safe side).
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
