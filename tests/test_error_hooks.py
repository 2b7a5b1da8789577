"""The interpreter's default error printers run inside an allowance (loopwarden.error_hooks).

A slot's exception is printed by ``sys.excepthook`` on the GUI thread, a
``__del__``'s by ``sys.unraisablehook``; the defaults are C and read the
traceback's source files with no Python frame of their own, so one slot error
gave some thirty ``open``/``readline`` findings at the user's ``emit()`` line
(found on superqt's suite). Each case runs in its own interpreter, where the
hooks are the interpreter's defaults (pytest installs its own).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)


def run_file(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as a script file (the printers read its source) in a fresh interpreter."""
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(code), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done


_SLOT_ERROR = """
import collections, os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtCore import QCoreApplication, QObject, Signal
import loopwarden
app = QCoreApplication([])

class Emitter(QObject):
    sig = Signal()

def slot():
    raise ValueError("a bug in a slot")

{hook}
emitter = Emitter()
emitter.sig.connect(slot)
with loopwarden.guard(mode="record") as warden:
    emitter.sig.emit()
print(sorted(collections.Counter(f.primitive for f in warden.findings).items()))
print(sys.excepthook is {expected_hook})
"""

_OWN_HOOK = """
def own_hook(*exc):
    with open(__file__) as f:  # a crash log, say
        f.read()
    sys.__excepthook__(*exc)

sys.excepthook = own_hook
"""


def test_a_slot_error_printed_by_the_default_hook_is_not_a_finding(tmp_path: Path) -> None:
    done = run_file(tmp_path, _SLOT_ERROR.format(hook="", expected_hook="sys.__excepthook__"))
    assert done.stdout.split("\n")[:2] == ["[]", "True"]
    # Printed as without a guard: the traceback with its source line.
    assert 'raise ValueError("a bug in a slot")' in done.stderr
    assert "ValueError: a bug in a slot" in done.stderr


def test_an_applications_own_hook_is_still_checked(tmp_path: Path) -> None:
    done = run_file(tmp_path, _SLOT_ERROR.format(hook=_OWN_HOOK, expected_hook="own_hook"))
    findings, same_hook = done.stdout.split("\n")[:2]
    assert "'builtins.open'" in findings and "'io.TextIOWrapper.read'" in findings, findings
    assert same_hook == "True"  # put back: the application's own


_UNRAISABLE = """
import asyncio, sys
import loopwarden

class Leaky:
    def __del__(self):
        raise ValueError("a bug in __del__")

async def main():
    obj = Leaky()
    del obj  # on the loop: printed by sys.unraisablehook

with loopwarden.guard(mode="record") as warden:
    asyncio.run(main())
print([f.primitive for f in warden.findings])
print(sys.unraisablehook is sys.__unraisablehook__)
"""


def test_an_unraisable_error_printed_by_the_default_hook_is_not_a_finding(
    tmp_path: Path,
) -> None:
    done = run_file(tmp_path, _UNRAISABLE)
    assert done.stdout.split("\n")[:2] == ["[]", "True"]
    assert "ValueError: a bug in __del__" in done.stderr
