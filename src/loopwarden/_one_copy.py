"""One copy of loopwarden per process, whatever the host does to ``sys.modules``.

Some hosts take modules out of ``sys.modules`` and leave them alive: pytester
restores a snapshot of ``sys.modules`` after every test that uses it, so when
an inner ``--block-detect`` session is the first to load loopwarden's core,
the core is dropped from ``sys.modules`` afterwards while the ``loopwarden``
package keeps the old submodules as attributes. A later import then loads a
second copy, and the two halves split: ``from loopwarden import engine``
finds the old engine on the package, ``import loopwarden.engine`` loads a new
one with its own, empty list of active wardens, and every patched call
reports to nobody.

The finder below sits first on ``sys.meta_path`` from the moment the package
is imported. Asked for ``loopwarden.<name>`` while its parent package still
holds that very module as an attribute, it puts the existing module back
instead of loading it again. Any other name costs one ``str.startswith``.
"""

from __future__ import annotations

import sys
from types import ModuleType

TYPE_CHECKING = False  # see loopwarden/__init__.py: typing costs an app shipping us off
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec

__all__ = ["install"]

_PREFIX = "loopwarden."


class _Reinstate:
    """Loader that "loads" a module by returning the one that already exists."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self.spec = module.__spec__

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        return self.module

    def exec_module(self, module: ModuleType) -> None:
        # The import system set our spec on the module; give it back its own
        # (importlib.resources and reload() read the loader from it).
        module.__spec__ = self.spec


class KeepLoadedModules:
    """``sys.meta_path`` finder that reinstates loopwarden modules dropped from ``sys.modules``."""

    @staticmethod
    def find_spec(
        fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if not fullname.startswith(_PREFIX):
            return None
        parent_name, _, child = fullname.rpartition(".")
        parent = sys.modules.get(parent_name)
        if parent is None:
            return None
        # vars(), not getattr(): the package's PEP 562 __getattr__ would import.
        module = vars(parent).get(child)
        if not isinstance(module, ModuleType) or module.__name__ != fullname:
            return None
        if module.__spec__ is None:
            return None
        from importlib.machinery import ModuleSpec

        original = module.__spec__
        # A duck-typed loader: subclassing importlib.abc.Loader would import
        # importlib.abc with `import loopwarden`, for a path taken almost never.
        spec = ModuleSpec(
            fullname,
            _Reinstate(module),  # type: ignore[arg-type]
            origin=original.origin,
            is_package=original.submodule_search_locations is not None,
        )
        spec.submodule_search_locations = original.submodule_search_locations
        spec.has_location = original.has_location
        return spec


_finder = KeepLoadedModules()


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (idempotent: once per process)."""
    if not any(isinstance(f, KeepLoadedModules) for f in sys.meta_path):
        sys.meta_path.insert(0, _finder)
