"""Shared helpers for the rule-family tests (network, database, sync, process, console).

A family's test module fills a :class:`CaseTable`: for every rule name, a
factory that sets up real peers and returns a :class:`Case` (the call in its
blocking form, how to let it finish off the loop, and its non-blocking forms).
Three parametrized tests then run every case:

* on the loop thread, under ``guard(mode="raise")``: the rule fires;
* in a worker thread while the loop runs: silent, and the real call completes;
* the non-blocking forms on the loop thread: silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import importlib
import ipaddress
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytest

import loopwarden
from loopwarden import BlockingCallError, Finding
from loopwarden.families import default_rules
from loopwarden.rules import Rule

#: Timeout for anything that waits on a peer in these tests (never reached when green).
PEER_TIMEOUT = 10.0


@dataclasses.dataclass
class Case:
    """One rule exercised against real peers.

    Every call must look the primitive up when it runs (``lambda: q.get()``,
    not ``q.get``): a method bound before the guard activates is the
    unpatched original.

    Attributes:
        blocking: The call in its blocking form. Run off the loop, it must
            complete (possibly after ``unblock``).
        unblock: Lets ``blocking`` finish when it runs in a worker thread.
        nonblocking: Forms of the same primitive that must stay silent on the loop.
    """

    blocking: Callable[[], object]
    unblock: Callable[[], object] | None = None
    nonblocking: Sequence[Callable[[], object]] = ()


CaseFactory = Callable[["Peers", str], Case]


class CaseTable:
    """Rule name -> case factory, for one family (optionally: one family module's rules)."""

    def __init__(self, family: str, module: str | None = None) -> None:
        self.family = family
        self.module = module
        self.factories: dict[str, CaseFactory] = {}
        self.with_nonblocking: set[str] = set()
        self.elsewhere: set[str] = set()

    def add(self, *names: str, nonblocking: bool = True) -> Callable[[CaseFactory], CaseFactory]:
        """Register ``factory`` for the given rule names."""

        def register(factory: CaseFactory) -> CaseFactory:
            for name in names:
                assert name not in self.factories, f"two cases for {name}"
                self.factories[name] = factory
                if nonblocking:
                    self.with_nonblocking.add(name)
            return factory

        return register

    def covered_elsewhere(self, *names: str) -> None:
        """Rules tested by dedicated tests in the same module (e.g. in a fresh interpreter)."""
        self.elsewhere.update(names)

    @property
    def names(self) -> list[str]:
        return sorted(self.factories)

    @property
    def nonblocking_names(self) -> list[str]:
        return sorted(self.with_nonblocking)

    def rule_names(self) -> set[str]:
        rules: Sequence[Rule] = default_rules()
        if self.module is not None:
            rules = importlib.import_module(f"loopwarden.blocking.{self.module}").RULES
        return {rule.name for rule in rules if rule.family == self.family}

    def case(self, peers: Peers, name: str) -> Case:
        return self.factories[name](peers, name)


class Peers:
    """Real peers for one test: sockets, threads, files; all cleaned up afterwards."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.request = request
        self.tmp_path = tmp_path
        self._cleanups = contextlib.ExitStack()

    def fixture(self, name: str) -> Any:
        """Another pytest fixture, set up only for the cases that need it (TLS peers)."""
        return self.request.getfixturevalue(name)

    def close(self) -> None:
        self._cleanups.close()

    def defer(self, function: Callable[..., object], *args: Any) -> None:
        """Run ``function(*args)`` at teardown (last registered runs first)."""
        self._cleanups.callback(function, *args)

    def closing(self, resource: Any) -> Any:
        """Close ``resource`` at teardown and return it."""
        self.defer(resource.close)
        return resource

    def thread(self, target: Callable[[], object]) -> threading.Thread:
        """Start a daemon thread; it is joined at teardown."""
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self.defer(thread.join, PEER_TIMEOUT)
        return thread

    def listener(self, kind: int = socket.SOCK_STREAM) -> socket.socket:
        """A blocking socket bound to 127.0.0.1 (listening, for TCP)."""
        sock = self.closing(socket.socket(socket.AF_INET, kind))
        sock.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            sock.listen(8)
        return sock

    def tcp_pair(self) -> tuple[socket.socket, socket.socket]:
        """Two connected blocking TCP sockets on 127.0.0.1: (client, server side)."""
        listener = self.listener()
        client = self.closing(socket.create_connection(listener.getsockname(), PEER_TIMEOUT))
        client.settimeout(None)
        server, _ = listener.accept()
        self.closing(server)
        return client, server

    def udp_pair(self) -> tuple[socket.socket, socket.socket]:
        """Two bound blocking UDP sockets on 127.0.0.1, each connected to the other."""
        first, second = self.listener(socket.SOCK_DGRAM), self.listener(socket.SOCK_DGRAM)
        first.connect(second.getsockname())
        second.connect(first.getsockname())
        return first, second

    def hold(self, lock: Any) -> Callable[[], None]:
        """Hold ``lock`` in another thread until the returned function is called."""
        held, release = threading.Event(), threading.Event()

        def holder() -> None:
            with lock:
                held.set()
                release.wait(PEER_TIMEOUT)

        self.thread(holder)
        assert held.wait(PEER_TIMEOUT)
        self.defer(release.set)
        return release.set

    def child(self, code: str = "import sys; sys.stdin.read()") -> subprocess.Popen[bytes]:
        """A Python child that runs until its stdin is closed (by default)."""
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", code], stdin=subprocess.PIPE)

        def reap() -> None:
            if proc.stdin is not None:
                proc.stdin.close()
            with contextlib.suppress(ChildProcessError):
                proc.wait(PEER_TIMEOUT)

        self.defer(reap)
        return proc


@contextlib.contextmanager
def open_peers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Peers]:
    """Real peers for one test, cleaned up on exit (wrap it in a ``peers`` fixture)."""
    p = Peers(request, tmp_path)
    try:
        yield p
    finally:
        p.close()


Call = Callable[[], object]


def ignoring(*errors: type[BaseException]) -> Callable[[Call], Call]:
    """Wrap a call so that the given (expected, immediate) errors count as done."""

    def wrap(call: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            try:
                return call()
            except errors as exc:
                return exc

        return run

    return wrap


async def _call(call: Callable[[], object]) -> object:
    return call()


def expect_finding(call: Callable[[], object], primitive: str) -> Finding:
    """Run ``call`` on a real asyncio loop thread and return the finding it raised."""
    with loopwarden.guard(mode="raise") as warden, pytest.raises(BlockingCallError) as info:
        asyncio.run(_call(call))
    finding = info.value.finding
    assert finding.primitive == primitive, finding.message
    assert warden.findings == [finding]
    assert finding.thread_name == threading.current_thread().name
    return finding


def expect_silent_on_loop(call: Callable[[], object]) -> object:
    """Run ``call`` on the loop thread under ``guard(mode="raise")``: no finding."""
    with loopwarden.guard(mode="raise") as warden:
        result = asyncio.run(_call(call))
    assert warden.findings == []
    return result


def expect_silent_off_loop(
    call: Callable[[], object], unblock: Callable[[], object] | None = None
) -> object:
    """Run ``call`` in a worker while the loop runs, under ``guard(mode="raise")``."""

    async def main() -> object:
        loop = asyncio.get_running_loop()
        pending = loop.run_in_executor(None, call)
        if unblock is not None:
            await asyncio.to_thread(unblock)
        return await pending

    with loopwarden.guard(mode="raise") as warden:
        result = asyncio.run(main())
    assert warden.findings == []
    return result


def run_script(code: str, *, stdin: bytes = b"", new_session: bool = False) -> str:
    """Run ``code`` in a fresh interpreter (same environment) and return its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=stdin,
        capture_output=True,
        timeout=60,
        start_new_session=new_session,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


class FamilyTests(NamedTuple):
    """The standard tests of a family, to unpack into module-level test names."""

    every_rule_has_a_case: Callable[..., None]
    fires_on_loop_thread: Callable[..., None]
    silent_off_loop: Callable[..., None]
    silent_in_nonblocking_form: Callable[..., None]


def family_tests(cases: CaseTable) -> FamilyTests:
    """Build the standard tests for a family's case table."""

    def test_every_rule_has_a_case() -> None:
        assert set(cases.names) | cases.elsewhere == cases.rule_names()

    @pytest.mark.parametrize("name", cases.names)
    def test_fires_on_loop_thread(peers: Peers, name: str) -> None:
        case = cases.case(peers, name)
        finding = expect_finding(case.blocking, name)
        assert finding.family == cases.family
        assert finding.suggestion

    @pytest.mark.parametrize("name", cases.names)
    def test_silent_off_loop(peers: Peers, name: str) -> None:
        case = cases.case(peers, name)
        expect_silent_off_loop(case.blocking, case.unblock)

    @pytest.mark.parametrize("name", cases.nonblocking_names)
    def test_silent_in_nonblocking_form(peers: Peers, name: str) -> None:
        case = cases.case(peers, name)
        assert case.nonblocking, f"{name}: registered with nonblocking=True but has none"
        for form in case.nonblocking:
            expect_silent_on_loop(form)

    return FamilyTests(
        test_every_rule_has_a_case,
        test_fires_on_loop_thread,
        test_silent_off_loop,
        test_silent_in_nonblocking_form,
    )


class Certificate:
    """A self-signed certificate for localhost / 127.0.0.1, as PEM files."""

    def __init__(self, directory: Path) -> None:
        x509 = pytest.importorskip("cryptography.x509")
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        self.pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        self.cert = directory / "cert.pem"
        self.key = directory / "key.pem"
        self.cert.write_text(self.pem)
        self.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.pem)
