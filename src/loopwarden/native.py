"""The optional C extension :mod:`loopwarden._speedups`, loaded once.

It is built at install time where a C compiler is found (``scripts/hatch_build.py``)
and holds C versions of the hottest paths: the lock rules' wrapper
(:mod:`loopwarden.lock_wrapper`) and the registry's replay loops
(:mod:`loopwarden.registry`). Every caller keeps a pure-Python path, used when
:data:`speedups` is None: no compiler at install, ``LOOPWARDEN_PURE_PYTHON=1``,
free-threaded CPython (the C code relies on the GIL), or a library left behind by
an older install (another :data:`ABI`).
"""

from __future__ import annotations

import os
import sysconfig
from types import ModuleType

__all__ = ["ABI", "load", "speedups"]

#: The ``ABI`` of the C extension this package was written for (``_speedups.c``).
ABI = 8


def load() -> ModuleType | None:
    """The C extension if it is to be used here, else None."""
    # config.ENV_PURE_PYTHON (config is not imported here: this module loads early).
    if os.environ.get("LOOPWARDEN_PURE_PYTHON", "") not in ("", "0"):
        return None
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return None  # free-threaded CPython: the C code relies on the GIL
    try:
        from loopwarden import _speedups
    except ImportError:  # not built here (no compiler at install time): pure Python
        return None
    if getattr(_speedups, "ABI", None) != ABI:
        return None  # left behind by an older install: not called with the wrong arguments
    return _speedups


#: The C extension, or None: pure Python.
speedups: ModuleType | None = load()
