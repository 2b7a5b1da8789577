"""Wardens: an activation of loopwarden with its mode, findings and options.

``guard()`` and ``activate()`` push a :class:`Warden` on the stack of active
wardens; the first one installs the patches, the last one to leave removes
them. Every active warden records every finding; the innermost one's mode
decides whether the call raises, warns or only records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType

from loopwarden import engine
from loopwarden import watchdog as _watchdog
from loopwarden.allowances import Allowance, check_allowance, parse_allowance
from loopwarden.errors import ConfigError
from loopwarden.findings import Finding
from loopwarden.modes import MODES, Mode
from loopwarden.registry import registry
from loopwarden.rules import Rule
from loopwarden.sites import DEFAULT_MAX_FINDINGS, Site, SiteTable, check_max_findings
from loopwarden.uninterruptible import OwnLock, finish

__all__ = [
    "MODES",
    "Mode",
    "Warden",
    "activate",
    "current_warden",
    "deactivate",
    "guard",
    "iter_findings",
    "keep_installed",
]

logger = logging.getLogger("loopwarden")


OnFinding = Callable[[Finding], object]
AllowSpec = Allowance | tuple[str, str]

# An OwnLock: `with _state_lock:` stays atomic under Ctrl-C even while the
# lock types are patched (see loopwarden.uninterruptible).
_state_lock = OwnLock()

#: Called without arguments, under the state lock, after a warden is activated
#: or deactivated. Integrations use it to switch per-thread probes on and off
#: with detection (the Qt GUI-thread guard). A hook that raises is logged.
state_hooks: list[Callable[[], None]] = []

_global_warden: Warden | None = None
# What keeps the patches installed without a warden being active (pytest plugin).
_holders: list[_Hold] = []


def check_mode(mode: object) -> Mode:
    """Return ``mode`` if valid.

    Raises:
        ConfigError: naming the valid values.
    """
    if mode not in MODES:
        raise ConfigError(f"invalid loopwarden mode {mode!r}; valid modes: {', '.join(MODES)}")
    return mode  # type: ignore[return-value]


def _to_allowance(spec: AllowSpec, own_rules: Sequence[Rule] = ()) -> Allowance:
    names = [rule.name for rule in own_rules]
    if isinstance(spec, Allowance):
        return check_allowance(spec, extra_names=names)
    if isinstance(spec, tuple) and len(spec) == 2:
        return check_allowance(parse_allowance(spec[0], spec[1]), extra_names=names)
    raise ConfigError(
        f"allowance {spec!r} must be an Allowance or a ('package.module:qualname', reason) pair"
    )


def patches_held() -> bool:
    """True while :func:`keep_installed` holds the patches in.

    The state hooks keep what they install for imports (their post-import
    hooks on ``sys.meta_path``) in place too then, so that a per-test switch
    does not add and remove them each time; they run once more when the last
    hold ends.
    """
    return bool(_holders)


def _run_state_hooks() -> None:
    for hook in list(state_hooks):
        try:
            hook()
        except Exception:  # an integration must never break activation
            logger.exception("loopwarden: state hook %r failed", hook)


class Warden:
    """One activation of loopwarden: options in, findings out.

    Create it with :func:`guard` or :func:`activate`, not directly.

    Attributes:
        mode: ``"raise"``, ``"warn"`` or ``"record"``.
        findings: Findings seen while active, in order of occurrence: the
            first ``max_findings`` in full. Later ones are only counted, in
            :attr:`sites` and :attr:`total`, so a long run's memory stays bounded.
        max_findings: How many full findings :attr:`findings` keeps.
        allowances: User allowances in force while this warden is active.
        stall_ms: Threshold of the stall watchdog, or None when it is off.
    """

    def __init__(
        self,
        mode: Mode = "raise",
        *,
        on_finding: OnFinding | None = None,
        allow: Iterable[AllowSpec] = (),
        rules: Sequence[Rule] = (),
        stall_ms: float | None = None,
        max_findings: int | None = None,
    ) -> None:
        # The checks' common answers inline (one Warden per test in the plugin:
        # a call saved is ~0.06 µs of the per-test switch); the checks raise
        # the errors.
        self.mode: Mode = mode if mode in MODES else check_mode(mode)
        #: Stall watchdog threshold in milliseconds; None: no watchdog.
        self.stall_ms: float | None = (
            None if stall_ms is None else _watchdog.check_stall_ms(stall_ms)
        )
        self.max_findings: int = (
            DEFAULT_MAX_FINDINGS if max_findings is None else check_max_findings(max_findings)
        )
        self.findings: list[Finding] = []
        self._sites = SiteTable()
        self._rules: list[Rule] = list(rules)
        self.allowances: list[Allowance] = (
            [_to_allowance(a, self._rules) for a in allow] if allow != () else []
        )
        self._callbacks: list[OnFinding] = [on_finding] if on_finding is not None else []
        self._active = False
        self._entered = False  # activation started and not fully undone yet

    def __repr__(self) -> str:
        state = "active" if self._active else "inactive"
        return f"<Warden mode={self.mode!r} {state} findings={len(self.findings)}>"

    @property
    def active(self) -> bool:
        """True between activation and deactivation."""
        return self._active

    # -- configuration while active -----------------------------------------

    def allow(self, spec: str, *, reason: str, primitives: Iterable[str] = ()) -> Allowance:
        """Accept blocking inside ``"package.module:qualname"`` while this warden is active."""
        allowance = check_allowance(
            parse_allowance(spec, reason, primitives),
            where="allow()",
            extra_names=[rule.name for rule in self._rules],
        )
        self.allowances.append(allowance)
        return allowance

    def add_rule(self, rule: Rule) -> None:
        """Detect one more primitive while this warden is active."""
        self._rules.append(rule)
        if self._active:
            registry.add_rule(rule)

    def on_finding(self, callback: OnFinding) -> None:
        """Call ``callback(finding)`` for every new finding (exceptions are logged)."""
        self._callbacks.append(callback)

    def clear(self) -> None:
        """Forget the findings recorded so far (and their counts)."""
        self.findings.clear()
        self._sites.clear()

    # -- aggregates -------------------------------------------------------------

    @property
    def total(self) -> int:
        """How many findings were seen, kept in full or not (exact)."""
        return self._sites.total

    @property
    def dropped(self) -> int:
        """Findings counted but not kept in :attr:`findings` (the memory bound)."""
        return max(0, self._sites.total - len(self.findings))

    @property
    def sites(self) -> list[Site]:
        """Every call site seen, in order of its first finding, with exact counts.

        One :class:`~loopwarden.sites.Site` per (primitive, place to fix): count,
        first and last time, total and longest measured duration, and the first
        finding in full.
        """
        return self._sites.sites()

    def _forget(self, findings: Iterable[Finding]) -> None:
        """Take findings back (by identity): ``expect_blocking`` expected them."""
        ids = {id(f) for f in findings}
        if not ids:
            return
        kept: list[Finding] = []
        for finding in self.findings:
            if id(finding) in ids:
                self._sites.discard(finding)
            else:
                kept.append(finding)
        self.findings[:] = kept

    # -- activation -----------------------------------------------------------

    # Activation and deactivation are all-or-nothing, also when an exception
    # from a signal handler (Ctrl-C) arrives at any point: a failed activation
    # is rolled back, an interrupted deactivation is completed, and the
    # exception is re-raised afterwards. _leave() is idempotent: it converges
    # on "this warden left no trace" from any partial state.

    def _activate(self) -> None:
        with _state_lock:
            if self._entered:
                return
            try:
                self._enter()
            except BaseException:
                finish(self._leave, "rollback of a failed activation")
                raise

    def _enter(self) -> None:
        self._entered = True  # from here on, _leave() has something to undo
        registry.install()
        for rule in self._rules:
            registry.add_rule(rule)
        engine.active_wardens.append(self)
        self._active = True
        _run_state_hooks()  # first: the Qt GUI-thread probe the watchdog may use
        try:
            _watchdog.attach(self)
        except Exception:
            logger.exception("loopwarden: the stall watchdog could not start")

    def _leave(self) -> None:
        self._active = False
        # Before leaving the stack: the watchdog's last check still records
        # a stall that ended just now on this warden.
        _watchdog.detach(self)
        while self in engine.active_wardens:
            engine.active_wardens.remove(self)
        for rule in self._rules:
            registry.remove_rule(rule)
        if not engine.active_wardens and not _holders:
            registry.uninstall()
        _run_state_hooks()
        self._entered = False

    def _deactivate(self) -> None:
        with _state_lock:
            if not self._entered:
                return
            try:
                self._leave()
            except BaseException:
                finish(self._leave, "deactivation")
                raise

    def __enter__(self) -> Warden:
        try:
            self._activate()
            return self
        except BaseException:
            # Also an interruption after the activation completed, on the
            # way out of it: the with block will not run, so undo it all.
            finish(self._deactivate, "rollback of a failed activation")
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._deactivate()
        except BaseException:
            finish(self._deactivate, "deactivation")
            raise

    # -- called by the engine -------------------------------------------------

    def wants(self, finding: Finding) -> bool:
        """Whether this warden records ``finding`` (always, unless a subclass filters).

        A warden that declines a finding neither records it nor lets its mode
        act on it. The pytest plugin overrides this for its scope filter and
        per-test allowances.
        """
        return True

    def _record(self, finding: Finding, *, notify: bool = True) -> None:
        # len() then append is not atomic across threads: at worst a few findings
        # more than the limit, never an unbounded list.
        if len(self.findings) < self.max_findings:
            self.findings.append(finding)
        if notify:
            self._notify(finding)

    def _notify(self, finding: Finding) -> None:
        # For a blocking call the engine calls this once the call has returned,
        # so the site counts and the callbacks see its duration (details["duration_ms"]).
        self._sites.add(finding)
        for callback in list(self._callbacks):
            try:
                callback(finding)
            except Exception:
                logger.exception(
                    "loopwarden: on_finding callback %r failed; it is now disabled", callback
                )
                if callback in self._callbacks:
                    self._callbacks.remove(callback)


def guard(
    mode: Mode = "raise",
    *,
    on_finding: OnFinding | None = None,
    allow: Iterable[AllowSpec] = (),
    rules: Sequence[Rule] = (),
    stall_ms: float | None = None,
    max_findings: int | None = None,
) -> Warden:
    """Detect blocking calls on event-loop threads inside a ``with`` block.

    Args:
        mode: ``"raise"`` raises :class:`~loopwarden.BlockingCallError` at
            the call (the finding is recorded first); ``"warn"`` emits a
            :class:`~loopwarden.BlockingCallWarning`; ``"record"`` only
            records.
        on_finding: Called with each :class:`~loopwarden.Finding`; if it
            raises, the error is logged and the callback disabled.
        allow: Allowances, as :class:`~loopwarden.Allowance` objects or
            ``("package.module:qualname", "reason")`` pairs.
        rules: Extra rules (see :func:`~loopwarden.mark_blocking`) in force
            inside the block.
        stall_ms: Also run the stall watchdog (:mod:`loopwarden.watchdog`):
            report a guarded loop that does not respond within this many
            milliseconds (100 is a good start), with the stack that kept it
            busy. None (the default) leaves it off: it starts a thread and
            reports CPU-heavy code that no patch flags, which you opt into.
        max_findings: Full findings kept in :attr:`Warden.findings` (default
            10 000); later ones are only counted, exactly, per call site in
            :attr:`Warden.sites`. Bounds memory in long record-mode runs.

    Returns:
        The :class:`Warden`; use it as a context manager. Guards nest: the
        innermost one's mode applies, and leaving it restores the outer state.

    Raises:
        ConfigError: for an invalid mode or allowance.

    Example:
        >>> import asyncio, time, loopwarden
        >>> async def main():
        ...     time.sleep(0.01)
        >>> with loopwarden.guard(mode="record") as warden:
        ...     asyncio.run(main())
        >>> warden.findings[0].primitive
        'time.sleep'
    """
    return Warden(
        mode,
        on_finding=on_finding,
        allow=allow,
        rules=rules,
        stall_ms=stall_ms,
        max_findings=max_findings,
    )


def activate(
    mode: Mode = "raise",
    *,
    on_finding: OnFinding | None = None,
    allow: Iterable[AllowSpec] = (),
    rules: Sequence[Rule] = (),
    stall_ms: float | None = None,
    max_findings: int | None = None,
) -> Warden:
    """Switch detection on until :func:`deactivate`; same options as :func:`guard`.

    Calling it again while active replaces the process-wide warden's options
    (mode, callback, allowances, rules) and keeps its findings.

    Returns:
        The process-wide :class:`Warden`.
    """
    global _global_warden
    with _state_lock:
        old = _global_warden
        new = Warden(
            mode,
            on_finding=on_finding,
            allow=allow,
            rules=rules,
            stall_ms=stall_ms,
            max_findings=max_findings,
        )
        if old is None or not old.active:
            try:
                new._activate()
                _global_warden = new
                return new
            except BaseException:
                finish(new._deactivate, "rollback of a failed activation")
                raise
        new.findings = old.findings
        new._sites = old._sites
        try:
            new._activate()
            _take_over(old, new)
        except BaseException:
            # Once the new warden is active, finish replacing the old one.
            if new._entered:
                finish(lambda: _take_over(old, new), "replacement of the process-wide warden")
            raise
        return new


def _take_over(old: Warden, new: Warden) -> None:
    """Put ``new`` where ``old`` is in the stack and switch ``old`` off (idempotent)."""
    global _global_warden
    stack = engine.active_wardens
    if old in stack and new in stack:
        # Keep the position in the stack: inner guards stay innermost. One
        # slice assignment, so an interruption cannot lose a warden.
        order = [warden for warden in stack if warden is not new]
        order.insert(order.index(old), new)
        stack[:] = order
    _global_warden = new
    old._deactivate()


def deactivate() -> None:
    """Switch off the warden started by :func:`activate`. A no-op if none is active."""
    global _global_warden
    with _state_lock:
        warden = _global_warden
        if warden is None:
            return
        try:
            warden._deactivate()
            _global_warden = None
        except BaseException:
            finish(warden._deactivate, "deactivation")
            _global_warden = None
            raise


def current_warden() -> Warden | None:
    """The innermost active warden, or None."""
    wardens = engine.active_wardens
    return wardens[-1] if wardens else None


class _Hold:
    """Keeps the patches installed between wardens (cheap per-test switching)."""

    def __enter__(self) -> None:
        with _state_lock:
            try:
                if self not in _holders:
                    _holders.append(self)
                registry.install()
            except BaseException:
                finish(self._release, "rollback of keep_installed()")
                raise

    def __exit__(self, *exc: object) -> None:
        with _state_lock:
            try:
                self._release()
            except BaseException:
                finish(self._release, "end of keep_installed()")
                raise

    def _release(self) -> None:
        # Idempotent: membership, not a counter, so running it twice is harmless.
        while self in _holders:
            _holders.remove(self)
        if not _holders and not engine.active_wardens:
            registry.uninstall()
            _run_state_hooks()  # what the hooks kept in for the hold comes out now


def keep_installed() -> _Hold:
    """Keep the patches installed while no warden is active.

    Activating and deactivating a warden inside then costs a list append and
    removal, not a round of patching. The pytest plugin holds this for the
    whole session.
    """
    return _Hold()


def iter_findings() -> Iterator[Finding]:
    """Findings of all active wardens, de-duplicated, in order."""
    seen: set[int] = set()
    for warden in engine.active_wardens:
        for finding in warden.findings:
            if id(finding) not in seen:
                seen.add(id(finding))
                yield finding
