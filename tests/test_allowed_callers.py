"""A user allowance that names the caller of a primitive is remembered, not re-walked.

The first allowed call walks the stack (engine._excused); when the allowance
matched the very function that called the primitive, the next call from that
function is decided by one lookup. The remembered verdict must stay exactly
the walked one: only while the allowance is in force, with the same treatment
of what the allowed call does inside, and bounded in size. Also here: a
primitive called from C with no Python frame below it (a C++ thread calling a
patched function directly) is reported, not turned into an error of ours.
"""

from __future__ import annotations

import _thread
import os
import sys
import time
from collections.abc import Iterator
from itertools import chain, starmap
from pathlib import Path
from typing import Any

import pytest

import loopwarden
from loophelpers import run_in_worker, run_on_loop
from loopwarden import engine, threads
from loopwarden.allowances import parse_allowance


def _stat_allowed(path: str) -> None:
    os.stat(path)


def _stat_not_allowed(path: str) -> None:
    os.stat(path)


def _copy_allowed(source: str, target: str) -> None:
    import shutil

    shutil.copyfile(source, target)


_ALLOW_STAT = (f"{__name__}:_stat_allowed", "the test allows it")


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    engine._allowed_callers.clear()
    yield
    engine._allowed_callers.clear()


def _remembered() -> list[str]:
    return sorted(
        f"{code.co_name}:{rule}" for (_, rule), (code, _) in engine._allowed_callers.items()
    )


def test_an_allowed_caller_is_remembered_and_stays_allowed(tmp_path: Path) -> None:
    path = str(tmp_path)
    with loopwarden.guard(mode="record", allow=[_ALLOW_STAT]) as warden:
        run_on_loop(lambda: [_stat_allowed(path) for _ in range(3)])
        assert _remembered() == ["_stat_allowed:os.stat"]
        run_on_loop(lambda: _stat_not_allowed(path))
    assert [f.primitive for f in warden.findings] == ["os.stat"]
    assert "_stat_not_allowed" in warden.findings[0].user_caller
    assert _remembered() == ["_stat_allowed:os.stat"]  # a reported call is not remembered


def test_a_remembered_caller_is_reported_once_its_allowance_is_gone(tmp_path: Path) -> None:
    path = str(tmp_path)
    with loopwarden.guard(mode="record", allow=[_ALLOW_STAT]) as warden:
        run_on_loop(lambda: _stat_allowed(path))
    assert warden.findings == [] and _remembered() == ["_stat_allowed:os.stat"]
    with loopwarden.guard(mode="record") as warden:
        run_on_loop(lambda: _stat_allowed(path))
    assert [f.primitive for f in warden.findings] == ["os.stat"]


def test_an_allowance_added_with_allow_is_remembered_only_while_it_holds(tmp_path: Path) -> None:
    path = str(tmp_path)
    allowance = parse_allowance(*_ALLOW_STAT)
    with loopwarden.guard(mode="record") as warden:
        engine.global_allowances.append(allowance)
        try:
            run_on_loop(lambda: [_stat_allowed(path) for _ in range(2)])
        finally:
            engine.global_allowances.remove(allowance)
        run_on_loop(lambda: _stat_allowed(path))
    assert [f.primitive for f in warden.findings] == ["os.stat"]


def test_an_allowance_for_one_primitive_still_reports_what_the_call_does_inside(
    tmp_path: Path,
) -> None:
    # An allowance of shutil.copyfile alone: the calls it makes (open, read,
    # write) are not checked on their own, remembered verdict or walked.
    source, target = tmp_path / "a", tmp_path / "b"
    source.write_text("x")
    allowance = parse_allowance(
        f"{__name__}:_copy_allowed", "the test allows it", primitives=["shutil.copyfile"]
    )
    with loopwarden.guard(mode="record", allow=[allowance]) as warden:
        for _ in range(3):
            run_on_loop(lambda: _copy_allowed(str(source), str(target)))
        assert _remembered() == ["_copy_allowed:shutil.copyfile"]
    assert warden.findings == []
    assert target.read_text() == "x"


def test_a_remembered_caller_off_the_loop_runs_as_before(tmp_path: Path) -> None:
    path = str(tmp_path)
    with loopwarden.guard(mode="record", allow=[_ALLOW_STAT]) as warden:
        run_on_loop(lambda: _stat_allowed(path))
        run_in_worker(lambda: [_stat_allowed(path), _stat_not_allowed(path)])
        run_on_loop(lambda: _stat_allowed(path))
    assert warden.findings == []


def test_the_remembered_callers_stay_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Code made at run time (exec) gets new code objects for the same function.
    monkeypatch.setattr(engine, "_ALLOWED_CALLERS_MAX", 8)
    path = str(tmp_path)
    source = "def _stat_allowed(path):\n    os.stat(path)\n"
    with loopwarden.guard(mode="record", allow=[_ALLOW_STAT]) as warden:
        for _ in range(30):
            namespace: dict[str, Any] = {"os": os, "__name__": __name__}
            exec(compile(source, __file__, "exec"), namespace)
            run_on_loop(lambda: namespace["_stat_allowed"](path))  # noqa: B023 - run at once
            assert len(engine._allowed_callers) <= 8
    assert warden.findings == []


def test_a_primitive_called_from_c_with_no_python_frame_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A raw thread whose whole work is C (list() over chained starmaps), so
    # time.sleep's wrapper has no Python frame below it, as when a C++ thread
    # calls a patched function as its slot. A probe makes that thread guarded.
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    start, done = _thread.allocate_lock(), _thread.allocate_lock()
    start.acquire()
    done.acquire()
    wait_for_start = start.acquire  # bound before the guard: the unpatched method
    finished = done.release
    with loopwarden.guard(mode="record") as warden:
        work = chain(starmap(wait_for_start, [()]), starmap(time.sleep, [(0.001,)]))
        ident = _thread.start_new_thread(list, (chain(work, starmap(finished, [()])),))
        threads.add_thread_probe(ident, lambda: "a C++ thread (test probe)")
        try:
            start.release()
            assert done.acquire(timeout=10)
        finally:
            threads.remove_thread_probe(ident)
    assert unraisable == []
    assert [(f.primitive, f.caller, f.loop) for f in warden.findings] == [
        ("time.sleep", engine._NO_PYTHON_CALLER, "a C++ thread (test probe)")
    ]
