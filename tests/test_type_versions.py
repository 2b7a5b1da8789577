"""Type version tags: installing spends almost none, and CPython 3.12's pool never runs dry.

On CPython 3.12 every write into a built-in type's dictionary followed by a
lookup spends a tag from one pool of about 131,000 shared by all built-in
types; once it is empty, ``threading.Condition`` calls the wrong lock type's
method and the interpreter crashes (python/cpython#89811). loopwarden's own
CI hit that after ~1,240 tests, each entering and leaving guards.
"""

from __future__ import annotations

import _thread
import ctypes
import io
import logging
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import pytest

import loopwarden
from loophelpers import run_on_loop
from loopwarden import registry as registry_module
from loopwarden import type_versions
from loopwarden.errors import BlockingCallError
from reports_helpers import run_python

_SHARED_POOL = sys.implementation.name == "cpython" and sys.version_info[:2] == (3, 12)
only_312 = pytest.mark.skipif(
    not _SHARED_POOL, reason="only CPython 3.12 shares one pool of type version tags"
)
_TAG_OFFSET = 48 * ctypes.sizeof(ctypes.c_void_p)


def _tag(cls: type) -> int:
    return ctypes.c_uint.from_address(id(cls) + _TAG_OFFSET).value


@pytest.mark.parametrize(
    ("owner", "name"),
    [
        (_thread.LockType, "acquire"),
        (_thread.RLock, "__enter__"),
        (io.BufferedRandom, "read"),
        (io.BufferedRandom, "__enter__"),  # inherited from _io._IOBase
        (dict, "fromkeys"),  # a classmethod: bound to the class
        (str, "maketrans"),  # a staticmethod: the plain function
        (threading.Thread, "join"),  # a Python class: plain getattr
    ],
)
def test_class_attribute_finds_what_getattr_finds(owner: type, name: str) -> None:
    assert type_versions.class_attribute(owner, name) == getattr(owner, name)


def test_class_attribute_of_a_missing_name_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'no_such_method'"):
        type_versions.class_attribute(_thread.LockType, "no_such_method")


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="CPython's type cache")
def test_class_attribute_does_not_give_a_modified_built_in_type_a_new_tag() -> None:
    # A built-in type nothing patches: on 3.13, _thread.lock may have used up
    # its own budget of 1,000 tags by now in a long test session (and then
    # no lookup gives it one).
    cls = types.SimpleNamespace
    ctypes.pythonapi.PyType_Modified(ctypes.py_object(cls))
    assert _tag(cls) == 0  # invalidated, as after a patch is written
    assert type_versions.class_attribute(cls, "__repr__") is cls.__dict__["__repr__"]
    assert _tag(cls) == 0  # no cached lookup happened
    cls.__repr__  # noqa: B018 - the lookup is the point
    assert _tag(cls) != 0  # a plain lookup takes one


@pytest.mark.skipif(_SHARED_POOL, reason="this Python shares one pool of tags")
def test_other_pythons_always_allow_patching_built_in_types() -> None:
    assert type_versions.tag_budget_left() is None
    assert type_versions.can_modify_builtin_types()


@only_312
def test_a_guard_cycle_spends_few_tags_from_the_shared_pool() -> None:
    def use_patched_types() -> None:
        lock = threading.Lock()
        with lock:
            pass
        with threading.RLock():
            pass
        with open(__file__, "rb") as file:
            file.read(1)

    with loopwarden.guard(mode="record"):
        use_patched_types()
    use_patched_types()
    before = type_versions.tag_budget_left()
    assert before is not None
    cycles = 50
    for _ in range(cycles):
        with loopwarden.guard(mode="record"):
            use_patched_types()
        use_patched_types()
    after = type_versions.tag_budget_left()
    assert after is not None
    # Each used built-in type (lock, RLock, the file's three io classes) takes
    # a new tag once after install and once after uninstall, plus the probe.
    # Looking attributes up with getattr while installing spent about 74.
    assert (before - after) / cycles <= 16


SPEND_POOL_THEN_CYCLE = """
import asyncio, ctypes, logging, sys, threading, time
import loopwarden
from loopwarden import type_versions
from loopwarden.errors import BlockingCallError

logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
probe = type(...)
# Spend the pool down to half the reserve, the way a long-lived process that
# entered guards many thousands of times would have.
while type_versions.tag_budget_left() > type_versions.RESERVE // 2:
    for _ in range(1000):
        ctypes.pythonapi.PyType_Modified(ctypes.py_object(probe))
        getattr(probe, "__spend__", None)

def work():
    plain, reentrant = threading.Condition(threading.Lock()), threading.Condition()
    for _ in range(20):
        with plain:
            pass
        with reentrant:
            pass

async def cycle():
    with loopwarden.guard():
        try:
            time.sleep(0.001)
        except BlockingCallError:
            return 1
        finally:
            work()
    return 0

sleeps_caught = 0
for _ in range(300):
    sleeps_caught += asyncio.run(cycle())
    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    work()
import _thread
acquire = _thread.LockType.__dict__["acquire"]
print("lock original:", getattr(acquire, "__loopwarden_rule__", None) is None)
print("sleeps caught:", sleeps_caught)
print("left:", type_versions.tag_budget_left())
"""


@only_312
def test_a_nearly_spent_pool_turns_built_in_type_rules_off_instead_of_crashing(
    tmp_path: Path,
) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(SPEND_POOL_THEN_CYCLE))
    result = run_python("app.py", cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr
    assert "doesn't apply to a '_thread" not in result.stderr
    assert "lock original: True" in result.stdout
    assert "sleeps caught: 300" in result.stdout  # function rules stay on
    left = int(result.stdout.split("left:")[1])
    assert left > 0  # the pool never ran dry
    # Said once.
    assert result.stderr.count("almost out of type version tags") == 1


def test_when_built_in_types_may_not_be_patched_the_other_rules_still_install(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Our own decision is replaced here, not a primitive: the real pool is far
    # from empty, and the 3.12-only test above spends it for real.
    monkeypatch.setattr(registry_module, "can_modify_builtin_types", lambda: False)
    monkeypatch.setattr(registry_module, "_pool_warned", False)
    original_acquire = _thread.LockType.__dict__["acquire"]
    original_read = io.BufferedReader.__dict__["read"]
    with caplog.at_level(logging.WARNING, logger="loopwarden"):
        for _ in range(2):
            with loopwarden.guard():
                assert _thread.LockType.__dict__["acquire"] is original_acquire
                assert io.BufferedReader.__dict__["read"] is original_read
                with pytest.raises(BlockingCallError, match=r"time\.sleep"):
                    run_on_loop(lambda: time.sleep(0.001))
    assert caplog.text.count("almost out of type version tags") == 1
    assert _thread.LockType.__dict__["acquire"] is original_acquire
