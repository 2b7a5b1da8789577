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
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import loopwarden
import loopwarden.registry as registry_module
from loopwarden.patching import _MISSING
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


def test_an_interrupted_uninstall_leaves_no_partial_plan_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ctrl-C halfway through an uninstall, which is then run again (what guard()'s
    # exit does): the patches left at the interruption are only part of the
    # install, and a plan recorded from them would make every later guard
    # install only that part (the lock rules missing, say). The uninstall's
    # Python loop, the one a pure-Python install runs (the C one has no
    # program point to interrupt).
    from interrupts import interrupt_at
    from loopwarden import registry as registry_module

    monkeypatch.setattr(registry_module, "speedups", None)
    source, first = inspect.getsourcelines(registry_module.Registry._unwrite_plan)
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


# -- the replay's write loops: C where built, Python otherwise ------------------


@pytest.fixture(params=["c", "python"])
def replay_loops(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test below runs with the C loops (where built) and with the Python ones."""
    from loopwarden import native
    from loopwarden import registry as registry_module

    if request.param == "python":
        monkeypatch.setattr(registry_module, "speedups", None)
    elif native.speedups is None:
        pytest.skip("the C extension is not built for this interpreter")
    return str(request.param)


_FICKLE_CLASS = '''
class Fickle(type):
    """A metaclass whose setattr fails on request, as a third-party class's may."""

    fail_with = None

    def __setattr__(cls, name, value):
        if Fickle.fail_with is not None and name == "read":
            raise Fickle.fail_with
        super().__setattr__(name, value)


class Device(metaclass=Fickle):
    def read(self):
        return 1
'''


def _index_of_read(patches: Any) -> int:
    return next(
        i for i, p in enumerate(patches) if p.name == "read" and p.owner.__name__ == "Device"
    )


def _originals() -> dict[str, Any]:
    """What a sample of patched targets holds, outside any guard."""
    return {
        "time.sleep": time.sleep,
        "Lock.acquire": vars(_thread.LockType)["acquire"],
        "socket.create_connection": __import__("socket").create_connection,
        "os.stat": __import__("os").stat,
    }


@pytest.fixture
def fickle(module_dir: Path) -> Iterator[Any]:
    """A module whose ``Device.read`` is patched by a rule, behind a metaclass that can fail."""
    (module_dir / "lw_replay_fickle.py").write_text(_FICKLE_CLASS)
    mod = importlib.import_module("lw_replay_fickle")
    rule = loopwarden.mark_blocking("lw_replay_fickle:Device.read", suggestion="a test rule")
    try:
        yield mod
    finally:
        mod.Fickle.fail_with = None
        loopwarden.unmark_blocking(rule)


@pytest.mark.parametrize("failure", [RuntimeError("their setattr failed"), KeyboardInterrupt()])
def test_a_replay_that_fails_half_way_restores_every_original(
    replay_loops: str, fickle: Any, failure: BaseException
) -> None:
    # A late write of a replay fails (a class's own __setattr__ raising, or a
    # Ctrl-C arriving in that Python code): every write before it is undone.
    original_read = vars(fickle.Device)["read"]
    _cycle()
    _cycle()
    plan = registry._plan
    assert plan is not None
    assert _index_of_read(plan.patches) > 300  # so hundreds of writes come before it
    before = _originals()
    fickle.Fickle.fail_with = failure
    with pytest.raises(type(failure)), loopwarden.guard(mode="record"):
        pass  # pragma: no cover - the enter fails
    assert not registry.installed
    assert _originals() == before
    assert vars(fickle.Device)["read"] is original_read
    fickle.Fickle.fail_with = None
    with loopwarden.guard(mode="record"):  # and the next guard works
        assert vars(fickle.Device)["read"] is not original_read
        assert time.sleep is not before["time.sleep"]
    assert vars(fickle.Device)["read"] is original_read


def test_an_uninstall_that_fails_half_way_finishes_when_run_again(
    replay_loops: str, fickle: Any
) -> None:
    # A revert fails (the patches are reverted last first): the error comes
    # out, the journal still holds every patch not reverted, and running the
    # uninstall again restores them all.
    original_read = vars(fickle.Device)["read"]
    _cycle()
    before = _originals()
    registry.install()
    failing = _index_of_read(registry._patches)
    fickle.Fickle.fail_with = RuntimeError("their setattr failed")
    with pytest.raises(RuntimeError):
        registry.uninstall()
    assert len(registry._patches) == failing + 1  # reverted down to it, none forgotten
    assert time.sleep is not before["time.sleep"]  # nothing reverted past the failure
    fickle.Fickle.fail_with = None
    registry.uninstall()
    assert not registry.installed
    assert _originals() == before
    assert vars(fickle.Device)["read"] is original_read


def test_a_value_set_over_ours_while_installed_is_kept_on_exit(replay_loops: str) -> None:
    _cycle()
    _cycle()

    def theirs(seconds: float) -> None:
        _original_sleep(seconds)

    with loopwarden.guard(mode="record"):
        time.sleep = theirs  # someone patches over ours while the guard is on
    try:
        assert time.sleep is theirs  # not reverted from under them
    finally:
        time.sleep = _KEPT[0]


def test_the_replay_loops_leak_no_reference(replay_loops: str) -> None:
    # A missed Py_DECREF in the C loops shows as a reference count that grows
    # with the number of cycles.
    _cycle()
    _cycle()
    plan = registry._plan
    assert plan is not None
    sample = [plan.patches[0].replacement, plan.patches[-1].original, time.sleep]
    sample += [plan.patches[0], plan.patches[-1].owner, _thread.LockType, _MISSING]
    cycles = 500
    before = [sys.getrefcount(obj) for obj in sample]
    for _ in range(cycles):
        _cycle()
    assert registry._plan is plan  # every cycle was a replay
    after = [sys.getrefcount(obj) for obj in sample]
    assert all(a - b < cycles for a, b in zip(after, before, strict=True)), (before, after)


def test_the_c_checks_agree_with_their_python_definitions() -> None:
    from loopwarden import native

    speedups = native.speedups
    if speedups is None:
        pytest.skip("the C extension is not built for this interpreter")

    class Holder:
        present = 1

    a, b = object(), object()
    assert speedups.same_items((a, b), [a, b]) is True
    assert speedups.same_items((a, b), [a]) is False
    assert speedups.same_items((a, b), [b, a]) is False
    assert speedups.same_items((), []) is True
    namespace = {"x": a}
    module = types.ModuleType("m")
    checks = ((namespace, "x", a, module), (Holder.__dict__, "present", 1, Holder))
    assert speedups.all_hold(checks, _MISSING)
    assert not speedups.all_hold(((namespace, "x", b, module),), _MISSING)
    assert speedups.all_hold(((Holder.__dict__, "absent", _MISSING, Holder),), _MISSING)
    assert not speedups.all_hold(((Holder.__dict__, "absent", None, Holder),), _MISSING)

    # A class whose metatype is not type and whose recorded dict is no longer
    # its own (PySide6's feature selection): read from what it shows now.
    class Meta(type):
        pass

    class Replaced(metaclass=Meta):
        value = 2

    stale = {"value": 1}
    assert speedups.all_hold(((stale, "value", 2, Replaced),), _MISSING)
    assert not speedups.all_hold(((stale, "value", 1, Replaced),), _MISSING)
    assert registry_module._live_namespace(stale, Replaced)["value"] == 2
    assert registry_module._live_namespace(stale, Holder) is stale  # metatype type: as recorded
    modules = {"m": a}
    assert speedups.lookups_hold(((None, "m", a), (Holder, "present", 1)), modules)
    assert speedups.lookups_hold(((Holder, "absent", None), (None, "gone", None)), modules)
    assert not speedups.lookups_hold(((Holder, "present", 2),), modules)
    with pytest.raises(TypeError):
        speedups.all_hold(((namespace, "x", a),), _MISSING)  # not a 4-tuple
    with pytest.raises(TypeError):
        speedups.write_patches((), (), [], set())


def test_every_patch_is_written_with_an_interned_name() -> None:
    # setattr interns a name that is not, one lookup in the interpreter's table of
    # interned strings per write: a fifth of a guard() cycle with PySide6 imported.
    with loopwarden.guard(mode="record"):
        patches = list(registry._patches)
    assert len(patches) > 100
    not_interned = [p.name for p in patches if sys.intern(p.name) is not p.name]
    assert not_interned == []
    for rule in registry.rules():
        assert all(sys.intern(part) is part for part in rule.attribute_path)
        assert sys.intern(rule.module_name) is rule.module_name
