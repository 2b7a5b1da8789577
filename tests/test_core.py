"""Core engine behaviour: modes, nesting, restore, allowances, aliases, isolation."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import threading
import time
import warnings
from time import sleep as aliased_sleep  # bound before activation on purpose
from typing import Any

import pytest

import loopwarden
from loophelpers import run_in_worker, run_on_loop
from loopwarden import engine
from loopwarden.families import default_rules
from loopwarden.registry import PatchError, Registry, _resolve, registry


def _snapshot() -> dict[tuple[int, str], Any]:
    """Raw values of every patch target (identity matters)."""
    values: dict[tuple[int, str], Any] = {}
    for rule in default_rules():
        resolved = _resolve(rule)
        if resolved is None:
            continue
        owner, name = resolved
        raw = owner.__dict__.get(name, "<missing>")
        values[(id(owner), name)] = raw
    values[(id(globals()), "aliased_sleep")] = globals()["aliased_sleep"]
    return values


def _same(a: dict[tuple[int, str], Any], b: dict[tuple[int, str], Any]) -> bool:
    return a.keys() == b.keys() and all(a[k] is b[k] for k in a)


def test_modes_raise_warn_record() -> None:
    with (
        loopwarden.guard(mode="raise") as warden,
        pytest.raises(loopwarden.BlockingCallError) as info,
    ):
        run_on_loop(lambda: time.sleep(0.001))
    assert info.value.finding is warden.findings[0]
    assert isinstance(info.value, RuntimeError)

    with (
        loopwarden.guard(mode="warn") as warden,
        pytest.warns(loopwarden.BlockingCallWarning) as rec,
    ):
        run_on_loop(lambda: time.sleep(0.001))
    assert len(warden.findings) == 1
    assert rec[0].filename == __file__  # attributed to the user's line

    with loopwarden.guard(mode="record") as warden:
        run_on_loop(lambda: time.sleep(0.001))
    assert [f.primitive for f in warden.findings] == ["time.sleep"]


def test_warn_mode_honours_error_filter() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", loopwarden.BlockingCallWarning)
        with loopwarden.guard(mode="warn"), pytest.raises(loopwarden.BlockingCallWarning):
            run_on_loop(lambda: time.sleep(0.001))


def test_finding_fields_and_message_read_like_advice() -> None:
    with loopwarden.guard(mode="record") as warden:
        run_on_loop(lambda: time.sleep(0.001))
    finding = warden.findings[0]
    assert finding.family == "sleep"
    assert finding.thread_name == threading.current_thread().name
    assert finding.thread_id == threading.get_ident()
    assert "asyncio loop" in finding.loop
    assert finding.caller.startswith(f"{__file__}:")
    assert all("loopwarden/engine.py" not in str(frame) for frame in finding.stack)
    assert finding.stack[-1].filename == __file__
    assert "asyncio.sleep" in finding.suggestion
    assert "time.sleep()" in finding.message and finding.caller in finding.message
    assert loopwarden.Finding.from_dict(finding.to_dict()) == finding


def test_swallowed_error_is_still_recorded() -> None:
    def swallow() -> None:
        try:  # noqa: SIM105 - a broad except is the point of the test
            time.sleep(0.001)
        except Exception:  # noqa: BLE001
            pass

    with loopwarden.guard(mode="raise") as warden:
        run_on_loop(swallow)
    assert [f.primitive for f in warden.findings] == ["time.sleep"]


def test_sleep_zero_and_worker_threads_are_silent() -> None:
    with loopwarden.guard(mode="raise") as warden:
        run_on_loop(lambda: time.sleep(0))
        run_in_worker(lambda: time.sleep(0.001))

        async def main() -> None:
            await asyncio.to_thread(time.sleep, 0.001)
            await asyncio.get_running_loop().run_in_executor(None, time.sleep, 0.001)
            await asyncio.sleep(0.001)

        asyncio.run(main())
    assert warden.findings == []


def test_nothing_is_checked_outside_a_guard() -> None:
    before = _snapshot()
    run_on_loop(lambda: time.sleep(0.001))  # no guard: plain call
    assert _same(before, _snapshot())


def test_nested_guards_inner_mode_applies_and_outer_state_returns() -> None:
    before = _snapshot()
    with loopwarden.guard(mode="record") as outer:
        with loopwarden.guard(mode="raise") as inner, pytest.raises(loopwarden.BlockingCallError):
            run_on_loop(lambda: time.sleep(0.001))
        assert registry.installed
        run_on_loop(lambda: time.sleep(0.001))  # outer mode again: record, no raise
    assert len(inner.findings) == 1
    assert len(outer.findings) == 2
    assert not registry.installed
    assert _same(before, _snapshot())


def test_activate_deactivate_are_idempotent() -> None:
    before = _snapshot()
    first = loopwarden.activate(mode="record")
    second = loopwarden.activate(mode="warn")
    assert second.mode == "warn" and second.findings is first.findings
    loopwarden.deactivate()
    loopwarden.deactivate()
    assert not registry.installed
    assert _same(before, _snapshot())


def test_exact_restore_of_every_original_and_alias() -> None:
    before = _snapshot()
    with loopwarden.guard():
        during = _snapshot()
        assert not _same(before, during)
        assert globals()["aliased_sleep"] is not time.sleep.__wrapped__  # type: ignore[attr-defined]
    assert _same(before, _snapshot())
    assert aliased_sleep is time.sleep
    assert "_c_read" not in io.FileIO.__dict__  # nothing left behind in builtin types


def test_forbiddenfruit_leaves_builtins_dir_alone() -> None:
    import builtins

    original = builtins.dir
    with loopwarden.guard():
        assert builtins.dir is original
    assert builtins.dir is original


def test_alias_bound_before_activation_is_caught() -> None:
    with loopwarden.guard(mode="record") as warden:
        run_on_loop(lambda: aliased_sleep(0.001))
    assert [f.primitive for f in warden.findings] == ["time.sleep"]


def test_rollback_on_partial_activation() -> None:
    class Frozen(type):
        def __setattr__(cls, name: str, value: object) -> None:
            raise TypeError("this class refuses patches")

    class Target(metaclass=Frozen):
        def work(self) -> None:
            pass

    import sys
    import types

    module = types.ModuleType("lw_rollback_target")
    module.Target = Target  # type: ignore[attr-defined]
    sys.modules["lw_rollback_target"] = module
    try:
        broken = loopwarden.Rule(
            target="lw_rollback_target:Target.work", family="custom", suggestion="n/a"
        )
        rules = [*default_rules()[:5], broken, *default_rules()[5:]]
        reg = Registry(lambda: list(rules))
        before = _snapshot()
        with pytest.raises(PatchError, match="could not install"):
            reg.install()
        assert not reg.installed
        assert _same(before, _snapshot())
    finally:
        del sys.modules["lw_rollback_target"]


def test_allow_blocking_is_task_local() -> None:
    async def allowed() -> None:
        with loopwarden.allow_blocking(reason="test: this task may block"):
            await asyncio.sleep(0.01)  # the other task runs while we wait here
            time.sleep(0.001)

    async def not_allowed() -> None:
        await asyncio.sleep(0.001)
        time.sleep(0.001)

    async def main() -> None:
        await asyncio.gather(allowed(), not_allowed())

    with loopwarden.guard(mode="record") as warden:
        asyncio.run(main())
    assert len(warden.findings) == 1
    assert warden.findings[0].stack[-1].function.endswith("not_allowed")


def test_allow_blocking_for_some_primitives_and_as_decorator(tmp_path: Any) -> None:
    @loopwarden.allow_blocking("time.sleep", reason="test")
    def sleepy() -> None:
        time.sleep(0.001)
        os.stat(tmp_path)  # not covered

    @loopwarden.allow_blocking("filesystem", reason="test")
    async def reads() -> None:
        os.stat(tmp_path)

    with loopwarden.guard(mode="record") as warden:
        run_on_loop(sleepy)
        asyncio.run(reads())
    assert [f.primitive for f in warden.findings] == ["os.stat"]


def test_allow_blocking_requires_a_reason() -> None:
    with pytest.raises(loopwarden.ConfigError, match="needs a reason"):
        loopwarden.allow_blocking(reason="")


def _blocking_helper() -> None:
    time.sleep(0.001)


def test_user_allowance_by_module_and_qualname() -> None:
    spec = f"{__name__}:_blocking_helper"
    with loopwarden.guard(mode="raise", allow=[(spec, "legacy helper, tracked")]) as warden:
        run_on_loop(_blocking_helper)
    assert warden.findings == []
    allowance = loopwarden.allow(spec, reason="process-wide")
    try:
        with loopwarden.guard(mode="raise") as warden:
            run_on_loop(_blocking_helper)
        assert warden.findings == []
    finally:
        loopwarden.disallow(allowance)
    with loopwarden.guard(mode="record") as warden:
        run_on_loop(_blocking_helper)
    assert len(warden.findings) == 1


def test_bad_config_values_name_the_valid_ones() -> None:
    with pytest.raises(loopwarden.ConfigError, match="valid modes: raise, warn, record"):
        loopwarden.guard(mode="loud")  # type: ignore[arg-type]
    with pytest.raises(loopwarden.ConfigError, match="needs a reason"):
        loopwarden.guard(allow=[("pkg.mod:f", "")])
    with pytest.raises(ValueError, match="valid families"):
        loopwarden.Rule(target="m:f", family="nope", suggestion="x")  # type: ignore[arg-type]


def test_mark_blocking_a_third_party_function() -> None:
    import json

    rule = loopwarden.mark_blocking("json:dumps", suggestion="Serialise in a worker.")
    try:
        with loopwarden.guard(mode="record") as warden:
            run_on_loop(lambda: json.dumps({"a": 1}))
            run_in_worker(lambda: json.dumps({"a": 1}))
        assert [(f.primitive, f.family) for f in warden.findings] == [("json.dumps", "custom")]
        assert warden.findings[0].suggestion == "Serialise in a worker."
    finally:
        loopwarden.unmark_blocking(rule)
    assert not hasattr(json.dumps, "__loopwarden_rule__")


def test_failing_callback_is_logged_and_disabled(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    def bad(finding: loopwarden.Finding) -> None:
        calls.append(finding.primitive)
        raise ValueError("callback bug")

    with loopwarden.guard(mode="record", on_finding=bad) as warden:
        run_on_loop(lambda: (time.sleep(0.001), time.sleep(0.001)))
    assert calls == ["time.sleep"]  # disabled after the first failure
    assert len(warden.findings) == 2
    assert "on_finding callback" in caplog.text


def test_broken_predicate_never_breaks_the_host(caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_: object) -> bool:
        raise ZeroDivisionError("rule bug")

    rule = loopwarden.Rule(target="json:loads", family="custom", suggestion="x", blocks_when=broken)
    import json

    with loopwarden.guard(mode="raise", rules=[rule]) as warden:
        assert run_on_loop(lambda: json.loads("[1]")) == [1]
    assert warden.findings == []
    assert "rule json.loads" in caplog.text


def test_logging_and_warnings_do_not_recurse(tmp_path: Any) -> None:
    log = logging.getLogger("lw.test")
    handler = logging.FileHandler(tmp_path / "app.log")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with loopwarden.guard(mode="warn") as warden, pytest.warns(loopwarden.BlockingCallWarning):
            run_on_loop(lambda: (log.info("logging to a file"), time.sleep(0.001)))
    finally:
        log.removeHandler(handler)
        handler.close()
    # The file handler is reported once (logging.Handler.handle), then the sleep; the
    # warnings that warn mode emits for them are not checked again.
    assert [f.primitive for f in warden.findings] == ["logging.Handler.handle", "time.sleep"]


def test_lazy_import_inside_a_coroutine_is_silent(tmp_path: Any) -> None:
    import sys

    (tmp_path / "lw_lazy_mod.py").write_text("VALUE = 42\n")
    sys.path.insert(0, str(tmp_path))
    try:

        async def main() -> int:
            import lw_lazy_mod  # type: ignore[import-not-found]

            return int(lw_lazy_mod.VALUE)

        with loopwarden.guard(mode="raise") as warden:
            assert asyncio.run(main()) == 42
        assert warden.findings == []
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("lw_lazy_mod", None)


def test_uvloop_loops_are_guarded() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        time.sleep(0.001)
        await asyncio.to_thread(time.sleep, 0.001)

    with loopwarden.guard(mode="record") as warden:
        uvloop.run(main())
    assert [f.primitive for f in warden.findings] == ["time.sleep"]


def test_concurrent_calls_while_activating_and_deactivating(tmp_path: Any) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []
    counts = [0, 0]

    def hammer(index: int) -> None:
        lock = threading.Lock()
        try:
            while not stop.is_set():
                os.stat(tmp_path)
                with lock:
                    counts[index] += 1
                time.sleep(0)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(40):
            with loopwarden.guard(mode="raise") as warden:
                pass
            assert warden.findings == []
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert errors == []
    assert all(count > 0 for count in counts)
    assert not registry.installed


def test_keep_installed_makes_switching_cheap() -> None:
    with loopwarden.keep_installed():
        assert registry.installed
        patched = time.sleep
        with loopwarden.guard(mode="record") as warden:
            assert time.sleep is patched  # no re-patching per warden
            run_on_loop(lambda: time.sleep(0.001))
        run_on_loop(lambda: time.sleep(0.001))  # no warden: not recorded anywhere
        assert len(warden.findings) == 1
    assert not registry.installed


def look_at_calls_in_progress(seen: list[bool]) -> None:
    """A blocking function of our own (marked below) that looks at the table while it runs."""
    seen.append(threading.get_ident() in engine.calls_in_progress)


def test_calls_in_progress_tracks_a_reported_call() -> None:
    during: list[bool] = []
    seen: list[bool] = []

    def on_finding(finding: loopwarden.Finding) -> None:
        seen.append(threading.get_ident() in engine.calls_in_progress)

    rule = loopwarden.mark_blocking(f"{__name__}:look_at_calls_in_progress", suggestion="x")
    try:
        with loopwarden.guard(mode="record", on_finding=on_finding) as warden:
            run_on_loop(lambda: look_at_calls_in_progress(during))
    finally:
        loopwarden.unmark_blocking(rule)
    assert during == [True]  # in the table while the call runs
    assert seen == [False]  # callbacks run once the call has returned
    assert warden.findings and not engine.calls_in_progress


def test_stacks_stop_at_the_loop_dispatcher_once_user_code_is_seen() -> None:
    async def handler() -> None:
        time.sleep(0.001)

    async def main() -> None:
        await handler()
        asyncio.get_running_loop().call_soon(time.sleep, 0.001)
        await asyncio.sleep(0.01)

    with loopwarden.guard(mode="record") as warden:
        asyncio.run(main())
    in_coroutine, called_by_loop = warden.findings
    assert in_coroutine.stack[-1].function.endswith("handler")
    assert in_coroutine.stack[-2].function.endswith("main")
    assert all(f.module != "asyncio.base_events" for f in in_coroutine.stack)
    # No user frame between the loop and the call: the stack is where the
    # callback was scheduled, and no loop machinery (issue 15.3).
    (site,) = called_by_loop.stack
    assert site.filename == __file__ and site.function.endswith("main")
    assert called_by_loop.details["scheduled_via"] == "loop.call_soon"


async def _loop_handler() -> None:
    time.sleep(0.001)


def _runs_a_loop() -> None:
    asyncio.run(_loop_handler())


def test_an_allowance_covers_its_callback_chain_not_the_whole_loop() -> None:
    # The function that starts the loop is on the stack of every callback, but
    # allowing it must not silence the code the loop runs.
    spec = (f"{__name__}:_runs_a_loop", "starts the loop")
    with loopwarden.guard(mode="record", allow=[spec]) as warden:
        _runs_a_loop()
    assert [f.primitive for f in warden.findings] == ["time.sleep"]
    inner = (f"{__name__}:_loop_handler", "the handler may block")
    with loopwarden.guard(mode="record", allow=[inner]) as warden:
        _runs_a_loop()
    assert warden.findings == []


def test_builtins_captured_in_a_class_body_while_active_do_not_bind(tmp_path: Any) -> None:
    # Python 3.10's pathlib does `class _NormalAccessor: stat = os.stat`; a module
    # imported while the patches are in must get a replacement that, like the
    # builtin, does not bind `self`.
    with loopwarden.guard(mode="record") as warden:

        class Accessor:
            stat = os.stat
            sleep = time.sleep

        assert Accessor().stat(tmp_path).st_mode > 0
        Accessor().sleep(0)
        run_on_loop(lambda: Accessor().stat(tmp_path))
    assert [f.primitive for f in warden.findings] == ["os.stat"]
