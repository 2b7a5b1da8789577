"""The two rule hooks the new families rely on, and a core fix they exposed.

* ``Rule.diagnose``: per-call details, and a per-call suggestion (deadlocks);
* ``Rule.allowed_in`` with a bare module name (stdlib critical sections);
* wrapping builtin methods must not read their ``__doc__`` (PySide6 bug).
"""

from __future__ import annotations

import asyncio
import logging
import os
import posixpath
import sys
import threading
from typing import Any

import pytest

import loopwarden
from loopwarden import BlockingCallError, Rule, frames
from loopwarden.registry import registry


def _fspath_rule(**options: Any) -> Rule:
    # os.fspath is a builtin that posixpath.join calls for every part.
    return Rule(target="os:fspath", family="custom", suggestion="Do not.", **options)


def _on_loop(call: Any, rule: Rule, mode: str = "raise") -> loopwarden.Warden:
    async def main() -> None:
        call()

    with loopwarden.guard(mode=mode, rules=[rule]) as warden:  # type: ignore[arg-type]
        asyncio.run(main())
    return warden


def test_diagnose_adds_details_and_replaces_the_suggestion() -> None:
    def diagnose(path: object) -> dict[str, Any]:
        return {"path": path, "suggestion": f"{path!r} is special: do something else."}

    warden = _on_loop(lambda: os.fspath("a"), _fspath_rule(diagnose=diagnose), mode="record")
    (finding,) = warden.findings
    assert finding.details.keys() == {"path", "duration_ms"}  # the call ran: it was timed
    assert finding.details["path"] == "a"
    assert finding.suggestion == "'a' is special: do something else."
    assert finding.message.endswith("'a' is special: do something else.")


def test_a_failing_diagnosis_keeps_the_finding(caplog: pytest.LogCaptureFixture) -> None:
    def diagnose(path: object) -> dict[str, Any]:
        raise RuntimeError("broken diagnosis")

    rule = _fspath_rule(diagnose=diagnose)
    with (
        caplog.at_level(logging.ERROR, logger="loopwarden"),
        pytest.raises(BlockingCallError) as info,
    ):
        _on_loop(lambda: os.fspath("a"), rule)
    assert info.value.finding.suggestion == "Do not."
    assert info.value.finding.details == {}
    assert "diagnosis of rule os.fspath failed" in caplog.text


@pytest.mark.parametrize("allowed", ["posixpath", "posixpath:join"])
def test_allowed_in_takes_a_module_or_a_function(allowed: str) -> None:
    rule = _fspath_rule(allowed_in=frozenset({allowed}))
    warden = _on_loop(lambda: posixpath.join("a", "b"), rule)
    assert warden.findings == []


def test_allowed_in_does_not_excuse_direct_calls() -> None:
    rule = _fspath_rule(allowed_in=frozenset({"posixpath"}))
    with pytest.raises(BlockingCallError):
        _on_loop(lambda: os.fspath("a"), rule)


def test_activations_keep_none_alive_with_pyside6_imported() -> None:
    # PySide6's __doc__ getter for builtin methods drops a reference to None on
    # each read; wrapping builtins used to read it, and after enough activations
    # the interpreter aborted with "none_dealloc".
    # The bug cost ~100 references per activation, steadily; after warming up
    # (caches settle during the first activations on 3.10) the count stays put.
    pytest.importorskip("PySide6.QtCore")
    assert not registry.installed

    def activations(count: int) -> None:
        for _ in range(count):
            registry.install()
            registry.uninstall()

    activations(40)
    before = sys.getrefcount(None)
    cycles = 40
    activations(cycles)
    assert before - sys.getrefcount(None) < 2 * cycles


@pytest.mark.parametrize(
    ("function", "qualname"),
    [
        (threading.Thread.start, "Thread.start"),
        (threading.Event.wait, "Event.wait"),
        (threading.enumerate, "enumerate"),
    ],
)
def test_qualnames_of_stdlib_frames_are_found_without_co_qualname(
    function: Any, qualname: str
) -> None:
    # Python 3.10 code objects have no co_qualname; allowances such as
    # "threading:Thread.start" need the method's qualified name all the same.
    assert frames._qualname_from_globals(function.__code__, vars(threading)) == qualname


_NEW_FAMILIES = ("network", "database", "sync", "process", "console")

#: Targets that exist only on other platforms (Solaris, BSD/macOS, Windows).
_OTHER_PLATFORMS = frozenset(
    {
        "selectors:DevpollSelector.select",
        "selectors:KqueueSelector.select",
        "loopwarden.blocking.polling:DEVPOLL_TYPE.poll",
        "select:kqueue.control",
        "select:epoll.poll",
        "selectors:EpollSelector.select",
        "loopwarden.blocking.polling:POLL_TYPE.poll",
        "selectors:PollSelector.select",
        *(
            f"multiprocessing.connection:PipeConnection.{method}"
            for method in ("recv", "recv_bytes", "recv_bytes_into", "poll")
        ),
    }
)


def _raw_targets() -> dict[str, Any]:
    """rule target -> the raw attribute (from the owner's own __dict__) it patches."""
    import concurrent.futures.process  # noqa: F401 - so its rule applies too

    from loopwarden.families import default_rules
    from loopwarden.registry import _resolve

    found: dict[str, Any] = {}
    for rule in default_rules():
        if rule.family not in _NEW_FAMILIES:
            continue
        resolved = _resolve(rule)
        if resolved is None:
            assert (
                (rule.target == "sqlite3:Connection.blobopen" and sys.version_info < (3, 11))
                or rule.target in _OTHER_PLATFORMS
                or (not rule.import_module and rule.module_name not in sys.modules)
            ), rule.target
            continue
        owner, name = resolved
        found[rule.target] = vars(owner).get(name, "<inherited>")
    return found


def test_new_targets_are_patched_and_restored_exactly() -> None:
    before = _raw_targets()
    with loopwarden.guard(mode="record"):
        patched = set(registry.patched_targets())
        during = _raw_targets()
    assert set(before) <= patched
    assert all(during[target] is not before[target] for target in before)
    after = _raw_targets()
    assert all(after[target] is before[target] for target in before)
