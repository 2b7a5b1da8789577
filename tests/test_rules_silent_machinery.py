"""Event-loop machinery never trips the rules, under ``guard(mode="raise")``.

asyncio (and uvloop, anyio on asyncio) does its own socket, TLS, subprocess
and executor work on the loop thread. All of it is non-blocking by design, so
none of it may be reported: selectors and the self-pipe, transports, streams,
``loop.sock_*``, ``create_subprocess_exec``, ``run_in_executor``/``to_thread``
submission, ``ThreadPoolExecutor.submit``, ``Thread.start``, uncontended
locks, ``acquire(blocking=False)``, non-blocking sockets, printing, logging.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import loopwarden
from rules_support import PEER_TIMEOUT, Certificate

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def _loop_factories() -> list[Any]:
    factories: list[Any] = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    try:
        import uvloop
    except ImportError:  # Windows: no uvloop
        return factories
    return [*factories, pytest.param(uvloop.new_event_loop, id="uvloop")]


@pytest.fixture(params=_loop_factories())
def loop_factory(request: pytest.FixtureRequest) -> LoopFactory:
    factory: LoopFactory = request.param
    return factory


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return Certificate(tmp_path_factory.mktemp("tls"))


def run_silently(factory: LoopFactory, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``main()`` to completion on a fresh loop under ``guard(mode="raise")``.

    Mirrors ``asyncio.run`` (which takes no loop factory before 3.12), including
    the executor and async-generator shutdown at the end.
    """
    loop = factory()
    with loopwarden.guard(mode="raise") as warden:
        try:
            result = loop.run_until_complete(main())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
    assert warden.findings == []
    return result


# -- streams, TLS, sockets ---------------------------------------------------------------


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def _round_trip(host: str, port: int, **options: Any) -> bytes:
    reader, writer = await asyncio.open_connection(host, port, **options)
    writer.write(b"ping\n")
    await writer.drain()
    line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return line


def test_streams(loop_factory: LoopFactory) -> None:
    async def main() -> list[bytes]:
        server = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            # "localhost" is resolved by loop.getaddrinfo, in the default executor.
            return [await _round_trip(host, port) for host in ("127.0.0.1", "localhost")]

    assert run_silently(loop_factory, main) == [b"ping\n", b"ping\n"]


def test_tls_streams(loop_factory: LoopFactory, certificate: Certificate) -> None:
    # Contexts are built before the loop runs: loading certificates reads files.
    server_context, client_context = certificate.server_context(), certificate.client_context()

    async def main() -> bytes:
        server = await asyncio.start_server(_echo, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await _round_trip(
                "127.0.0.1", port, ssl=client_context, server_hostname="localhost"
            )

    assert run_silently(loop_factory, main) == b"ping\n"


def test_tls_with_a_context_made_by_asyncio(certificate: Certificate) -> None:
    # ssl=True makes asyncio build a default context on the loop thread. That is
    # its own machinery; our self-signed certificate then fails verification.
    server_context = certificate.server_context()

    async def main() -> str:
        server = await asyncio.start_server(_echo, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        async with server:
            with pytest.raises(ssl.SSLCertVerificationError) as info:
                await _round_trip("127.0.0.1", port, ssl=True, server_hostname="localhost")
            return str(info.value)

    assert "certificate verify failed" in run_silently(asyncio.new_event_loop, main)


def test_loop_socket_methods(loop_factory: LoopFactory) -> None:
    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        listener = socket.create_server(("127.0.0.1", 0))
        listener.setblocking(False)
        client = socket.socket()
        client.setblocking(False)
        with listener, client:
            accepting = asyncio.ensure_future(loop.sock_accept(listener))
            await loop.sock_connect(client, listener.getsockname())
            server_side, _ = await accepting
            with server_side:
                server_side.setblocking(False)
                await loop.sock_sendall(client, b"hello")
                data = await loop.sock_recv(server_side, 5)
                buffer = bytearray(5)
                await loop.sock_sendall(server_side, b"world")
                size = await loop.sock_recv_into(client, buffer)
                return data + bytes(buffer[:size])

    assert run_silently(loop_factory, main) == b"helloworld"


def test_plain_non_blocking_sockets(loop_factory: LoopFactory) -> None:
    async def main() -> bytes:
        first, second = socket.socketpair()
        with first, second:
            first.setblocking(False)
            second.setblocking(False)
            first.send(b"abc")
            for _ in range(100):
                try:
                    return second.recv(3)
                except BlockingIOError:
                    await asyncio.sleep(0.001)
            raise AssertionError("no data arrived")

    assert run_silently(loop_factory, main) == b"abc"


# -- subprocesses, executors, threads, locks ----------------------------------------------


def test_subprocesses(loop_factory: LoopFactory) -> None:
    async def main() -> list[bytes]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            "-c",
            "import sys; sys.stdout.write(sys.stdin.read().upper())",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate(b"quiet")
        shell = await asyncio.create_subprocess_shell("echo shell", stdout=asyncio.subprocess.PIPE)
        shell_out, _ = await shell.communicate()
        assert await shell.wait() == 0
        return [out, shell_out.strip()]

    assert run_silently(loop_factory, main) == [b"QUIET", b"shell"]


def test_executors_and_threads(loop_factory: LoopFactory) -> None:
    def work(n: int) -> int:
        return n * n

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        results = await asyncio.gather(
            *(loop.run_in_executor(None, work, n) for n in range(20)),
            *(asyncio.to_thread(work, n) for n in range(20)),
        )
        pool = concurrent.futures.ThreadPoolExecutor(2)
        futures = [pool.submit(work, n) for n in range(10)]
        results += [await asyncio.wrap_future(f) for f in futures]
        await asyncio.to_thread(pool.shutdown)  # `with pool:` would join it on the loop
        done = threading.Event()
        thread = threading.Thread(target=done.set)
        thread.start()
        await asyncio.to_thread(done.wait, PEER_TIMEOUT)
        await asyncio.to_thread(thread.join)
        return results

    assert sum(run_silently(loop_factory, main)) == 2 * sum(n * n for n in range(20)) + sum(
        n * n for n in range(10)
    )


def test_wakeups_from_many_threads(loop_factory: LoopFactory) -> None:
    # call_soon_threadsafe / run_coroutine_threadsafe from workers: the self-pipe.
    async def add(n: int) -> int:
        return n

    async def main() -> int:
        loop = asyncio.get_running_loop()

        def worker(n: int) -> int:
            loop.call_soon_threadsafe(lambda: None)
            return asyncio.run_coroutine_threadsafe(add(n), loop).result(PEER_TIMEOUT)

        return sum(await asyncio.gather(*(asyncio.to_thread(worker, n) for n in range(10))))

    assert run_silently(loop_factory, main) == sum(range(10))


def test_uncontended_and_non_blocking_lock_use(loop_factory: LoopFactory) -> None:
    lock, rlock, held = threading.Lock(), threading.RLock(), threading.Lock()
    cond, event, sem = threading.Condition(), threading.Event(), threading.Semaphore(2)
    release = threading.Event()

    def holder() -> None:
        with held:
            release.wait(PEER_TIMEOUT)

    async def main() -> list[bool]:
        with lock, rlock, rlock, cond:
            cond.notify_all()
        event.set()
        with sem:
            pass
        thread = threading.Thread(target=holder)
        thread.start()
        while not held.locked():
            await asyncio.sleep(0.001)
        outcome = [held.acquire(blocking=False), held.acquire(timeout=0), event.wait()]
        release.set()
        await asyncio.to_thread(thread.join)
        return outcome

    assert run_silently(loop_factory, main) == [False, False, True]


# -- printing and logging ------------------------------------------------------------


def test_printing_and_logging(
    loop_factory: LoopFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # Console handlers only: a handler writing to a file is a finding
    # (tests/test_rules_logging.py).
    logger = logging.getLogger("loopwarden.tests.machinery")
    stream_handler = logging.StreamHandler(sys.stderr)
    logger.addHandler(stream_handler)

    async def main() -> None:
        print("printed on the loop thread")
        print("to stderr", file=sys.stderr, flush=True)
        logger.warning("logged on the loop thread")

    try:
        run_silently(loop_factory, main)
    finally:
        logger.removeHandler(stream_handler)
    captured = capsys.readouterr()
    assert "printed on the loop thread" in captured.out
    assert "logged on the loop thread" in captured.err


# -- anyio on asyncio ------------------------------------------------------------------


def test_anyio_on_asyncio(certificate: Certificate) -> None:
    anyio = pytest.importorskip("anyio")

    async def serve(stream: Any) -> None:
        async with stream:
            await stream.send(await stream.receive())

    async def main() -> list[Any]:
        results: list[Any] = []
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, serve)
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                await stream.send(b"anyio")
                results.append(await stream.receive())
            results.append(await anyio.to_thread.run_sync(lambda: "from a thread"))
            done = await anyio.run_process([sys.executable, "-I", "-S", "-c", "print(7)"])
            results.append(done.stdout.strip())
            lock, event = anyio.Lock(), anyio.Event()
            async with lock:
                event.set()
            await event.wait()
            group.cancel_scope.cancel()
        return results

    with loopwarden.guard(mode="raise") as warden:
        results = anyio.run(main, backend="asyncio")
    assert warden.findings == []
    assert results == [b"anyio", "from a thread", b"7"]


# -- qasync (Qt) --------------------------------------------------------------------------


def test_qasync_loop(qapp: Any) -> None:
    qasync = pytest.importorskip("qasync")

    async def main() -> list[Any]:
        server = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            line = await _round_trip("127.0.0.1", port)
        loop = asyncio.get_running_loop()
        return [
            line,
            await loop.run_in_executor(None, sum, [1, 2]),
            await asyncio.to_thread(len, "ab"),
        ]

    loop = qasync.QEventLoop(qapp)
    with loopwarden.guard(mode="raise") as warden, loop:
        result = loop.run_until_complete(main())
    assert warden.findings == []
    assert result == [b"ping\n", 3, 2]
