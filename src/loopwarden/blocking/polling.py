"""Family ``network``: waiting on descriptors with select, poll, epoll and selectors.

A wait with a timeout (or none at all) on the loop thread stops the loop for
as long as nothing is ready. The rules report it only when it would really
wait: a zero or negative timeout (``selectors``, ``select.select``) only
polls, and a wait that finds something ready at once is answered by a
zero-timeout attempt, whose result is exactly what the waiting call would
have returned.

The running loop's own selector is never reported: asyncio's selector loop
waits in ``self._selector.select(timeout)`` on the loop thread on every turn.
The wrappers compare the selector (or the ``epoll``/``poll``/``kqueue`` object
under it) with the running loop's ``_selector`` by identity before anything
else (:attr:`Rule.skip_when`), so a loop turn costs two attribute reads per
wrapper, not a full check. qasync's
selector loop waits in Qt (its selector's ``select`` is never called),
QtAsyncio has no selector, and uvloop waits in libuv: none of them calls
these functions.
"""

from __future__ import annotations

import select
import sys
from collections.abc import Callable
from typing import Any

from loopwarden import console_streams
from loopwarden.rules import NOT_BLOCKED, Rule
from loopwarden.threads import running_loop

__all__ = ["DEVPOLL_TYPE", "POLL_TYPE", "RULES"]

_WAIT = (
    "Let the event loop wait for the descriptor instead: `loop.add_reader(fd, callback)` / "
    "`loop.add_writer(...)`, asyncio streams, or `await loop.sock_recv(...)`; in Qt code a "
    "QSocketNotifier. To keep a synchronous wait, `await asyncio.to_thread(...)` it, or "
    "poll with a timeout of 0."
)


def _object_type(factory_name: str) -> type | None:
    """The type of the objects ``select.<factory_name>()`` returns (not a module attribute)."""
    factory = getattr(select, factory_name, None)
    if factory is None:
        return None
    try:
        instance = factory()
    except OSError:  # /dev/poll missing
        return None
    close = getattr(instance, "close", None)
    if close is not None:
        close()
    return type(instance)


#: ``type(select.poll())``: its ``poll`` method is what waits.
POLL_TYPE: type | None = _object_type("poll")
#: ``type(select.devpoll())`` (Solaris), or None.
DEVPOLL_TYPE: type | None = _object_type("devpoll")


def _seconds_wait(timeout: object) -> bool:
    """For selectors, select.select and kqueue: None waits forever, <= 0 only polls."""
    return timeout is None or (isinstance(timeout, (int, float)) and timeout > 0)


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], position: int, name: str) -> Any:
    return args[position] if len(args) > position else kwargs.get(name)


def _select_blocks(*args: Any, **kwargs: Any) -> bool:
    return _seconds_wait(_arg(args, kwargs, 3, "timeout"))


def _select_attempt(
    original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    try:
        ready = original(*args[:3], 0)
    except (OSError, ValueError, TypeError):
        return NOT_BLOCKED  # the real call fails the same way, at once
    return ready if any(ready) else NOT_BLOCKED


def _loops_own(obj: object, *_: object, **__: object) -> bool:
    """``skip_when``: ``obj`` is the running loop's selector or the poll object inside it.

    asyncio's loop calls its selector (and the selector its poll object) on
    every turn: the wrappers answer with this identity test alone, before the
    usual checks, so a loop turn pays two attribute reads per wrapper.
    """
    own = getattr(running_loop(), "_selector", None)
    return own is not None and (obj is own or obj is getattr(own, "_selector", None))


# The C wrapper asks the same questions where it was built (console_streams.c_wrapper).
console_streams.selector_skips.add(_loops_own)


def _called_by_loops_selector(*_: object, **__: object) -> bool:
    """``skip_when`` of ``select.select``: the caller is a method of the loop's own selector.

    On Windows ``selectors.SelectSelector`` calls ``select.select`` on every
    loop turn (elsewhere it holds the original, bound when ``selectors`` was
    imported, and never reaches the patch).
    """
    own = getattr(running_loop(), "_selector", None)
    if own is None:
        return False
    caller = sys._getframe(2)  # 0: here, 1: the wrapper, 2: who called select.select
    return caller.f_locals.get("self") is own


def _selector_blocks(selector: object, timeout: Any = None) -> bool:
    return timeout is None or bool(timeout > 0)  # selectors poll without waiting for <= 0


def _poll_blocks(poller: object, timeout: Any = None, *_: object, **__: object) -> bool:
    return bool(timeout != 0)  # None or a negative timeout waits forever


def _kqueue_blocks(kq: object, *args: Any, **kwargs: Any) -> bool:
    max_events = _arg(args, kwargs, 1, "maxevents")
    if not isinstance(max_events, int) or max_events <= 0:
        return False  # only applies the change list
    return _seconds_wait(_arg(args, kwargs, 2, "timeout"))


def _timeout_zero_attempt(
    original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Repeat ``obj.method(timeout)`` with timeout 0: what is ready now, or NOT_BLOCKED."""
    try:
        ready = original(args[0], 0)
    except (OSError, ValueError, TypeError):
        return NOT_BLOCKED  # the real call fails the same way, at once
    return ready if ready else NOT_BLOCKED


def _epoll_attempt(
    original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    max_events = _arg(args, kwargs, 2, "maxevents")
    try:
        ready = original(args[0], 0, -1 if max_events is None else max_events)
    except (OSError, ValueError, TypeError):
        return NOT_BLOCKED
    return ready if ready else NOT_BLOCKED


def _kqueue_attempt(
    original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    # args: (kqueue, changelist, max_events, timeout)
    if len(args) < 3 or args[1]:
        return NOT_BLOCKED  # applying a change list twice is not harmless
    try:
        ready = original(args[0], None, args[2], 0)
    except (OSError, ValueError, TypeError):
        return NOT_BLOCKED
    return ready if ready else NOT_BLOCKED


def _rule(target: str, **options: Any) -> Rule:
    return Rule(target=target, family="network", suggestion=_WAIT, **options)


_SELECTORS = (
    "SelectSelector",
    "PollSelector",
    "EpollSelector",
    "DevpollSelector",
    "KqueueSelector",
)

_NOT_OWN = "; the running loop's own selector is silent"

RULES: tuple[Rule, ...] = (
    _rule(
        "select:select",
        blocks_when=_select_blocks,
        attempt=_select_attempt,
        skip_when=_called_by_loops_selector,
        condition="timeout is None or > 0 and no descriptor is ready yet",
    ),
    *(
        _rule(
            f"selectors:{cls}.select",
            blocks_when=_selector_blocks,
            skip_when=_loops_own,
            attempt=_timeout_zero_attempt,
            condition="timeout is None or > 0 and nothing is ready yet" + _NOT_OWN,
        )
        for cls in _SELECTORS
    ),
    _rule(
        "loopwarden.blocking.polling:POLL_TYPE.poll",
        name="select.poll.poll",
        blocks_when=_poll_blocks,
        skip_when=_loops_own,
        attempt=_timeout_zero_attempt,
        condition="timeout is None or != 0 (milliseconds; negative waits forever) and nothing "
        "is ready yet" + _NOT_OWN,
    ),
    _rule(
        "loopwarden.blocking.polling:DEVPOLL_TYPE.poll",
        name="select.devpoll.poll",
        blocks_when=_poll_blocks,
        skip_when=_loops_own,
        attempt=_timeout_zero_attempt,
        condition="timeout is None or != 0 (milliseconds; negative waits forever) and nothing "
        "is ready yet" + _NOT_OWN,
    ),
    _rule(
        "select:epoll.poll",
        blocks_when=_poll_blocks,
        skip_when=_loops_own,
        attempt=_epoll_attempt,
        condition="timeout is None or != 0 (negative waits forever) and nothing is ready yet"
        + _NOT_OWN,
    ),
    _rule(
        "select:kqueue.control",
        blocks_when=_kqueue_blocks,
        skip_when=_loops_own,
        attempt=_kqueue_attempt,
        condition="max_events > 0, timeout is None or > 0 and nothing is ready yet" + _NOT_OWN,
    ),
)
