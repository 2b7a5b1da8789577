"""The console's streams and non-blocking sockets: calls on them never block a loop.

``print`` and console logging on the loop thread cross three patched layers
(``TextIOWrapper``, ``BufferedWriter``, ``FileIO``). Each would otherwise take
the warden and allowance path only to hear "not blocking", so the file-object
rules (:mod:`loopwarden.blocking.filesystem`) have :func:`precheck`: a call on
``sys.stdout``, ``sys.stderr`` or ``sys.stdin`` (current or original) or on
their buffer and raw layers runs as is.

The socket method rules have :func:`non_blocking` as their ``skip_when``: a
socket in non-blocking mode (every socket of asyncio's transports) never waits.

Where the optional C extension was built, the wrapper of both kinds of rules is
its ``StreamMethod`` (:func:`c_wrapper`): the off-loop call, and the console call
(from :data:`state`) or the non-blocking socket call on a guarded thread, are
decided in C; every other call goes to the Python wrapper, which stays the
reference.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from types import MethodDescriptorType
from typing import Any

from loopwarden import native
from loopwarden.c_wrappers import c_wrappable
from loopwarden.rules import NOT_BLOCKED
from loopwarden.threads import running_loop, thread_probes

__all__ = [
    "c_wrapper",
    "handler_kinds",
    "handler_prechecks",
    "layer_ids",
    "non_blocking",
    "precheck",
    "selector_skips",
    "state",
]

#: [weak references to sys.stdout, sys.stderr and sys.stdin, frozenset of the
#: id() of every console stream and of its buffer and raw layers] when last
#: computed. A live stream keeps its layers alive, so those ids cannot be reused
#: while the references still give the current streams. Weak: the C wrapper
#: holds this list, and lives until the io types are torn down at interpreter
#: exit, where a stream freed by it would crash. Replaced whole (one slice
#: assignment), so a reader never sees streams of one moment with ids of another.
state: list[Any] = [None, None, None, frozenset()]


def _reference(stream: object) -> Any:
    try:
        return weakref.ref(stream)
    except TypeError:  # takes no weak reference (__slots__): never current, always looked at
        return None


def layer_ids() -> frozenset[int]:
    """The id() of the console streams and their layers, computed again if they changed."""
    # Current: each reference is alive and gives the stream sys has now (a dead
    # reference gives None, which sys.stdout may be too). Inline: this runs for
    # every log record on the loop.
    out, err, stdin = sys.stdout, sys.stderr, sys.stdin
    ref_out, ref_err, ref_in, ids = state
    if (
        ref_out is not None
        and ref_err is not None
        and ref_in is not None
        and out is not None
        and err is not None
        and stdin is not None
        and ref_out() is out
        and ref_err() is err
        and ref_in() is stdin
    ):
        return ids  # type: ignore[no-any-return]
    found: set[int] = set()
    streams = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__, sys.stdin, sys.__stdin__)
    for stream in streams:
        layer: Any = stream
        for attribute in ("buffer", "raw"):  # TextIOWrapper -> Buffered* -> FileIO
            if layer is None:
                break
            found.add(id(layer))
            try:
                inner = getattr(layer, attribute, None)
                # Only a layer its stream holds (it lives as long as the stream, so
                # its id stays its own): a property that makes a new object per
                # read would leave an id free for reuse.
                layer = inner if inner is getattr(layer, attribute, None) else None
            except Exception:  # noqa: BLE001 - an odd replacement stream: stop at this layer
                layer = None
        if layer is not None:
            found.add(id(layer))
    ids = frozenset(found)
    state[:] = [_reference(sys.stdout), _reference(sys.stderr), _reference(sys.stdin), ids]
    return ids


def precheck(original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Fast verdict for stream methods: the console and its layers never block.

    The buffer and raw layers of the console are matched too, so the inner
    calls of a console write stay silent as they were when only the outer
    one was checked.
    """
    if args and id(args[0]) in layer_ids():
        return original(*args, **kwargs)
    return NOT_BLOCKED


def non_blocking(sock: Any, *_: object, **__: object) -> bool:
    """``skip_when`` of the socket methods: a non-blocking socket never waits.

    asyncio's transports only use such sockets, so every read and write a loop
    makes for its streams is decided by this one read, before the full check.
    """
    return bool(sock.gettimeout() == 0)


#: Handler type -> True: a ``StreamHandler`` whose records go to its ``stream``;
#: False: a handler that writes to no file at all. (File handlers are never in
#: it.) Recorded by the logging rule's precheck, the first time it sees a type;
#: read by the C wrapper of ``Handler.handle`` (:func:`c_wrapper`), which lets a
#: record through at once when its handler's kind says it cannot reach a file.
handler_kinds: dict[type, bool] = {}

#: Prechecks of rules on ``Handler.handle``-like methods (the handler comes
#: first): the engine gives their rules the C wrapper with ``handlers=True``.
handler_prechecks: set[Callable[..., Any]] = set()

#: ``skip_when`` functions of the selector and poll rules (the object is the
#: running loop's own selector, or the poll object inside it): the engine gives
#: their rules the C wrapper with ``own_selector=True``, which asks the same
#: identity questions, so a plain asyncio loop's turn runs no Python frame of ours.
selector_skips: set[Callable[..., Any]] = set()


def c_wrapper(
    original: Callable[..., Any],
    python_wrapper: Callable[..., Any],
    active_wardens: list[Any],
    *,
    sockets: bool = False,
    handlers: bool = False,
    own_selector: bool = False,
) -> Callable[..., Any] | None:
    """The C ``StreamMethod`` over ``python_wrapper``, or None (pure Python here).

    For a method of a built-in type (the io and socket classes' C methods):
    the C object binds like a method descriptor, and unlike a Python function
    it has no code object for callers to introspect, which the C method did
    not have either. With ``handlers``, for ``logging.Handler.handle``, a
    Python function, which nobody introspects in practice (its wrapper keeps
    ``__wrapped__``, so ``inspect.signature`` still finds it).

    Args:
        original: The unpatched method.
        python_wrapper: What decides every call the C code does not.
        active_wardens: The engine's list of active wardens.
        sockets: A socket method: the C code lets a call on a non-blocking
            socket through (:func:`non_blocking`), instead of the console's.
        handlers: ``Handler.handle``: the C code lets a record through when
            :data:`handler_kinds` says its handler's records cannot reach a file.
        own_selector: A selector's ``select`` or a poll object's ``poll``: the C
            code lets the running loop's own through (:data:`selector_skips`),
            and hands every other call on a guarded thread to ``python_wrapper``.
            Python methods too (``selectors.EpollSelector.select``).
    """
    speedups = native.speedups
    if speedups is None:
        return None
    if not (handlers or _is_c_method(original) or (own_selector and c_wrappable(original))):
        return None
    try:
        made: Callable[..., Any] = speedups.StreamMethod(
            original=original,
            slow=python_wrapper,
            running_loop=running_loop,
            probes=thread_probes,
            wardens=active_wardens,
            console=None if sockets else state,
            sys_dict=vars(sys),
            check_timeout=sockets,
            handler_kinds=handler_kinds if handlers else None,
            own_selector=own_selector,
        )
    except Exception:  # noqa: BLE001 - an incompatible extension: the Python wrapper
        return None
    return made


def _is_c_method(original: object) -> bool:
    return isinstance(original, MethodDescriptorType)
