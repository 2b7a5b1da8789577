"""qasync and QtAsyncio: ready sockets (add_reader/add_writer) and the loops' own waits are
silent; a select() of the application's own still fires."""

from __future__ import annotations

import asyncio
import select
import socket

import pytest
import qasync
from PySide6 import QtAsyncio
from PySide6.QtWidgets import QApplication
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


async def _idle_turns(*, reader: bool = True) -> None:
    # Timers and a reader: the loop waits for events between them.
    for _ in range(5):
        await asyncio.sleep(0.002)
    if not reader:
        return
    loop = asyncio.get_running_loop()
    rsock, wsock = socket.socketpair()
    try:
        rsock.setblocking(False)
        got: asyncio.Future[bytes] = loop.create_future()
        loop.add_reader(rsock, lambda: got.set_result(rsock.recv(1)))
        loop.call_later(0.002, wsock.send, b"x")
        assert await got == b"x"
        loop.remove_reader(rsock)
    finally:
        rsock.close()
        wsock.close()


def test_qasync_loops_own_waits_are_silent(qasync_loop: qasync.QEventLoop) -> None:
    with loopwarden.guard(mode="raise") as warden:
        run_coro(qasync_loop, _idle_turns())
    assert warden.findings == []


def test_qtasyncio_loops_own_waits_are_silent(qapp: QApplication) -> None:
    with loopwarden.guard(mode="raise") as warden:
        # QtAsyncio has no add_reader: timers only.
        QtAsyncio.run(
            asyncio.wait_for(_idle_turns(reader=False), 5), keep_running=False, quit_qapp=True
        )
    assert warden.findings == []


def test_select_with_a_timeout_in_a_qasync_coroutine_fires(
    qasync_loop: qasync.QEventLoop,
) -> None:
    rsock, wsock = socket.socketpair()

    async def main() -> None:
        select.select([rsock], [], [], 0.5)

    try:
        with loopwarden.guard(mode="raise") as warden, pytest.raises(loopwarden.BlockingCallError):
            run_coro(qasync_loop, main())
    finally:
        rsock.close()
        wsock.close()
    assert primitives(warden) == ["select.select"]
