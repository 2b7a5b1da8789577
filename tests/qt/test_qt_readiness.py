"""qasync: blocking sockets read and written when ready (add_reader/add_writer) are silent."""

from __future__ import annotations

import asyncio
import socket

import pytest
import qasync
from qt_support import primitives, run_coro

import loopwarden

pytestmark = pytest.mark.timeout(30)


def test_add_reader_recv_on_a_ready_socket_is_silent(qasync_loop: qasync.QEventLoop) -> None:
    # The pattern of qasync's own tests: a blocking socketpair, read in the reader callback.
    rsock, wsock = socket.socketpair()

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        received: asyncio.Future[bytes] = loop.create_future()

        def reader() -> None:
            loop.remove_reader(rsock)
            received.set_result(rsock.recv(100))

        loop.add_reader(rsock, reader)
        loop.call_soon(wsock.send, b"abc")
        return await received

    try:
        with loopwarden.guard(mode="raise") as warden:
            assert run_coro(qasync_loop, main()) == b"abc"
    finally:
        rsock.close()
        wsock.close()
    assert warden.findings == []


def test_add_writer_sendall_that_fits_is_silent(qasync_loop: qasync.QEventLoop) -> None:
    rsock, wsock = socket.socketpair()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sent: asyncio.Future[None] = loop.create_future()

        def writer() -> None:
            loop.remove_writer(wsock)
            wsock.sendall(b"x" * 1024)
            sent.set_result(None)

        loop.add_writer(wsock, writer)
        await sent

    try:
        with loopwarden.guard(mode="raise") as warden:
            run_coro(qasync_loop, main())
        assert len(rsock.recv(4096)) > 0
    finally:
        rsock.close()
        wsock.close()
    assert warden.findings == []


def test_recv_on_a_socket_without_data_fires(qasync_loop: qasync.QEventLoop) -> None:
    rsock, wsock = socket.socketpair()

    async def main() -> None:
        rsock.recv(100)  # nothing was sent: this would wait forever

    try:
        with loopwarden.guard(mode="raise") as warden, pytest.raises(loopwarden.BlockingCallError):
            run_coro(qasync_loop, main())
    finally:
        rsock.close()
        wsock.close()
    assert primitives(warden) == ["socket.socket.recv"]
