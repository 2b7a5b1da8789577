"""Family ``network``: sockets, TLS, certificate loading, DNS, and sync HTTP clients on top."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import http.server
import importlib.util
import os
import select
import socket
import ssl
import threading
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import loopwarden
from loopwarden import BlockingCallError
from rules_support import (
    PEER_TIMEOUT,
    Case,
    CaseTable,
    Certificate,
    Peers,
    expect_finding,
    expect_silent_off_loop,
    expect_silent_on_loop,
    family_tests,
    ignoring,
)

CASES = CaseTable("network", module="network")


# -- TLS peers ------------------------------------------------------------------


class TlsServer:
    """A TLS server in threads: greets each client with b"hello", then reads until EOF."""

    def __init__(self, certificate: Certificate) -> None:
        self.context = certificate.server_context()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(PEER_TIMEOUT)
        try:
            with self.context.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"hello")
                while tls.recv(1024):
                    pass
                tls.unwrap()  # answer a client's close_notify (SSLSocket.unwrap)
        except (OSError, ValueError):
            pass
        finally:
            conn.close()

    def close(self) -> None:
        # close() alone does not wake a thread blocked in accept() on Linux.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self._thread.join(PEER_TIMEOUT)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return Certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_server(certificate: Certificate) -> Iterator[TlsServer]:
    server = TlsServer(certificate)
    yield server
    server.close()


def _tls_client(peers: Peers, *, handshake: bool = True, connect: bool = True) -> ssl.SSLSocket:
    context = peers.fixture("certificate").client_context()
    address = peers.fixture("tls_server").address
    sock = socket.create_connection(address) if connect else socket.socket()
    sock.settimeout(None)
    tls = context.wrap_socket(sock, server_hostname="localhost", do_handshake_on_connect=False)
    peers.closing(tls)
    if handshake:
        tls.do_handshake()
        tls.settimeout(PEER_TIMEOUT)  # still blocking, but never forever
    return tls


# -- socket.socket ----------------------------------------------------------------

_RECEIVE_CALLS: dict[str, Callable[[socket.socket], object]] = {
    "recv": lambda s: s.recv(5),
    "recv_into": lambda s: s.recv_into(bytearray(5)),
    "recvfrom": lambda s: s.recvfrom(5),
    "recvfrom_into": lambda s: s.recvfrom_into(bytearray(5)),
    "recvmsg": lambda s: s.recvmsg(5),
    "recvmsg_into": lambda s: s.recvmsg_into([bytearray(5)]),
}


def _wait_readable(sock: socket.socket) -> socket.socket:
    """Wait (off the loop) until ``sock`` polls readable: loopback delivery may lag a little."""
    readable, _, _ = select.select([sock], [], [], PEER_TIMEOUT)
    assert readable, "the peer's data or connection never arrived"
    return sock


@CASES.add(*(f"socket.socket.{method}" for method in _RECEIVE_CALLS))
def _receive(peers: Peers, name: str) -> Case:
    receive = _RECEIVE_CALLS[name.rpartition(".")[2]]
    client, server = peers.tcp_pair()  # nothing queued: the receive waits for the peer
    quiet, _ = peers.tcp_pair()
    quiet.setblocking(False)
    ready, ready_peer = peers.tcp_pair()
    ready_peer.sendall(b"hello" * 4)  # queued: a blocking receive returns at once
    ended, ended_peer = peers.tcp_pair()
    ended_peer.shutdown(socket.SHUT_WR)  # end of stream: returns b"" at once
    _wait_readable(ready)
    _wait_readable(ended)
    return Case(
        lambda: receive(client),
        unblock=lambda: server.sendall(b"hello"),
        nonblocking=[
            ignoring(BlockingIOError)(lambda: receive(quiet)),
            lambda: receive(ready),
            lambda: receive(ended),
        ],
    )


#: Larger than half the free send buffer of a socket from :func:`_small_buffer_pair`.
_BIG = b"x" * (1 << 20)


def _small_buffer_pair(peers: Peers) -> tuple[socket.socket, socket.socket]:
    """A connected TCP pair whose client has a fixed, small send buffer (no autotuning)."""
    listener = peers.listener()
    client = peers.closing(socket.socket())
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    peers.closing(server)
    server.settimeout(PEER_TIMEOUT)
    return client, server


def _drain(sock: socket.socket, size: int) -> None:
    while size > 0:
        chunk = sock.recv(min(size, 1 << 16))
        assert chunk, "peer closed early"
        size -= len(chunk)


_SEND_CALLS: dict[str, Callable[[socket.socket, bytes], object]] = {
    "send": lambda s, data: s.send(data),
    "sendall": lambda s, data: s.sendall(data),
}


@CASES.add(*(f"socket.socket.{method}" for method in _SEND_CALLS))
def _send(peers: Peers, name: str) -> Case:
    send = _SEND_CALLS[name.rpartition(".")[2]]
    client, server = _small_buffer_pair(peers)  # _BIG does not fit: the send waits
    other, _ = peers.tcp_pair()
    other.setblocking(False)
    roomy, _ = peers.tcp_pair()  # a blocking socket with room for a small send
    return Case(
        lambda: send(client, _BIG),
        # send() on a blocking TCP socket also waits until it has queued all of it.
        unblock=lambda: _drain(server, len(_BIG)),
        nonblocking=[
            lambda: send(other, b"x"),
            lambda: send(roomy, b"x"),
            lambda: send(client, b"x" * 1024),
        ],
    )


@CASES.add("socket.socket.sendmsg")
def _sendmsg(peers: Peers, name: str) -> Case:
    client, _ = peers.tcp_pair()
    other, _ = peers.tcp_pair()
    other.setblocking(False)
    return Case(lambda: client.sendmsg([b"x"]), nonblocking=[lambda: other.sendmsg([b"x"])])


@CASES.add("socket.socket.sendto")
def _sendto(peers: Peers, name: str) -> Case:
    _, second = peers.udp_pair()
    target = second.getsockname()
    unconnected = peers.listener(socket.SOCK_DGRAM)
    other = peers.listener(socket.SOCK_DGRAM)
    other.setblocking(False)
    return Case(
        lambda: unconnected.sendto(b"x", target),
        nonblocking=[lambda: other.sendto(b"x", target)],
    )


@CASES.add("socket.socket.sendfile")
def _sendfile(peers: Peers, name: str) -> Case:
    payload = peers.tmp_path / "payload.bin"
    payload.write_bytes(b"x" * 1024)
    file = peers.closing(payload.open("rb"))  # opened here: opening is a filesystem finding
    client, _ = peers.tcp_pair()
    other, _ = peers.tcp_pair()
    other.setblocking(False)

    def send_file(sock: socket.socket) -> object:
        file.seek(0)
        return sock.sendfile(file)

    # Python refuses sendfile() on non-blocking sockets before doing anything.
    return Case(
        lambda: send_file(client), nonblocking=[ignoring(ValueError)(lambda: send_file(other))]
    )


@CASES.add("socket.socket.connect", "socket.socket.connect_ex")
def _connect(peers: Peers, name: str) -> Case:
    method = name.rpartition(".")[2]
    address = peers.listener().getsockname()
    sock = peers.closing(socket.socket())
    other = peers.closing(socket.socket())
    other.setblocking(False)
    return Case(
        lambda: getattr(sock, method)(address),
        nonblocking=[ignoring(BlockingIOError)(lambda: getattr(other, method)(address))],
    )


@CASES.add("socket.socket.accept")
def _accept(peers: Peers, name: str) -> Case:
    listener = peers.listener()  # no connection pending: accept waits for one
    idle = peers.listener()
    idle.setblocking(False)
    ready = peers.listener()
    peers.closing(socket.create_connection(ready.getsockname()))  # pending: returns at once
    _wait_readable(ready)

    def accept(sock: socket.socket) -> object:
        conn, _ = sock.accept()
        conn.close()
        return conn

    return Case(
        lambda: accept(listener),
        unblock=lambda: peers.closing(socket.create_connection(listener.getsockname())),
        nonblocking=[ignoring(BlockingIOError)(lambda: accept(idle)), lambda: accept(ready)],
    )


@CASES.add("socket.create_connection", nonblocking=False)
def _create_connection(peers: Peers, name: str) -> Case:
    address = peers.listener().getsockname()
    return Case(lambda: socket.create_connection(address, PEER_TIMEOUT).close())


# -- ssl.SSLSocket ----------------------------------------------------------------

_TLS_IO_CALLS: dict[str, Callable[[ssl.SSLSocket], object]] = {
    "read": lambda s: s.read(5),
    "recv": lambda s: s.recv(5),
    "recv_into": lambda s: s.recv_into(bytearray(5)),
    "write": lambda s: s.write(b"x"),
    "send": lambda s: s.send(b"x"),
    "sendall": lambda s: s.sendall(b"x"),
    "unwrap": lambda s: s.unwrap(),
}


@CASES.add(*(f"ssl.SSLSocket.{method}" for method in _TLS_IO_CALLS))
def _tls_io(peers: Peers, name: str) -> Case:
    method = name.rpartition(".")[2]
    call = _TLS_IO_CALLS[method]
    tls, other = _tls_client(peers), _tls_client(peers)
    if method == "unwrap":
        # The server answers close_notify only once its greeting was read.
        assert tls.read(5) == other.read(5) == b"hello"
    other.setblocking(False)
    return Case(
        lambda: call(tls),
        nonblocking=[ignoring(ssl.SSLWantReadError, ssl.SSLWantWriteError)(lambda: call(other))],
    )


@CASES.add("ssl.SSLSocket.sendfile", nonblocking=False)
def _tls_sendfile(peers: Peers, name: str) -> Case:
    payload = peers.tmp_path / "payload.bin"
    payload.write_bytes(b"x" * 1024)
    file = peers.closing(payload.open("rb"))
    tls = _tls_client(peers)

    def send_file() -> object:
        return tls.sendfile(file)

    return Case(send_file)


@CASES.add("ssl.SSLSocket.do_handshake")
def _tls_handshake(peers: Peers, name: str) -> Case:
    tls = _tls_client(peers, handshake=False)
    other = _tls_client(peers, handshake=False)
    other.setblocking(False)
    return Case(
        lambda: tls.do_handshake(),
        nonblocking=[ignoring(ssl.SSLWantReadError)(lambda: other.do_handshake())],
    )


@CASES.add("ssl.SSLSocket.connect", "ssl.SSLSocket.connect_ex")
def _tls_connect(peers: Peers, name: str) -> Case:
    method = name.rpartition(".")[2]
    address = peers.fixture("tls_server").address
    tls = _tls_client(peers, handshake=False, connect=False)
    other = _tls_client(peers, handshake=False, connect=False)
    other.setblocking(False)
    return Case(
        lambda: getattr(tls, method)(address),
        nonblocking=[ignoring(BlockingIOError)(lambda: getattr(other, method)(address))],
    )


@CASES.add("ssl.SSLSocket.accept")
def _tls_accept(peers: Peers, name: str) -> Case:
    context = peers.fixture("certificate").server_context()

    def tls_listener() -> ssl.SSLSocket:
        return peers.closing(
            context.wrap_socket(peers.listener(), server_side=True, do_handshake_on_connect=False)
        )

    listener, idle = tls_listener(), tls_listener()
    peers.closing(socket.create_connection(listener.getsockname()))  # pending connection
    idle.setblocking(False)

    def accept(sock: ssl.SSLSocket) -> object:
        conn, _ = sock.accept()
        conn.close()
        return conn

    return Case(
        lambda: accept(listener), nonblocking=[ignoring(BlockingIOError)(lambda: accept(idle))]
    )


# -- certificates ---------------------------------------------------------------------


@CASES.add("ssl.SSLContext.load_verify_locations")
def _verify_locations(peers: Peers, name: str) -> Case:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cert = peers.fixture("certificate")
    return Case(
        lambda: context.load_verify_locations(cafile=cert.cert),
        nonblocking=[lambda: context.load_verify_locations(cadata=cert.pem)],
    )


@CASES.add(
    "ssl.SSLContext.load_cert_chain",
    "ssl.SSLContext.load_default_certs",
    "ssl.SSLContext.set_default_verify_paths",
    nonblocking=False,
)
def _load_certs(peers: Peers, name: str) -> Case:
    method = name.rpartition(".")[2]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cert = peers.fixture("certificate")
    args = (cert.cert, cert.key) if method == "load_cert_chain" else ()
    return Case(lambda: getattr(context, method)(*args))


# -- DNS --------------------------------------------------------------------------------

_NUMERIC = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV


@CASES.add("socket.getaddrinfo")
def _getaddrinfo(peers: Peers, name: str) -> Case:
    return Case(
        lambda: socket.getaddrinfo("localhost", 80),
        nonblocking=[
            lambda: socket.getaddrinfo("127.0.0.1", 80),
            lambda: socket.getaddrinfo("::1", "8080"),
            lambda: socket.getaddrinfo(None, 80, flags=socket.AI_PASSIVE),
            ignoring(socket.gaierror)(
                lambda: socket.getaddrinfo("localhost", 80, flags=socket.AI_NUMERICHOST)
            ),
        ],
    )


@CASES.add("socket.gethostbyname", "socket.gethostbyname_ex")
def _gethostbyname(peers: Peers, name: str) -> Case:
    function = name.rpartition(".")[2]
    return Case(
        lambda: getattr(socket, function)("localhost"),
        nonblocking=[lambda: getattr(socket, function)("127.0.0.1")],
    )


@CASES.add("socket.getnameinfo")
def _getnameinfo(peers: Peers, name: str) -> Case:
    return Case(
        lambda: socket.getnameinfo(("127.0.0.1", 80), 0),
        nonblocking=[lambda: socket.getnameinfo(("127.0.0.1", 80), _NUMERIC)],
    )


@CASES.add("socket.gethostbyaddr", "socket.getfqdn", nonblocking=False)
def _reverse_lookup(peers: Peers, name: str) -> Case:
    function = name.rpartition(".")[2]
    return Case(lambda: getattr(socket, function)("127.0.0.1"))


(
    test_every_rule_has_a_case,
    test_fires_on_loop_thread,
    test_silent_off_loop,
    test_silent_in_nonblocking_form,
) = family_tests(CASES)


# -- blocking mode details ------------------------------------------------------------


def test_ready_socket_with_msg_waitall_still_blocks(peers: Peers) -> None:
    client, server = peers.tcp_pair()
    server.sendall(b"he")  # ready, but MSG_WAITALL waits for all 5 bytes
    _wait_readable(client)
    expect_finding(lambda: client.recv(5, socket.MSG_WAITALL), "socket.socket.recv")


def test_msg_dontwait_is_silent(peers: Peers) -> None:
    client, _ = peers.tcp_pair()
    expect_silent_on_loop(ignoring(BlockingIOError)(lambda: client.recv(5, socket.MSG_DONTWAIT)))


def test_asyncio_docs_add_reader_example_is_silent() -> None:
    # The example "Watch a file descriptor for read events" of the asyncio docs,
    # verbatim but for the guard: a blocking socketpair, read when it is ready.
    rsock, wsock = socket.socketpair()
    loop = asyncio.new_event_loop()
    received: list[bytes] = []

    def reader() -> None:
        data = rsock.recv(100)
        received.append(data)
        loop.remove_reader(rsock)
        loop.stop()

    loop.add_reader(rsock, reader)
    loop.call_soon(wsock.send, b"abc")
    with loopwarden.guard(mode="raise") as warden:
        try:
            loop.run_forever()
        finally:
            rsock.close()
            wsock.close()
            loop.close()
    assert received == [b"abc"]
    assert warden.findings == []


def test_sendall_in_an_add_writer_callback_is_silent(peers: Peers) -> None:
    client, server = peers.tcp_pair()
    payload = b"y" * 4096

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sent = loop.create_future()

        def writer() -> None:
            loop.remove_writer(client)
            client.sendall(payload)
            sent.set_result(None)

        loop.add_writer(client, writer)
        await sent

    with loopwarden.guard(mode="raise") as warden:
        asyncio.run(main())
    assert warden.findings == []
    server.settimeout(PEER_TIMEOUT)
    _drain(server, len(payload))


def test_receive_after_select_is_silent_and_without_data_fires(peers: Peers) -> None:
    client, server = peers.tcp_pair()

    def read_when_ready() -> bytes:
        readable, _, _ = select.select([client], [], [], 0)
        return client.recv(5) if readable else b""

    assert expect_silent_on_loop(read_when_ready) == b""
    server.sendall(b"hello")
    _wait_readable(client)
    assert expect_silent_on_loop(read_when_ready) == b"hello"
    expect_finding(lambda: client.recv(5), "socket.socket.recv")


def test_socket_with_a_timeout_still_blocks(peers: Peers) -> None:
    client, _ = peers.tcp_pair()
    client.settimeout(5.0)  # waits up to 5 s in poll(): still a blocking call
    expect_finding(lambda: client.recv(1), "socket.socket.recv")


def test_descriptor_switched_to_non_blocking_is_silent(peers: Peers) -> None:
    client, _ = peers.tcp_pair()
    os.set_blocking(client.fileno(), False)  # behind the socket object's back
    assert client.gettimeout() is None
    expect_silent_on_loop(ignoring(BlockingIOError)(lambda: client.recv(1)))


def test_closed_socket_is_silent(peers: Peers) -> None:
    client, _ = peers.tcp_pair()
    client.close()
    expect_silent_on_loop(ignoring(OSError)(lambda: client.recv(1)))


# -- sync HTTP clients are caught through the socket layer -------------------------------


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from 127.0.0.1"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}/"
    server.shutdown()
    server.server_close()
    thread.join(PEER_TIMEOUT)


def _urlopen(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=PEER_TIMEOUT) as response:
        body: bytes = response.read()
        return body


def _http_client_get(url: str) -> bytes:
    host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=PEER_TIMEOUT)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read()
    finally:
        conn.close()


_CLIENTS = {"urlopen": _urlopen, "http.client": _http_client_get}
_ALL_PRIMITIVES = {
    "urlopen": ["urllib.request.urlopen"],
    "http.client": ["http.client.HTTPConnection.request", "http.client.HTTPConnection.getresponse"],
}
_FIRST_PRIMITIVE = {client: primitives[0] for client, primitives in _ALL_PRIMITIVES.items()}
CASES.covered_elsewhere(*(name for names in _ALL_PRIMITIVES.values() for name in names))


@pytest.mark.parametrize("client", list(_CLIENTS))
def test_sync_http_client_on_the_loop_raises(http_url: str, client: str) -> None:
    async def main() -> bytes:
        return _CLIENTS[client](http_url)

    with loopwarden.guard(mode="raise"), pytest.raises(BlockingCallError) as info:
        asyncio.run(main())
    finding = info.value.finding
    assert finding.family == "network"
    assert finding.primitive == _FIRST_PRIMITIVE[client]
    assert finding.user_caller.startswith(__file__)


@pytest.mark.parametrize("client", list(_CLIENTS))
def test_sync_http_client_on_the_loop_is_recorded_and_still_works(
    http_url: str, client: str
) -> None:
    async def main() -> bytes:
        return _CLIENTS[client](http_url)

    with loopwarden.guard(mode="record") as warden:
        assert asyncio.run(main()) == b"hello from 127.0.0.1"
    # One finding per HTTP-level call, none for the socket calls inside them.
    assert [f.primitive for f in warden.findings] == _ALL_PRIMITIVES[client]
    assert {f.family for f in warden.findings} == {"network"}
    # Findings point at the test's own code, not at urllib/http.client internals.
    assert all(f.user_caller.startswith(__file__) for f in warden.findings)


@pytest.mark.parametrize("client", list(_CLIENTS))
def test_sync_http_client_off_the_loop_is_silent(http_url: str, client: str) -> None:
    body = expect_silent_off_loop(lambda: _CLIENTS[client](http_url))
    assert body == b"hello from 127.0.0.1"


@pytest.mark.skipif(
    importlib.util.find_spec("requests") is None, reason="requests is not installed here"
)
def test_requests_is_caught_through_the_socket_layer(http_url: str) -> None:
    import requests

    async def main() -> str:
        return requests.get(http_url, timeout=PEER_TIMEOUT).text

    with loopwarden.guard(mode="record") as warden:
        assert asyncio.run(main()) == "hello from 127.0.0.1"
    network = [f.primitive for f in warden.findings if f.family == "network"]
    # Connecting always waits; sending the small request fits the empty send
    # buffer, and whether the response is already queued when it is read
    # depends on the server thread, so those may be silent.
    assert "socket.socket.connect" in network


def test_socket_methods_skip_non_blocking_sockets_before_any_check() -> None:
    # asyncio's transports read and write non-blocking sockets on every loop
    # turn: the wrapper's skip_when decides those with one read.
    from loopwarden import console_streams
    from loopwarden.blocking import network

    rules = [
        rule
        for rule in network.RULES
        if rule.target.startswith(("socket:socket.", "ssl:SSLSocket.")) and rule.blocks_when
    ]
    assert len(rules) > 10
    assert all(rule.skip_when is console_streams.non_blocking for rule in rules), [
        rule.name for rule in rules if rule.skip_when is not console_streams.non_blocking
    ]
    blocking, non_blocking = socket.socketpair()
    with blocking, non_blocking:
        non_blocking.setblocking(False)
        assert console_streams.non_blocking(non_blocking)
        assert not console_streams.non_blocking(blocking)
        blocking.settimeout(0.5)
        assert not console_streams.non_blocking(blocking)  # a timeout waits
