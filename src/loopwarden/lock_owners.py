"""Which guarded thread holds which ``threading.Lock``: certain self-deadlocks.

A ``threading.Lock`` is not reentrant and CPython keeps no owner for it, so
``lock.acquire()`` by the thread that already holds it waits forever, and
nothing in the lock says so. loopwarden answers "does this thread hold it?"
only where it matters, and puts the cost where it belongs:

* The lock rules (:mod:`loopwarden.blocking.sync`) take a lock for a guarded
  thread with a non-blocking acquire (their precheck and attempt, already the
  checked path). :func:`acquire` writes an owner entry *before* that acquire
  and removes it again if the acquire fails, so an entry can claim a lock only
  while its thread is inside that call or has taken the lock since.
* An entry is forgotten when *another* acquisition of the lock is made (it
  can only succeed once the lock was released): every other path of the lock
  rules' wrapper (:mod:`loopwarden.lock_wrapper`) first tests
  ``not held or lock not in held`` (the lock's identity hash: no allocation)
  and only then takes the lock through :func:`forgetting`, which pops the
  entry in the same C call as the acquire, so no thread can look at the entry
  between the two. An entry that a guarded thread wrote *while* such a call
  waited for the lock (it took the lock in between, and released it) is
  popped right after that call got the lock: it is stale from then on. In C
  (:mod:`loopwarden._speedups`) that pop follows the acquire with no Python
  code in between; in Python it follows at the next bytecode, and only a
  thread switch forced at that very point (the GIL was just taken back) could
  look in between. Releases are not wrapped: ``release()`` and ``__exit__``
  stay the C originals, atomic under Ctrl-C, and free for every thread.
* The table holds the locks themselves (a weak key would cost an allocation
  per test); entries of locks that are free again are pruned by the tracked
  path once the table grows past :data:`_PRUNE_AT`.

A wrong "this thread holds it" would raise on a legal wait in every mode, so
every doubt counts as "not known" (the call is then an ordinary finding and
waits as before): an entry made before the patches were last installed (the
table is cleared then, see :data:`WRAPS`), or of
a lock that also has an *unpatched* bound ``acquire`` or ``__enter__`` alive
(a ``Condition`` made before the patches went in stores ``lock.acquire``; an
acquire through it would go unseen) is never believed.
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
from collections.abc import Callable, Iterator
from functools import partial as _partial
from itertools import chain as _chain
from itertools import starmap as _starmap
from types import CodeType
from typing import Any

from loopwarden.threads import main_ident as _main_ident
from loopwarden.wraps import Wrap

__all__ = [
    "WRAPS",
    "acquire",
    "acquired_at",
    "feed",
    "forgetting",
    "held",
    "logged",
    "observed",
    "taken_on_main",
    "tracks",
    "unpatched_acquire",
]

#: lock -> [owner thread id, code, f_lasti] of each Lock a guarded thread took
#: through the lock rules (a list: a new site is written into the same entry).
_held: dict[Any, list[Any]] = {}

#: Prune entries of free locks once the table has more than this many.
_PRUNE_AT = 16

_LOCK_TYPE = _thread.LockType
_get_ident = threading.get_ident
_getframe = sys._getframe
_pop = _held.pop
_BuiltinMethod = types.BuiltinMethodType

#: The unpatched acquiring methods of a Lock.
_ACQUIRERS = frozenset({_LOCK_TYPE.__dict__["acquire"], _LOCK_TYPE.__dict__["__enter__"]})
_ACQUIRER_NAMES = frozenset({"acquire", "__enter__", "acquire_lock"})

#: The owner table itself, for the wrapper's ``not held or lock not in held`` test.
held = _held

#: What the lock takes of the main thread's checked path returned, in order,
#: while the lock rules' wrapper has it open (see :mod:`loopwarden.lock_wrapper`).
#: Each take stores its result here from C, before any bytecode runs again, so
#: an exception from a signal handler arriving right after a successful take
#: still finds the ``True`` and the wrapper gives the lock back. A wrapper opens
#: it by appending :data:`OPEN` and truncates it back when it returns; with
#: nothing open, takes are not logged.
taken_on_main: list[Any] = []

#: The marker a wrapper appends to open :data:`taken_on_main`.
OPEN = object()

_map = map


def _take(take: Callable[[Any, Any], bool], lock: Any, arg: Any) -> bool:
    """``take(lock, arg)``; on the main thread with the log open, logged from C."""
    log = taken_on_main
    if not log or _get_ident() != _main_ident[0]:
        return take(lock, arg)
    count = len(log)
    log.extend(_map(take, (lock,), (arg,)))
    return bool(log[count])


def acquire(lock: Any, take: Callable[[Any, Any], bool], arg: Any, depth: int) -> bool:
    """``take(lock, arg)``, remembering this thread as the owner if it got ``lock``.

    Args:
        lock: The lock; only a ``threading.Lock`` (``_thread.lock``) is
            tracked, anything else is just taken.
        take: The unpatched acquire (or a call of the original) that must not
            wait: ``acquire(lock, False)``...
        arg: Its second argument.
        depth: Frames between this function's caller and the code that
            called the lock, for the site named in a self-deadlock message.

    Returns:
        What ``take`` returned.
    """
    if type(lock) is not _LOCK_TYPE:
        return _take(take, lock, arg)
    ident = _get_ident()
    known = _held.get(lock)
    if known is not None and known[0] == ident:
        # No other acquisition was made since this thread took it: it still
        # holds it (the attempt fails, the entry stays for the diagnosis), or
        # released it and nobody took it since (the attempt takes it again).
        if not _take(take, lock, arg):
            return False
        frame = _getframe(depth + 1)
        known[1] = frame.f_code  # only the site changes
        known[2] = frame.f_lasti
        return True
    if len(_held) > _PRUNE_AT:
        _prune()
    entry = None
    try:
        frame = _getframe(depth + 1)
        # The instruction, not the line: f_lineno costs a table lookup.
        entry = [ident, frame.f_code, frame.f_lasti]
        # Written first: written after, it could claim a lock that another
        # thread released (legal for a Lock) and a third one took meanwhile.
        _held[lock] = entry
        taken = _take(take, lock, arg)
    except BaseException:
        # An exception (Ctrl-C) anywhere here: claiming nothing is the safe side.
        _drop(lock, entry)
        raise
    if not taken:
        _drop(lock, entry)
    return taken


def _drop(lock: Any, entry: object) -> None:
    try:
        if _held[lock] is entry:
            del _held[lock]
    except KeyError:  # another acquisition forgot it meanwhile
        pass


def _prune() -> None:
    # A free lock is held by nobody: its entry says nothing any more.
    for lock in [lock for lock in list(_held) if not lock.locked()]:
        _held.pop(lock, None)


def acquired_at(lock: Any) -> str | None:
    """Where this thread took ``lock``, if it holds it for certain; else None.

    Returns:
        ``"file:line in function"`` when this thread took the
        ``threading.Lock`` through the lock rules and no other acquisition
        was made since; None when that is not known for certain.
    """
    try:
        entry = _held.get(lock)
    except TypeError:  # unhashable: not a lock of ours
        return None
    if entry is None or entry[0] != _get_ident():
        return None
    if _unseen_acquirer(lock):
        return None  # an acquire may have gone unseen
    code, lasti = entry[1], entry[2]
    function = getattr(code, "co_qualname", code.co_name)  # co_qualname: Python 3.11+
    return f"{code.co_filename}:{_line_of(code, lasti)} in {function}"


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
    box.extend(feed(call, args))
    return box[0]


def feed(call: Callable[..., Any], args: tuple[Any, ...]) -> Iterator[Any]:
    """For the wrapper's Ctrl-C-safe path: an iterator whose first item is ``call(*args)``.

    ``list.extend`` consumes it in C, so the result is stored before any
    bytecode runs, and the owner entry of the lock ``args[0]`` is popped in the
    same C call.
    """
    return _chain(_starmap(call, (args,)), _starmap(_pop, ((args[0], None),)))


def observed(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` as the checked path calls it: forgetting the lock's entry if it has one.

    The registry builds it once per rule and original and reuses it.
    """

    def call(*args: Any, **kwargs: Any) -> Any:
        if not _held or args[0] not in _held:
            result = original(*args, **kwargs)
            if _held and result is True:
                # An entry written by another guarded thread that took the lock
                # while this call waited is stale now that this one has it.
                _held.pop(args[0], None)
            return result
        return forgetting(original, args, kwargs)

    return call


def logged(original: Callable[..., Any], tracked: bool) -> Callable[..., Any]:
    """``original`` as the main thread's checked path calls it: its result logged from C.

    Like :func:`observed`, it forgets the lock's owner entry if it has one
    (only when ``tracked``). The result goes to :data:`taken_on_main` in the
    same C call that takes the lock (see there). The registry builds it once
    per rule and original.
    """

    def call(*args: Any, **kwargs: Any) -> Any:
        log = taken_on_main
        count = len(log)
        run = _partial(original, **kwargs) if kwargs else original
        if tracked and _held and args[0] in _held:
            log.extend(feed(run, args))
        else:
            log.extend(_starmap(run, (args,)))
            if tracked and _held and log[count] is True:
                _held.pop(args[0], None)  # written while this call waited (see observed)
        return log[count]

    return call


def _unwrapped(value: Any) -> Any:
    return getattr(value, "__wrapped__", value) if hasattr(value, "__loopwarden_rule__") else value


#: The C ``acquire`` of each lock type, by the patch target prefix of its rules,
#: captured at import (unwrapped, should the patches be in already).
_ACQUIRE_OF: dict[str, Callable[[Any, bool], bool]] = {
    "_thread:LockType": _unwrapped(_LOCK_TYPE.__dict__["acquire"]),
    "_thread:RLock": _unwrapped(_thread.RLock.__dict__["acquire"]),
}


def unpatched_acquire(target: str) -> Callable[[Any, bool], bool] | None:
    """The C ``acquire`` of the lock type that the rule ``target`` patches, or None.

    Args:
        target: A lock rule's target, ``"_thread:LockType.__enter__"`` for instance.
    """
    return _ACQUIRE_OF.get(target.rpartition(".")[0])


def _around_reinit(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def _at_fork_reinit(lock: Any) -> Any:
        _held.pop(lock, None)  # re-initialised: free, held by nobody
        return original(lock)

    _at_fork_reinit.__wrapped__ = original  # type: ignore[attr-defined]
    return _at_fork_reinit


#: ``Lock._at_fork_reinit`` forgets the lock's entry. Every installation of the
#: patches clears the table: acquisitions made while they were out went
#: unseen, so no entry made before is believed.
WRAPS: tuple[Wrap, ...] = (
    Wrap("_thread:LockType._at_fork_reinit", _around_reinit, on_install=_held.clear),
)


def _after_fork_in_child() -> None:
    # Thread ids of the parent mean nothing here, and threading reinitialises
    # some locks: forget everything (a miss is the safe side).
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
