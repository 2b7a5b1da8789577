"""Blocking work that Qt does in C++: image files, file metadata, settings, QtSql, lockers.

A Python-level patch of ``open`` or ``os.stat`` never sees the file, database
and lock work that Qt does inside C++ (``QImage(path)`` decodes a file without
calling any Python function). These rules patch the Qt API itself. Families:
``qt`` for files, images, settings and locks (like the other Qt rules),
``database`` for QtSql.

Constructors: Shiboken types accept a new ``__init__``; CPython then routes
``QImage(path)`` through it (``slot_tp_init``), Python subclasses included,
and restoring the original slot wrapper puts the C slot back. Objects that C++
creates (a QImage returned by ``QImageReader.read()``) never pass through
``__init__`` and need no check.

"Only when it would block": Qt resource paths (``":/icons/x.png"``) live in
memory, images from bytes (``loadFromData``, ``fromData``) and devices in
memory (``QBuffer``) touch no disk, in-memory SQLite connections touch no
file, free locks are taken at once, and ``tryLock()``/``tryAcquire()``
without a timeout never wait. Nothing here imports PySide6 (every rule has
``import_module=False``).

Not covered (Qt does it in C++ behind calls that are not patched here):
``QIcon`` files loaded at first paint, ``QMovie`` frames read by its timer,
``QTextStream << value`` (buffered; ``flush()`` is covered), ``QDirIterator``
entries after the first (the constructor is covered), and implicit settings
syncs by Qt's own timer.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from loopwarden.blocking.qt import _FILE, _LOCK, _on_file, _waits
from loopwarden.rules import NOT_BLOCKED, Attempt, BlocksWhen, Rule

__all__ = ["RULES"]

_QTCORE = "PySide6.QtCore"
_QTGUI = "PySide6.QtGui"
_QTSQL = "PySide6.QtSql"

# -- suggestions -------------------------------------------------------------

_IMAGE = (
    "Reading or writing an image file decodes it on the GUI thread. Load it with a "
    "QImageReader in a QThreadPool task (QRunnable) or QtConcurrent, or `await "
    "asyncio.to_thread(QImage, path)` under qasync, hand the QImage back with a queued "
    "signal and make the QPixmap on the GUI thread (QPixmap.fromImage). Qt resources "
    "(':/...') and images from bytes in memory are fine."
)
_FILE_INFO = (
    "QFileInfo and QDirIterator ask the file system on the GUI thread (a stat or a directory "
    "read, slow on network drives). Gather file information in a QThreadPool task or with "
    "`await asyncio.to_thread(...)` and send it back with a signal; watch for changes with "
    "QFileSystemWatcher."
)
_STREAM = (
    "QTextStream/QDataStream over a QFile read and write the disk on the GUI thread. Stream "
    "the file in a worker QThread or QThreadPool task and send the result back with a signal."
)
_SETTINGS_READ = (
    "Creating a QSettings stats its file and reads it when it changed, on the GUI thread. "
    "Create one QSettings at start-up and keep it, or read settings in a worker thread."
)
_SQL = (
    "QtSql runs the query on the calling thread, waiting on the disk or the database server. "
    "Give a worker QThread its own connection (QSqlDatabase.addDatabase(driver, "
    "'worker-name') created in that thread), run QSqlQuery there and send the rows back "
    "with a signal."
)
_TIMED_TRY = (
    "A tryLock()/tryAcquire() with a timeout waits up to that long while another thread holds "
    "the lock. Try without a timeout and retry from a QTimer, or wait in a worker."
)

# -- predicates ------------------------------------------------------------------


def _is_resource(name: str) -> bool:
    """Qt resources (``":/..."``) are compiled into the program: reading them touches no disk.

    ``"qrc:/..."`` is a URL scheme (QML, QUrl); Qt's file APIs take it for a
    relative file name and look for it on disk, so it is checked like one.
    """
    return name.startswith(":")


def _names_file(value: Any) -> bool:
    """A non-empty file name (str or path-like) that is not a Qt resource."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    return isinstance(value, str) and bool(value) and not _is_resource(value)


def _file_argument(_self: Any, *args: Any, **kwargs: Any) -> bool:
    """The first argument is a file name, or an open QFile on a real file."""
    value = args[0] if args else kwargs.get("fileName", kwargs.get("device"))
    return _names_file(value) or _on_file(value)


def _image_io_on_file(io: Any, *_: Any, **__: Any) -> bool:
    """A QImageReader/QImageWriter on a file name or an open real file."""
    name = str(io.fileName())
    if name:
        return not _is_resource(name)
    return _on_file(io.device())


def _info_on_disk(info: Any, *_: Any, **__: Any) -> bool:
    return _names_file(str(info.filePath()))


def _exists_on_disk(*args: Any, **__: Any) -> bool:
    # QFileInfo.exists has a static form, exists(path), and an instance form,
    # which reaches the predicate with the QFileInfo first (see blocking.qt).
    if not args:
        return True
    file_path = getattr(args[0], "filePath", None)
    if callable(file_path):
        return _names_file(str(file_path()))
    return _names_file(args[0])


def _iterates_disk(_self: Any, *args: Any, **kwargs: Any) -> bool:
    target = args[0] if args else kwargs.get("path", kwargs.get("dir"))
    path = getattr(target, "path", None)  # a QDir
    if callable(path):
        target = str(path())
    return _names_file(target)


def _stream_on_file(stream: Any, *_: Any, **__: Any) -> bool:
    return _on_file(stream.device())


def _settings_file(_self: Any, *args: Any, **__: Any) -> bool:
    # QSettings(":/defaults.ini", IniFormat) reads a resource; every other form
    # (organisation/application, scope, a file name) reads a file on disk.
    return not (args and isinstance(args[0], str) and _is_resource(args[0]))


# -- QtSql: in-memory SQLite connections touch no file --------------------------------


def _qtsql() -> Any:
    return sys.modules.get(_QTSQL)


def _in_memory(database: Any) -> bool:
    if str(database.driverName()) != "QSQLITE":
        return False  # a server: every round trip waits on the network
    name = str(database.databaseName())
    return name == ":memory:" or name.startswith("file::memory:") or "mode=memory" in name


def _database_blocks(database: Any, *_: Any, **__: Any) -> bool:
    return not _in_memory(database)


def _connection_of(driver: Any) -> Any:
    qtsql = _qtsql()
    if qtsql is None or driver is None:
        return None
    for name in qtsql.QSqlDatabase.connectionNames():
        database = qtsql.QSqlDatabase.database(name, False)
        if database.driver() is driver:
            return database
    return None


def _query_blocks(query: Any, *_: Any, **__: Any) -> bool:
    database = _connection_of(query.driver())
    return database is None or not _in_memory(database)


def _default_database(candidate: Any) -> Any:
    qtsql = _qtsql()
    if candidate is None and qtsql is not None:
        return qtsql.QSqlDatabase.database(qtsql.QSqlDatabase.defaultConnection, False)
    return candidate


def _query_constructor_executes(_self: Any, *args: Any, **kwargs: Any) -> bool:
    # QSqlQuery("SELECT ...", db) executes at once; QSqlQuery(db) does not.
    if not (args and isinstance(args[0], str) and args[0]):
        return False
    database = _default_database(args[1] if len(args) > 1 else kwargs.get("db"))
    return database is None or not _in_memory(database)


def _model_blocks(model: Any, *_: Any, **__: Any) -> bool:
    return not _in_memory(model.database())


def _set_query_blocks(_model: Any, *args: Any, **kwargs: Any) -> bool:
    query = args[0] if args else kwargs.get("query")
    if isinstance(query, str):
        database = _default_database(args[1] if len(args) > 1 else kwargs.get("db"))
        return database is None or not _in_memory(database)
    return query is not None and _query_blocks(query)


# -- locks: lockers lock in C++, timed tries wait ------------------------------------------


def _contended(try_name: str) -> BlocksWhen:
    """A locker's constructor blocks when its lock is held elsewhere."""

    def blocks(_locker: Any, lock: Any = None, *_: Any, **__: Any) -> bool:
        if lock is None:
            return False
        if getattr(lock, try_name)():
            lock.unlock()  # free: the real constructor takes it at once
            return False
        return True

    blocks.__name__ = f"contended_{try_name}"
    return blocks


def _timed(position: int) -> BlocksWhen:
    """A try with a timeout (argument ``position``) that is not zero."""

    def blocks(*args: Any, **kwargs: Any) -> bool:
        if len(args) <= position and not kwargs:
            return False  # no timeout: returns at once
        return _waits(args, kwargs, position)

    return blocks


def _try_now(method: str, keep: int) -> Attempt:
    """Try without the timeout first: a free lock is no finding."""

    def attempt(original: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if getattr(args[0], method)(*args[1:keep]):
            return True  # taken at once: what the timed try returns
        return NOT_BLOCKED

    attempt.__name__ = f"try_{method}_now"
    return attempt


# -- the tables ------------------------------------------------------------------------------

_ON_FILE = "a file name or an open real file (not a Qt resource or memory)"

#: (target, display name, blocks_when, condition, suggestion); family "qt".
_QT_IO: tuple[tuple[str, str, BlocksWhen | None, str, str], ...] = (
    *(
        (f"{_QTGUI}:{cls}.__init__", f"{_QTGUI}.{cls}", _file_argument, _ON_FILE, _IMAGE)
        for cls in ("QImage", "QPixmap", "QIcon", "QMovie")
    ),
    *(
        (f"{_QTGUI}:{cls}.{method}", "", _file_argument, _ON_FILE, _IMAGE)
        for cls in ("QImage", "QPixmap")
        for method in ("load", "save")
    ),
    (f"{_QTGUI}:QIcon.addFile", "", _file_argument, _ON_FILE, _IMAGE),
    (f"{_QTGUI}:QMovie.setFileName", "", _file_argument, _ON_FILE, _IMAGE),
    (f"{_QTGUI}:QImageReader.read", "", _image_io_on_file, _ON_FILE, _IMAGE),
    (f"{_QTGUI}:QImageWriter.write", "", _image_io_on_file, _ON_FILE, _IMAGE),
    *(
        (f"{_QTCORE}:QFileInfo.{method}", "", _info_on_disk, "a path (not a resource)", _FILE_INFO)
        for method in (
            "size",
            "isFile",
            "isDir",
            "isSymLink",
            "isSymbolicLink",
            "isReadable",
            "isWritable",
            "isExecutable",
            "isHidden",
            "lastModified",
            "lastRead",
            "birthTime",
            "metadataChangeTime",
            "fileTime",
            "permissions",
            "permission",
            "owner",
            "ownerId",
            "group",
            "groupId",
            "canonicalFilePath",
            "canonicalPath",
            "symLinkTarget",
            "refresh",
        )
    ),
    (f"{_QTCORE}:QFileInfo.exists", "", _exists_on_disk, "a path (not a resource)", _FILE_INFO),
    (
        f"{_QTCORE}:QDirIterator.__init__",
        f"{_QTCORE}.QDirIterator",
        _iterates_disk,
        "a directory on disk (not a resource)",
        _FILE_INFO,
    ),
    (f"{_QTCORE}:QTemporaryFile.open", "", None, "always (creates a file)", _FILE),
    (f"{_QTCORE}:QTemporaryDir.__init__", f"{_QTCORE}.QTemporaryDir", None, "always", _FILE),
    *(
        (f"{_QTCORE}:QTextStream.{method}", "", _stream_on_file, "over an open real file", _STREAM)
        for method in ("read", "readAll", "readLine", "readLineInto", "__rshift__", "flush")
    ),
    *(
        (f"{_QTCORE}:QDataStream.{method}", "", _stream_on_file, "over an open real file", _STREAM)
        for method in (
            "readRawData",
            "writeRawData",
            "readBytes",
            "writeBytes",
            "readQString",
            "writeQString",
            "readQVariant",
            "writeQVariant",
            "__rshift__",
            "__lshift__",
        )
    ),
    (
        f"{_QTCORE}:QSettings.__init__",
        f"{_QTCORE}.QSettings",
        _settings_file,
        "a settings file or native store (not a resource)",
        _SETTINGS_READ,
    ),
    *(
        (f"{_QTCORE}:{cls}.__init__", f"{_QTCORE}.{cls}", _contended(try_name), "contended", _LOCK)
        for cls, try_name in (
            ("QMutexLocker", "tryLock"),
            ("QReadLocker", "tryLockForRead"),
            ("QWriteLocker", "tryLockForWrite"),
        )
    ),
)

#: (target, blocks_when, condition); family "database".
_SQL_RULES: tuple[tuple[str, str, BlocksWhen, str], ...] = (
    (f"{_QTSQL}:QSqlDatabase.open", "", _database_blocks, "not an in-memory SQLite database"),
    (f"{_QTSQL}:QSqlDatabase.commit", "", _database_blocks, "not an in-memory SQLite database"),
    (
        f"{_QTSQL}:QSqlQuery.__init__",
        f"{_QTSQL}.QSqlQuery",
        _query_constructor_executes,
        "given a query string (it executes at once), not in memory",
    ),
    *(
        (f"{_QTSQL}:QSqlQuery.{method}", "", _query_blocks, "not an in-memory SQLite database")
        for method in (
            "exec",
            "exec_",
            "execBatch",
            "prepare",
            "next",
            "previous",
            "first",
            "last",
            "seek",
        )
    ),
    *(
        (f"{_QTSQL}:QSqlTableModel.{method}", "", _model_blocks, "not an in-memory database")
        for method in ("select", "submitAll")
    ),
    (f"{_QTSQL}:QSqlQueryModel.setQuery", "", _set_query_blocks, "not an in-memory database"),
)

#: (target, untimed try method, arguments kept for it, timeout position).
_TIMED_TRIES: tuple[tuple[str, str, int, int], ...] = (
    (f"{_QTCORE}:QMutex.tryLock", "tryLock", 1, 1),
    (f"{_QTCORE}:QRecursiveMutex.tryLock", "tryLock", 1, 1),
    (f"{_QTCORE}:QReadWriteLock.tryLockForRead", "tryLockForRead", 1, 1),
    (f"{_QTCORE}:QReadWriteLock.tryLockForWrite", "tryLockForWrite", 1, 1),
    (f"{_QTCORE}:QSemaphore.tryAcquire", "tryAcquire", 2, 2),
)

RULES: tuple[Rule, ...] = (
    *(
        Rule(
            target=target,
            family="qt",
            suggestion=suggestion,
            blocks_when=predicate,
            condition=condition,
            name=name,
            import_module=False,
        )
        for target, name, predicate, condition, suggestion in _QT_IO
    ),
    *(
        Rule(
            target=target,
            family="database",
            suggestion=_SQL,
            blocks_when=predicate,
            condition=condition,
            name=name,
            import_module=False,
        )
        for target, name, predicate, condition in _SQL_RULES
    ),
    *(
        Rule(
            target=target,
            family="qt",
            suggestion=_TIMED_TRY,
            blocks_when=_timed(position),
            attempt=_try_now(method, keep),
            condition="a timeout not 0, and contended",
            import_module=False,
        )
        for target, method, keep, position in _TIMED_TRIES
    ),
)
