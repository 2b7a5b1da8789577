"""Hatch build hook: compile the optional C extension ``loopwarden._speedups``.

The extension puts the lock rules' two hottest paths in C
(``src/loopwarden/_speedups.c``, see ``loopwarden.lock_wrapper``). loopwarden
works without it, so a machine with no C compiler (or no Python headers) gets a
pure-Python install and a warning here, never a failed one. Set
``LOOPWARDEN_PURE_PYTHON=1`` to skip the compilation.

The library is compiled in place, beside its source, with the compiler Python
itself was built with (``sysconfig``'s ``LDSHARED`` and ``CCSHARED``): an
editable install then imports it from the source tree, and a wheel packs that
one file (git ignores it, and the libraries of other Python versions that the
same tree may hold stay out) and gets a platform tag. A free-threaded CPython
gets no extension (its code relies on the GIL).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("src", "loopwarden", "_speedups.c")


def compile_speedups(root: Path) -> Path | None:
    """Compile ``_speedups.c`` for the running interpreter; the library, or None if it failed."""
    source = root / SOURCE
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    ldshared = sysconfig.get_config_var("LDSHARED")
    if os.name == "nt" or not suffix or not ldshared:
        print("loopwarden: no C compiler setup known here; pure-Python install", file=sys.stderr)
        return None
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        print("loopwarden: free-threaded Python; pure-Python install", file=sys.stderr)
        return None
    target = source.with_name(f"_speedups{suffix}")
    command = [
        *shlex.split(ldshared),
        *shlex.split(sysconfig.get_config_var("CCSHARED") or "-fPIC"),
        "-O2",
        "-I",
        sysconfig.get_paths()["include"],
        str(source),
    ]
    # Written beside the target, then renamed: a process importing the
    # package meanwhile never sees half a library.
    handle, partial = tempfile.mkstemp(suffix=suffix, dir=target.parent)
    os.close(handle)
    try:
        result = subprocess.run(
            [*command, "-o", partial], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            print(
                "loopwarden: the C extension did not compile; pure-Python install\n"
                + result.stderr,
                file=sys.stderr,
            )
            return None
        # mkstemp made it readable by its owner only; a library is for everyone.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(partial, 0o755 & ~umask)
        os.replace(partial, target)
    except OSError as exc:  # no compiler at all
        print(f"loopwarden: no C compiler ({exc}); pure-Python install", file=sys.stderr)
        return None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target


class SpeedupsBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compiles the extension before a wheel (or an editable install) is built."""

    PLUGIN_NAME = "loopwarden-speedups"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Compile; a wheel with the library gets a platform tag."""
        if os.environ.get("LOOPWARDEN_PURE_PYTHON", "") not in ("", "0"):
            return
        built = compile_speedups(Path(self.root))
        if built is not None and version != "editable":
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
            build_data["force_include"][str(built)] = f"loopwarden/{built.name}"
