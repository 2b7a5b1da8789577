"""The optional C extension (``loopwarden._speedups``): the lock rules' part, and the fallback.

The rest of the suite runs with whichever implementation this interpreter has
(CI requires the C one: ``LOOPWARDEN_REQUIRE_SPEEDUPS=1``). Here: the C wrapper
is what the patches install, it binds and behaves like the method it replaces,
it leaks no reference on any of its paths, the lock, stream and replay tests
pass in pure Python too (the stream wrapper's own tests are in
tests/test_stream_method.py, the replay loops' in tests/test_registry_replay.py),
and the build hook compiles it, or falls back without failing the install.
"""

from __future__ import annotations

import asyncio
import importlib.machinery
import importlib.util
import os
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path
from typing import Any

import pytest

import loopwarden
from loophelpers import run_in_worker
from loopwarden import lock_owners, lock_wrapper, native

ROOT = Path(__file__).resolve().parent.parent
needs_speedups = pytest.mark.skipif(
    not lock_wrapper.SPEEDUPS, reason="the C extension is not built for this interpreter"
)


def test_ci_has_the_c_extension() -> None:
    if os.environ.get("LOOPWARDEN_REQUIRE_SPEEDUPS") != "1":
        pytest.skip("LOOPWARDEN_REQUIRE_SPEEDUPS=1 is not set (CI sets it)")
    assert lock_wrapper.SPEEDUPS, "CI must test the C extension: was it compiled at install?"


@needs_speedups
def test_the_patches_install_the_c_wrapper_and_restore_the_originals() -> None:
    import _thread

    originals = {name: _thread.LockType.__dict__[name] for name in ("acquire", "__enter__")}
    with loopwarden.guard(mode="record"):
        for name, original in originals.items():
            wrapper = _thread.LockType.__dict__[name]
            assert type(wrapper).__name__ == "LockMethod"
            assert wrapper.__wrapped__ is original
            assert wrapper.__name__ == name
            assert "loopwarden lock wrapper of" in repr(wrapper)
    for name, original in originals.items():
        assert _thread.LockType.__dict__[name] is original


@needs_speedups
def test_the_c_wrapper_binds_and_accepts_what_the_method_accepts() -> None:
    import _thread

    async def main() -> list[Any]:
        lock = threading.Lock()
        seen: list[Any] = []
        with loopwarden.guard(mode="record") as warden:
            bound = lock.acquire
            seen.append(bound())  # a bound method, called later
            lock.release()
            seen.append(_thread.LockType.acquire(lock))  # through the class
            lock.release()
            seen.append(lock.acquire(blocking=False))  # keywords: the Python path
            seen.append(lock.acquire(False))  # held by this very thread: no wait
            lock.release()
            seen.append(lock.acquire(True, 1))
            lock.release()
            with pytest.raises(TypeError):
                lock.acquire(1, 2, 3)
            with pytest.raises(TypeError):
                _thread.LockType.acquire(object())
            assert warden.findings == []
        return seen

    assert asyncio.run(main()) == [True, True, True, False, True]


@needs_speedups
def test_no_reference_is_leaked_on_any_path() -> None:
    # A missed Py_DECREF in C shows as a reference count that grows with
    # the number of calls; each path runs 2000 times.
    rounds = 2000

    def counts(lock: Any) -> tuple[int, ...]:
        entry = lock_owners.held.get(lock)
        return (
            sys.getrefcount(lock),
            sys.getrefcount(entry) if entry is not None else 0,
            sys.getrefcount(True),
            sys.getrefcount(False),
        )

    def many(lock: Any) -> None:
        for _ in range(rounds):
            with lock:
                pass
            lock.acquire()
            lock.release()

    async def on_loop() -> list[str]:
        problems = []
        loop = asyncio.get_running_loop()
        for make in (threading.Lock, threading.RLock):
            lock = make()
            many(lock)  # the owner entry exists from here on
            before, loop_before = counts(lock), sys.getrefcount(loop)
            many(lock)
            after, loop_after = counts(lock), sys.getrefcount(loop)
            if before[:2] != after[:2] or abs(loop_after - loop_before) > 2:
                problems.append(f"{make.__name__} on the loop: {before} -> {after}")
            if after[2] - before[2] >= rounds or after[3] - before[3] >= rounds:
                problems.append(f"{make.__name__}: True/False leaked: {before} -> {after}")
        return problems

    async def self_held() -> list[str]:
        # Held by this very thread: the C attempt fails, the Python path raises.
        lock = threading.Lock()
        lock.acquire()
        before = counts(lock)
        for _ in range(rounds):
            with pytest.raises(loopwarden.BlockingCallError):
                lock.acquire()
        after = counts(lock)
        lock.release()
        # (Findings keep True in their details: only False can tell here.)
        if before[:2] != after[:2] or after[3] - before[3] >= rounds:
            return [f"a failed attempt: {before} -> {after}"]
        return []

    async def no_warden() -> list[str]:
        # A loop runs, the patches are in, but no warden is active.
        loop = asyncio.get_running_loop()
        lock = threading.Lock()
        many(lock)
        before, loop_before = counts(lock), sys.getrefcount(loop)
        many(lock)
        after, loop_after = counts(lock), sys.getrefcount(loop)
        if before[:2] != after[:2] or loop_after - loop_before > 2:
            return [f"no warden: {before} -> {after}, loop {loop_before} -> {loop_after}"]
        return []

    with loopwarden.keep_installed():
        assert asyncio.run(no_warden()) == []
    with loopwarden.guard(mode="record") as warden:
        assert asyncio.run(on_loop()) == []
        assert asyncio.run(self_held()) == []
        assert len(warden.findings) == rounds
        for make in (threading.Lock, threading.RLock):
            lock = make()
            run_in_worker(lambda: many(lock))  # noqa: B023 - run at once
            before = counts(lock)
            run_in_worker(lambda: many(lock))  # noqa: B023 - run at once
            assert counts(lock)[:2] == before[:2], f"{make.__name__} off the loop"


@needs_speedups
def test_an_acquisition_off_the_loop_forgets_the_owner_entry_after_it_took_the_lock() -> None:
    # The C path pops the entry right after its own acquire, so an entry the
    # loop wrote while this thread waited cannot survive the wait.
    lock = threading.Lock()

    async def take_on_loop() -> None:
        with loopwarden.guard(mode="record"):
            lock.acquire()
            assert lock in lock_owners.held
            lock.release()
            run_in_worker(lambda: _take_and_release(lock))
            assert lock not in lock_owners.held

    asyncio.run(take_on_loop())


@needs_speedups
def test_a_free_lock_is_taken_in_c_without_the_acquire_call_and_is_really_held() -> None:
    # On CPython 3.10-3.13 with the GIL, the C wrapper does acquire(False)'s own
    # two steps on a Lock (FAST_LOCK_TAKE, its layout checked at import): the
    # lock it took must be held for everyone, and release() must accept it.
    import _thread

    expected = (3, 10) <= sys.version_info[:2] <= (3, 13) and not sysconfig.get_config_var(
        "Py_GIL_DISABLED"
    )
    assert native.speedups is not None
    assert native.speedups.FAST_LOCK_TAKE is expected

    async def main() -> list[Any]:
        lock = threading.Lock()
        seen: list[Any] = []
        with loopwarden.guard(mode="record") as warden:
            for name in ("acquire", "__enter__"):
                assert _thread.LockType.__dict__[name].raw_take == expected
            assert _thread.RLock.__dict__["acquire"].raw_take == 0  # another type: the call
            lock.acquire()  # the first: the Python path writes the owner entry
            lock.release()
            seen.append(lock.acquire())  # the C take
            seen.append(lock.locked())
            seen.append(run_in_worker(lambda: lock.acquire(False)))  # held for others too
            lock.release()
            seen.append(lock.locked())
            with pytest.raises(RuntimeError):
                lock.release()  # release() cleared the flag the take set
            with lock:
                seen.append(lock.locked())
            seen.append(run_in_worker(lambda: lock.acquire(False)))  # free for others again
            lock.release()  # (a Lock may be released by any thread)
            with pytest.raises(TypeError):
                _thread.LockType.acquire(threading.RLock())  # the wrong type still raises
            assert warden.findings == []
        return seen

    assert asyncio.run(main()) == [True, True, False, False, True, True]


def _take_and_release(lock: Any) -> None:
    lock.acquire()
    lock.release()


def test_the_lock_stream_and_replay_tests_pass_in_pure_python() -> None:
    env = dict(os.environ, LOOPWARDEN_PURE_PYTHON="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), str(ROOT / "conftest_plugin"), env.get("PYTHONPATH", "")]
    )
    check = (
        "from loopwarden import lock_wrapper, native;"
        " assert not lock_wrapper.SPEEDUPS and native.speedups is None"
    )
    assert subprocess.run([sys.executable, "-c", check], env=env, check=False).returncode == 0
    tests = [
        "tests/test_rules_sync.py",
        "tests/test_self_deadlock.py",
        "tests/test_lock_interrupts.py",
        "tests/test_fast_verdict.py",
        "tests/test_registry_replay.py",
        "tests/test_async_exceptions.py",
        "tests/test_stream_method.py",
        "tests/test_rules_console.py",
        "tests/test_rules_filesystem.py",
        "tests/test_running_loop.py",
        "tests/qt/test_qt_dispatch.py",
        "tests/test_thread_asyncio.py",
        "tests/test_scheduling_sites.py",
        "tests/qt/test_qt_thread.py",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-x", *tests],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


def _build_hook() -> Any:
    spec = importlib.util.spec_from_file_location("hatch_build", ROOT / "scripts/hatch_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def hook() -> Any:
    pytest.importorskip("hatchling")
    return _build_hook()


def _compile_a_copy(hook: Any, tmp_path: Path) -> tuple[Path, Path]:
    """The extension's source copied into a tree of its own, and the library the hook built."""
    source = tmp_path / "src" / "loopwarden" / "_speedups.c"
    source.parent.mkdir(parents=True)
    source.write_bytes((ROOT / "src" / "loopwarden" / "_speedups.c").read_bytes())
    built = hook.compile_speedups(tmp_path)
    if built is None:
        pytest.skip("no C compiler here")
    return source, built


def test_the_build_hook_compiles_an_importable_extension(hook: Any, tmp_path: Path) -> None:
    source, built = _compile_a_copy(hook, tmp_path)
    assert sorted(p.name for p in source.parent.iterdir()) == sorted(["_speedups.c", built.name])
    spec = importlib.util.spec_from_file_location("loopwarden._speedups", built)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert hasattr(module, "LockMethod")


def test_the_built_library_is_readable_by_everyone(hook: Any, tmp_path: Path) -> None:
    _, built = _compile_a_copy(hook, tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    assert built.stat().st_mode & 0o777 == 0o755 & ~umask


def test_a_wheel_packs_the_library_of_its_own_python_only(hook: Any, tmp_path: Path) -> None:
    # The source tree may hold the libraries of several Python versions (one
    # editable install each); a wheel is for one of them.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("loopwarden-*.whl")
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    libraries = [
        name
        for name in names
        if name.startswith("loopwarden/_speedups") and not name.endswith((".c", ".pyi"))
    ]
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    if not libraries:
        pytest.skip("no C compiler here: a pure wheel")
    assert libraries == [f"loopwarden/_speedups{suffix}"]
    assert "-py3-none-any" not in wheel.name


def test_an_extension_of_another_abi_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # A library left in the tree by an older install: pure Python, not a crash.
    import types

    monkeypatch.delenv("LOOPWARDEN_PURE_PYTHON", raising=False)  # the suite may run with it
    stale = types.ModuleType("loopwarden._speedups")
    stale.LockMethod = object  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "loopwarden._speedups", stale)
    monkeypatch.setattr(loopwarden, "_speedups", stale, raising=False)
    assert lock_wrapper._load_lock_method() is None
    stale.ABI = native.ABI  # type: ignore[attr-defined]
    assert lock_wrapper._load_lock_method() is object


def test_an_extension_that_fails_to_build_a_wrapper_leaves_the_python_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import _thread

    from loopwarden.blocking import sync

    def broken(**_: object) -> None:
        raise TypeError("an incompatible extension")

    monkeypatch.setattr(lock_wrapper, "_LockMethod", broken)
    rule = next(r for r in sync.RULES if r.target == "_thread:LockType.acquire")
    original = _thread.LockType.__dict__["acquire"]
    original = getattr(original, "__wrapped__", original)
    wrapper = lock_wrapper.make_lock_wrapper(rule, original, lambda *a: None, [])
    assert callable(wrapper) and wrapper.__name__ == "wrapper"


def test_a_failed_compilation_falls_back_and_leaves_nothing_behind(
    hook: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "src" / "loopwarden" / "_speedups.c"
    source.parent.mkdir(parents=True)
    source.write_text("this is not C;\n")
    assert hook.compile_speedups(tmp_path) is None
    assert [p.name for p in source.parent.iterdir()] == ["_speedups.c"]
    assert "pure-Python install" in capsys.readouterr().err


def test_lock_rules_install_over_another_tools_lock_patch() -> None:
    # BlockBuster, activated first, replaces Lock.acquire with a Python function
    # (no __wrapped__): loopwarden wraps that, and still takes free locks itself.
    blockbuster = pytest.importorskip("blockbuster")
    import _thread

    bb = blockbuster.BlockBuster()
    bb.activate()
    try:
        theirs = _thread.LockType.__dict__["acquire"]

        async def main() -> list[Any]:
            lock = threading.Lock()
            with loopwarden.guard(mode="record") as warden:
                assert _thread.LockType.__dict__["acquire"].__wrapped__ is theirs
                results = [lock.acquire()]
                lock.release()
                with lock:
                    results.append(lock.locked())
                assert warden.findings == []
            return results

        assert asyncio.run(main()) == [True, True]
        assert _thread.LockType.__dict__["acquire"] is theirs
    finally:
        bb.deactivate()
