"""Family ``network``: blocking sockets, TLS, certificate loading and name resolution.

The standard library's HTTP clients have rules of their own, so one
``urlopen()`` is one finding named after it rather than one per socket call
inside it (and so reading the response, which goes through ``sock.makefile()``,
is covered too). Other sync clients (requests, ``httpx.Client``) are caught
through the socket layers: they resolve names, connect and send on blocking
sockets. asyncio's own socket work is silent because it only ever uses
non-blocking sockets.

A blocking socket that is *ready* does not wait: ``recv``/``accept`` with data
or a connection queued, ``send``/``sendall`` of data that fits the free send
buffer (an ``add_reader``/``add_writer`` callback, code after ``select``).
Those are judged with a zero-timeout poll of that one socket; see
:mod:`loopwarden.blocking.socket_readiness`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

from loopwarden import console_streams
from loopwarden.blocking.socket_readiness import byte_count, readable_now, writable_now
from loopwarden.rules import Rule

__all__ = ["RULES"]

_SOCKET = (
    "Use asyncio streams (`await asyncio.open_connection(...)`, `asyncio.start_server(...)`) "
    "or the loop's socket methods on a non-blocking socket (`sock.setblocking(False)`, then "
    "`await loop.sock_connect/sock_recv/sock_sendall/sock_accept(...)`). Sync HTTP clients "
    "(urllib, http.client, requests, httpx.Client) end up here: use an async client "
    "(httpx.AsyncClient, aiohttp) or `await asyncio.to_thread(...)`. In Qt code use "
    "QTcpSocket/QUdpSocket and their signals."
)
_HTTP = (
    "A synchronous HTTP request waits for the network and the server. Use an async client "
    "(`httpx.AsyncClient`, aiohttp), or `await asyncio.to_thread(urllib.request.urlopen, "
    "url)`; in Qt code use QNetworkAccessManager and its finished signal."
)
_TLS = (
    "Let asyncio do TLS: `await asyncio.open_connection(host, port, ssl=context)`, or "
    "`await loop.start_tls(...)` to upgrade a connection; both handshake without blocking. "
    "In Qt code use QSslSocket."
)
_CERTS = (
    "Loading certificates reads files from disk. Build SSL contexts once at start-up, before "
    "the loop runs, or in a worker: `await asyncio.to_thread(ssl.create_default_context, "
    "cafile=...)`. `load_verify_locations(cadata=...)` with certificates already in memory "
    "does not touch the disk."
)
_DNS = (
    "Name resolution can wait seconds on a slow or unreachable DNS server. Use "
    "`await loop.getaddrinfo(...)` / `await loop.getnameinfo(...)` (they run in the default "
    "executor) or pass an IP address; in Qt code use QHostInfo.lookupHost()."
)

_BLOCKING_SOCKET = (
    "the socket waits: gettimeout() is None or > 0 "
    "(non-blocking sockets and descriptors are silent)"
)


def _socket_blocks(sock: Any, *_: object, **__: object) -> bool:
    """True when the socket waits: blocking mode, or a timeout, on a blocking descriptor.

    A socket with a timeout keeps its descriptor non-blocking and waits in
    poll(), so only ``gettimeout() is None`` needs the descriptor checked (it
    may have been switched with ``os.set_blocking``).
    """
    timeout = sock.gettimeout()
    if timeout == 0:
        return False
    if timeout is not None:
        return True
    fd = sock.fileno()
    if fd < 0:
        return False  # closed: the call fails at once
    try:
        return os.get_blocking(fd)
    except OSError:
        return True  # platforms where sockets are not file descriptors


_MSG_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_MSG_WAITALL = getattr(socket, "MSG_WAITALL", 0)


def _flags(args: tuple[Any, ...], kwargs: dict[str, Any], position: int) -> int:
    flags = args[position] if len(args) > position else kwargs.get("flags", 0)
    return flags if isinstance(flags, int) else 0


def _receive_blocks(flags_at: int) -> Callable[..., bool]:
    """``blocks_when`` of a receive whose ``flags`` is argument ``flags_at`` (after self)."""

    def blocks(sock: Any, *args: Any, **kwargs: Any) -> bool:
        if not _socket_blocks(sock):
            return False
        flags = _flags(args, kwargs, flags_at)
        if flags & _MSG_DONTWAIT:
            return False
        if flags & _MSG_WAITALL:
            return True  # waits for the whole buffer, not just for readiness
        return not readable_now(sock)

    return blocks


def _accept_blocks(sock: Any, *_: object) -> bool:
    return _socket_blocks(sock) and not readable_now(sock)


def _send_blocks(sock: Any, data: object = b"", *args: Any, **kwargs: Any) -> bool:
    if not _socket_blocks(sock) or _flags(args, kwargs, 0) & _MSG_DONTWAIT:
        return False
    return not writable_now(sock, byte_count(data))


def _is_ip_literal(host: object) -> bool:
    """True for None and numeric IPv4/IPv6 addresses: resolving them does no lookup."""
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    host = host.partition("%")[0]  # IPv6 scope id: "fe80::1%eth0"
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return True
    return False


def _is_numeric_port(port: object) -> bool:
    # A service name ("http") is looked up in /etc/services.
    if port is None or isinstance(port, int):
        return True
    if isinstance(port, bytes):
        port = port.decode("ascii", "replace")
    return isinstance(port, str) and port.isdigit()


def _getaddrinfo_blocks(
    host: object,
    port: object,
    family: int = 0,
    type: int = 0,
    proto: int = 0,
    flags: int = 0,
) -> bool:
    numeric_host = bool(flags & socket.AI_NUMERICHOST) or _is_ip_literal(host)
    numeric_port = bool(flags & getattr(socket, "AI_NUMERICSERV", 0)) or _is_numeric_port(port)
    return not (numeric_host and numeric_port)


def _hostname_blocks(hostname: object, *_: object) -> bool:
    return not _is_ip_literal(hostname)


def _getnameinfo_blocks(sockaddr: object, flags: int = 0) -> bool:
    numeric = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
    return (flags & numeric) != numeric


def _verify_locations_blocks(
    context: object, cafile: object = None, capath: object = None, cadata: object = None
) -> bool:
    return cafile is not None or capath is not None


def _rule(target: str, suggestion: str, **options: Any) -> Rule:
    return Rule(target=target, family="network", suggestion=suggestion, **options)


#: socket.socket methods that wait on the peer whatever is queued.
_SOCKET_METHODS = ("connect", "connect_ex", "sendto", "sendmsg", "sendfile")

#: Receives, by the position of their ``flags`` argument (after self): a ready
#: socket (data, end of stream or an error queued) returns at once.
_RECEIVE_METHODS = {
    "recv": 1,
    "recv_into": 2,
    "recvfrom": 1,
    "recvfrom_into": 2,
    "recvmsg": 2,
    "recvmsg_into": 2,
}

_NOT_READY = (
    "the socket waits (gettimeout() is None or > 0) and is not ready: a zero-timeout poll "
    "of it finds {what} (MSG_DONTWAIT and non-blocking sockets are silent)"
)
_RECEIVE_CONDITION = _NOT_READY.format(what="no data, end of stream or error queued") + (
    "; MSG_WAITALL always waits"
)
_ACCEPT_CONDITION = _NOT_READY.format(what="no pending connection")
_SEND_CONDITION = _NOT_READY.format(
    what="no room: not POLLOUT, or the data exceeds half the free send buffer "
    "(SO_SNDBUF - SIOCOUTQ; 2 KiB where that is unknown)"
)

#: ssl.SSLSocket overrides these; each may wait for TLS records from the peer.
_SSL_SOCKET_METHODS = (
    "do_handshake",
    "connect",
    "connect_ex",
    "accept",
    "read",
    "write",
    "recv",
    "recv_into",
    "send",
    "sendall",
    "sendfile",
    "unwrap",
)

#: asyncio builds a default context itself for ``ssl=True``; that is its own machinery.
_ASYNCIO_TLS_SETUP = frozenset({"asyncio.sslproto:_create_transport_context"})

RULES: tuple[Rule, ...] = (
    *(
        _rule(
            f"socket:socket.{method}",
            _SOCKET,
            blocks_when=_socket_blocks,
            skip_when=console_streams.non_blocking,
            condition=_BLOCKING_SOCKET,
        )
        for method in _SOCKET_METHODS
    ),
    *(
        _rule(
            f"socket:socket.{method}",
            _SOCKET,
            blocks_when=_receive_blocks(flags_at),
            skip_when=console_streams.non_blocking,
            condition=_RECEIVE_CONDITION,
        )
        for method, flags_at in _RECEIVE_METHODS.items()
    ),
    _rule(
        "socket:socket.accept",
        _SOCKET,
        blocks_when=_accept_blocks,
        skip_when=console_streams.non_blocking,
        condition=_ACCEPT_CONDITION,
    ),
    *(
        _rule(
            f"socket:socket.{method}",
            _SOCKET,
            blocks_when=_send_blocks,
            skip_when=console_streams.non_blocking,
            condition=_SEND_CONDITION,
        )
        for method in ("send", "sendall")
    ),
    _rule(
        "socket:create_connection",
        _SOCKET,
        condition="always: resolves the address and connects a blocking socket",
    ),
    *(
        _rule(
            f"ssl:SSLSocket.{method}",
            _TLS,
            blocks_when=_socket_blocks,
            skip_when=console_streams.non_blocking,
            condition=_BLOCKING_SOCKET,
        )
        for method in _SSL_SOCKET_METHODS
    ),
    _rule(
        "ssl:SSLContext.load_verify_locations",
        _CERTS,
        blocks_when=_verify_locations_blocks,
        condition="cafile or capath is given (cadata alone stays in memory)",
    ),
    *(
        _rule(
            f"ssl:SSLContext.{method}",
            _CERTS,
            condition="always: reads certificate files",
            allowed_in=_ASYNCIO_TLS_SETUP,
        )
        for method in (
            "load_cert_chain",
            "load_default_certs",
            "set_default_verify_paths",
        )
    ),
    _rule(
        "socket:getaddrinfo",
        _DNS,
        blocks_when=_getaddrinfo_blocks,
        condition="the host is a name (not an IP address) or the port is a service name",
    ),
    *(
        _rule(
            f"socket:{function}",
            _DNS,
            blocks_when=_hostname_blocks,
            condition="the host is a name, not an IP address",
        )
        for function in ("gethostbyname", "gethostbyname_ex")
    ),
    _rule("socket:gethostbyaddr", _DNS, condition="always: a reverse lookup"),
    _rule(
        "socket:getnameinfo",
        _DNS,
        blocks_when=_getnameinfo_blocks,
        condition="flags lack NI_NUMERICHOST | NI_NUMERICSERV (a reverse or service lookup)",
    ),
    _rule("socket:getfqdn", _DNS, condition="always: a reverse lookup"),
    _rule("urllib.request:urlopen", _HTTP, condition="always: a whole HTTP exchange"),
    *(
        _rule(f"http.client:HTTPConnection.{method}", _HTTP, condition=condition)
        for method, condition in (
            ("request", "always: connects if needed and sends the request"),
            ("getresponse", "always: waits for and reads the response head"),
        )
    ),
)
