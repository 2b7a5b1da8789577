"""Notice PySide6 modules imported while detection is active.

A warden activated before the application imports PySide6 (``LOOPWARDEN=warn``
at start-up, ``python -m loopwarden run app.py``) must still patch Qt's
blocking APIs and guard the GUI thread. Rather than checking ``sys.modules``
on every patched call, a finder on ``sys.meta_path`` waits for the import of
a PySide6 module and runs a callback right after the module has executed.
Imports are rare, so the finder costs nothing measurable; it is installed
only while a warden is active.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType

__all__ = ["PostImportHook"]

logger = logging.getLogger("loopwarden")


class _CallbackLoader(importlib.abc.Loader):
    """Delegates to the real loader, then runs the callback."""

    def __init__(self, loader: importlib.abc.Loader, callback: Callable[[str], None]) -> None:
        self._loader = loader
        self._callback = callback

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        try:
            self._callback(module.__name__)
        except Exception:
            logger.exception("loopwarden: could not react to the import of %s", module.__name__)


class PostImportHook(importlib.abc.MetaPathFinder):
    """Calls ``callback(name)`` after a module whose name starts with ``prefix`` is imported."""

    def __init__(self, prefix: str, callback: Callable[[str], None]) -> None:
        self.prefix = prefix
        self.callback = callback
        self._resolving = threading.local()

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        """Find the spec with the other finders and wrap its loader."""
        if not fullname.startswith(self.prefix) or getattr(self._resolving, "on", False):
            return None
        self._resolving.on = True  # the lookup below runs the meta path again
        try:
            spec = importlib.util.find_spec(fullname)
        except (ImportError, ValueError):
            return None
        finally:
            self._resolving.on = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        spec.loader = _CallbackLoader(spec.loader, self.callback)
        return spec

    def install(self) -> None:
        """Put the hook first on ``sys.meta_path`` (idempotent)."""
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def uninstall(self) -> None:
        """Take the hook off ``sys.meta_path`` (idempotent)."""
        if self in sys.meta_path:
            sys.meta_path.remove(self)
