"""Wraps: patches that are not rules.

A :class:`Wrap` replaces a callable with one that runs code *around* it and
reports nothing itself. The Qt integration uses wraps to mark the entry points
through which Qt runs event handlers synchronously on the GUI thread
(``QTest.mouseClick``, ``QAbstractButton.click``, ``SignalInstance.emit``...),
see :mod:`loopwarden.qt.dispatch`.

The registry installs wraps together with the rules and *before* them, and
removes them after them: a rule patched on the same attribute
(``QTest.qWait`` is both) then sits on top of the wrap and both come off
exactly.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["Wrap"]

#: ``around(name, original) -> replacement`` builds the replacement function.
Around = Callable[[str, Callable[..., Any]], Callable[..., Any]]


@dataclasses.dataclass(frozen=True)
class Wrap:
    """Run ``around`` code around one callable while the patches are installed.

    Attributes:
        target: ``"module:attribute.path"`` of what to wrap, like
            :attr:`loopwarden.rules.Rule.target`. The module is never imported
            for the wrap: it is wrapped once the application imported it.
        around: ``around(name, original)`` returns the replacement; ``name``
            is the target without its module (``"QTest.mouseClick"``). The
            registry may reuse a replacement it built for an earlier
            installation, so ``around`` must not do per-installation work.
        on_install: Called at the start of every installation of the patches
            (from scratch or replayed), before anything is written: for state
            that must not outlive the time the patches were out.
    """

    target: str
    around: Around
    on_install: Callable[[], object] | None = None

    import_module = False  # the registry resolves wraps like rules

    def __post_init__(self) -> None:
        if ":" not in self.target:
            raise ValueError(f"wrap target {self.target!r} must look like 'module:attribute'")

    @property
    def module_name(self) -> str:
        """The module part of :attr:`target`."""
        return sys.intern(self.target.partition(":")[0])  # as Rule.module_name

    @property
    def attribute_path(self) -> tuple[str, ...]:
        """The attribute path part of :attr:`target`, split on dots."""
        # Interned, as Rule.attribute_path (why: there).
        return tuple(sys.intern(part) for part in self.target.partition(":")[2].split("."))

    @property
    def name(self) -> str:
        """The target without its module, e.g. ``"QTest.mouseClick"``."""
        return self.target.partition(":")[2]
