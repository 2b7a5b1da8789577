"""The patch registry: which rules exist, and installing them as patches.

Installing is all-or-nothing: if any patch fails, the ones already applied
are reverted before the error propagates. Uninstalling restores every
original exactly (the very same objects), including module-level aliases
such as ``from time import sleep`` taken before activation.

Both survive an exception from a signal handler (Ctrl-C) at any point: every
patch is recorded in ``_patches`` before it is written, records are dropped
only after their revert, and reverting is idempotent, so an interrupted
install rolls back completely and an interrupted uninstall can simply be run
again (see :mod:`loopwarden.uninterruptible`).
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import importlib
import logging
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

from loopwarden.engine import make_wrapper
from loopwarden.native import speedups
from loopwarden.patching import (
    _MISSING,
    Patch,
    apply_patch,
    builtin_type_dict,
    revert_patch,
    type_modified,
    write_type_dict,
)
from loopwarden.rules import Rule
from loopwarden.type_versions import can_modify_builtin_types, class_attribute, is_builtin_type
from loopwarden.uninterruptible import OwnLock
from loopwarden.wraps import Wrap

__all__ = ["Registry", "registry"]

_OWN_PACKAGES = ("loopwarden", "pytest_loopwarden")

logger = logging.getLogger("loopwarden")
# Class targets already warned about (refresh() retries unresolved rules often).
_class_targets_warned: set[str] = set()


class PatchError(RuntimeError):
    """A rule could not be installed; nothing stays patched."""


def _default_rules() -> list[Rule]:
    from loopwarden.families import default_rules

    return list(default_rules())


def _default_wraps() -> list[Wrap]:
    from loopwarden.families import default_wraps

    return list(default_wraps())


class Registry:
    """Holds the rules and installs them as patches, process-wide."""

    def __init__(
        self,
        rule_source: Callable[[], list[Rule]] = _default_rules,
        wrap_source: Callable[[], list[Wrap]] = _default_wraps,
    ) -> None:
        self._rule_source = rule_source
        self._wrap_source = wrap_source
        self._wrap_patches: dict[str, Patch] = {}  # wrap target -> its patch
        self._extra_rules: list[Rule] = []
        self._patches: list[Patch] = []
        self._patched_rules: dict[str, list[Patch]] = {}  # rule target -> its patches
        self._wrapped: dict[int, Any] = {}  # id(original) -> wrapper, for aliases
        # Shiboken class -> {name: rule} served by its patched __getattribute__.
        self._instance_rules: dict[type, dict[str, Rule]] = {}
        self._lock = OwnLock()
        # originals -> id(module) -> (module, namespace size, alias names); see _alias_names.
        self._alias_index: dict[
            frozenset[int], dict[int, tuple[types.ModuleType, int, tuple[str, ...]]]
        ] = {}
        # Rules left unpatched by the last install or refresh (their module was
        # not imported yet); None when unknown. refresh() runs at every warden
        # activation, so it retries only these instead of filtering every rule.
        self._unresolved: list[Rule] | None = None
        # _modules_key() when _unresolved was computed.
        self._modules_seen: tuple[int, str | None] = (-1, None)
        # Whether this install may rewrite built-in types; asked once per
        # install or refresh, because asking spends a type version tag.
        self._builtin_verdict: bool | None = None
        # Whether a built-in type was left unpatched for that reason since the
        # patches went in (the plan must not be replayed once that changes).
        self._builtin_skipped = False
        # What the last uninstall took off, to put back as it was (see _replay).
        self._plan: _Plan | None = None
        # True while _patches is what a finished install/replay/refresh left:
        # an interrupted one (Ctrl-C) or an uninstall under way leaves only part
        # of the patches, which must never be recorded as a plan.
        self._complete = False
        # Built-in types written by a replay or a fast uninstall whose caches are
        # not flushed yet (one PyType_Modified per type, not per attribute). Added
        # before the write and dropped after the flush, so a Ctrl-C in between
        # leaves them here for the next install or uninstall to flush.
        self._stale_types: set[type] = set()
        # True while the four tables above are the plan's own (a replay shares
        # them instead of copying ~600 entries); see _own_tables.
        self._tables_shared = False

    def _own_tables(self) -> None:
        """Copy the tables a replay shares with its plan, before they are changed."""
        if self._tables_shared:
            # Interrupted half way, the flag is still set and the next call copies
            # again: copying a copy is harmless.
            self._patched_rules = {target: list(p) for target, p in self._patched_rules.items()}
            self._wrap_patches = dict(self._wrap_patches)
            self._wrapped = dict(self._wrapped)
            self._instance_rules = dict(self._instance_rules)
            self._tables_shared = False

    # -- rules -----------------------------------------------------------

    def rules(self) -> list[Rule]:
        """Every rule: the built-in tables, then the ones added at run time."""
        return self._rule_source() + list(self._extra_rules)

    def add_rule(self, rule: Rule) -> None:
        """Add a rule; if patches are installed, patch it right away."""
        with self._lock:
            self._extra_rules.append(rule)
            self._unresolved = None
            if self.installed:
                self._install_rules([rule])

    def remove_rule(self, rule: Rule) -> None:
        """Remove a rule added with :meth:`add_rule` and revert its patches."""
        with self._lock:
            if rule in self._extra_rules:
                self._extra_rules.remove(rule)
            self._unresolved = None
            self._own_tables()
            patches = self._patched_rules.get(rule.target, [])
            while patches:
                # Revert first, forget after: restartable if interrupted.
                patch = patches[-1]
                revert_patch(patch)
                self._wrapped.pop(id(patch.original), None)
                self._instance_rules.get(patch.owner, {}).pop(patch.name, None)
                if patch in self._patches:
                    self._patches.remove(patch)
                patches.pop()
            self._patched_rules.pop(rule.target, None)

    # -- installing --------------------------------------------------------

    @property
    def installed(self) -> bool:
        """True while the patches are in place."""
        return bool(self._patches)

    def patched_targets(self) -> list[str]:
        """Targets currently patched (for diagnostics and tests)."""
        return list(self._patched_rules)

    def install(self) -> None:
        """Patch every rule whose target exists. All-or-nothing."""
        with self._lock:
            if self._stale_types:
                self._flush_stale_types()  # left by an interrupted replay or uninstall
            if self._patches:  # installed: what refresh() does, its common case inline
                if self._unresolved is None or _modules_key() != self._modules_seen:
                    self.refresh()  # (the per-test switch of the plugin ends here)
                return
            self._builtin_verdict = None
            self._builtin_skipped = False
            rules = self.rules()
            wraps = self._wrap_source()
            for wrap in wraps:
                if wrap.on_install is not None:
                    try:
                        wrap.on_install()
                    except Exception:  # a broken hook must not stop the install (logged)
                        logger.exception("loopwarden: on_install of wrap %s failed", wrap.target)
            if self._replay(rules, wraps):
                return
            self._install_wraps()  # first: a rule on the same attribute goes on top
            try:
                self._install_rules(rules)
            except BaseException:
                self.uninstall()  # all-or-nothing: the wraps come off too
                raise
            self._unresolved = [r for r in rules if r.target not in self._patched_rules]
            self._modules_seen = _modules_key()
            self._complete = True

    def refresh(self) -> None:
        """Patch rules whose modules were imported since :meth:`install`."""
        with self._lock:
            if not self._patches:
                return
            if self._unresolved is not None and _modules_key() == self._modules_seen:
                return  # no module imported since: nothing new can resolve
            # Taken before installing (modules imported meanwhile get their own
            # refresh), stored after: an interrupted refresh must be retried.
            modules = _modules_key()
            self._complete = False
            self._builtin_verdict = None
            candidates = self.rules() if self._unresolved is None else self._unresolved
            pending = [r for r in candidates if r.target not in self._patched_rules]
            self._install_wraps()
            self._install_rules(pending)
            self._unresolved = [r for r in pending if r.target not in self._patched_rules]
            self._modules_seen = modules
            self._complete = True

    def uninstall(self) -> None:
        """Restore every original, in reverse order of patching."""
        with self._lock:
            self._flush_stale_types()  # left by an interrupted replay or uninstall
            plan = None  # the plan whose patches are exactly self._patches, if any
            complete = self._complete
            self._complete = False  # from here on the list is being taken apart
            if self._patches and complete and self._unresolved is not None:
                plan = self._plan
                if plan is None or not _same_objects(plan.patches, self._patches):
                    plan = self._plan = self._record_plan()  # else: the last replay, unchanged
            patches = self._patches
            if plan is not None and speedups is not None:
                # The loop of _unwrite_plan in C: one call, no bytecode between the writes.
                speedups.unwrite_patches(plan.native_steps, patches, self._stale_types, _MISSING)
            elif plan is not None:
                self._unwrite_plan(plan)
                self._flush_stale_types()
            while patches:
                revert_patch(patches[-1])  # then forget it: restartable
                patches.pop()
            # New tables, not cleared ones: a replay's are its plan's (_own_tables).
            self._patched_rules = {}
            self._wrap_patches = {}
            self._wrapped = {}
            self._unresolved = None
            self._instance_rules = {}
            self._tables_shared = False

    # -- replaying the last install -----------------------------------------
    #
    # A full install resolves some 300-650 targets, builds their replacements
    # and scans every module for aliases; guard() pays it on every enter. When
    # nothing that decides the outcome changed since the last uninstall (the
    # same rule and wrap objects, the same modules imported, every target still
    # holding the very value it held then), the outcome is the same list of
    # patches, so the patches are written again as they were, in order.

    def _record_plan(self) -> _Plan:
        return _Plan(
            rules=tuple(self.rules()),
            wraps=tuple(self._wrap_source()),
            # When the patches were last resolved, not now: a module imported
            # since (sqlite3 inside the guard) must make the next install resolve.
            modules=self._modules_seen,
            patches=tuple(self._patches),
            patched_rules={target: list(p) for target, p in self._patched_rules.items()},
            wrap_patches=dict(self._wrap_patches),
            wrapped=dict(self._wrapped),
            # The tables themselves: the __getattribute__ hooks hold them.
            instance_rules=dict(self._instance_rules),
            unresolved=list(self._unresolved or ()),
            lookups=self._lookups(),
            builtin=any(p.builtin_type for p in self._patches),
            builtin_skipped=self._builtin_skipped,
        )

    def _flush_stale_types(self) -> None:
        stale = self._stale_types
        for owner in list(stale):
            type_modified(owner)
            stale.discard(owner)  # after: an interrupted flush is redone, never skipped

    def _lookups(self) -> tuple[tuple[Any, str, Any], ...]:
        """How each patched target was found: (parent or None, name, what it gave).

        The module from ``sys.modules`` (parent None), then each attribute on the
        way to the patched one (``socket.socket`` for ``socket:socket.connect``):
        a class rebound since (a test replacing ``socket.socket``) must make the
        next install resolve again, although the old class still holds its values.
        """
        seen: set[tuple[int, str]] = set()
        lookups: list[tuple[Any, str, Any]] = []
        targets: list[Rule | Wrap] = [*self.rules(), *self._wrap_source()]
        for target in targets:
            if target.target not in self._patched_rules and target.target not in self._wrap_patches:
                continue
            module = sys.modules.get(target.module_name)
            steps: list[tuple[Any, str, Any]] = [(None, target.module_name, module)]
            owner: Any = module
            for part in target.attribute_path[:-1]:
                child = getattr(owner, part, None)
                steps.append((owner, part, child))
                owner = child
            for parent, name, value in steps:
                key = (id(parent), name)
                if key not in seen:
                    seen.add(key)
                    lookups.append((parent, name, value))
        return tuple(lookups)

    def _replay(self, rules: list[Rule], wraps: list[Wrap]) -> bool:
        """Write the patches of the last uninstall again, if they are still the answer.

        Returns:
            False (nothing written) when anything that decides the install
            changed; the caller then installs from scratch.
        """
        plan = self._plan
        if plan is None or not plan.still_valid(rules, wraps):
            return False
        # The verdict on built-in types (CPython 3.12's tag pool) must be the
        # one the plan was made with: a full install decides otherwise.
        if (plan.builtin or plan.builtin_skipped) and self._may_patch(
            _thread_lock_type()
        ) == plan.builtin_skipped:
            return False
        try:
            if speedups is not None:
                # The loop of _write_plan in C: one call, no bytecode between the writes.
                speedups.write_patches(
                    plan.native_steps, plan.patches, self._patches, self._stale_types, _MISSING
                )
            else:
                self._write_plan(plan)
            self._flush_stale_types()
        except BaseException:
            self.uninstall()
            raise
        # The plan's tables themselves, copied only before a change (_own_tables).
        self._tables_shared = True
        self._patched_rules = plan.patched_rules
        self._wrap_patches = plan.wrap_patches
        self._wrapped = plan.wrapped
        self._instance_rules = plan.instance_rules
        self._unresolved = list(plan.unresolved)
        self._modules_seen = plan.modules
        self._complete = True
        return True

    def _unwrite_plan(self, plan: _Plan) -> None:
        # The plan's patches (just compared with self._patches, or just recorded
        # from it): revert_patch inlined, over namespaces looked up once.
        patches = self._patches
        steps = plan.steps
        stale = self._stale_types
        while patches:
            namespace, owner, name, original, replacement, builtin = steps[len(patches) - 1]
            if _live_namespace(namespace, owner).get(name, _MISSING) is replacement:
                if builtin:
                    stale.add(owner)  # before the write: see _stale_types
                    write_type_dict(owner, name, original)
                elif original is _MISSING:
                    delattr(owner, name)
                else:
                    setattr(owner, name, original)
            patches.pop()  # after the revert: restartable

    def _write_plan(self, plan: _Plan) -> None:
        journal = self._patches
        append = journal.append
        stale = self._stale_types
        for patch, (_, owner, name, _, replacement, builtin) in zip(
            plan.patches, plan.steps, strict=True
        ):
            # Journaled before written, as apply_patch does: an interrupt
            # anywhere leaves a record for every write that may have happened.
            append(patch)
            if builtin:
                stale.add(owner)  # before the write: see _stale_types
                write_type_dict(owner, name, replacement)
            else:
                setattr(owner, name, replacement)

    def _install_wraps(self) -> None:
        """Apply the wraps whose targets exist and are not wrapped yet."""
        self._own_tables()
        # Journaled like _install_rules: recorded before written, so an
        # interruption anywhere rolls back every write.
        mark = len(self._patches)
        applied: list[Patch] = []
        try:
            for wrap in self._wrap_source():
                if wrap.target in self._wrap_patches:
                    continue
                resolved = _resolve(wrap)
                if resolved is None:
                    continue
                owner, name = resolved
                if isinstance(owner, type):
                    if not self._may_patch(owner):
                        continue
                    raw = owner.__dict__.get(name)
                    current = class_attribute(owner, name)
                else:
                    # A module attribute (sys.excepthook): no aliases to follow.
                    raw = current = getattr(owner, name)
                if getattr(current, "__loopwarden_rule__", None) is not None:
                    continue  # a rule got there first: wrapping it would not come off exactly
                if isinstance(owner, type):
                    replacement = _method_replacement(owner, name, raw, current, _wrap_maker(wrap))
                else:
                    replacement = _wrap_maker(wrap)(current)
                patch = apply_patch(owner, name, replacement, self._patches)
                applied.append(patch)
                self._wrap_patches[wrap.target] = patch
        except BaseException as exc:
            while len(self._patches) > mark:
                revert_patch(self._patches[-1])
                self._patches.pop()
            for key in [k for k, v in self._wrap_patches.items() if v in applied]:
                del self._wrap_patches[key]
            if isinstance(exc, Exception):
                raise PatchError(f"loopwarden could not install its patches: {exc}") from exc
            raise

    def _install_rules(self, rules: list[Rule]) -> None:
        # Every patch goes into self._patches before it is written (the
        # journal): whatever interrupts this, everything after `mark` is
        # exactly what may have been written, and is reverted.
        self._own_tables()
        mark = len(self._patches)
        new_wrappers: dict[int, tuple[Any, Any, Rule]] = {}
        new_instance_rules: list[tuple[type, str]] = []
        try:
            for rule in rules:
                resolved = _resolve(rule)
                if resolved is None:
                    continue
                owner, name = resolved
                if not self._may_patch(owner):
                    continue  # left unresolved: refresh() asks again, cheaply
                raw = owner.__dict__.get(name) if isinstance(owner, type) else None
                patch = self._patch_one(rule, owner, name, new_wrappers)
                if patch is not None:
                    self._patched_rules.setdefault(rule.target, []).append(patch)
                    if isinstance(raw, staticmethod) and _is_shiboken_type(owner):
                        new_instance_rules.append((owner, name))
                        self._hook_instance_access(rule, owner, name)
            self._patch_aliases(new_wrappers)
        except BaseException as exc:
            while len(self._patches) > mark:
                revert_patch(self._patches[-1])
                self._patches.pop()
            for owner, name in new_instance_rules:
                self._instance_rules.get(owner, {}).pop(name, None)
            for rule in rules:
                self._patched_rules.pop(rule.target, None)
            for key in new_wrappers:
                self._wrapped.pop(key, None)
            if isinstance(exc, Exception):
                raise PatchError(f"loopwarden could not install its patches: {exc}") from exc
            raise

    def _patch_one(
        self, rule: Rule, owner: Any, name: str, new_wrappers: dict[int, tuple[Any, Any, Rule]]
    ) -> Patch | None:
        raw = owner.__dict__.get(name) if isinstance(owner, type) else None
        current = _attribute(owner, name)
        existing = getattr(current, "__loopwarden_rule__", None)
        if existing is not None and (existing is rule or raw is None):
            # Already ours: an alias of a rule patched earlier, or an inherited
            # attribute patched on the base class.
            return None
        # Another rule on this very class attribute (a thread-affinity check and
        # a blocking-call check on QPixmap.load): the later one wraps the earlier,
        # and both come off in reverse order.
        if isinstance(owner, type):
            replacement = _method_replacement(
                owner, name, raw, current, lambda original: _wrap(rule, original)
            )
        else:
            if id(current) in self._wrapped:
                replacement = self._wrapped[id(current)]
            else:
                replacement = _function_replacement(rule, current)
                self._wrapped[id(current)] = replacement
                new_wrappers[id(current)] = (current, replacement, rule)
        return apply_patch(owner, name, replacement, self._patches)

    def _may_patch(self, owner: Any) -> bool:
        """False for a built-in type once CPython 3.12's type version tags run low.

        See :mod:`loopwarden.type_versions`: past that point one more rewrite
        of a built-in type could crash the interpreter, so the rules on its
        methods stay off, and the rest of loopwarden keeps working.
        """
        if not is_builtin_type(owner):
            return True
        if self._builtin_verdict is None:
            self._builtin_verdict = can_modify_builtin_types()
            if not self._builtin_verdict:
                _warn_pool_spent()
        if not self._builtin_verdict:
            self._builtin_skipped = True
        return self._builtin_verdict

    def _hook_instance_access(self, rule: Rule, owner: type, name: str) -> Patch | None:
        """Also catch ``obj.name(...)`` for a Shiboken name with static and instance overloads.

        For such names (``QFile.copy``, ``QMenu.exec``) Shiboken's own
        ``tp_getattro`` binds instance access straight from its C method
        table, past the patched class attribute. We wrap the class's
        ``__getattribute__`` once; it wraps only the names in its table. The
        rule's ``blocks_when`` sees the instance first for an instance call,
        ``(obj, *args)``, and only the arguments for a static call, so a
        predicate tells the two forms apart by its first argument's type.
        Reverting the patch puts the C slot back exactly.
        """
        table = self._instance_rules.get(owner)
        if table is not None:
            table[name] = rule
            return None
        own = owner.__dict__.get("__getattribute__")
        if not isinstance(own, types.WrapperDescriptorType):
            return None  # instance access goes through the class attribute already
        table = self._instance_rules[owner] = {name: rule}
        return apply_patch(owner, "__getattribute__", _instance_hook(own, table), self._patches)

    def _patch_aliases(self, new_wrappers: dict[int, tuple[Any, Any, Rule]]) -> list[Patch]:
        """Replace module-level aliases (``from time import sleep``) too."""
        if not new_wrappers:
            return []
        patches: list[Patch] = []
        for module_name, module in list(sys.modules.items()):
            if not isinstance(module, types.ModuleType) or module_name.startswith(_OWN_PACKAGES):
                continue
            try:
                namespace = vars(module)
            except TypeError:
                continue
            for attr in self._alias_names(module, namespace, new_wrappers):
                value = namespace.get(attr)
                entry = new_wrappers.get(id(value))
                if entry is not None and entry[0] is value:
                    patch = apply_patch(module, attr, entry[1], self._patches)
                    patches.append(patch)
                    self._patched_rules.setdefault(entry[2].target, []).append(patch)
        return patches

    def _alias_names(
        self,
        module: types.ModuleType,
        namespace: dict[str, Any],
        new_wrappers: dict[int, tuple[Any, Any, Rule]],
    ) -> tuple[str, ...]:
        """Names in ``namespace`` bound to an original, cached per module.

        Scanning every module's namespace is most of the cost of activation
        (PySide6 modules hold thousands of names), so the result is kept and
        reused while the module's namespace keeps its size and the set of
        originals is the same. A module that binds a new name is scanned again;
        rebinding an existing name to a blocking function is not noticed.
        """
        originals = frozenset(new_wrappers)
        index = self._alias_index.get(originals)
        if index is None:
            index = self._alias_index[originals] = {}
        cached = index.get(id(module))
        if cached is not None and cached[0] is module and cached[1] == len(namespace):
            return cached[2]
        names = tuple(
            attr
            for attr, value in list(namespace.items())
            if id(value) in new_wrappers and new_wrappers[id(value)][0] is value
        )
        index[id(module)] = (module, len(namespace), names)
        return names


def _resolve(rule: Rule | Wrap) -> tuple[Any, str] | None:
    """Find ``(owner, attribute name)`` for a rule, or None if it does not apply here."""
    module_name = rule.module_name
    module = sys.modules.get(module_name)
    if module is None:
        if not rule.import_module:
            return None
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return None  # e.g. a platform without this module
    owner: Any = module
    *path, name = rule.attribute_path
    for part in path:
        owner = getattr(owner, part, None)
        if owner is None:
            return None
    try:
        value = _attribute(owner, name)
    except AttributeError:
        return None  # not on this Python version or platform
    if isinstance(value, type):
        # A class replaced by a function breaks subclassing and isinstance() in the
        # host; the config reader and mark_blocking() refuse these with an error.
        if rule.target not in _class_targets_warned:
            _class_targets_warned.add(rule.target)
            logger.warning(
                "loopwarden: rule target %r is a class, not a function or method; "
                "it is not patched",
                rule.target,
            )
        return None
    return owner, name


def _attribute(owner: Any, name: str) -> Any:
    """``getattr(owner, name)``, without spending a type version tag on a built-in class.

    Every write into a built-in type invalidates its tag, and a plain
    ``getattr`` after it takes a new one from a pool that CPython 3.12 never
    refills (see :mod:`loopwarden.type_versions`); installing a dozen rules on
    ``_io.BufferedRandom`` one after another would spend a dozen.
    """
    if isinstance(owner, type):
        return class_attribute(owner, name)
    return getattr(owner, name)


_pool_warned = False


def _warn_pool_spent() -> None:
    global _pool_warned
    if _pool_warned:
        return
    _pool_warned = True
    # The page docs/troubleshooting.md has this message as a heading.
    logger.warning(
        "loopwarden: CPython 3.12 is almost out of type version tags (python/cpython#89811); "
        "rules on methods of built-in types (locks, files, sqlite3, asyncio futures) are off "
        "for the rest of this process so that it cannot crash"
    )


def _wrap_maker(wrap: Wrap) -> Callable[[Any], Any]:
    def make(original: Any) -> Any:
        return wrap.around(wrap.name, original)

    return make


def _is_shiboken_type(owner: Any) -> bool:
    return isinstance(owner, type) and type(owner).__module__ == "Shiboken"


def _instance_method(rule: Rule, value: Any, obj: Any) -> Any:
    # The predicate sees the instance first, as for any other method.
    return functools.partial(_wrap(rule, _drop_first(value)), obj)


#: ``original(obj, attr)``, evaluated with the caller's globals (see _instance_hook).
_CALLER_LOOKUP = compile("original(obj, attr)", "<loopwarden attribute hook>", "eval")


def _instance_hook(original: Any, table: dict[str, Rule]) -> Callable[[Any, str], Any]:
    # PySide6's feature selection (`from __feature__ import snake_case`) picks
    # the namespace a class shows by the module of the running Python frame:
    # the original lookup must not run as if loopwarden had asked, or a
    # snake_case module's `f.read_all()` raises AttributeError. The C hook runs
    # it under the caller's frame; in pure Python a name not found is looked
    # up again in a frame with the caller's globals.
    def __getattribute__(obj: Any, attr: str) -> Any:  # noqa: N807 - replaces the slot
        __tracebackhide__ = True  # pytest: the caller's line, also for the original's own errors
        try:
            value = original(obj, attr)
        except AttributeError:
            names = {"original": original, "obj": obj, "attr": attr}
            value = eval(_CALLER_LOOKUP, sys._getframe(1).f_globals, names)
        rule = table.get(attr)
        if rule is None or not callable(value):
            return value
        return _instance_method(rule, value, obj)

    if speedups is None:
        return __getattribute__
    hook: Callable[[Any, str], Any] = speedups.InstanceHook(
        original, table, _instance_method, __getattribute__
    )
    return hook


#: (id(rule), id(original)) -> [rule, original, wrapper, staticmethod or None].
#: The next install of the same rule over the same original reuses its
#: wrapper: building some 240 closures was about a fifth of what a guard()
#: enter+exit cost. An entry keeps its rule and original alive, so their ids
#: cannot be reused while it exists; rules made afresh for each activation
#: would grow it, hence the bound.
_wrapper_cache: dict[tuple[int, int], list[Any]] = {}
_WRAPPER_CACHE_BOUND = 4096


def _cache_entry(rule: Rule, original: Any) -> list[Any]:
    key = (id(rule), id(original))
    entry = _wrapper_cache.get(key)
    if entry is not None and entry[0] is rule and entry[1] is original:
        return entry
    wrapper = rule.wrap(rule, original) if rule.wrap is not None else make_wrapper(rule, original)
    if len(_wrapper_cache) >= _WRAPPER_CACHE_BOUND:
        _wrapper_cache.clear()
    entry = _wrapper_cache[key] = [rule, original, wrapper, None]
    return entry


def _wrap(rule: Rule, original: Any) -> Any:
    """The replacement of ``original``: the rule's own wrapper, or the engine's."""
    return _cache_entry(rule, original)[2]


def _drop_first(bound: Any) -> Callable[..., Any]:
    def call(_obj: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # pytest: the caller's line, also for the original's own errors
        return bound(*args, **kwargs)

    call.__name__ = getattr(bound, "__name__", call.__name__)
    call.__qualname__ = getattr(bound, "__qualname__", call.__qualname__)
    return call


def _function_replacement(rule: Rule, original: Any) -> Any:
    """A module-level replacement that binds the way the original did.

    Builtin functions (``os.stat``, ``time.sleep``) do not bind when stored on
    a class, and classes rely on it: Python 3.10's pathlib has
    ``class _NormalAccessor: stat = os.stat``. A module imported while the
    patches are in takes our replacement into such a class body, so for a
    builtin the replacement is a (callable) staticmethod, which does not bind
    either. It costs ~30 ns per call more than a plain function, only for
    builtins.
    """
    entry = _cache_entry(rule, original)
    if hasattr(type(original), "__get__"):
        return entry[2]
    if entry[3] is None:
        replacement = staticmethod(entry[2])
        replacement.__loopwarden_rule__ = rule  # type: ignore[attr-defined]
        entry[3] = replacement
    return entry[3]


def _method_replacement(
    owner: type, name: str, raw: Any, current: Any, make: Callable[[Any], Any]
) -> Any:
    """A class attribute replacement that binds the way the original did.

    ``make(original)`` builds the replacement function (a rule's wrapper or a wrap's).
    """
    if isinstance(raw, staticmethod):
        return staticmethod(make(raw.__func__))
    if isinstance(raw, classmethod):
        return classmethod(make(raw.__func__))
    looked_up = raw if raw is not None else _inherited_raw(owner, name)
    if looked_up is not None and hasattr(type(looked_up), "__get__"):
        # Functions and method descriptors bind ``self``; so will our wrapper.
        return make(looked_up)
    # Builtins stored on a class (Shiboken static methods) do not bind.
    return staticmethod(make(current))


def _inherited_raw(owner: type, name: str) -> Any:
    for klass in owner.__mro__:
        if name in klass.__dict__:
            raw = klass.__dict__[name]
            if isinstance(raw, (staticmethod, classmethod)):
                return None
            return raw
    return None


def _modules_key() -> tuple[int, str | None]:
    """Changes whenever a module is imported (or one is dropped and another imported)."""
    modules = sys.modules
    return len(modules), next(reversed(modules), None)


def _thread_lock_type() -> type:
    import _thread

    return _thread.LockType


@dataclasses.dataclass
class _Plan:
    """What one install wrote, and what it depended on (see Registry._replay)."""

    rules: tuple[Rule, ...]
    wraps: tuple[Wrap, ...]
    modules: tuple[int, str | None]
    patches: tuple[Patch, ...]
    patched_rules: dict[str, list[Patch]]
    wrap_patches: dict[str, Patch]
    wrapped: dict[int, Any]
    instance_rules: dict[type, dict[str, Rule]]
    unresolved: list[Rule]
    lookups: tuple[tuple[Any, str, Any], ...]  # see Registry._lookups
    builtin: bool  # some patches are on built-in types
    builtin_skipped: bool  # some built-in types were left alone (CPython 3.12's tag pool)

    def still_valid(self, rules: list[Rule], wraps: list[Wrap]) -> bool:
        """Whether installing now would write exactly :attr:`patches`."""
        if self.modules != _modules_key():
            return False  # a new module: new targets and aliases may resolve
        if not _same_objects(self.rules, rules) or not _same_objects(self.wraps, wraps):
            return False
        modules = sys.modules
        if speedups is not None:
            if not speedups.lookups_hold(self.lookups, modules):
                return False  # as below
        else:
            for parent, name, value in self.lookups:
                found = modules.get(name) if parent is None else getattr(parent, name, None)
                if found is not value:
                    return False  # a module or class on the way to a target was replaced
        # Every target still holds what it held before we patched it: nobody
        # else patched it since, and no class was redefined.
        missing = _MISSING
        if speedups is not None:
            return bool(speedups.all_hold(self.checks, missing))
        return all(
            _live_namespace(namespace, owner).get(name, missing) is original
            for namespace, name, original, owner in self.checks
        )

    @functools.cached_property
    def steps(self) -> tuple[_Step, ...]:
        """Each patch as (namespace, owner, name, original, replacement, built-in type).

        The namespace is the module's dict or the class's ``__dict__`` proxy, a
        live view: looked up once here instead of on every read.
        """
        return tuple(
            (_namespace(p.owner), p.owner, p.name, p.original, p.replacement, p.builtin_type)
            for p in self.patches
        )

    @functools.cached_property
    def native_steps(self) -> tuple[tuple[Any, ...], ...]:
        """:attr:`steps` for the C loops: a built-in type's real ``__dict__`` last.

        (namespace, owner, name, original, replacement, real dict or None), see
        ``write_patches`` in ``_speedups.c``.
        """
        return tuple(
            (
                namespace,
                owner,
                name,
                original,
                replacement,
                builtin_type_dict(owner) if builtin else _direct_step(owner, name),
            )
            for namespace, owner, name, original, replacement, builtin in self.steps
        )

    @functools.cached_property
    def checks(self) -> tuple[tuple[Mapping[str, Any], str, Any, Any], ...]:
        """(namespace, name, value before, owner) of the first patch of each attribute.

        A later patch of the same attribute wraps the one before it, so only the
        first one's original is what the attribute holds while nothing is installed.
        """
        seen: set[tuple[int, str]] = set()
        checks: list[tuple[Mapping[str, Any], str, Any, Any]] = []
        for namespace, owner, name, original, _, _ in self.steps:
            key = (id(owner), name)
            if key not in seen:
                seen.add(key)
                checks.append((namespace, name, original, owner))
        return tuple(checks)


#: See _Plan.steps.
_Step = tuple["Mapping[str, Any]", Any, str, Any, Any, bool]


def _direct_step(owner: Any, name: str) -> tuple[dict[str, Any]] | None:
    """The dict the C replay may write ``name`` into directly, instead of ``setattr``.

    For a module (exactly ``types.ModuleType``), a class of metaclass ``type``
    and a Shiboken class, ``setattr`` of a name that is no special method
    writes the name into the namespace's dict, and a class then takes
    ``PyType_Modified``; the C loop does just that, with one ``PyType_Modified``
    per class and direction. Special methods (``__init__``,
    ``__getattribute__``) also update a class's C slots, and keep ``setattr``.

    PySide6's class ``__setattr__`` (its metatype's) first selects the namespace
    of the caller's feature set (``from __feature__ import snake_case``), which
    was about 1,100 of a write's 1,650 instructions, and half of a guard cycle
    with PySide6's widgets imported. The dict written is the plain namespace's:
    a plain dict while no module imported a feature, then PySide6's subclass
    (ChameleonDict) with feature set 0. A class property keeps ``setattr``
    (PySide6's hands it the value).

    Returns:
        ``(dict,)``, which the C loop writes only while it is still the owner's
        own dict (PySide6 replaces a class's dict, or rotates it for another
        feature set, once a module imports a feature); None: ``setattr``.
    """
    if name.startswith("__") and name.endswith("__"):
        return None
    if type(owner) is types.ModuleType:
        return (vars(owner),)
    if type(owner) is not type and not _is_shiboken_type(owner):
        return None
    real = _class_dict(owner)
    if real is None:
        return None
    if type(real) is not dict and getattr(real, "select_id", None) != 0:
        return None
    if type(real.get(name)).__name__ == "PyClassProperty":
        return None
    return (real,)


def _class_dict(owner: type) -> dict[str, Any] | None:
    """The dict behind ``owner.__dict__`` (the proxy's one referent), or None."""
    proxy = owner.__dict__
    if not isinstance(proxy, types.MappingProxyType):
        return None
    referents = gc.get_referents(proxy)
    real = referents[0] if len(referents) == 1 else None
    return real if isinstance(real, dict) else None


def _live_namespace(namespace: Mapping[str, Any], owner: Any) -> Mapping[str, Any]:
    """The namespace to read ``owner``'s current values from (``live_namespace`` in C).

    The recorded one, unless the class's metatype is not ``type`` and the dict
    is no longer the class's own: PySide6 gives a class a new dict, or rotates
    its dicts, once a module imports a feature (``from __feature__ import
    snake_case``); then what the class shows now.
    """
    if isinstance(owner, type) and type(owner) is not type and _class_dict(owner) is not namespace:
        return owner.__dict__
    return namespace


def _namespace(owner: Any) -> Mapping[str, Any]:
    if isinstance(owner, type):
        # The dict itself where it can be had: the C loops read a dict
        # directly, a mapping proxy through a generic item lookup.
        real = _class_dict(owner)
        return real if real is not None else owner.__dict__
    namespace: Mapping[str, Any] = vars(owner)
    return namespace


def _same_objects(recorded: tuple[Any, ...], current: list[Any]) -> bool:
    if speedups is not None:
        return bool(speedups.same_items(recorded, current))
    return len(recorded) == len(current) and all(
        a is b for a, b in zip(recorded, current, strict=True)
    )


#: The process-wide registry.
registry = Registry()
