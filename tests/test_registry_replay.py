"""Registry replay: a guard() enter writes the last install's patches again, only while valid.

A replay must install exactly what a full install would: every case below changes one
thing a full install depends on between two guards, and checks that the second guard
patches what a fresh install patches, and that its exit restores what is there now.
"""

from __future__ import annotations

import _thread
import asyncio
import importlib
import inspect
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import loopwarden
from loopwarden.registry import Registry, registry

# In a tuple: a module-level name bound to time.sleep is an alias the patches replace.
_KEPT = (time.sleep,)


def _original_sleep(seconds: float) -> None:
    _KEPT[0](seconds)


def _on_loop(call: Any) -> list[str]:
    """Run ``call`` on a running loop inside a recording guard; the primitives reported."""

    async def main() -> None:
        call()

    with loopwarden.guard(mode="record") as warden:
        asyncio.run(main())
    return [f.primitive for f in warden.findings]


def _cycle() -> None:
    with loopwarden.guard(mode="record"):
        pass


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    names_before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - names_before:
        if name.startswith("lw_replay_"):
            del sys.modules[name]


def test_an_unchanged_second_guard_replays_the_same_patches() -> None:
    _cycle()
    _cycle()  # the plan of an install that followed nothing new
    plan = registry._plan
    assert plan is not None
    with loopwarden.guard(mode="record"):
        assert registry._plan is plan
        written = [p.replacement for p in registry._patches]
        assert written == [p.replacement for p in plan.patches]
        assert time.sleep is not _KEPT[0]
    assert time.sleep is _KEPT[0]
    assert _on_loop(lambda: time.sleep(0.001)) == ["time.sleep"]


def test_a_module_imported_between_guards_gets_its_alias_patched(module_dir: Path) -> None:
    (module_dir / "lw_replay_late.py").write_text("from time import sleep\n")
    _cycle()
    _cycle()
    late = importlib.import_module("lw_replay_late")
    with loopwarden.guard(mode="record"):
        assert late.sleep is not _KEPT[0]  # a stale replay would leave it alone
    assert late.sleep is _KEPT[0]
    assert _on_loop(lambda: late.sleep(0.001)) == ["time.sleep"]


def test_a_module_imported_while_installed_is_resolved_by_the_next_install(
    module_dir: Path,
) -> None:
    # A rule whose module is imported after install() resolved everything (and
    # no refresh() ran before uninstall()): the recorded plan predates that
    # import, so the next install must resolve again rather than replay it.
    (module_dir / "lw_replay_anchor.py").write_text("def work():\n    return 1\n")
    (module_dir / "lw_replay_inside.py").write_text("def work():\n    return 2\n")
    importlib.import_module("lw_replay_anchor")
    rules = [_rule("lw_replay_anchor"), _rule("lw_replay_inside")]
    reg = Registry(lambda: list(rules), lambda: [])
    reg.install()  # from scratch: the plan is recorded by the uninstall below
    inside = importlib.import_module("lw_replay_inside")
    reg.uninstall()
    reg.install()
    try:
        assert "lw_replay_inside:work" in reg.patched_targets()
        assert inside.work.__wrapped__ is not None  # type: ignore[attr-defined]
    finally:
        reg.uninstall()
    assert not hasattr(inside.work, "__wrapped__")


def _rule(module: str) -> loopwarden.Rule:
    return loopwarden.Rule(
        target=f"{module}:work", family="custom", suggestion="n/a", import_module=False
    )


def test_a_target_patched_by_someone_else_is_wrapped_and_left_to_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _cycle()
    _cycle()

    def their_sleep(seconds: float) -> None:
        _original_sleep(seconds)

    monkeypatch.setattr(time, "sleep", their_sleep)
    with loopwarden.guard(mode="record"):
        # Ours wraps theirs: a replay would have written the wrapper of the old original.
        assert time.sleep is not their_sleep
        assert time.sleep.__wrapped__ is their_sleep  # type: ignore[attr-defined]
    assert time.sleep is their_sleep  # exit restores what was there, not the old original
    assert _on_loop(lambda: time.sleep(0.001)) == ["time.sleep"]


def test_a_rule_added_between_guards_is_patched() -> None:
    import json

    original_dumps = json.dumps
    _cycle()
    _cycle()
    rule = loopwarden.mark_blocking("json:dumps", suggestion="a test rule")
    try:
        with loopwarden.guard(mode="record"):
            assert json.dumps is not original_dumps
        assert json.dumps is original_dumps
        assert _on_loop(lambda: json.dumps({})) == ["json.dumps"]
    finally:
        loopwarden.unmark_blocking(rule)
    with loopwarden.guard(mode="record"):
        assert json.dumps is original_dumps  # and gone again once removed


def test_an_interrupted_uninstall_leaves_no_partial_plan_behind() -> None:
    # Ctrl-C halfway through an uninstall, which is then run again (what guard()'s
    # exit does): the patches left at the interruption are only part of the
    # install, and a plan recorded from them would make every later guard
    # install only that part (the lock rules missing, say).
    from interrupts import interrupt_at
    from loopwarden import registry as registry_module

    source, first = inspect.getsourcelines(registry_module.Registry.uninstall)
    line = first + next(i for i, text in enumerate(source) if "patches.pop()" in text)
    site = (str(Path(registry_module.__file__).resolve()), line, "line")
    _cycle()
    with loopwarden.guard(mode="record"):
        full = len(registry._patches)
    registry.install()
    with interrupt_at((site, 25)) as injection, pytest.raises(KeyboardInterrupt):
        registry.uninstall()
    assert injection.fired_at is not None
    assert 0 < len(registry._patches) < full
    registry.uninstall()  # run again: finishes the job
    assert not registry.installed
    with loopwarden.guard(mode="record"):
        assert len(registry._patches) == full
    assert _on_loop(lambda: time.sleep(0.001)) == ["time.sleep"]


def test_a_plan_made_without_built_in_types_is_not_replayed_once_they_are_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # CPython 3.12's tag pool verdict decides whether built-in types (locks, files)
    # are patched; a plan made under one verdict is not the answer under the other.
    from loopwarden import registry as registry_module

    lock_acquire = vars(_thread.LockType)["acquire"]
    _cycle()
    with monkeypatch.context() as patched:
        patched.setattr(registry_module, "can_modify_builtin_types", lambda: False)
        patched.setattr(registry_module, "_pool_warned", True)  # no warning in this test
        with loopwarden.guard(mode="record"):
            assert vars(_thread.LockType)["acquire"] is lock_acquire  # left alone
    with loopwarden.guard(mode="record"):
        assert vars(_thread.LockType)["acquire"] is not lock_acquire  # patched again
    assert vars(_thread.LockType)["acquire"] is lock_acquire


def test_a_class_rebound_between_guards_gets_the_patches(module_dir: Path) -> None:
    # `mod:Device.read` resolves through `mod.Device`: a test replacing the class
    # leaves the old one with its values untouched, yet the new one is the target.
    (module_dir / "lw_replay_device.py").write_text(
        "class Device:\n    def read(self):\n        return 1\n"
    )
    mod = importlib.import_module("lw_replay_device")
    rule = loopwarden.Rule(target="lw_replay_device:Device.read", family="custom", suggestion="n/a")
    reg = Registry(lambda: [rule], lambda: [])
    old_class = mod.Device
    old_read = vars(old_class)["read"]
    reg.install()
    reg.uninstall()  # records the plan

    class Replacement:
        def read(self) -> int:
            return 2

    new_read = vars(Replacement)["read"]
    mod.Device = Replacement  # type: ignore[attr-defined]
    reg.install()
    try:
        assert vars(Replacement)["read"] is not new_read  # patched: resolved again
    finally:
        reg.uninstall()
    assert vars(Replacement)["read"] is new_read
    assert vars(old_class)["read"] is old_read  # the old class was left alone throughout


def test_lookups_through_the_type_see_every_replayed_write() -> None:
    # A replay writes built-in types' dicts and tells CPython once per type, at the
    # end: a lookup through the type (its attribute cache) must then see the new
    # value inside the guard and the original after it, every cycle.
    original = vars(_thread.LockType)["acquire"]
    for _ in range(4):
        _thread.LockType.acquire  # noqa: B018 - fill the type's attribute cache
        with loopwarden.guard(mode="record"):
            assert _thread.LockType.acquire is vars(_thread.LockType)["acquire"]
            assert _thread.LockType.acquire is not original
        assert _thread.LockType.acquire is original
    assert not registry._stale_types
