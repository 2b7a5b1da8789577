"""The wrapper of the lock rules: ``acquire()`` and ``with`` of ``threading.Lock`` and ``RLock``.

Every thread takes locks all the time, and so does the loop thread of a dev
build (logging, queues, ``concurrent.futures``), so the rules with an
:attr:`~loopwarden.rules.Rule.undo` get this wrapper instead of the general
one of :func:`loopwarden.engine.make_wrapper`:

* Off the loop: the original at once; for a ``threading.Lock`` that has an
  owner entry, through :func:`loopwarden.lock_owners.forgetting`.
* On a guarded thread, ``lock.acquire()``, ``with lock:`` and
  ``lock.acquire(False)``: one non-blocking attempt, right here. A free lock
  is taken by it, which is all the blocking call would have done; only a held
  lock, or a call with other arguments, takes the rule's full path (its
  precheck, then the engine's checked call).

Where the optional C extension :mod:`loopwarden._speedups` was built (it is
compiled at install time; without a compiler loopwarden is pure Python), the
two common cases run in C (``LockMethod``): the off-loop call, and
``acquire()``, ``with lock:`` or ``acquire(False)`` of a free lock on a
guarded thread. Every other call
goes, unchanged, to the Python wrapper below, which stays the reference.
Setting ``LOOPWARDEN_PURE_PYTHON=1`` before loopwarden is imported leaves the
C extension out (the suite runs the lock tests both ways).

Ctrl-C: Python runs signal handlers on the main thread only, right after a
call returns (among other places), and the main thread is where most apps run
their loop. A ``KeyboardInterrupt`` that arrived after the lock was taken but
before this wrapper returned would reach the caller as an exception from
``acquire()`` or ``__enter__``: the caller would never release the lock, and
the next thread to take it (often the interpreter's own shutdown, through the
logging lock) would wait forever. An unpatched ``with lock:`` is never caught
out like this (bpo-29988). So on the main thread each take is a C call that
stores its result before any bytecode of ours runs again (``list.extend`` over
``map``), and an exception arriving after a successful take gives the lock
back (``rule.undo``) before it goes on to the caller. Off the main thread no
signal handler runs, and the takes are plain calls.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable
from functools import partial as _partial
from itertools import starmap as _starmap
from typing import TYPE_CHECKING, Any

from loopwarden import lock_owners, native
from loopwarden.rules import NOT_BLOCKED, Rule
from loopwarden.threads import guarded_loop, last_loop, main_ident, running_loop, thread_probes

__all__ = ["SPEEDUPS", "make_lock_wrapper"]


if TYPE_CHECKING:
    from loopwarden._speedups import LockMethod


def _load_lock_method() -> type[LockMethod] | None:
    speedups = native.load()
    return None if speedups is None else speedups.LockMethod


_LockMethod = _load_lock_method()

#: Whether the lock rules' common paths run in C (:mod:`loopwarden._speedups`).
SPEEDUPS: bool = _LockMethod is not None

#: What the engine hands in: its checked call, and its list of active wardens.
CheckedCall = Callable[[Rule, Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]

_FALSE = (False,)


def make_lock_wrapper(
    rule: Rule, original: Callable[..., Any], checked_call: CheckedCall, active_wardens: list[Any]
) -> Callable[..., Any]:
    """The replacement of ``original``, the C ``acquire`` or ``__enter__`` of a lock type.

    Args:
        rule: The lock rule; its ``undo`` gives a taken lock back.
        original: The unpatched method.
        checked_call: :func:`loopwarden.engine._checked_call`, the full path.
        active_wardens: The engine's list of active wardens (mutated in place).

    Returns:
        The wrapper (without the attributes the engine sets on every wrapper).
    """
    undo = rule.undo
    if undo is None:
        raise ValueError(f"rule {rule.name} has no undo: it is not a lock rule")
    precheck = rule.precheck
    # Local names are closure cells: faster to read than module globals.
    loop_of_this_thread = running_loop
    probes = thread_probes
    get_ident = threading.get_ident
    main = main_ident
    last = last_loop
    is_guarded = guarded_loop
    wardens = active_wardens
    not_blocked = NOT_BLOCKED
    getframe = sys._getframe
    # None for a rule of another type (a rule of your own with an undo): its
    # calls all take the full path.
    take = lock_owners.unpatched_acquire(rule.target)
    false = _FALSE
    # threading.Lock: a lock a guarded thread took has an owner entry, which
    # any other acquisition forgets (see loopwarden.lock_owners).
    tracked = lock_owners.tracks(original)
    # An RLock gets an empty table: `not held` skips the lookup.
    held: dict[Any, Any] = lock_owners.held if tracked else {}
    held_get = held.get
    forgetting = lock_owners.forgetting
    feed = lock_owners.feed
    log = lock_owners.taken_on_main
    opened = lock_owners.OPEN
    checked_original = lock_owners.observed(original) if tracked else original
    main_checked_original = lock_owners.logged(original, tracked)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # pytest: the caller's line, also for the original's own errors
        ident = get_ident()
        on_main = ident == main[0]
        loop = loop_of_this_thread()
        if loop is None and (not probes or ident not in probes):
            guarded = False
        else:
            # Inline for the common case, a loop whose verdict this thread
            # already knows; guarded_loop() works it out otherwise.
            guarded = bool(wardens) and (
                (loop is not None and loop is last.loop and last.runs_here)
                or is_guarded() is not None
            )
        if guarded:
            if (
                take is not None
                and not kwargs
                and (len(args) == 1 or (len(args) == 2 and args[1] is False))
            ):
                lock = args[0]
                known = held_get(lock) if tracked else None
                # A Lock not known to be this thread's takes the full path,
                # which writes the owner entry before it takes the lock.
                if not tracked or (known is not None and known[0] == ident):
                    if not on_main:
                        if take(lock, False):
                            if known is not None:
                                frame = getframe(1)  # the site a self-deadlock message names
                                known[1] = frame.f_code
                                known[2] = frame.f_lasti
                            return True
                    else:
                        box: list[Any] = []
                        try:
                            box.extend(map(take, (lock,), false))
                            if box[0]:
                                if known is not None:
                                    frame = getframe(1)
                                    known[1] = frame.f_code
                                    known[2] = frame.f_lasti
                                # Not `return True`: a constant is loaded after the try
                                # is left, where an exception would go unseen.
                                return box[0]
                        except BaseException:
                            if box and box[0] is True:
                                _give_back(undo, lock)
                            raise
                    if len(args) == 2:
                        return False  # acquire(False) of a held lock: it never waits
            # The full path. Frames between the caller and the rule's code
            # are counted (precheck, attempt, checked call): it stays inline.
            if not on_main:
                if precheck is not None:
                    result = precheck(original, args, kwargs)
                    if result is not not_blocked:
                        return result
                return checked_call(rule, checked_original, args, kwargs)
            start = len(log)
            try:
                log.append(opened)  # the takes below log their results there
                result = not_blocked
                if precheck is not None:
                    result = precheck(original, args, kwargs)
                if result is not_blocked:
                    result = checked_call(rule, main_checked_original, args, kwargs)
                return result  # inside the try: an exception up to here is seen below
            except BaseException:
                if any(taken is True for taken in log[start:]):
                    _give_back(undo, args[0])
                raise
            finally:
                del log[start:]  # no call: nothing is handled between this and the return
        if not on_main:
            if not held or args[0] not in held:
                result = original(*args, **kwargs)
                if held and result is True:
                    # An entry written by a guarded thread that took the lock
                    # while this call waited is stale now that this one has it.
                    held.pop(args[0], None)
                return result
            return forgetting(original, args, kwargs)
        # Not checked, on the main thread. C code (list.extend over a starmap)
        # calls the original and stores its result before any bytecode of ours
        # runs again, so a Ctrl-C handled right after the call still finds the
        # result and gives the lock back instead of leaving it held.
        call = _partial(original, **kwargs) if kwargs else original
        box = []
        try:
            if not held or args[0] not in held:
                box.extend(_starmap(call, (args,)))
                if held and box[0] is True:
                    held.pop(args[0], None)  # written while this call waited (see above)
            else:  # the same, and the lock's owner entry is forgotten
                box.extend(feed(call, args))
            return box[0]
        except BaseException:
            if box and box[0] is True:
                _give_back(undo, args[0])
            raise

    if _LockMethod is None or take is None:
        return wrapper
    try:
        return _LockMethod(
            original=original,
            take=take,
            slow=wrapper,
            running_loop=loop_of_this_thread,
            probes=probes,
            wardens=wardens,
            held=held if tracked else None,
            last=last,
        )
    except Exception:  # noqa: BLE001 - a broken extension must not break activation
        return wrapper


def _give_back(undo: Callable[[Any], object], lock: Any) -> None:
    # Released meanwhile (by another thread, legal for a Lock): the exception
    # in flight matters more than this one.
    with contextlib.suppress(Exception):
        undo(lock)
