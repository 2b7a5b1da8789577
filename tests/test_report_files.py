"""LOOPWARDEN_REPORT and report files (issue 12.5): checked at start-up, written on SIGTERM,
flushed while the app runs, atomic, one file per process, never through a symlink, any path.

Real subprocesses and real signals throughout.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import loopwarden
from loopwarden import env_report
from loopwarden.report import FindingCollector, load_report, write_report
from loopwarden.report.files import path_for_process, write_atomic
from reports_helpers import clean_env, run_cli, run_python

#: Blocks three times on the loop, says "ready", then waits to be killed.
WAITING_APP = """
import asyncio, signal, sys, time
import loopwarden

{before}
loopwarden.activate_from_env()

async def main():
    for _ in range(3):
        time.sleep(0.001)
    print("ready", flush=True)
    {wait}

asyncio.run(main())
print("the app ended normally", flush=True)
"""
#: One long sleep: the main thread waits in epoll_wait until it is killed.
IDLE = "await asyncio.sleep(120)"
#: An app's own Python handler runs on the main thread, and only once it runs
#: bytecode again (a signal landing just before epoll_wait waits for it, with
#: or without loopwarden): a loop that wakes now and then always gets there.
WAKING = "while True: await asyncio.sleep(0.05)"


@pytest.fixture(autouse=True)
def _switched_off() -> Iterator[None]:
    yield
    loopwarden.deactivate()
    env_report.disarm()


def _start(
    tmp_path: Path, report: Path, before: str = "", wait: str = IDLE
) -> subprocess.Popen[str]:
    (tmp_path / "app.py").write_text(WAITING_APP.format(before=before, wait=wait))
    process = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=tmp_path,
        env=clean_env(LOOPWARDEN="record", LOOPWARDEN_REPORT=str(report)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def _total(report: Path) -> int:
    data = json.loads(report.read_text())
    assert data["schema"] == "loopwarden-report"
    return int(data["summary"]["total"])


def test_sigterm_writes_the_report_and_the_process_still_dies_by_it(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    process = _start(tmp_path, report)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGTERM, err
    assert "the app ended normally" not in out
    assert _total(report) == 3
    assert "report written to" in err


#: SIGTERM reaches the app on a thread other than the main one while the main
#: thread sleeps in the loop's epoll_wait (the kernel may hand a process-wide
#: signal to any thread; one landing just before the main thread enters the
#: system call leaves it in the same state). Python's handler then waits for
#: the main thread to run bytecode again: here in 120 s. /proc tells the
#: signalling thread when the main thread really waits there.
SIGNAL_WHILE_BLOCKED_APP = """
import asyncio, os, signal, threading, time
import loopwarden

loopwarden.activate_from_env()


def main_thread_waits_in_epoll():
    status = f"/proc/self/task/{threading.main_thread().native_id}/syscall"
    with open(status) as handle:
        fields = handle.read().split()
    if len(fields) < 5 or not fields[0].isdigit():
        return False  # running, or not in a system call
    try:
        target = os.readlink(f"/proc/self/fd/{int(fields[1], 16)}")
    except (OSError, ValueError):
        return False  # the first argument is no file descriptor (a futex...)
    # The 4th argument of epoll_wait/epoll_pwait is the timeout: 0 only polls.
    return target == "anon_inode:[eventpoll]" and int(fields[4], 16) != 0


def signal_from_this_thread():
    while not main_thread_waits_in_epoll():
        time.sleep(0.001)
    print("signalling", flush=True)
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)


async def main():
    time.sleep(0.001)
    await asyncio.sleep(120)


threading.Thread(target=signal_from_this_thread, daemon=True).start()
asyncio.run(main())
print("the app ended normally", flush=True)
"""


@pytest.mark.skipif(
    not Path(f"/proc/self/task/{threading.get_native_id()}/syscall").exists(),
    reason="needs Linux's /proc/<pid>/task/<tid>/syscall",
)
def test_sigterm_kills_at_once_while_the_main_thread_sleeps_in_the_loop(tmp_path: Path) -> None:
    # Without loopwarden the default action kills the process at once: with
    # it, the report is written and the process dies by the signal just as
    # soon, without waiting for the main thread to wake up.
    (tmp_path / "app.py").write_text(SIGNAL_WHILE_BLOCKED_APP)
    report = tmp_path / "report.json"
    result = run_python("app.py", cwd=tmp_path, LOOPWARDEN="record", LOOPWARDEN_REPORT=str(report))
    assert result.stdout.split() == ["signalling"]
    assert result.returncode == -signal.SIGTERM, result.stderr
    assert _total(report) == 1
    assert "report written to" in result.stderr


#: An idle Qt event loop: Qt's poll() retries on EINTR inside C++, so the
#: main thread never runs Python's handler until Qt calls Python again.
IDLE_QT_APP = """
import sys, time
import loopwarden

loopwarden.activate_from_env()
from PySide6.QtCore import QCoreApplication, QTimer


def say_ready():
    time.sleep(0.001)
    print("ready", flush=True)


app = QCoreApplication(sys.argv)
QTimer.singleShot(0, say_ready)
app.exec()
print("the app ended normally", flush=True)
"""


def test_sigterm_kills_an_idle_qt_app_and_writes_its_report(tmp_path: Path) -> None:
    pytest.importorskip("PySide6.QtCore")
    (tmp_path / "app.py").write_text(IDLE_QT_APP)
    report = tmp_path / "report.json"
    process = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=tmp_path,
        env=clean_env(LOOPWARDEN="record", LOOPWARDEN_REPORT=str(report)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGTERM, err
    assert "the app ended normally" not in out
    assert "report written to" in err
    assert json.loads(report.read_text())["schema"] == "loopwarden-report"


def test_sigterm_runs_the_apps_own_handler_after_writing(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    before = (
        "def on_term(signum, frame):\n"
        "    print('app handler ran', flush=True)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, on_term)\n"
    )
    process = _start(tmp_path, report, before, wait=WAKING)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert "app handler ran" in out
    assert process.returncode == 0, err
    assert _total(report) == 3


def test_the_handler_is_put_back_on_deactivate(tmp_path: Path) -> None:
    received: list[int] = []

    def app_handler(signum: int, frame: object) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGTERM, app_handler)
    try:
        warden = loopwarden.activate_from_env(
            {
                "LOOPWARDEN": "record",
                "LOOPWARDEN_REPORT": str(tmp_path / "r.json"),
            },
            start_dir=tmp_path,
        )
        assert warden is not None
        assert signal.getsignal(signal.SIGTERM) is not app_handler
        os.kill(os.getpid(), signal.SIGTERM)  # a real signal to this process
        assert received == [signal.SIGTERM]  # chained
        assert _total(tmp_path / "r.json") == 0  # and written first
        loopwarden.deactivate()
        assert signal.getsignal(signal.SIGTERM) is app_handler
        assert signal.set_wakeup_fd(-1) == -1  # the signal watcher's fd is given back too
        os.kill(os.getpid(), signal.SIGTERM)
        assert received == [signal.SIGTERM, signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.skipif(os.name != "posix", reason="the signal watcher is POSIX only")
def test_a_wakeup_fd_the_app_set_first_is_left_alone(tmp_path: Path) -> None:
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    try:
        assert signal.set_wakeup_fd(writer.fileno()) == -1
        assert env_report.arm(FindingCollector(), str(tmp_path / "r.json"), None, flush_interval=0)
        assert signal.set_wakeup_fd(writer.fileno()) == writer.fileno()  # still the app's
        env_report.disarm()
        assert signal.set_wakeup_fd(-1) == writer.fileno()
    finally:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGTERM, previous)
        reader.close()
        writer.close()


def test_an_unwritable_path_is_reported_at_start_up_and_the_app_carries_on(
    tmp_path: Path,
) -> None:
    (tmp_path / "a_file").write_text("not a directory")
    (tmp_path / "app.py").write_text(
        "import asyncio, time, loopwarden\n"
        "loopwarden.activate_from_env()\n"
        "print('started', flush=True)\n"
        "async def main():\n"
        "    time.sleep(0.001)\n"
        "asyncio.run(main())\n"
        "print('finished', flush=True)\n"
    )
    result = run_python(
        "app.py",
        cwd=tmp_path,
        LOOPWARDEN="warn",
        LOOPWARDEN_REPORT=str(tmp_path / "a_file" / "report.json"),
    )
    assert result.returncode == 0
    assert result.stdout.split() == ["started", "finished"]
    problem = [line for line in result.stderr.splitlines() if "cannot write the report" in line]
    assert len(problem) == 1, result.stderr
    assert "detection stays on" in problem[0]
    assert "BlockingCallWarning" in result.stderr  # still detecting
    assert "Traceback" not in result.stderr


def test_a_long_running_app_flushes_the_report(tmp_path: Path) -> None:
    report = tmp_path / "flushed.json"
    collector = FindingCollector()
    with loopwarden.guard(mode="record", on_finding=collector):
        asyncio.run(_block_once())
    assert env_report.arm(collector, str(report), None, flush_interval=0.05)
    deadline = time.monotonic() + 30
    while not report.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _total(report) == 1


async def _block_once() -> None:
    time.sleep(0.001)


def test_writes_are_atomic_the_old_report_is_never_written_in_place(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text("old report\n")
    os.link(report, tmp_path / "old-inode")
    write_atomic(report, "new report\n")
    assert report.read_text() == "new report\n"
    # Replaced by a new file: whoever had the old one open still reads it whole.
    assert (tmp_path / "old-inode").read_text() == "old report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old-inode", "report.json"]


def test_a_symlink_at_the_report_path_is_replaced_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    link = tmp_path / "report.html"
    link.symlink_to(victim)
    write_report(FindingCollector(), link)
    assert victim.read_text() == "precious\n"
    assert not link.is_symlink()
    assert "<!DOCTYPE html>" in link.read_text()


CHILD_SPAWNING_APP = """
import asyncio, os, subprocess, sys, time
import loopwarden
loopwarden.activate_from_env()

async def main():
    time.sleep(0.001)
asyncio.run(main())
if len(sys.argv) == 1:
    child = subprocess.run([sys.executable, __file__, "child"], capture_output=True, text=True)
    print("child pid", child.stdout.strip())
else:
    print(os.getpid())
"""


def test_a_child_process_that_inherits_the_variable_writes_its_own_file(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(CHILD_SPAWNING_APP)
    report = tmp_path / "report.json"
    result = run_python("app.py", cwd=tmp_path, LOOPWARDEN="record", LOOPWARDEN_REPORT=str(report))
    assert result.returncode == 0, result.stderr
    child_pid = result.stdout.split()[-1]
    child_report = tmp_path / f"report.pid{child_pid}.json"
    assert _total(report) == 1
    assert _total(child_report) == 1
    merged = tmp_path / "merged.json"
    done = run_cli("report", str(report), str(child_report), "-o", str(merged), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert _total(merged) == 2
    (group,) = json.loads(merged.read_text())["groups"]
    assert group["count"] == 2


def test_pid_in_the_name_gives_each_process_its_file(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(CHILD_SPAWNING_APP)
    result = run_python(
        "app.py",
        cwd=tmp_path,
        LOOPWARDEN="record",
        LOOPWARDEN_REPORT=str(tmp_path / "report-{pid}.json"),
    )
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in tmp_path.glob("report-*.json"))
    assert len(names) == 2
    assert f"report-{result.stdout.split()[-1]}.json" in names


def test_path_for_process() -> None:
    assert path_for_process("/r/x.html", None, pid=7) == "/r/x.html"
    assert path_for_process("/r/x.html", "7", pid=7) == "/r/x.html"
    assert path_for_process("/r/x.html", "3", pid=7) == "/r/x.pid7.html"
    assert path_for_process("/r/x-{pid}.json", "3", pid=7) == "/r/x-7.json"


def test_merging_sums_counts_and_keeps_every_finding(tmp_path: Path) -> None:
    paths = []
    for index in range(2):
        collector = FindingCollector()
        with loopwarden.guard(mode="record", on_finding=collector):
            for _ in range(index + 1):
                asyncio.run(_block_once())
        collector.finish()
        paths.append(write_report(collector, tmp_path / f"r{index}.json"))
    result = run_cli("report", *map(str, paths), "-o", str(tmp_path / "all.html"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3 findings" in result.stdout
    merged = load_report(paths[0])
    assert merged.total == 1


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS refuses non-UTF-8 file names")
def test_a_non_utf8_file_name_in_findings_breaks_neither_writer(tmp_path: Path) -> None:
    script = os.fsencode(tmp_path) + b"/caf\xe9.py"
    with open(script, "wb") as handle:
        handle.write(b"import asyncio, time\nasync def main():\n    time.sleep(0.001)\n")
        handle.write(b"asyncio.run(main())\n")
    html_report, json_report = tmp_path / "x.html", tmp_path / "x.json"
    for report in (html_report, json_report):
        result = subprocess.run(
            [sys.executable, "-m", "loopwarden", "run", "--report", str(report), script],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    page = html_report.read_text(encoding="utf-8")
    assert "caf\\xe9.py" in page  # the undecodable byte, shown visibly
    assert load_report(json_report).total == 1
    again = run_cli("report", str(json_report), "-o", str(tmp_path / "y.html"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "caf\\xe9.py" in (tmp_path / "y.html").read_text(encoding="utf-8")


def test_sigterm_never_hangs_when_it_lands_inside_the_collector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The signal interrupts the main thread while it holds the collector's lock
    # (inside an on_finding call): the handler must go on to the app's handler.
    monkeypatch.setattr(env_report, "SIGTERM_WRITE_TIMEOUT_S", 0.2)
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    report = tmp_path / "late.json"
    collector = FindingCollector()
    try:
        assert env_report.arm(collector, str(report), None, flush_interval=0)
        with collector._lock:
            os.kill(os.getpid(), signal.SIGTERM)
            assert received == [signal.SIGTERM]
        deadline = time.monotonic() + 30  # the writer finishes once the lock is free
        while not report.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _total(report) == 0
    finally:
        env_report.disarm()
        signal.signal(signal.SIGTERM, previous)


FORKING_APP = """
import asyncio, os, sys, time
import loopwarden
loopwarden.activate_from_env()

async def main():
    time.sleep(0.001)
asyncio.run(main())
pid = os.fork()
if pid == 0:
    asyncio.run(main())
    asyncio.run(main())
    sys.exit(0)  # a normal exit: atexit handlers, hence the report, run in the child too
os.waitpid(pid, 0)
print(pid)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_writes_its_own_file(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(FORKING_APP)
    report = tmp_path / "report.json"
    result = run_python("app.py", cwd=tmp_path, LOOPWARDEN="record", LOOPWARDEN_REPORT=str(report))
    assert result.returncode == 0, result.stderr
    child = result.stdout.split()[-1]
    assert _total(report) == 1  # the parent's, not overwritten by the child
    assert _total(tmp_path / f"report.pid{child}.json") == 3  # inherited finding + its two


#: The parent SIGTERMs its forked child while the child's loop sleeps.
SIGTERM_TO_A_FORKED_CHILD_APP = """
import asyncio, os, signal, sys, time
import loopwarden
loopwarden.activate_from_env()

async def main(ready_fd=None):
    time.sleep(0.001)
    if ready_fd is not None:
        os.write(ready_fd, b"ready")
        await asyncio.sleep(120)

asyncio.run(main())
ready_read, ready_write = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(ready_read)
    asyncio.run(main(ready_write))
    os._exit(0)
os.close(ready_write)
os.read(ready_read, 5)
os.kill(pid, signal.SIGTERM)
_, status = os.waitpid(pid, 0)
print(pid, os.WTERMSIG(status) if os.WIFSIGNALED(status) else "exited", flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_dies_by_its_own_sigterm_and_the_parent_lives_on(tmp_path: Path) -> None:
    # The child inherits the signal watcher's pipe: without a pipe and thread
    # of its own, its SIGTERM would reach the parent's watcher (and end the
    # parent), while the child slept on.
    (tmp_path / "app.py").write_text(SIGTERM_TO_A_FORKED_CHILD_APP)
    report = tmp_path / "report.json"
    result = run_python("app.py", cwd=tmp_path, LOOPWARDEN="record", LOOPWARDEN_REPORT=str(report))
    assert result.returncode == 0, result.stderr
    child, how = result.stdout.split()
    assert how == str(int(signal.SIGTERM))
    assert _total(tmp_path / f"report.pid{child}.json") == 2  # inherited + its own
    assert _total(report) == 1  # the parent's, written at its normal exit


def test_run_refuses_an_unwritable_report_before_running_the_target(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("not a directory")
    (tmp_path / "app.py").write_text("open('ran', 'w').close()\n")
    result = run_cli("run", "--report", "a_file/r.html", "app.py", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"loopwarden: cannot write the report 'a_file/r.html': {tmp_path / 'a_file'} "
        "is not a directory"
    ]
    assert not (tmp_path / "ran").exists()
