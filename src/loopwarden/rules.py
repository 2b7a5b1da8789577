"""The rule format: one :class:`Rule` per blocking primitive.

Rules are plain data. Each family module listed in
:data:`loopwarden.families.FAMILY_MODULES` (the blocking detector's under
:mod:`loopwarden.blocking`) holds a table of them; the registry turns the
table into patches.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

from loopwarden.findings import FAMILIES, Family

__all__ = ["NOT_BLOCKED", "Rule"]


class _NotBlocked:
    """Sentinel returned by a rule's ``attempt`` when the call would block."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_BLOCKED"


#: Returned by :attr:`Rule.attempt` when the non-blocking attempt failed.
NOT_BLOCKED: Any = _NotBlocked()

BlocksWhen = Callable[..., bool]
Diagnose = Callable[..., dict[str, Any]]
Attempt = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]
#: ``(rule, original) -> replacement``: builds a rule's own wrapper.
Wrap = Callable[["Rule", Callable[..., Any]], Callable[..., Any]]


@dataclasses.dataclass(frozen=True)
class Rule:
    """How to detect one blocking primitive.

    Attributes:
        target: ``"module:attribute.path"`` of what to patch, e.g.
            ``"time:sleep"`` or ``"io:BufferedReader.read"``.
        family: The family findings of this rule belong to.
        suggestion: The non-blocking alternative, shown in every finding.
        blocks_when: Optional predicate called with the primitive's own
            arguments (``self`` first for methods); a finding is made only
            when it returns true. ``None`` means the call always blocks.
        condition: Human-readable "when it is a finding", for the rules reference.
        attempt: Optional non-blocking attempt ``(original, args, kwargs)``:
            its result is returned as the call's result unless it is
            :data:`NOT_BLOCKED`, in which case the call is a finding and the
            original runs. Used for locks ("only when contended").
        precheck: Optional fast verdict ``(original, args, kwargs)`` tried
            first on a guarded thread, before the warden, allowance and
            finding machinery (which it must not need): it returns the call's
            result when the call certainly does not block (an uncontended
            lock taken with a non-blocking acquire, ``Queue.get(block=False)``
            run as is), or :data:`NOT_BLOCKED` to take the full path. It must
            be exactly equivalent to the call whenever it returns a result,
            and must not raise errors of its own.
        name: Display name; defaults to the target with ``:`` replaced by ``.``.
        check_nested: Keep checking calls made *inside* this primitive. Off by
            default, so ``subprocess.run`` is reported once, not again for the
            ``os.read`` it makes; on for nested event loops.
        iterates: The primitive returns an iterator whose iteration does the
            blocking work (``os.walk``); nested calls made while iterating are
            not reported again.
        import_module: Import the target's module at activation if it is not
            imported yet. Off for third-party modules (PySide6): they are
            patched only when the application already uses them.
        allowed_in: ``"module:qualname"`` of functions (or a bare ``"module"``
            for all of its functions) that excuse this primitive when they stand
            between the call and the nearest frame outside the standard library,
            or are that frame (``threading`` starting a thread waits briefly on
            an event; QtAsyncio joins its own shutdown thread).
        diagnose: Optional function called with the primitive's own arguments
            when a finding is made; the facts it returns go to
            :attr:`Finding.details`. A ``"suggestion"`` key replaces the rule's
            suggestion for that one finding (a ``Future.result()`` that can
            only deadlock, for instance).
        wrap: Optional ``(rule, original) -> replacement`` that builds the
            patch itself instead of the engine's blocking-call wrapper. Used
            by detectors with another question than "would it block here?"
            (thread affinity, :mod:`loopwarden.affinity`); the registry still
            installs, aliases and restores it.
        undo: For primitives that take something (lock acquisition): called
            with the primitive's first argument to give it back when an
            exception from a signal handler (Ctrl-C) arrives after the
            original succeeded but before its result reached the caller.
            Without it, a patched ``with lock:`` on the main thread could be
            left holding the lock, which an unpatched one never is.
        skip_when: Optional cheap predicate, called with the primitive's own
            arguments by the wrapper itself on a thread where a loop runs,
            before any other check: true means the call is certainly not a
            finding and the original runs at once. For calls the loop itself
            makes on every turn (its own selector's ``select``); it must be
            fast, and an error in it counts as false.
    """

    target: str
    family: Family
    suggestion: str
    blocks_when: BlocksWhen | None = None
    condition: str = "always"
    attempt: Attempt | None = None
    precheck: Attempt | None = None
    name: str = ""
    check_nested: bool = False
    iterates: bool = False
    import_module: bool = True
    allowed_in: frozenset[str] = frozenset()
    diagnose: Diagnose | None = None
    wrap: Wrap | None = None
    undo: Callable[[Any], object] | None = None
    skip_when: BlocksWhen | None = None

    def __post_init__(self) -> None:
        if ":" not in self.target:
            raise ValueError(
                f"rule target {self.target!r} must look like 'module:attribute', "
                "e.g. 'time:sleep' or 'io:BufferedReader.read'"
            )
        if self.family not in FAMILIES:
            raise ValueError(
                f"unknown family {self.family!r}; valid families: {', '.join(FAMILIES)}"
            )
        object.__setattr__(self, "allowed_in", frozenset(self.allowed_in))
        if not self.name:
            object.__setattr__(self, "name", self.target.replace(":", "."))

    @property
    def module_name(self) -> str:
        """The module part of :attr:`target`."""
        # Interned, as the attribute names below: the key sys.modules is searched with.
        return sys.intern(self.target.partition(":")[0])

    @property
    def attribute_path(self) -> tuple[str, ...]:
        """The attribute path part of :attr:`target`, split on dots."""
        # Interned: these names are what each install and uninstall writes with
        # setattr, and setattr interns a name that is not (a lookup in the big
        # table of interned strings, ~1/5 of a guard() cycle with PySide6).
        # Interned names also match class-dict keys by identity, without memcmp.
        return tuple(sys.intern(part) for part in self.target.partition(":")[2].split("."))
