"""PySide6's feature selection (``from __feature__ import snake_case``) under a guard.

PySide6 picks the namespace a Qt class shows by the module of the running
Python frame. The registry's ``__getattribute__`` hook (for names with static
and instance overloads, ``QFile.exists``, ``QFileInfo.exists``) ran the class's
own lookup under a Python frame of loopwarden's, so a snake_case module's
``f.read_all()`` raised AttributeError under a guard, as if loopwarden had
asked. The hook is C now (``_speedups.InstanceHook``) and runs the lookup under
the caller's frame; in pure Python a name not found is looked up again with the
caller's globals. What the Qt rules cannot see in such a module (PySide6 gives
it its own copy of each class's methods) is said once per module, as a warning.

Feature selection is process-wide once any module imports a feature, so each
case runs in its own interpreter.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from loopwarden import native
from rules_support import run_script

pytestmark = pytest.mark.timeout(60)

_SNAKE_MODULE = """
from __feature__ import snake_case  # noqa: F401
from PySide6.QtCore import QFile, QFileInfo, QIODevice


def read(path):
    f = QFile(path)
    assert f.open(QIODevice.OpenModeFlag.ReadOnly)
    data = bytes(f.read_all())  # snake_case name of QIODevice.readAll
    f.close()
    return data, QFileInfo(path).exists(), QFile(path).exists(), QFile.exists(path)
"""

_PLAIN_MODULE = """
from PySide6.QtCore import QFile, QFileInfo, QIODevice


def read(path):
    f = QFile(path)
    assert f.open(QIODevice.OpenModeFlag.ReadOnly)
    data = bytes(f.readAll())
    f.close()
    return data, QFileInfo(path).exists(), QFile(path).exists(), QFile.exists(path)
"""

_SCRIPT = """
import asyncio, io, logging, os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
sys.path.insert(0, {folder!r})
from PySide6.QtCore import QCoreApplication
app = QCoreApplication([])
import loopwarden
import snake_module, plain_module
log = io.StringIO()
logging.getLogger("loopwarden").addHandler(logging.StreamHandler(log))
path = os.path.join({folder!r}, "data.txt")
expected = (b"payload", True, True, True)

async def main(module):
    return module.read(path)

# The plain module first: the classes show their plain namespace when the
# snake_case module's first lookup under the guard comes.
# (No call before the first guard: that would select the snake_case module's.)
for module in (plain_module, snake_module, plain_module, snake_module):
    with loopwarden.guard(mode="record") as warden:
        assert asyncio.run(main(module)) == expected, module
    seen = "PySide6.QtCore.QFile.open" in {{f.primitive for f in warden.findings}}
    if module is plain_module:
        print(module.__name__, "found" if seen else "not found")
    else:
        # Whether the snake_case module's QFile.open is seen depends on which
        # namespace the lookup showed (Python version, C or pure Python).
        print(module.__name__, "ran")
print(log.getvalue().count("'snake_module' imports PySide6 features (from __feature__ import"))
"""


def _write_modules(folder: Path) -> None:
    (folder / "snake_module.py").write_text(_SNAKE_MODULE)
    (folder / "plain_module.py").write_text(_PLAIN_MODULE)
    (folder / "data.txt").write_bytes(b"payload")


@pytest.mark.parametrize("implementation", ["c", "python"])
def test_a_snake_case_module_runs_under_a_guard_as_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, implementation: str
) -> None:
    if implementation == "python":
        monkeypatch.setenv("LOOPWARDEN_PURE_PYTHON", "1")
    elif native.speedups is None:
        pytest.skip("the C extension is not built")
    _write_modules(tmp_path)
    out = run_script(textwrap.dedent(_SCRIPT.format(folder=str(tmp_path)))).split()
    # The plain module's calls are checked, the snake_case module's run as
    # without a guard (the script asserts their results), and the warning
    # about that module comes once.
    plain, snake = ["plain_module", "found"], ["snake_module", "ran"]
    assert out == [*plain, *snake, *plain, *snake, "1"]


def test_the_hook_is_c_and_looks_like_the_python_one() -> None:
    if native.speedups is None:
        pytest.skip("pure Python: the hook is a Python function")
    code = textwrap.dedent(
        """
        import os
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        import loopwarden
        from PySide6.QtCore import QCoreApplication, QFile, QFileInfo
        app = QCoreApplication([])
        original = QFileInfo.__dict__["__getattribute__"]
        with loopwarden.guard(mode="record"):
            hook = QFileInfo.__dict__["__getattribute__"]
            assert type(hook).__name__ == "InstanceHook", hook
            assert hook.python_wrapper.__name__ == "__getattribute__"
            info = QFileInfo(os.devnull)
            assert info.exists() is True  # through the hook, into the rule's wrapper
            try:
                info.no_such_attribute
            except AttributeError as exc:
                assert "no_such_attribute" in str(exc)
            else:
                raise AssertionError("no AttributeError")
        assert QFileInfo.__dict__["__getattribute__"] is original
        print("ok")
        """
    )
    assert run_script(code).strip() == "ok"


_FEATURE_INSIDE_A_GUARD = """
import asyncio, os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
sys.path.insert(0, {folder!r})
from PySide6 import QtCore
from PySide6.QtCore import QCoreApplication
app = QCoreApplication([])
import loopwarden
import plain_module
path = os.path.join({folder!r}, "data.txt")
classes = [QtCore.QFile, QtCore.QIODevice, QtCore.QFileInfo, QtCore.QThread, QtCore.QTimer]
before = {{cls: dict(cls.__dict__) for cls in classes}}

async def main(module):
    return module.read(path)

def found(warden):
    return "PySide6.QtCore.QFile.open" in {{f.primitive for f in warden.findings}}

for round in range(3):  # a cycle from scratch, then replayed ones
    with loopwarden.guard(mode="record") as warden:
        asyncio.run(main(plain_module))
        if round == 1:
            # PySide6 gives the classes a new dict for the feature here, in
            # the middle of a guard whose patches the C replay wrote directly.
            import snake_module
            asyncio.run(main(snake_module))
    assert found(warden), round
    for cls in classes:
        assert dict(cls.__dict__) == before[cls], (round, cls)
print("ok")
"""


@pytest.mark.parametrize("implementation", ["c", "python"])
def test_a_feature_imported_inside_a_guard_leaves_every_original_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, implementation: str
) -> None:
    if implementation == "python":
        monkeypatch.setenv("LOOPWARDEN_PURE_PYTHON", "1")
    elif native.speedups is None:
        pytest.skip("the C extension is not built")
    _write_modules(tmp_path)
    code = textwrap.dedent(_FEATURE_INSIDE_A_GUARD.format(folder=str(tmp_path)))
    assert run_script(code).strip() == "ok"
