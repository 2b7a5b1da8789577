"""Family ``network``, module ``polling``: select, poll, epoll and selectors that would wait."""

from __future__ import annotations

import asyncio
import select
import selectors
import socket
from collections.abc import Callable
from typing import Any

import pytest

import loopwarden
from loophelpers import python_frames_entered
from loopwarden import engine, native
from loopwarden.blocking import polling
from rules_support import (
    PEER_TIMEOUT,
    Case,
    CaseTable,
    Peers,
    expect_finding,
    family_tests,
)

CASES = CaseTable("network", module="polling")


def _pair(peers: Peers) -> tuple[socket.socket, socket.socket]:
    """A blocking socketpair: (the end that is waited on, the end that wakes it)."""
    first, second = socket.socketpair()
    return peers.closing(first), peers.closing(second)


def _ready(peers: Peers) -> socket.socket:
    """A socket with data queued (a socketpair delivers at once)."""
    waited, waker = _pair(peers)
    waker.send(b"x")
    return waited


@CASES.add("select.select")
def _select(peers: Peers, name: str) -> Case:
    idle, waker = _pair(peers)
    ready = _ready(peers)
    return Case(
        lambda: select.select([idle], [], [], PEER_TIMEOUT),
        unblock=lambda: waker.send(b"x"),
        nonblocking=[
            lambda: select.select([idle], [], [], 0),
            lambda: select.select([ready], [], [], PEER_TIMEOUT),
            lambda: select.select([idle], [ready], [], None),  # writable at once
        ],
    )


_SELECTOR_CLASSES = (
    "SelectSelector",
    "PollSelector",
    "EpollSelector",
    "DevpollSelector",
    "KqueueSelector",
)


def _selector(peers: Peers, cls_name: str, sock: socket.socket) -> selectors.BaseSelector:
    cls = getattr(selectors, cls_name, None)
    if cls is None:
        pytest.skip(f"selectors.{cls_name} does not exist on this platform")
    selector: selectors.BaseSelector = peers.closing(cls())
    selector.register(sock, selectors.EVENT_READ)
    return selector


@CASES.add(*(f"selectors.{cls}.select" for cls in _SELECTOR_CLASSES))
def _selectors(peers: Peers, name: str) -> Case:
    cls_name = name.split(".")[1]
    idle, waker = _pair(peers)
    waiting = _selector(peers, cls_name, idle)
    ready = _selector(peers, cls_name, _ready(peers))
    return Case(
        lambda: waiting.select(PEER_TIMEOUT),
        unblock=lambda: waker.send(b"x"),
        nonblocking=[
            lambda: waiting.select(0),
            lambda: waiting.select(-1),
            lambda: ready.select(PEER_TIMEOUT),
            lambda: ready.select(None),
        ],
    )


def _poller(peers: Peers, factory: Callable[[], object], sock: socket.socket) -> object:
    poller = factory()
    if hasattr(poller, "close"):
        peers.defer(poller.close)
    poller.register(sock.fileno(), select.POLLIN)  # type: ignore[attr-defined]
    return poller


def _poll_case(peers: Peers, factory_name: str, scale: float) -> Case:
    factory = getattr(select, factory_name, None)
    if factory is None:
        pytest.skip(f"select.{factory_name} does not exist on this platform")
    idle, waker = _pair(peers)
    waiting = _poller(peers, factory, idle)
    ready = _poller(peers, factory, _ready(peers))
    return Case(
        lambda: waiting.poll(PEER_TIMEOUT * scale),  # type: ignore[attr-defined]
        unblock=lambda: waker.send(b"x"),
        nonblocking=[
            lambda: waiting.poll(0),  # type: ignore[attr-defined]
            lambda: ready.poll(None),  # type: ignore[attr-defined]
            lambda: ready.poll(-1),  # type: ignore[attr-defined]
        ],
    )


@CASES.add("select.poll.poll")
def _poll(peers: Peers, name: str) -> Case:
    return _poll_case(peers, "poll", 1000)  # milliseconds


@CASES.add("select.devpoll.poll")
def _devpoll(peers: Peers, name: str) -> Case:
    return _poll_case(peers, "devpoll", 1000)


@CASES.add("select.epoll.poll")
def _epoll(peers: Peers, name: str) -> Case:
    return _poll_case(peers, "epoll", 1)  # seconds


@CASES.add("select.kqueue.control")
def _kqueue(peers: Peers, name: str) -> Case:
    if not hasattr(select, "kqueue"):
        pytest.skip("select.kqueue does not exist on this platform")
    idle, waker = _pair(peers)
    ready = _ready(peers)
    kq = peers.closing(select.kqueue())
    kq_ready = peers.closing(select.kqueue())
    kq.control([select.kevent(idle, select.KQ_FILTER_READ)], 0, 0)
    kq_ready.control([select.kevent(ready, select.KQ_FILTER_READ)], 0, 0)
    return Case(
        lambda: kq.control(None, 1, PEER_TIMEOUT),
        unblock=lambda: waker.send(b"x"),
        nonblocking=[lambda: kq.control(None, 1, 0), lambda: kq_ready.control(None, 1, None)],
    )


(
    test_every_rule_has_a_case,
    test_fires_on_loop_thread,
    test_silent_off_loop,
    test_silent_in_nonblocking_form,
) = family_tests(CASES)


# -- the running loop's own selector ---------------------------------------------------


async def _idle_turns() -> None:
    # Each sleep makes the loop wait in its selector with a timeout > 0.
    for _ in range(5):
        await asyncio.sleep(0.002)
    loop = asyncio.get_running_loop()
    reader, writer = socket.socketpair()
    try:
        reader.setblocking(False)
        got = loop.create_future()
        loop.add_reader(reader, lambda: got.set_result(reader.recv(1)))
        loop.call_later(0.002, writer.send, b"x")
        assert await got == b"x"
        loop.remove_reader(reader)
    finally:
        reader.close()
        writer.close()


@pytest.mark.parametrize("selector_class", ["DefaultSelector", "SelectSelector", "PollSelector"])
def test_the_running_loops_own_selector_is_silent(selector_class: str) -> None:
    selector = getattr(selectors, selector_class)()
    loop = asyncio.SelectorEventLoop(selector)
    try:
        with loopwarden.guard(mode="raise") as warden:
            loop.run_until_complete(_idle_turns())
    finally:
        loop.close()
    assert warden.findings == []


class _LateBoundSelect(selectors.SelectSelector):
    """SelectSelector as on Windows: it looks select.select up on every call."""

    def _select(self, r: Any, w: Any, _: Any, timeout: float | None = None) -> Any:
        r, w, x = select.select(r, w, w, timeout)
        return r, w + x, []


def test_the_loops_own_select_select_calls_are_silent() -> None:
    loop = asyncio.SelectorEventLoop(_LateBoundSelect())
    try:
        with loopwarden.guard(mode="raise") as warden:
            loop.run_until_complete(_idle_turns())
    finally:
        loop.close()
    assert warden.findings == []


def test_asyncio_run_is_silent() -> None:
    with loopwarden.guard(mode="raise") as warden:
        asyncio.run(_idle_turns())
    assert warden.findings == []


def test_uvloop_is_silent() -> None:
    uvloop = pytest.importorskip("uvloop")
    with loopwarden.guard(mode="raise") as warden:
        uvloop.run(_idle_turns())
    assert warden.findings == []


def test_the_loops_own_poll_object_called_directly_is_silent() -> None:
    async def main() -> object:
        own = asyncio.get_running_loop()._selector._selector  # type: ignore[attr-defined]
        return own.poll(0.001)

    with loopwarden.guard(mode="raise") as warden:
        asyncio.run(main())
    assert warden.findings == []


def test_another_selector_on_the_loop_thread_fires(peers: Peers) -> None:
    idle, _ = _pair(peers)
    other = peers.closing(selectors.DefaultSelector())
    other.register(idle, selectors.EVENT_READ)
    finding = expect_finding(lambda: other.select(0.5), f"selectors.{type(other).__name__}.select")
    assert "add_reader" in finding.suggestion


# -- Rule.skip_when: the wrapper's own exemption -------------------------------------------


def _skip_rule(skip: Callable[..., bool]) -> loopwarden.Rule:
    return loopwarden.Rule(
        target="json:dumps", family="custom", suggestion="do not", skip_when=skip
    )


def test_skip_when_true_runs_the_original_without_a_finding() -> None:
    import json

    rule = _skip_rule(lambda obj, *_, **__: obj == "skipped")

    async def main() -> tuple[str, str]:
        first = json.dumps("skipped")
        try:
            json.dumps("checked")
        except loopwarden.BlockingCallError as error:
            return first, error.finding.primitive
        return first, ""

    with loopwarden.guard(mode="raise", rules=[rule]):
        assert asyncio.run(main()) == ('"skipped"', "json.dumps")


def test_a_broken_skip_when_counts_as_false() -> None:
    import json

    def broken(*_: object, **__: object) -> bool:
        raise RuntimeError("broken predicate")

    async def main() -> None:
        json.dumps(1)

    rule = _skip_rule(broken)
    with (
        loopwarden.guard(mode="raise", rules=[rule]) as warden,
        pytest.raises(loopwarden.BlockingCallError),
    ):
        asyncio.run(main())
    assert [f.primitive for f in warden.findings] == ["json.dumps"]


# -- the C wrapper (StreamMethod, own_selector): the loop's own calls, every turn, in C -------

needs_speedups = pytest.mark.skipif(
    native.speedups is None, reason="the C extension is not built for this interpreter"
)


@needs_speedups
def test_a_loop_turn_runs_no_python_wrapper_of_ours() -> None:
    # Each turn of a plain asyncio loop calls its selector's select() and that its
    # epoll.poll(): both wrappers let the loop's own through in C.
    entered: list[str] = []

    async def turns() -> None:
        with python_frames_entered({engine.__file__, polling.__file__}) as frames:
            for _ in range(3):
                await asyncio.sleep(0)
            await asyncio.sleep(0.002)  # a turn that waits in epoll.poll
        entered.extend(frames)

    with loopwarden.guard(mode="raise") as warden:
        select_wrapper = selectors.EpollSelector.__dict__["select"]
        assert type(select_wrapper).__name__ == "StreamMethod"
        assert select_wrapper.__wrapped__.__name__ == "select"
        asyncio.run(turns())
    assert warden.findings == []
    assert entered == []


class _OddSelectorLoop(asyncio.SelectorEventLoop):
    """A loop whose ``_selector`` raises, once, what it is told to."""

    error: BaseException | None = None

    @property  # type: ignore[override]
    def _selector(self) -> Any:
        error, self.error = self.error, None
        if error is not None:
            raise error
        return self.__dict__["_real_selector"]

    @_selector.setter
    def _selector(self, value: Any) -> None:
        self.__dict__["_real_selector"] = value


@pytest.mark.parametrize("implementation", ["c", "python"])
def test_reading_the_loops_selector_raises(implementation: str, peers: Peers) -> None:
    # A KeyboardInterrupt while asking whether the selector is the loop's own reaches
    # the caller; an Exception counts as "not the loop's own" (the full check then
    # finds that a zero timeout does not block), in C as in Python.
    if implementation == "c" and native.speedups is None:
        pytest.skip("the C extension is not built for this interpreter")
    other = peers.closing(selectors.DefaultSelector())
    loop = _OddSelectorLoop()

    async def main() -> None:
        select_ = type(other).__dict__["select"]
        if implementation == "python":
            select_ = getattr(select_, "python_wrapper", select_)
        loop.error = KeyboardInterrupt()
        with pytest.raises(KeyboardInterrupt):
            select_(other, 0)
        loop.error = ValueError("odd")
        assert select_(other, 0) == []

    try:
        with loopwarden.guard(mode="raise") as warden:
            loop.run_until_complete(main())
    finally:
        loop.close()
    assert warden.findings == []
