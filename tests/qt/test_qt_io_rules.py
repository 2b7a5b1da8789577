"""Blocking work Qt does in C++ (images, file metadata, streams, settings, QtSql, lockers).

Every scenario fires in a qasync coroutine, in an ``@asyncSlot`` and in a slot
of a plain ``QApplication.exec()``, and stays silent in ``QThread.run``, a
``QThreadPool`` runnable and an executor. Firing runs in raise mode: the error
comes before the original runs, so no test really waits on a held lock.
Real files and databases live in ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import (
    QBuffer,
    QByteArray,
    QCoreApplication,
    QDataStream,
    QDir,
    QDirIterator,
    QFile,
    QFileInfo,
    QIODevice,
    QMutex,
    QMutexLocker,
    QObject,
    QReadLocker,
    QReadWriteLock,
    QRunnable,
    QSaveFile,
    QSemaphore,
    QSettings,
    QTemporaryDir,
    QTemporaryFile,
    QTextStream,
    QThread,
    QThreadPool,
    QTimer,
    QWaitCondition,
    QWriteLocker,
    Signal,
)
from PySide6.QtGui import QIcon, QImage, QImageReader, QImageWriter, QMovie, QPixmap
from PySide6.QtNetwork import (
    QHostAddress,
    QLocalServer,
    QLocalSocket,
    QSslSocket,
    QTcpServer,
    QTcpSocket,
)
from PySide6.QtSql import QSqlDatabase, QSqlQuery, QSqlTableModel
from PySide6.QtWidgets import QApplication
from qt_support import run_coro

import loopwarden

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("qapp")]

_CORE, _GUI, _SQL = "PySide6.QtCore.", "PySide6.QtGui.", "PySide6.QtSql."
_RESOURCE_PNG = ":/qt-project.org/logos/pysidelogo.png"  # compiled into PySide6
_READ = QIODevice.OpenModeFlag.ReadOnly
_WRITE = QIODevice.OpenModeFlag.WriteOnly


# -- what each scenario needs, made in the thread that uses it ----------------------------


def _png(tmp: Path, _held: bool) -> str:
    path = str(tmp / f"{uuid.uuid4().hex}.png")
    image = QImage(4, 4, QImage.Format.Format_ARGB32)
    image.fill(0)
    assert image.save(path)
    return path


def _text(tmp: Path, _held: bool) -> str:
    path = tmp / f"{uuid.uuid4().hex}.txt"
    path.write_text("first\nsecond\n")
    return str(path)


def _opened(mode: QIODevice.OpenModeFlag) -> Callable[[Path, bool], QFile]:
    def prepare(tmp: Path, held: bool) -> QFile:
        qfile = QFile(_text(tmp, held))
        assert qfile.open(mode)
        return qfile

    return prepare


def _database(tmp: Path, _held: bool, *, name: str = "", open_it: bool = True) -> QSqlDatabase:
    """A SQLite connection of the calling thread, on a file with one table."""
    db = QSqlDatabase.addDatabase("QSQLITE", f"lw-{uuid.uuid4().hex}")
    db.setDatabaseName(name or str(tmp / f"{uuid.uuid4().hex}.sqlite"))
    if open_it:
        assert db.open(), db.lastError().text()
        query = QSqlQuery(db)
        assert query.exec("CREATE TABLE t (x INTEGER)")
        assert query.exec("INSERT INTO t VALUES (1)")
    return db


def _executed(tmp: Path, held: bool) -> QSqlQuery:
    query = QSqlQuery(_database(tmp, held))
    assert query.exec("SELECT x FROM t")
    return query


def _table_model(tmp: Path, held: bool) -> QSqlTableModel:
    model = QSqlTableModel(None, _database(tmp, held))
    model.setTable("t")
    return model


def _holder(
    acquire: Callable[[Any], Any], release: Callable[[Any], Any]
) -> Callable[[Any, Path, bool], Any]:
    """Hold a lock in another thread until the test ends (firing runs only).

    Off the loop the lock stays free: PySide6 keeps the GIL while QReadLocker's
    constructor waits in C++, so a Python thread holding the lock could never
    release it (a deadlock of the test, not of loopwarden).
    """

    def hold(lock: Any, _tmp: Path, held: bool) -> Any:
        if not held:
            return lock
        taken, done = threading.Event(), threading.Event()
        _HOLDERS.append(done)

        def run() -> None:
            acquire(lock)
            taken.set()
            done.wait(10)
            release(lock)

        threading.Thread(target=run, daemon=True).start()
        assert taken.wait(5)
        return lock

    return hold


_HOLDERS: list[threading.Event] = []


def _held(factory: Callable[[], Any], acquire: Any, release: Any) -> Callable[[Path, bool], Any]:
    hold = _holder(acquire, release)
    return lambda tmp, held: hold(factory(), tmp, held)


def _save_file(tmp: Path, _held: bool) -> QSaveFile:
    save = QSaveFile(str(tmp / f"{uuid.uuid4().hex}.txt"))
    assert save.open(_WRITE)
    return save


def _settings(tmp: Path, _held: bool) -> QSettings:
    settings = QSettings(str(tmp / f"{uuid.uuid4().hex}.ini"), QSettings.Format.IniFormat)
    settings.setValue("key", 1)
    return settings


def _wait_briefly(condition_and_mutex: tuple[QWaitCondition, QMutex]) -> bool:
    condition, mutex = condition_and_mutex
    mutex.lock()
    try:
        return bool(condition.wait(mutex, 20))  # nobody wakes it: times out
    finally:
        mutex.unlock()


def _local_pair(_tmp: Path, _held: bool) -> tuple[Any, ...]:
    """A connected QLocalSocket (first) and what keeps it connected."""
    server = QLocalServer()
    assert server.listen(f"lw-{uuid.uuid4().hex[:12]}")
    client = QLocalSocket()
    client.connectToServer(server.fullServerName())
    assert client.waitForConnected(5000)
    assert server.waitForNewConnection(5000)[0]
    return client, server, server.nextPendingConnection()


def _tcp_pair(socket_type: type) -> Callable[[Path, bool], tuple[Any, ...]]:
    def prepare(_tmp: Path, _held: bool) -> tuple[Any, ...]:
        server = QTcpServer()
        assert server.listen(QHostAddress.SpecialAddress.LocalHost, 0)
        client = socket_type()
        client.connectToHost("127.0.0.1", server.serverPort())
        assert client.waitForConnected(5000)
        assert server.waitForNewConnection(5000)[0]
        return client, server, server.nextPendingConnection()

    return prepare


def _small_image() -> QImage:
    return QImage(4, 4, QImage.Format.Format_RGB32)


# -- the scenarios ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One blocking Qt call: ``call(prepare(tmp_path, held))`` blocks."""

    primitive: str
    call: Callable[[Any], Any]
    prepare: Callable[[Path, bool], Any] = _png
    family: str = "qt"
    gui_only: bool = False  # QPixmap and QIcon belong to the GUI thread


def _no_prepare(tmp: Path, _held: bool) -> Path:
    return tmp


SCENARIOS: dict[str, Scenario] = {
    # images
    "QImage(path)": Scenario(_GUI + "QImage", lambda p: QImage(p)),
    "QImage.load": Scenario(_GUI + "QImage.load", lambda p: QImage().load(p)),
    "QImage.save": Scenario(
        _GUI + "QImage.save", lambda p: QImage(4, 4, QImage.Format.Format_RGB32).save(p + ".png")
    ),
    "QPixmap(path)": Scenario(_GUI + "QPixmap", lambda p: QPixmap(p), gui_only=True),
    "QPixmap.load": Scenario(_GUI + "QPixmap.load", lambda p: QPixmap().load(p), gui_only=True),
    "QPixmap.save": Scenario(
        _GUI + "QPixmap.save",
        lambda p: QPixmap.fromImage(QImage(4, 4, QImage.Format.Format_RGB32)).save(p + ".png"),
        gui_only=True,
    ),
    "QIcon(path)": Scenario(_GUI + "QIcon", lambda p: QIcon(p), gui_only=True),
    "QImageReader.read": Scenario(_GUI + "QImageReader.read", lambda p: QImageReader(p).read()),
    "QImageWriter.write": Scenario(
        _GUI + "QImageWriter.write",
        lambda p: QImageWriter(p + ".png").write(QImage(4, 4, QImage.Format.Format_RGB32)),
    ),
    "QMovie(path)": Scenario(_GUI + "QMovie", lambda p: QMovie(p)),
    # file metadata and directories
    "QFileInfo.size": Scenario(_CORE + "QFileInfo.size", lambda p: QFileInfo(p).size(), _text),
    "QFileInfo.isFile": Scenario(
        _CORE + "QFileInfo.isFile", lambda p: QFileInfo(p).isFile(), _text
    ),
    "QFileInfo.lastModified": Scenario(
        _CORE + "QFileInfo.lastModified", lambda p: QFileInfo(p).lastModified(), _text
    ),
    "QFileInfo().exists": Scenario(
        _CORE + "QFileInfo.exists", lambda p: QFileInfo(p).exists(), _text
    ),
    "QFileInfo.exists(path)": Scenario(
        _CORE + "QFileInfo.exists", lambda p: QFileInfo.exists(p), _text
    ),
    "QDirIterator": Scenario(
        _CORE + "QDirIterator", lambda tmp: QDirIterator(str(tmp)).hasNext(), _no_prepare
    ),
    "QTemporaryFile.open": Scenario(
        _CORE + "QTemporaryFile.open",
        lambda tmp: QTemporaryFile(str(tmp / "XXXXXX.tmp")).open(),
        _no_prepare,
    ),
    "QTemporaryDir": Scenario(
        _CORE + "QTemporaryDir", lambda tmp: QTemporaryDir(str(tmp / "d-XXXXXX")), _no_prepare
    ),
    "QTextStream.readAll": Scenario(
        _CORE + "QTextStream.readAll", lambda f: QTextStream(f).readAll(), _opened(_READ)
    ),
    "QTextStream.readLine": Scenario(
        _CORE + "QTextStream.readLine", lambda f: QTextStream(f).readLine(), _opened(_READ)
    ),
    "QDataStream.writeQString": Scenario(
        _CORE + "QDataStream.writeQString",
        lambda f: QDataStream(f).writeQString("x"),
        _opened(_WRITE),
    ),
    "QDataStream.readRawData": Scenario(
        _CORE + "QDataStream.readRawData",
        lambda f: QDataStream(f).readRawData(4),
        _opened(_READ),
    ),
    # settings
    "QSettings(path)": Scenario(
        _CORE + "QSettings",
        lambda tmp: QSettings(str(tmp / "app.ini"), QSettings.Format.IniFormat),
        _no_prepare,
    ),
    # databases
    "QSqlDatabase.open": Scenario(
        _SQL + "QSqlDatabase.open",
        lambda db: db.open(),
        lambda tmp, held: _database(tmp, held, open_it=False),
        family="database",
    ),
    "QSqlQuery.exec": Scenario(
        _SQL + "QSqlQuery.exec",
        lambda db: QSqlQuery(db).exec("SELECT x FROM t"),
        _database,
        family="database",
    ),
    "QSqlQuery.prepare": Scenario(
        _SQL + "QSqlQuery.prepare",
        lambda db: QSqlQuery(db).prepare("SELECT x FROM t WHERE x = ?"),
        _database,
        family="database",
    ),
    "QSqlQuery.next": Scenario(
        _SQL + "QSqlQuery.next", lambda query: query.next(), _executed, family="database"
    ),
    "QSqlQuery(sql, db)": Scenario(
        _SQL + "QSqlQuery",
        lambda db: QSqlQuery("SELECT x FROM t", db),
        _database,
        family="database",
    ),
    "QSqlTableModel.select": Scenario(
        _SQL + "QSqlTableModel.select", lambda m: m.select(), _table_model, family="database"
    ),
    # locks done in C++
    "QMutexLocker": Scenario(
        _CORE + "QMutexLocker",
        lambda m: QMutexLocker(m).unlock(),
        _held(QMutex, QMutex.lock, QMutex.unlock),
    ),
    "QReadLocker": Scenario(
        _CORE + "QReadLocker",
        lambda rw: QReadLocker(rw).unlock(),
        _held(QReadWriteLock, QReadWriteLock.lockForWrite, QReadWriteLock.unlock),
    ),
    "QWriteLocker": Scenario(
        _CORE + "QWriteLocker",
        lambda rw: QWriteLocker(rw).unlock(),
        _held(QReadWriteLock, QReadWriteLock.lockForRead, QReadWriteLock.unlock),
    ),
    "QMutex.tryLock(timeout)": Scenario(
        _CORE + "QMutex.tryLock",
        lambda m: m.tryLock(50) and m.unlock(),
        _held(QMutex, QMutex.lock, QMutex.unlock),
    ),
    "QReadWriteLock.tryLockForRead(timeout)": Scenario(
        _CORE + "QReadWriteLock.tryLockForRead",
        lambda rw: rw.tryLockForRead(50) and rw.unlock(),
        _held(QReadWriteLock, QReadWriteLock.lockForWrite, QReadWriteLock.unlock),
    ),
    "QSemaphore.tryAcquire(n, timeout)": Scenario(
        _CORE + "QSemaphore.tryAcquire",
        lambda s: s.tryAcquire(1, 50) and s.release(),
        _held(lambda: QSemaphore(1), QSemaphore.acquire, QSemaphore.release),
    ),
    # rules of blocking.qt that existed before, in the same three loops
    "QFile.exists(path)": Scenario(_CORE + "QFile.exists", lambda p: QFile.exists(p), _text),
    "QFile.copy": Scenario(_CORE + "QFile.copy", lambda p: QFile.copy(p, p + ".copy"), _text),
    "QFile().remove": Scenario(_CORE + "QFile.remove", lambda p: QFile(p).remove(), _text),
    "QDir.entryList": Scenario(
        _CORE + "QDir.entryList", lambda tmp: QDir(str(tmp)).entryList(), _no_prepare
    ),
    "QDir.mkpath": Scenario(
        _CORE + "QDir.mkpath", lambda tmp: QDir(str(tmp)).mkpath("a/b"), _no_prepare
    ),
    "QSaveFile.commit": Scenario(_CORE + "QSaveFile.commit", lambda f: f.commit(), _save_file),
    "QSettings.sync": Scenario(_CORE + "QSettings.sync", lambda st: st.sync(), _settings),
    "QMutex.lock": Scenario(
        _CORE + "QMutex.lock",
        lambda m: (m.lock(), m.unlock()),
        _held(QMutex, QMutex.lock, QMutex.unlock),
    ),
    "QReadWriteLock.lockForRead": Scenario(
        _CORE + "QReadWriteLock.lockForRead",
        lambda rw: (rw.lockForRead(), rw.unlock()),
        _held(QReadWriteLock, QReadWriteLock.lockForWrite, QReadWriteLock.unlock),
    ),
    "QSemaphore.acquire": Scenario(
        _CORE + "QSemaphore.acquire",
        lambda sem: sem.acquire(),
        lambda _t, held: QSemaphore(0 if held else 1),
    ),
    "QWaitCondition.wait": Scenario(
        _CORE + "QWaitCondition.wait", _wait_briefly, lambda _t, _h: (QWaitCondition(), QMutex())
    ),
    "QLocalSocket.waitForReadyRead": Scenario(
        "PySide6.QtNetwork.QLocalSocket.waitForReadyRead",
        lambda pair: pair[0].waitForReadyRead(20),
        _local_pair,
    ),
    "QAbstractSocket.waitForReadyRead": Scenario(
        "PySide6.QtNetwork.QAbstractSocket.waitForReadyRead",
        lambda pair: pair[0].waitForReadyRead(20),
        _tcp_pair(QTcpSocket),
    ),
    "QSslSocket.waitForEncrypted": Scenario(
        "PySide6.QtNetwork.QSslSocket.waitForEncrypted",
        lambda pair: pair[0].waitForEncrypted(20),
        _tcp_pair(QSslSocket),
    ),
}


@pytest.fixture(autouse=True)
def _release_holders() -> Iterator[None]:
    yield
    while _HOLDERS:
        _HOLDERS.pop().set()
    for name in QSqlDatabase.connectionNames():
        if name.startswith("lw-"):
            QSqlDatabase.database(name, False).close()
            QSqlDatabase.removeDatabase(name)


def _capture(call: Callable[[], Any]) -> BaseException | None:
    try:
        call()
    except loopwarden.BlockingCallError as error:
        return error
    return None


# -- where the call runs: on the loop ------------------------------------------------------


def _in_coroutine(call: Callable[[], Any], qapp: QApplication) -> BaseException | None:
    loop = qasync.QEventLoop(qapp)

    async def main() -> BaseException | None:
        return _capture(call)

    try:
        result: BaseException | None = run_coro(loop, main())
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    return result


class _AsyncSlotRunner(QObject):
    go = Signal(int)

    def __init__(self, call: Callable[[], Any]) -> None:
        super().__init__()
        self.call = call
        self.outcome: list[BaseException | None] = []
        self.go.connect(self.on_go)

    @qasync.asyncSlot(int)
    async def on_go(self, _n: int) -> None:
        await asyncio.sleep(0)
        self.outcome.append(_capture(self.call))


def _in_async_slot(call: Callable[[], Any], qapp: QApplication) -> BaseException | None:
    runner = _AsyncSlotRunner(call)
    loop = qasync.QEventLoop(qapp)

    async def main() -> None:
        runner.go.emit(1)
        while not runner.outcome:
            await asyncio.sleep(0.005)

    try:
        run_coro(loop, main())
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    return runner.outcome[0]


def _in_app_exec(call: Callable[[], Any], qapp: QApplication) -> BaseException | None:
    outcome: list[BaseException | None] = []

    def slot() -> None:
        try:
            outcome.append(_capture(call))
        finally:
            QCoreApplication.quit()

    QTimer.singleShot(0, slot)
    QApplication.exec()
    assert outcome, "the slot did not run"
    return outcome[0]


ON_LOOP = {"coroutine": _in_coroutine, "asyncSlot": _in_async_slot, "app.exec": _in_app_exec}


# -- ... and off it ------------------------------------------------------------------------------


def _in_qthread(job: Callable[[], Any]) -> None:
    errors: list[BaseException] = []

    class Worker(QThread):
        def run(self) -> None:
            try:
                job()
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)

    worker = Worker()
    worker.start()
    assert worker.wait(20000)
    if errors:
        raise errors[0]


def _in_pool(job: Callable[[], Any]) -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    class Task(QRunnable):
        def run(self) -> None:
            try:
                job()
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)
            finally:
                done.set()

    QThreadPool.globalInstance().start(Task())
    assert done.wait(20)
    if errors:
        raise errors[0]


def _in_executor(job: Callable[[], Any]) -> None:
    async def main() -> None:
        await asyncio.get_running_loop().run_in_executor(None, job)

    asyncio.run(main())


OFF_LOOP = {"QThread.run": _in_qthread, "QThreadPool": _in_pool, "executor": _in_executor}


@pytest.mark.parametrize("where", sorted(ON_LOOP))
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_fires_on_the_loop(name: str, where: str, tmp_path: Path, qapp: QApplication) -> None:
    scenario = SCENARIOS[name]
    state = scenario.prepare(tmp_path, True)  # test body: not guarded
    with loopwarden.guard(mode="raise") as warden:
        error = ON_LOOP[where](lambda: scenario.call(state), qapp)
    assert isinstance(error, loopwarden.BlockingCallError), warden.findings
    assert [f.primitive for f in warden.findings] == [scenario.primitive]
    finding = warden.findings[0]
    assert finding.family == scenario.family
    assert "Q" in finding.suggestion and finding.suggestion == error.finding.suggestion
    assert finding.user_caller.split(":")[0].endswith("test_qt_io_rules.py")


@pytest.mark.parametrize("where", sorted(OFF_LOOP))
@pytest.mark.parametrize(
    "name", sorted(name for name, scenario in SCENARIOS.items() if not scenario.gui_only)
)
def test_silent_off_the_loop(name: str, where: str, tmp_path: Path) -> None:
    scenario = SCENARIOS[name]
    with loopwarden.guard(mode="raise") as warden:
        OFF_LOOP[where](lambda: scenario.call(scenario.prepare(tmp_path, False)))
    assert warden.findings == []


# -- the non-blocking forms stay silent on the loop ------------------------------------------------


def _memory_db() -> QSqlDatabase:
    return _database(Path(), False, name=":memory:")


def _buffer() -> QBuffer:
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.ReadWrite)
    return buffer


def _read_from_memory() -> QImage:
    buffer = _buffer()  # kept alive: the reader does not own its device
    buffer.write(b"not an image")
    buffer.seek(0)
    return QImageReader(buffer).read()


def _free_locker() -> None:
    QMutexLocker(QMutex()).unlock()


def _contended_untimed() -> bool:
    with loopwarden.allow_blocking(reason="the test waits for the holder thread"):
        mutex = _held(QMutex, QMutex.lock, QMutex.unlock)(Path(), True)
    return bool(mutex.tryLock())


SILENT_ON_LOOP: dict[str, Callable[[], Any]] = {
    "QImage(resource)": lambda: QImage(_RESOURCE_PNG).isNull(),
    "QPixmap(resource)": lambda: QPixmap(_RESOURCE_PNG).isNull(),
    "QIcon(resource)": lambda: QIcon(_RESOURCE_PNG).isNull(),
    "QImage.loadFromData": lambda: QImage().loadFromData(QByteArray(b"not an image")),
    "QImage.save(QBuffer)": lambda: QImage(4, 4, QImage.Format.Format_RGB32).save(_buffer(), "PNG"),
    "QImage(size)": lambda: QImage(8, 8, QImage.Format.Format_RGB32),
    "QImageReader(QBuffer).read": lambda: _read_from_memory(),
    "QFileInfo(resource).exists": lambda: QFileInfo(_RESOURCE_PNG).exists(),
    "QFileInfo.exists(resource)": lambda: QFileInfo.exists(_RESOURCE_PNG),
    "QDirIterator(resource)": lambda: QDirIterator(":/qt-project.org").hasNext(),
    "QSettings(resource)": lambda: QSettings(":/none.ini", QSettings.Format.IniFormat),
    "QSqlDatabase.open(:memory:)": lambda: _memory_db(),
    "QSqlQuery.next(:memory:)": lambda: QSqlQuery("SELECT x FROM t", _memory_db()).next(),
    "QSqlQuery(db)": lambda: QSqlQuery(_memory_db()),
    "QMutexLocker(free)": _free_locker,
    "QMutex.tryLock() contended": _contended_untimed,
    "QSemaphore.tryAcquire()": lambda: QSemaphore(0).tryAcquire(),
    "QMutex.tryLock(0)": lambda: QMutex().tryLock(0),
}


@pytest.mark.parametrize("name", sorted(SILENT_ON_LOOP))
def test_non_blocking_forms_are_silent_on_the_loop(name: str, qapp: QApplication) -> None:
    with loopwarden.guard(mode="raise") as warden:
        assert _in_app_exec(SILENT_ON_LOOP[name], qapp) is None
    assert warden.findings == []


def test_constructors_are_restored_exactly() -> None:
    originals = {cls: cls.__dict__["__init__"] for cls in (QImage, QSettings, QMutexLocker)}
    with loopwarden.guard(mode="record"):
        for cls, original in originals.items():
            assert cls.__dict__["__init__"] is not original
        assert isinstance(QImage(_RESOURCE_PNG), QImage)
    for cls, original in originals.items():
        assert cls.__dict__["__init__"] is original


def test_subclass_constructors_are_checked(tmp_path: Path, qapp: QApplication) -> None:
    class Thumbnail(QImage):
        def __init__(self, path: str) -> None:
            super().__init__(path)

    path = _png(tmp_path, True)
    with loopwarden.guard(mode="raise") as warden:
        error = _in_app_exec(lambda: Thumbnail(path), qapp)
    assert isinstance(error, loopwarden.BlockingCallError)
    assert [f.primitive for f in warden.findings] == [_GUI + "QImage"]
    assert isinstance(Thumbnail(path), QImage)  # test body: unchecked, a real image


def test_rules_command_and_reference_list_them(capsys: pytest.CaptureFixture[str]) -> None:
    from loopwarden.blocking import qt_io
    from loopwarden.cli import main

    assert main(["rules"]) == 0
    listing = capsys.readouterr().out
    for scenario in SCENARIOS.values():
        assert f"  {scenario.primitive}\n" in listing
    assert {rule.family for rule in qt_io.RULES} == {"qt", "database"}
    hooks_path = Path(__file__).parents[2] / "docs" / "hooks.py"
    namespace: dict[str, Any] = {"__name__": "docs_hooks"}
    exec(compile(hooks_path.read_text(encoding="utf-8"), str(hooks_path), "exec"), namespace)
    reference = namespace["render_rules"]()
    for rule in qt_io.RULES:
        assert f"`{rule.name}`" in reference


_START_UP = """
import os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
import loopwarden

with loopwarden.guard(mode="record") as warden:  # active before PySide6 is imported
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtGui import QFont, QIcon, QImage, QPixmap
    from PySide6.QtWidgets import QApplication, QLabel, QPushButton

    app = QApplication([])  # platform, image and style plugins, fonts
    results = []

    def on_start():
        # Resource-path images and icons, a label that paints with a font.
        results.append(QImage(sys.argv[1]).isNull())
        results.append(QPixmap(sys.argv[1]).isNull())
        results.append(QIcon(sys.argv[1]).isNull())
        label = QLabel("start-up")
        label.setFont(QFont("Sans", 12))
        label.show()
        label.repaint()
        button = QPushButton("ok")
        button.show()
        button.click()
        QImage(sys.argv[2])  # a file on disk: the one finding, so detection was on
        QTimer.singleShot(50, app.quit)

    QTimer.singleShot(0, on_start)
    app.exec()
print(results, [f.primitive for f in warden.findings])
"""


def test_qt_start_up_plugins_fonts_and_resources_are_silent(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _START_UP, _RESOURCE_PNG, _png(tmp_path, True)],
        capture_output=True,
        timeout=60,
        check=False,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[False, False, False] ['PySide6.QtGui.QImage']"
