"""A Qt system library that cannot be loaded: the demo names it and the packages to install.

The library is made unloadable for real: a temporary directory first on
``LD_LIBRARY_PATH`` holds an empty ``libEGL.so.1`` (or another), so the dynamic
loader picks it and fails, exactly as PySide6's import does on a bare server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from loopwarden.qt_system_libs import QT_SYSTEM_LIBRARIES, describe_qt_import_error, missing_library

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF loader")

_BROKEN = {lib.soname: lib for lib in QT_SYSTEM_LIBRARIES}


def _env_without(tmp_path: Path, soname: str) -> dict[str, str]:
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / soname).write_bytes(b"")  # not an ELF file: the loader refuses it
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPWARDEN")}
    env["LD_LIBRARY_PATH"] = str(shadow)
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


@pytest.mark.parametrize("soname", ["libEGL.so.1", "libxkbcommon.so.0", "libfontconfig.so.1"])
def test_demo_names_the_missing_library_and_its_packages(tmp_path: Path, soname: str) -> None:
    env = _env_without(tmp_path, soname)
    # The real ImportError text the demo parses.
    probe = subprocess.run(
        [sys.executable, "-c", "import PySide6.QtWidgets"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.returncode != 0 and soname in probe.stderr.splitlines()[-1]
    proc = subprocess.run(
        [sys.executable, "-m", "loopwarden", "demo", "--report", str(tmp_path / "r.html")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    library = _BROKEN[soname]
    assert f"cannot load the system library {soname}" in line
    assert f"apt-get install {library.debian}" in line and f"dnf install {library.fedora}" in line
    assert "loopwarden[qt]" not in line  # PySide6 is installed: pip is not the fix
    assert not (tmp_path / "r.html").exists()


def test_the_loaders_not_found_message_is_parsed() -> None:
    # glibc's wording when the library is absent (rather than broken).
    text = "libEGL.so.1: cannot open shared object file: No such file or directory"
    assert missing_library(text) == "libEGL.so.1"
    advice = describe_qt_import_error(ImportError(text))
    assert advice is not None and "apt-get install libegl1" in advice


def test_missing_pyside6_still_points_to_the_pip_extra(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['PySide6'] = None\n"
        "from loopwarden.cli import main; sys.exit(main(['demo']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "pip install 'loopwarden[qt]'" in proc.stderr


def test_an_unrelated_import_error_is_not_explained() -> None:
    assert describe_qt_import_error(ImportError("cannot import name 'x' from 'y'")) is None
