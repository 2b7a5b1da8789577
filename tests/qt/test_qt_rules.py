"""Family ``qt``: each blocking Qt API fires in a slot of a running Qt loop, and stays
silent off the loop (a worker thread) and in its non-blocking form.

Firing cases run in raise mode: the error comes before the original runs, so no
test really sleeps or waits."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import (
    QBuffer,
    QByteArray,
    QDir,
    QFile,
    QIODevice,
    QMutex,
    QProcess,
    QReadWriteLock,
    QRecursiveMutex,
    QRunnable,
    QSaveFile,
    QSemaphore,
    QSettings,
    QSystemSemaphore,
    QThread,
    QThreadPool,
    QWaitCondition,
)
from PySide6.QtNetwork import (
    QHostAddress,
    QHostInfo,
    QLocalServer,
    QLocalSocket,
    QSslSocket,
    QTcpServer,
    QTcpSocket,
)
from PySide6.QtSerialPort import QSerialPort
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from qt_support import in_qt_slot, in_worker, primitives

import loopwarden

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("qapp")]

_QTCORE = "PySide6.QtCore."
_WRITE = QIODevice.OpenModeFlag.WriteOnly
_READ = QIODevice.OpenModeFlag.ReadOnly


def fires(call: Callable[[], Any], primitive: str) -> None:
    """``call`` in a Qt slot raises a finding for ``primitive`` (and only that).

    Calls are lambdas: a bound method taken before activation (``obj.method``)
    holds the unpatched method.
    """
    with loopwarden.guard(mode="raise") as warden, pytest.raises(loopwarden.BlockingCallError):
        in_qt_slot(call)
    assert primitives(warden) == [primitive]
    assert warden.findings[0].family == "qt"
    assert "Qt event loop" in warden.findings[0].loop


def silent_on_loop(call: Callable[[], Any]) -> Any:
    with loopwarden.guard(mode="raise") as warden:
        result = in_qt_slot(call)
    assert warden.findings == []
    return result


def silent_off_loop(call: Callable[[], Any]) -> Any:
    with loopwarden.guard(mode="raise") as warden:
        result = in_worker(call)
    assert warden.findings == []
    return result


# -- sleeping and threads ------------------------------------------------------


@pytest.mark.parametrize("name", ["sleep", "msleep", "usleep"])
def test_qthread_sleeps(name: str) -> None:
    fires(lambda: getattr(QThread, name)(1), f"{_QTCORE}QThread.{name}")
    silent_on_loop(lambda: getattr(QThread, name)(0))
    if name != "sleep":
        silent_off_loop(lambda: getattr(QThread, name)(1))


def test_qtest_qsleep() -> None:
    fires(lambda: QTest.qSleep(1), "PySide6.QtTest.QTest.qSleep")
    silent_on_loop(lambda: QTest.qSleep(0))
    silent_off_loop(lambda: QTest.qSleep(1))


class _WaitingThread(QThread):
    """Runs until released: a thread that QThread.wait() would really wait for."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def run(self) -> None:
        self.release.wait(10)


@pytest.fixture
def running_thread() -> Iterator[_WaitingThread]:
    thread = _WaitingThread()
    thread.start()
    yield thread
    thread.release.set()
    thread.wait(5000)


def test_qthread_wait(running_thread: _WaitingThread) -> None:
    fires(lambda: running_thread.wait(), f"{_QTCORE}QThread.wait")
    assert silent_on_loop(lambda: running_thread.wait(0)) is False
    running_thread.release.set()
    assert silent_off_loop(lambda: running_thread.wait(5000)) is True
    assert silent_on_loop(lambda: running_thread.wait()) is True  # finished: returns at once


def test_qthreadpool_wait_for_done() -> None:
    release = threading.Event()

    class Task(QRunnable):
        def run(self) -> None:
            release.wait(10)

    pool = QThreadPool()
    pool.start(Task())
    try:
        fires(lambda: pool.waitForDone(), f"{_QTCORE}QThreadPool.waitForDone")
        silent_on_loop(lambda: pool.waitForDone(0))
    finally:
        release.set()
    assert silent_off_loop(lambda: pool.waitForDone(5000)) is True
    assert silent_on_loop(lambda: pool.waitForDone()) is True  # idle pool


# -- locks: a finding only when contended -------------------------------------------


def _held_elsewhere(acquire: Callable[[], Any], release: Callable[[], Any]) -> threading.Event:
    """Take a lock in a worker thread that keeps it until the returned event is set."""
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        acquire()
        taken.set()
        done.wait(10)
        release()

    threading.Thread(target=hold, daemon=True).start()
    assert taken.wait(5)
    return done


@pytest.mark.parametrize(
    ("factory", "lock", "unlock", "primitive"),
    [
        (QMutex, "lock", "unlock", "QMutex.lock"),
        (QRecursiveMutex, "lock", "unlock", "QRecursiveMutex.lock"),
        (QReadWriteLock, "lockForRead", "unlock", "QReadWriteLock.lockForRead"),
        (QReadWriteLock, "lockForWrite", "unlock", "QReadWriteLock.lockForWrite"),
    ],
)
def test_locks(factory: Callable[[], Any], lock: str, unlock: str, primitive: str) -> None:
    mutex = factory()
    # Free: taken at once (by the non-blocking attempt), not a finding.
    silent_on_loop(lambda: getattr(mutex, lock)())
    getattr(mutex, unlock)()
    silent_off_loop(lambda: (getattr(mutex, lock)(), getattr(mutex, unlock)()))
    writer = "lockForWrite" if factory is QReadWriteLock else lock
    release = _held_elsewhere(getattr(mutex, writer), getattr(mutex, unlock))
    try:
        fires(lambda: getattr(mutex, lock)(), _QTCORE + primitive)
    finally:
        release.set()


def test_qsemaphore_acquire() -> None:
    semaphore = QSemaphore(1)
    silent_on_loop(lambda: semaphore.acquire())  # available: no wait
    fires(lambda: semaphore.acquire(), f"{_QTCORE}QSemaphore.acquire")  # none left
    semaphore.release()
    silent_off_loop(lambda: semaphore.acquire())


def test_qwaitcondition_wait() -> None:
    condition, mutex = QWaitCondition(), QMutex()

    def wait(timeout: int | None) -> Any:
        mutex.lock()
        try:
            return condition.wait(mutex) if timeout is None else condition.wait(mutex, timeout)
        finally:
            mutex.unlock()

    fires(lambda: wait(None), f"{_QTCORE}QWaitCondition.wait")
    assert silent_on_loop(lambda: wait(0)) is False
    assert silent_off_loop(lambda: wait(1)) is False


def test_qsystemsemaphore_acquire(tmp_path: Path) -> None:
    key = QSystemSemaphore.platformSafeKey(f"loopwarden-{tmp_path.name}")
    semaphore = QSystemSemaphore(key, 1, QSystemSemaphore.AccessMode.Create)
    fires(lambda: semaphore.acquire(), f"{_QTCORE}QSystemSemaphore.acquire")
    assert silent_off_loop(lambda: semaphore.acquire()) is True
    semaphore.release()


# -- processes ---------------------------------------------------------------------

_CAT = [sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read())"]


@pytest.fixture
def process() -> Iterator[QProcess]:
    proc = QProcess()
    proc.start(_CAT[0], _CAT[1:])
    assert proc.waitForStarted(10000)  # test body: not guarded
    yield proc
    proc.kill()
    proc.waitForFinished(5000)


def _process_in_worker() -> int:
    """Every QProcess wait, on a QProcess owned by a worker thread (QObjects are thread-bound)."""
    proc = QProcess()
    proc.start(_CAT[0], _CAT[1:])
    assert proc.waitForStarted(10000)
    proc.write(b"ping")
    assert proc.waitForBytesWritten(5000)
    proc.closeWriteChannel()  # the child echoes stdin once it ends
    assert proc.waitForReadyRead(10000)
    assert proc.waitForFinished(10000)
    return proc.exitCode()


def test_qprocess_waits_are_silent_off_the_loop() -> None:
    assert silent_off_loop(_process_in_worker) == 0


def test_qprocess_wait_for_started() -> None:
    proc = QProcess()

    def start_and_wait() -> None:
        proc.start(_CAT[0], _CAT[1:])
        proc.waitForStarted()

    try:
        fires(start_and_wait, f"{_QTCORE}QProcess.waitForStarted")
        assert proc.waitForStarted(10000)  # test body: not guarded
        assert silent_on_loop(lambda: proc.waitForStarted()) is True  # running: at once
    finally:
        proc.kill()
        proc.waitForFinished(5000)
    assert silent_on_loop(lambda: QProcess().waitForStarted()) is False  # never started


def test_qprocess_wait_for_finished_and_ready_read(process: QProcess) -> None:
    fires(lambda: process.waitForFinished(), f"{_QTCORE}QProcess.waitForFinished")
    fires(lambda: process.waitForReadyRead(), f"{_QTCORE}QProcess.waitForReadyRead")
    assert silent_on_loop(lambda: process.waitForFinished(0)) is False  # a poll
    assert silent_on_loop(lambda: QProcess().waitForFinished()) is False  # not running


def test_qprocess_wait_for_bytes_written(process: QProcess) -> None:
    assert silent_on_loop(lambda: process.waitForBytesWritten()) is False  # nothing to write
    process.write(b"x")
    fires(lambda: process.waitForBytesWritten(), f"{_QTCORE}QProcess.waitForBytesWritten")


def test_qprocess_execute() -> None:
    fires(lambda: QProcess.execute(sys.executable, ["-c", "pass"]), f"{_QTCORE}QProcess.execute")
    assert silent_off_loop(lambda: QProcess.execute(sys.executable, ["-c", "pass"])) == 0


# -- sockets -------------------------------------------------------------------------


@pytest.fixture
def tcp_pair() -> Iterator[tuple[QTcpServer, QTcpSocket, QTcpSocket]]:
    server = QTcpServer()
    assert server.listen(QHostAddress.SpecialAddress.LocalHost, 0)
    client = QTcpSocket()
    client.connectToHost(QHostAddress.SpecialAddress.LocalHost, server.serverPort())
    assert client.waitForConnected(5000)  # test body: not guarded
    assert server.waitForNewConnection(5000)
    peer = server.nextPendingConnection()
    yield server, client, peer
    client.abort()
    peer.abort()
    server.close()


def test_qabstractsocket_waits(tcp_pair: tuple[QTcpServer, QTcpSocket, QTcpSocket]) -> None:
    server, client, _ = tcp_pair
    socket_ = "PySide6.QtNetwork.QAbstractSocket."
    fires(lambda: client.waitForReadyRead(), socket_ + "waitForReadyRead")
    fires(lambda: client.waitForDisconnected(), socket_ + "waitForDisconnected")
    assert silent_on_loop(lambda: client.waitForReadyRead(0)) is False  # a poll
    assert silent_on_loop(lambda: client.waitForBytesWritten()) is False  # nothing to write
    client.write(b"x")
    fires(lambda: client.waitForBytesWritten(), socket_ + "waitForBytesWritten")
    fires(
        lambda: server.waitForNewConnection(100),
        "PySide6.QtNetwork.QTcpServer.waitForNewConnection",
    )
    assert silent_on_loop(lambda: server.waitForNewConnection(0))[0] is False  # a poll


def test_qabstractsocket_wait_for_connected(tcp_pair: tuple[Any, Any, Any]) -> None:
    port = tcp_pair[0].serverPort()
    socket_ = QTcpSocket()

    def connect_and_wait() -> None:
        socket_.connectToHost(QHostAddress.SpecialAddress.LocalHost, port)
        socket_.waitForConnected()

    fires(connect_and_wait, "PySide6.QtNetwork.QAbstractSocket.waitForConnected")
    socket_.abort()
    assert silent_on_loop(lambda: QTcpSocket().waitForConnected()) is False  # unconnected

    def client_in_worker() -> bool:
        worker_socket = QTcpSocket()
        worker_socket.connectToHost(QHostAddress.SpecialAddress.LocalHost, port)
        assert worker_socket.waitForConnected(5000)
        worker_socket.write(b"hello")
        assert worker_socket.waitForBytesWritten(5000)
        worker_socket.disconnectFromHost()
        return worker_socket.state() == QTcpSocket.SocketState.UnconnectedState or bool(
            worker_socket.waitForDisconnected(5000)
        )

    assert silent_off_loop(client_in_worker) is True


def test_qlocalsocket_waits(tmp_path: Path) -> None:
    server = QLocalServer()
    assert server.listen(str(tmp_path / "sock"))
    name = server.fullServerName()
    local = "PySide6.QtNetwork.QLocalSocket."
    client = QLocalSocket()

    def connect_and_wait() -> None:
        client.connectToServer(name)
        client.waitForConnected()

    def client_in_worker() -> bool:
        worker_socket = QLocalSocket()
        worker_socket.connectToServer(name)
        assert worker_socket.waitForConnected(5000)
        worker_socket.write(b"hello")
        return bool(worker_socket.waitForBytesWritten(5000))

    try:
        # A local socket may connect at once (state Connected): then waiting is free.
        with (
            loopwarden.guard(mode="raise") as warden,
            contextlib.suppress(loopwarden.BlockingCallError),
        ):
            in_qt_slot(connect_and_wait)
        assert primitives(warden) in ([], [local + "waitForConnected"])
        assert client.waitForConnected(5000)
        fires(
            lambda: server.waitForNewConnection(100),
            "PySide6.QtNetwork.QLocalServer.waitForNewConnection",
        )
        fires(lambda: client.waitForReadyRead(), local + "waitForReadyRead")
        fires(lambda: client.waitForDisconnected(), local + "waitForDisconnected")
        assert silent_on_loop(lambda: client.waitForReadyRead(0)) is False
        assert silent_on_loop(lambda: QLocalSocket().waitForConnected()) is False
        assert silent_on_loop(lambda: client.waitForBytesWritten()) is False  # nothing pending
        client.write(b"x")
        assert client.bytesToWrite() > 0
        fires(lambda: client.waitForBytesWritten(), local + "waitForBytesWritten")
        assert silent_off_loop(client_in_worker) is True
    finally:
        client.abort()
        server.close()


def test_qhostinfo_from_name() -> None:
    fires(lambda: QHostInfo.fromName("localhost"), "PySide6.QtNetwork.QHostInfo.fromName")
    assert silent_off_loop(lambda: QHostInfo.fromName("localhost").addresses())


# -- files and settings ------------------------------------------------------------------


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.txt"
    path.write_text("first line\nsecond line\n")
    return path


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("read", (4,)),
        ("readAll", ()),
        ("readLine", ()),
        ("peek", (4,)),
        ("getChar", ()),
    ],
)
def test_qiodevice_reads_on_files(text_file: Path, method: str, args: tuple[Any, ...]) -> None:
    qfile = QFile(str(text_file))
    assert qfile.open(_READ)
    fires(lambda: getattr(qfile, method)(*args), f"{_QTCORE}QIODevice.{method}")
    silent_off_loop(lambda: getattr(qfile, method)(*args))
    qfile.close()
    buffer = QBuffer()
    buffer.setData(QByteArray(b"in memory\n"))  # a copy: QBuffer(QByteArray(...)) dangles
    buffer.open(_READ)
    silent_on_loop(lambda: getattr(buffer, method)(*args))  # not a file


@pytest.mark.parametrize(("method", "arg"), [("write", b"abc"), ("putChar", "a")])
def test_qiodevice_writes_on_files(tmp_path: Path, method: str, arg: bytes | str) -> None:
    qfile = QFile(str(tmp_path / "out.bin"))
    assert qfile.open(_WRITE)
    fires(lambda: getattr(qfile, method)(arg), f"{_QTCORE}QIODevice.{method}")
    silent_off_loop(lambda: getattr(qfile, method)(arg))
    fires(lambda: qfile.flush(), f"{_QTCORE}QFileDevice.flush")
    silent_off_loop(lambda: qfile.flush())
    qfile.close()
    buffer = QBuffer()
    buffer.open(_WRITE)
    silent_on_loop(lambda: getattr(buffer, method)(arg))


def test_qfile_open(text_file: Path) -> None:
    qfile = QFile(str(text_file))
    fires(lambda: qfile.open(_READ), f"{_QTCORE}QFile.open")
    assert silent_off_loop(lambda: qfile.open(_READ)) is True
    qfile.close()
    with open(text_file, "rb") as handle:  # test body: not guarded
        wrapped = QFile()
        # Wrapping an open descriptor does not touch the disk.
        assert silent_on_loop(
            lambda: wrapped.open(handle.fileno(), _READ, QFile.FileHandleFlag.DontCloseHandle)
        )
        wrapped.close()


@pytest.mark.parametrize("method", ["copy", "rename", "link", "remove", "exists"])
def test_qfile_static_file_operations(text_file: Path, method: str) -> None:
    target = str(text_file.with_name("other.txt"))
    args = (str(text_file),) if method in ("remove", "exists") else (str(text_file), target)
    fires(lambda: getattr(QFile, method)(*args), f"{_QTCORE}QFile.{method}")
    assert silent_off_loop(lambda: getattr(QFile, method)(*args)) is True


def test_qfile_move_to_trash(text_file: Path) -> None:
    # Raise mode: the error comes first, so nothing lands in the user's trash.
    fires(lambda: QFile.moveToTrash(str(text_file)), f"{_QTCORE}QFile.moveToTrash")
    assert text_file.exists()


def test_qsavefile_commit(tmp_path: Path) -> None:
    def saver() -> QSaveFile:
        save = QSaveFile(str(tmp_path / "saved.txt"))
        assert save.open(_WRITE)
        return save

    pending = saver()
    fires(lambda: pending.commit(), f"{_QTCORE}QSaveFile.commit")
    pending.cancelWriting()
    assert silent_off_loop(lambda: saver().commit()) is True


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("entryList", ()),
        ("entryInfoList", ()),
        ("exists", ()),
        ("mkdir", ("sub",)),
        ("mkpath", ("a/b",)),
        ("rmdir", ("missing",)),
        ("removeRecursively", ()),
    ],
)
def test_qdir_operations(tmp_path: Path, method: str, args: tuple[str, ...]) -> None:
    directory = QDir(str(tmp_path / "dir"))
    (tmp_path / "dir").mkdir()
    fires(lambda: getattr(directory, method)(*args), f"{_QTCORE}QDir.{method}")
    silent_off_loop(lambda: getattr(directory, method)(*args))


def test_qsettings_sync(tmp_path: Path) -> None:
    settings = QSettings(str(tmp_path / "app.ini"), QSettings.Format.IniFormat)
    settings.setValue("key", 1)
    fires(lambda: settings.sync(), f"{_QTCORE}QSettings.sync")
    silent_off_loop(lambda: settings.sync())
    assert "key" in (tmp_path / "app.ini").read_text()


def test_rules_are_not_patched_into_qapplication_itself(qapp: QApplication) -> None:
    # Only the targets named in the table are patched: QApplication.exec is not one.
    with loopwarden.guard(mode="record"):
        assert getattr(type(qapp).exec, "__loopwarden_rule__", None) is None


@pytest.mark.parametrize("method", ["copy", "rename", "link", "remove", "exists"])
def test_qfile_instance_forms_of_static_operations(text_file: Path, method: str) -> None:
    # Shiboken serves these from C for instances; the registry hooks __getattribute__.
    args = () if method in ("remove", "exists") else (str(text_file.with_name("other.txt")),)
    qfile = QFile(str(text_file))
    fires(lambda: getattr(qfile, method)(*args), f"{_QTCORE}QFile.{method}")
    assert silent_off_loop(lambda: getattr(QFile(str(text_file)), method)(*args)) is True


def test_instance_hook_is_removed_exactly() -> None:
    original = QFile.__dict__["__getattribute__"]
    with loopwarden.guard(mode="record"):
        assert QFile.__dict__["__getattribute__"] is not original
    assert QFile.__dict__["__getattribute__"] is original


def test_qsslsocket_waits(tcp_pair: tuple[QTcpServer, QTcpSocket, QTcpSocket]) -> None:
    port = tcp_pair[0].serverPort()
    ssl = "PySide6.QtNetwork.QSslSocket."
    socket_ = QSslSocket()

    def connect_and_wait() -> None:
        socket_.connectToHost("127.0.0.1", port)
        socket_.waitForConnected()

    try:
        fires(connect_and_wait, ssl + "waitForConnected")
        assert socket_.waitForConnected(5000)  # test body: not guarded
        for method in ("waitForReadyRead", "waitForEncrypted", "waitForDisconnected"):
            fires(lambda method=method: getattr(socket_, method)(), ssl + method)
        assert silent_on_loop(lambda: socket_.waitForReadyRead(0)) is False
        socket_.write(b"x")
        fires(lambda: socket_.waitForBytesWritten(), ssl + "waitForBytesWritten")
    finally:
        socket_.abort()
    assert silent_on_loop(lambda: QSslSocket().waitForConnected()) is False  # unconnected

    def client_in_worker() -> bool:
        worker_socket = QSslSocket()
        worker_socket.connectToHost("127.0.0.1", port)
        connected = bool(worker_socket.waitForConnected(5000))
        worker_socket.abort()
        return connected

    assert silent_off_loop(client_in_worker) is True


@pytest.fixture
def pty_port() -> Iterator[tuple[int, str]]:
    """A pseudo-terminal: a real serial-port-like device without hardware."""
    master, slave = os.openpty()
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def _open_port(name: str) -> QSerialPort:
    port = QSerialPort()
    port.setPortName(name)
    assert port.open(QIODevice.OpenModeFlag.ReadWrite), port.errorString()
    return port


def test_qserialport_waits(pty_port: tuple[int, str]) -> None:
    master, name = pty_port
    serial = "PySide6.QtSerialPort.QSerialPort."
    # Qt sleeps out the timeout even on a closed port: that blocks too.
    fires(lambda: QSerialPort().waitForReadyRead(), serial + "waitForReadyRead")
    port = _open_port(name)
    try:
        fires(lambda: port.waitForReadyRead(), serial + "waitForReadyRead")
        assert silent_on_loop(lambda: port.waitForReadyRead(0)) is False  # a poll
        assert silent_on_loop(lambda: port.waitForBytesWritten()) is False  # nothing pending
        port.write(b"x")
        fires(lambda: port.waitForBytesWritten(), serial + "waitForBytesWritten")
    finally:
        port.close()

    def read_in_worker() -> bytes:
        worker_port = _open_port(name)
        os.write(master, b"hi")
        assert worker_port.waitForReadyRead(5000)
        data = bytes(worker_port.readAll().data())
        worker_port.close()
        return data

    assert silent_off_loop(read_in_worker) == b"hi"


def test_shiboken_patches_are_restored_exactly() -> None:
    originals = {
        (QThread, "sleep"): QThread.__dict__["sleep"],
        (QProcess, "execute"): QProcess.__dict__["execute"],
        (QIODevice, "readAll"): QIODevice.__dict__["readAll"],
    }
    with loopwarden.guard(mode="record"):
        assert "lock" in QMutex.__dict__  # inherited from QBasicMutex: patched on QMutex
        for (cls, name), original in originals.items():
            assert cls.__dict__[name] is not original
    for (cls, name), original in originals.items():
        assert cls.__dict__[name] is original
    assert "lock" not in QMutex.__dict__
