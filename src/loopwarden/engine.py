"""The hot path: wrappers around blocking primitives, and what they do.

Every thread of the host process goes through these wrappers, so the
wrapper itself does the least possible work: one C call to read the
thread's running asyncio loop and, when Qt integration is on, one dict
lookup. Only on a thread where that test passes do we look further
(:func:`_checked_call`): is a warden active, is this thread really the loop's
thread, is the call allowed here, would it block, who called it.

Re-entrancy: while loopwarden inspects a call, or while the original of a
reported primitive runs, a thread-local ``busy`` flag makes every nested
patched call take the plain path. That keeps our own locks, logging, warnings
and source-line reads out of detection, and reports ``subprocess.run`` once
rather than again for every ``os.read`` inside it.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from types import CodeType, FrameType, FunctionType
from typing import TYPE_CHECKING, Any

from loopwarden import console_streams
from loopwarden import frames as _frames
from loopwarden.allowances import DEFAULT_ALLOWANCES, Allowance, allowed_here
from loopwarden.c_wrappers import give_code
from loopwarden.errors import BlockingCallError, BlockingCallWarning
from loopwarden.findings import Finding
from loopwarden.lock_wrapper import make_lock_wrapper
from loopwarden.rules import NOT_BLOCKED, Attempt, Rule
from loopwarden.threads import describe_loop, guarded_loop, running_loop, thread_probes

if TYPE_CHECKING:
    from loopwarden.warden import Warden

__all__ = ["active_wardens", "calls_in_progress", "make_wrapper", "record", "report"]

logger = logging.getLogger("loopwarden")

#: The active wardens, innermost last. Mutated in place, never rebound.
active_wardens: list[Warden] = []

#: thread id -> the finding whose blocking call is running on that thread
#: right now. The stall watchdog skips stalls already reported this way.
calls_in_progress: dict[int, Finding] = {}

#: Allowances added with :func:`loopwarden.allow` (process-wide).
global_allowances: list[Allowance] = []

_tls = threading.local()
_get_ident = threading.get_ident
_perf_counter = time.perf_counter
_broken_rules: set[str] = set()


def make_wrapper(rule: Rule, original: Callable[..., Any]) -> Callable[..., Any]:
    """Return the function that replaces ``original`` while patches are installed."""
    # Local names are closure cells: faster to read than module globals.
    loop_of_this_thread = running_loop
    probes = thread_probes
    get_ident = _get_ident
    checked_call = _checked_call

    skip = rule.skip_when

    if rule.undo is not None:
        # Lock acquisition: a wrapper of its own, fast on the loop thread and
        # safe under Ctrl-C on the main thread (see loopwarden.lock_wrapper).
        wrapper = make_lock_wrapper(rule, original, _checked_call, active_wardens)
    elif rule.precheck is not None:
        wrapper = _prechecked_wrapper(rule, original, rule.precheck)
        if rule.precheck is console_streams.precheck:
            # The file-object rules: their off-loop and console calls in C
            # where the extension was built (loopwarden.console_streams).
            wrapper = console_streams.c_wrapper(original, wrapper, active_wardens) or wrapper
        elif rule.precheck in console_streams.handler_prechecks:
            # logging's Handler.handle: a record for the console in C.
            wrapper = (
                console_streams.c_wrapper(original, wrapper, active_wardens, handlers=True)
                or wrapper
            )
    else:

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # First: pytest shows the user's call, not this frame, also for an
            # error of the original's own (a FileNotFoundError off the loop).
            __tracebackhide__ = True
            if loop_of_this_thread() is None and (not probes or get_ident() not in probes):
                return original(*args, **kwargs)
            return checked_call(rule, original, args, kwargs)

    def skipping_wrapper(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # first, as in wrapper
        if loop_of_this_thread() is None and (not probes or get_ident() not in probes):
            return original(*args, **kwargs)
        try:
            skipped = skip(*args, **kwargs)  # type: ignore[misc]
        except Exception:  # noqa: BLE001 - a broken predicate must not break the host
            skipped = False
        if skipped:
            return original(*args, **kwargs)
        return checked_call(rule, original, args, kwargs)

    if skip is not None:
        wrapper = skipping_wrapper  # a separate function: the usual wrapper pays nothing
        if skip is console_streams.non_blocking:
            # The socket rules: their off-loop and non-blocking calls in C where
            # the extension was built (loopwarden.console_streams).
            wrapper = (
                console_streams.c_wrapper(original, wrapper, active_wardens, sockets=True)
                or wrapper
            )
        elif skip in console_streams.selector_skips:
            # The selector and poll rules: the loop's own calls, every turn, in C.
            wrapper = (
                console_streams.c_wrapper(original, wrapper, active_wardens, own_selector=True)
                or wrapper
            )
    _describe_wrapper(wrapper, rule, original)
    # A C wrapper's bound methods are methods of its Python wrapper: named alike.
    python_wrapper = getattr(wrapper, "python_wrapper", None)
    if python_wrapper is not None:
        _describe_wrapper(python_wrapper, rule, original)
        give_code(wrapper, python_wrapper)  # for PySide6's C++ connects (see there)
    return wrapper


def _describe_wrapper(wrapper: Any, rule: Rule, original: Callable[..., Any]) -> None:
    """Give ``wrapper`` the names, docstring and ``__wrapped__`` of ``original``."""
    # getattr with a default: the lock rules' C wrapper has no names of its own.
    wrapper.__name__ = getattr(original, "__name__", getattr(wrapper, "__name__", "wrapper"))
    wrapper.__qualname__ = getattr(
        original, "__qualname__", getattr(wrapper, "__qualname__", "wrapper")
    )
    if isinstance(original, FunctionType):
        # Only from Python functions: PySide6's signature support replaces the
        # __doc__ getter of builtin methods with one that drops a reference to
        # None on every read, which crashes the interpreter after enough
        # activations ("none_dealloc").
        wrapper.__doc__ = original.__doc__
    wrapper.__wrapped__ = original
    wrapper.__loopwarden_rule__ = rule


def _prechecked_wrapper(
    rule: Rule, original: Callable[..., Any], precheck: Attempt
) -> Callable[..., Any]:
    """:func:`make_wrapper`'s wrapper for a rule with a cheap verdict of its own.

    The off-loop test is the same; on a guarded thread the rule's precheck
    comes first, so a call that does not block (an uncontended lock) costs a
    few attribute reads instead of the warden, allowance and frame lookups.
    """
    loop_of_this_thread = running_loop
    probes = thread_probes
    get_ident = _get_ident
    checked_call = _checked_call
    not_blocked = NOT_BLOCKED

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # first: pytest shows the user's call, even off the loop
        if loop_of_this_thread() is None and (not probes or get_ident() not in probes):
            return original(*args, **kwargs)
        result = precheck(original, args, kwargs)
        if result is not not_blocked:
            return result
        return checked_call(rule, original, args, kwargs)

    return wrapper


def _rule_failed(rule: Rule, what: str) -> None:
    # A broken predicate must never break the host: log it once, then treat
    # the call as not blocking.
    if rule.name not in _broken_rules:
        _broken_rules.add(rule.name)
        logger.exception("loopwarden: the %s of rule %s failed; ignoring it", what, rule.name)


def _checked_call(
    rule: Rule, original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    __tracebackhide__ = True
    tls = _tls
    if not active_wardens or getattr(tls, "busy", False):
        return original(*args, **kwargs)
    # allow_blocking is task-local (a context variable): one read, before the
    # loop lookup and any frame walk.
    allowed = allowed_here.get()
    if allowed and ("*" in allowed or rule.name in allowed or rule.family in allowed):
        return original(*args, **kwargs)
    # A user allowance that names the very function calling the primitive, seen
    # before (_excused remembers it): one lookup instead of the frame walk, and
    # before the loop lookup, since the call is allowed on any thread.
    try:
        caller: FrameType | None = sys._getframe(2)  # 0: here, 1: the wrapper, 2: its caller
    except ValueError:  # called from C with no Python frame below (a C++ thread's slot)
        caller = None
    code = None if caller is None else caller.f_code
    remembered = _allowed_callers.get((id(code), rule.name))
    if remembered is not None and remembered[0] is code:
        in_force = (
            active_wardens[0].allowances  # _user_allowances() in its common case, inlined
            if not global_allowances and len(active_wardens) == 1
            else _user_allowances()
        )
        if remembered[1] in in_force:
            # What the full path does with a call it excused: the original, with
            # this thread's checks off for what it calls (unless the rule checks
            # nested calls), and its iteration unchecked.
            try:
                tls.busy = not rule.check_nested  # inside the try: see below
                result = original(*args, **kwargs)
                return _quiet_iterator(result) if rule.iterates else result
            finally:
                tls.busy = False
    loop = guarded_loop()
    if loop is None:
        return original(*args, **kwargs)

    ident = _get_ident()
    try:
        # Set inside the try: an exception from a signal handler (Ctrl-C) can
        # arrive at any call, and a flag left set would silence this thread
        # for good.
        tls.busy = True
        finding = None
        user_frame = None
        try:
            if rule.blocks_when is None or rule.blocks_when(*args, **kwargs):
                if rule.attempt is not None:
                    result = rule.attempt(original, args, kwargs)
                    if result is not NOT_BLOCKED:
                        return result
                excused, nearest_own = _excused(rule, caller)
                if not excused:
                    library_frame = nearest_own or caller
                    # The place to fix is the user's own code; the library
                    # frame that blocked is named beside it.
                    user_frame = _frames.nearest_own_frame(library_frame) or library_frame
                    finding = _make_finding(
                        rule, loop, caller, user_frame, args, kwargs, library_frame
                    )
        except Exception:  # noqa: BLE001 - never let a broken rule crash the host
            _rule_failed(rule, "check")
        if finding is None:
            if rule.check_nested:
                tls.busy = False  # nested event loops: keep checking what runs inside
            result = original(*args, **kwargs)
            return _quiet_iterator(result) if rule.iterates else result
        takers = _report(finding, user_frame)
        calls_in_progress[ident] = finding
        if rule.check_nested:
            tls.busy = False
        # Only reported calls are timed: the duration is the original's wall time.
        start = _perf_counter()
        iterating = False
        try:
            result = original(*args, **kwargs)
            iterating = rule.iterates
        finally:
            finding.details["duration_ms"] = (_perf_counter() - start) * 1000.0
            calls_in_progress.pop(ident, None)
            if not iterating:
                tls.busy = True  # on_finding callbacks are never checked themselves
                _notify(finding, takers)
        return _quiet_iterator(result, finding, takers) if iterating else result
    finally:
        tls.busy = False
        calls_in_progress.pop(ident, None)


#: (id(code), rule name) -> (code, allowance): a function a user allowance names,
#: seen calling the rule's primitive directly (see _excused). The code object is
#: kept to tell a reused id apart; the allowance to check that it is still in force.
_allowed_callers: dict[tuple[int, str], tuple[CodeType, Allowance]] = {}
#: Bound on _allowed_callers (code made at run time, by exec, must not pile up).
_ALLOWED_CALLERS_MAX = 4096


def _remember_allowed_caller(rule: Rule, code: CodeType, allowance: Allowance) -> None:
    if len(_allowed_callers) >= _ALLOWED_CALLERS_MAX:
        _allowed_callers.clear()
    _allowed_callers[(id(code), rule.name)] = (code, allowance)


def _quiet_iterator(
    iterator: Iterator[Any], finding: Finding | None = None, takers: list[Warden] | None = None
) -> Iterator[Any]:
    # The call was already judged; the calls made while iterating are its own.
    # A reported call's blocking happens while iterating: its duration grows
    # with each step, and its callbacks run once the iteration ends.
    tls = _tls
    try:
        while True:
            outer_busy = getattr(tls, "busy", False)
            start = _perf_counter()
            try:
                tls.busy = True
                item = next(iterator)
            except StopIteration:
                return
            finally:
                tls.busy = outer_busy
                if finding is not None:
                    finding.details["duration_ms"] += (_perf_counter() - start) * 1000.0
            yield item
    finally:
        if finding is not None and takers:
            outer_busy = getattr(tls, "busy", False)
            try:
                tls.busy = True
                _notify(finding, takers)
            finally:
                tls.busy = outer_busy


def _excused(rule: Rule, frame: FrameType | None) -> tuple[bool, FrameType | None]:
    """Is the call allowed by a default, rule, tool or user allowance?

    Also returns the nearest frame outside the standard library (None if
    there is none), which the walk finds anyway and a finding names as the
    user's caller.
    """
    classify = _frames.classify
    stdlib, hidden = _frames.STDLIB, _frames.HIDDEN
    f = frame
    # Walk out through the standard library to the nearest other frame.
    while f is not None:
        info = classify(f.f_code, f.f_globals)
        if info.category == stdlib:
            excused = info.excused
            if excused is None:
                excused = info.excused = _default_allowance_covers(info)
            if excused or info.key in rule.allowed_in or info.module in rule.allowed_in:
                return True, None
        elif info.category != hidden:
            # The rule may also name the nearest frame outside the stdlib
            # (a library's own shutdown code joining a thread it owns).
            if info.category == _frames.TOOL or info.key in rule.allowed_in:
                return True, None
            break
        f = f.f_back
    nearest_own = f
    user_allowances = _user_allowances()
    if not user_allowances:
        return False, nearest_own
    # Like the stacks in findings, the walk ends at the loop's callback
    # dispatcher once code outside the standard library was seen: an allowance
    # covers the callback chain it runs in, not everything the loop runs
    # (the function that called asyncio.run() would otherwise allow it all).
    f = frame
    seen_own_code = False
    while f is not None:
        info = classify(f.f_code, f.f_globals)
        if info.boundary and seen_own_code:
            break
        seen_own_code = seen_own_code or info.category not in (stdlib, hidden)
        module, qualname = info.module, info.qualname
        scheduled = _frames.scheduled_site(f) if info.category == _frames.SCHEDULED else None
        if scheduled is not None:
            # A callback with no user frame: allowances apply where it was scheduled.
            module, qualname = scheduled.site.module, scheduled.site.function
        for allowance in user_allowances:
            if allowance.matches_frame(module, qualname) and allowance.covers(
                rule.name, rule.family
            ):
                if f is frame and scheduled is None:
                    # The caller itself: the same verdict whatever the stack
                    # above it (this loop looks at it first, and the walk
                    # before stops at it), so the next call skips the walk.
                    _remember_allowed_caller(rule, f.f_code, allowance)
                return True, None
        if scheduled is not None:
            break
        f = f.f_back
    return False, nearest_own


def _default_allowance_covers(info: _frames.FrameInfo) -> bool:
    return any(a.matches_frame(info.module, info.qualname) for a in DEFAULT_ALLOWANCES)


def _user_allowances() -> list[Allowance]:
    if not global_allowances and len(active_wardens) == 1:
        return active_wardens[0].allowances  # the common case: no copy
    found = list(global_allowances)
    for warden in active_wardens:
        found.extend(warden.allowances)
    return found


def _diagnose(
    rule: Rule, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The suggestion and details of one finding (rule.diagnose may refine them)."""
    if rule.diagnose is None:
        return rule.suggestion, {}
    try:
        details = dict(rule.diagnose(*args, **kwargs))
    except Exception:  # noqa: BLE001 - a broken diagnosis must not lose the finding
        _rule_failed(rule, "diagnosis")
        return rule.suggestion, {}
    suggestion = details.pop("suggestion", None)
    return (suggestion if isinstance(suggestion, str) else rule.suggestion), details


#: A finding's caller when no Python frame is below the call (a C++ thread calling
#: a patched function directly as its slot).
_NO_PYTHON_CALLER = "<called from C: no Python caller>"


def _make_finding(
    rule: Rule,
    loop: object,
    caller: FrameType | None,
    user_frame: FrameType | None,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    library_frame: FrameType | None = None,
) -> Finding:
    suggestion, details = _diagnose(rule, args, kwargs or {})
    via = _made_by(caller) if caller is not None else ""
    if via:
        # A flush that seek() made: the user called seek, the flush blocked.
        details.setdefault("via", via)
    scheduled = _frames.scheduled_site(user_frame)
    if scheduled is not None:
        details.setdefault("scheduled_via", scheduled.via)
    stack = _frames.capture_stack(caller)
    caller_label = str(stack[-1]) if stack else "<unknown>"
    if caller is None:
        caller_label = _NO_PYTHON_CALLER
    library_label = ""
    if library_frame is not None and library_frame is not user_frame:
        library_label = _frames.frame_label(library_frame)
    thread = threading.current_thread()
    finding = Finding(
        primitive=rule.name,
        family=rule.family,
        thread_name=thread.name,
        thread_id=thread.ident or _get_ident(),
        loop=describe_loop(loop),
        caller=caller_label,
        user_caller=_NO_PYTHON_CALLER if user_frame is None else _frames.frame_label(user_frame),
        stack=stack,
        suggestion=suggestion,
        timestamp=time.time(),
        details=details,
        library_caller=library_label,
    )
    return finding


def _made_by(caller: FrameType) -> str:
    """The method name of the checked call that made this one, or "".

    A primitive called from inside another patched primitive (seek() and
    tell() flush the write buffer first) has the outer call's
    :func:`_checked_call` frame as its caller.
    """
    if caller.f_code is not _checked_call.__code__:
        return ""
    outer = caller.f_locals.get("rule")
    return outer.attribute_path[-1] if isinstance(outer, Rule) else ""


def _take(finding: Finding) -> list[Warden]:
    """Append ``finding`` to every active warden that wants it; return those wardens.

    A warden may decline a finding (the pytest plugin's scope and per-test
    allowances).
    """
    wardens = [warden for warden in list(active_wardens) if warden.wants(finding)]
    for warden in wardens:
        warden._record(finding, notify=False)
    return wardens


def _notify(finding: Finding, wardens: list[Warden]) -> None:
    for warden in wardens:
        warden._notify(finding)


def record(finding: Finding) -> str | None:
    """Record ``finding`` on every active warden that wants it and run their callbacks.

    Returns the mode of the innermost warden that took it, which decides
    what happens next, or None if none did.
    """
    wardens = _take(finding)
    _notify(finding, wardens)
    return wardens[-1].mode if wardens else None


def report(finding: Finding, user_frame: FrameType | None = None) -> None:
    """Hand a finding to every active warden, then act on the innermost's mode.

    Recording happens first, so a caller that swallows the raised error
    cannot hide the finding.

    Raises:
        BlockingCallError: in ``"raise"`` mode, and in every mode for a call
            that can never return (a certain deadlock without a timeout:
            proceeding would hang the program for good).
    """
    __tracebackhide__ = True
    _notify(finding, _report(finding, user_frame))


def _report(finding: Finding, user_frame: FrameType | None) -> list[Warden]:
    """:func:`report`, except that callbacks are left to the caller unless it raises.

    The checked call runs its blocking original first, so that ``on_finding``
    callbacks see ``details["duration_ms"]``; a call that raises here does
    not run, and its callbacks run now, without a duration.
    """
    __tracebackhide__ = True
    wardens = _take(finding)
    if not wardens:
        return wardens
    mode = wardens[-1].mode
    if mode == "raise" or finding.details.get("hangs_forever"):
        _notify(finding, wardens)
        raise BlockingCallError(finding)
    if mode == "warn":
        _warn(finding, user_frame)
    return wardens


def _warn(finding: Finding, frame: FrameType | None) -> None:
    warning = BlockingCallWarning(finding.message)
    if frame is None:
        warnings.warn(warning, stacklevel=2)
        return
    scheduled = _frames.scheduled_site(frame)
    if scheduled is not None:
        site = scheduled.site  # a callback: the warning belongs where it was scheduled
        warnings.warn_explicit(
            warning, BlockingCallWarning, site.filename, site.lineno, site.module
        )
        return
    # warn_explicit attributes the warning to the user's line, so filters by
    # module and `-W error::loopwarden.BlockingCallWarning` work as expected.
    module_globals = frame.f_globals
    registry = module_globals.setdefault("__warningregistry__", {})
    # module_globals only helps linecache load source through a loader. Python
    # 3.12+ raises ValueError for globals without __spec__.loader and a None
    # __loader__ (code run by runpy.run_path), and warns when __spec__ has no
    # loader (``python script.py``): pass it only when the spec has a loader.
    spec_loader = getattr(module_globals.get("__spec__"), "loader", None)
    warnings.warn_explicit(
        warning,
        BlockingCallWarning,
        frame.f_code.co_filename,
        frame.f_lineno,
        module=module_globals.get("__name__"),
        registry=registry,
        module_globals=module_globals if spec_loader is not None else None,
    )
