"""Would a blocking socket call wait right now? A zero-timeout poll of that one socket.

A blocking-mode socket only waits when it is not ready: ``recv`` on a socket
with data queued (or at end of stream), ``accept`` with a connection pending
and ``send`` of data that fits the free send buffer all return at once. That
is the asyncio documentation's own ``add_reader`` example, and what a
callback registered with ``add_reader``/``add_writer`` (or code after a
``select``) does. These checks run only on the guarded thread, after the
cheap "is a loop running here" test, so other threads never pay for them.

Sending is judged conservatively, because the kernel charges buffer overhead
to the send buffer on top of the payload:

* Linux: the socket must poll writable (``POLLOUT``) and the data must fit in
  half of the free send buffer, ``(SO_SNDBUF - SIOCOUTQ) / 2``.
* Elsewhere (no ``SIOCOUTQ`` for sockets): ``POLLOUT`` and at most
  :data:`SEND_LOW_WATER` bytes, the BSD send low-water mark that ``POLLOUT``
  guarantees to be free.
"""

from __future__ import annotations

import select
import socket
import struct
import sys
from typing import Any

__all__ = ["SEND_LOW_WATER", "byte_count", "free_send_buffer", "readable_now", "writable_now"]

#: Bytes a writable socket accepts at once where the free buffer is not known.
SEND_LOW_WATER = 2048


def _unpatched(value: Any) -> Any:
    # This module may be imported while loopwarden's patches are in.
    return getattr(value, "__wrapped__", value) if hasattr(value, "__loopwarden_rule__") else value


_poll_factory = getattr(select, "poll", None)
_poll_method = _unpatched(type(_poll_factory()).poll) if _poll_factory is not None else None
_select = _unpatched(select.select)
# poll() flags; the fallbacks are Linux's values, used for select() results on Windows.
_POLLIN = getattr(select, "POLLIN", 1)
_POLLOUT = getattr(select, "POLLOUT", 4)
_POLLERR = getattr(select, "POLLERR", 8)
# Error and hang-up make the call fail or return at once: that is "ready" too.
_POLL_DONE = _POLLERR | getattr(select, "POLLHUP", 0) | getattr(select, "POLLNVAL", 0)

try:
    import fcntl
    import termios

    _ioctl: Any = fcntl.ioctl
    # On Linux TIOCOUTQ and SIOCOUTQ are the same request; BSDs answer ENOTTY on sockets.
    _OUTQ: int | None = termios.TIOCOUTQ if sys.platform.startswith("linux") else None
except ImportError:  # Windows
    _ioctl, _OUTQ = None, None


def _poll_once(fd: int, events: int) -> int:
    """The events ready on ``fd`` now (a zero-timeout poll), as poll() flags."""
    if _poll_factory is not None and _poll_method is not None:
        poller = _poll_factory()
        poller.register(fd, events)
        ready = _poll_method(poller, 0)
        return int(ready[0][1]) if ready else 0
    # Windows: select() works on sockets (and has no FD_SETSIZE limit there).
    wanted = [fd]
    read, write, error = _select(
        wanted if events & _POLLIN else [], wanted if events & _POLLOUT else [], wanted, 0
    )
    return (_POLLIN if read else 0) | (_POLLOUT if write else 0) | (_POLLERR if error else 0)


def readable_now(sock: socket.socket) -> bool:
    """True when a receive (or accept) on ``sock`` would return at once."""
    fd = sock.fileno()
    if fd < 0:
        return True  # closed: the call fails at once
    return bool(_poll_once(fd, _POLLIN) & (_POLLIN | _POLL_DONE))


def free_send_buffer(sock: socket.socket) -> int | None:
    """Bytes the kernel's send buffer of ``sock`` has free, or None where unknown."""
    if _OUTQ is None or _ioctl is None:
        return None
    try:
        size: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        queued: int = struct.unpack("i", _ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0"))[0]
    except OSError:
        return None
    return max(0, size - queued)


def writable_now(sock: socket.socket, nbytes: int) -> bool:
    """True when sending ``nbytes`` on ``sock`` would return at once (see module doc)."""
    fd = sock.fileno()
    if fd < 0:
        return True  # closed: the call fails at once
    ready = _poll_once(fd, _POLLOUT)
    if ready & _POLL_DONE:
        return True  # a reset or closed connection fails at once
    if not ready & _POLLOUT:
        return False
    free = free_send_buffer(sock)
    if free is None:
        return nbytes <= SEND_LOW_WATER
    return nbytes <= free // 2


def byte_count(data: object) -> int:
    """Length in bytes of a bytes-like object (0 if it is not one: the call fails at once)."""
    try:
        with memoryview(data) as view:  # type: ignore[arg-type]
            return view.nbytes
    except TypeError:
        return 0
