"""From stack samples of a stalled loop thread to a ``stall`` finding.

The watchdog samples the stalled thread's stack every few milliseconds. The
culprit is the stack seen most often: samples are grouped by their functions
(line numbers move while a loop spins), and the most frequent exact stack of
the largest group stands for it.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from types import FrameType
from typing import Any, NamedTuple

from loopwarden import engine
from loopwarden import frames as _frames
from loopwarden.errors import BlockingCallWarning
from loopwarden.findings import Finding, StackFrame

__all__ = ["STALL_SUGGESTION", "Sample", "build_finding", "deliver", "excused", "take_sample"]

logger = logging.getLogger("loopwarden")

STALL_SUGGESTION = (
    "Move long CPU-bound or blocking work off the loop thread (`await asyncio.to_thread(...)`, "
    "`loop.run_in_executor(...)`, a QThreadPool worker), or split it into chunks that yield "
    "to the loop (`await asyncio.sleep(0)`)."
)

#: Modules of debuggers, and the functions in which they hold a paused thread.
_DEBUGGER_MODULES = frozenset(
    {"pdb", "bdb", "pydevd", "_pydevd_bundle", "debugpy", "ipdb", "pudb", "IPython"}
)
_DEBUGGER_PAUSE_FUNCTIONS = frozenset(
    {"interaction", "do_wait_suspend", "_do_wait_suspend", "cmdloop", "user_line", "user_call"}
)


class Sample(NamedTuple):
    """One look at the stalled thread's stack.

    Attributes:
        stack: Frames, outermost first, loopwarden's own hidden.
        user_caller: ``"path:line in func"`` of the innermost frame outside
            the standard library and loopwarden's wrappers.
        user_frame: ``(filename, lineno, module)`` of that frame, for warnings.
        tool: That frame belongs to a development tool (pytest, coverage...).
        debugger: A debugger holds the thread paused.
        library_caller: When that frame is library code and a frame of the
            user's own code is further out: the library frame (``user_caller``
            and ``user_frame`` then name the user's frame).
    """

    stack: tuple[StackFrame, ...]
    user_caller: str
    user_frame: tuple[str, int, str] | None
    tool: bool
    debugger: bool
    library_caller: str = ""


def take_sample(frame: FrameType) -> Sample:
    """Sample the stack that ``frame`` (another thread's top frame) belongs to."""
    stack = _frames.capture_stack(frame)
    user_caller = str(stack[-1]) if stack else "<unknown>"
    user_frame: tuple[str, int, str] | None = None
    tool = False
    debugger = False
    library_caller = ""
    # None: still looking for the user's own frame beyond a library frame.
    own_found: bool | None = False
    f: FrameType | None = frame
    while f is not None:
        info = _frames.classify(f.f_code, f.f_globals)
        if info.module.partition(".")[0] in _DEBUGGER_MODULES and (
            info.qualname.rpartition(".")[2] in _DEBUGGER_PAUSE_FUNCTIONS
        ):
            debugger = True
            break
        if user_frame is None and info.category not in (_frames.STDLIB, _frames.HIDDEN):
            user_caller = _frames.frame_label(f)
            user_frame = (f.f_code.co_filename, f.f_lineno, info.module)
            tool = info.category == _frames.TOOL
            mine = info.category == _frames.USER and _frames.is_own_code(
                f.f_code.co_filename, info.module
            )
            if not tool and not mine:
                library_caller, own_found = user_caller, None
        elif own_found is None:
            if info.boundary:
                own_found = False
            elif info.category == _frames.USER and _frames.is_own_code(
                f.f_code.co_filename, info.module
            ):
                # The place to fix is the user's code that called the library.
                user_caller = _frames.frame_label(f)
                user_frame = (f.f_code.co_filename, f.f_lineno, info.module)
                own_found = True
        f = f.f_back
    if not own_found:
        library_caller = ""
    return Sample(stack, user_caller, user_frame, tool, debugger, library_caller)


def culprit(samples: Sequence[Sample]) -> Sample | None:
    """The sample standing for the stack seen most often, or None."""
    if not samples:
        return None
    groups: dict[tuple[tuple[str, str], ...], list[Sample]] = {}
    for sample in samples:
        key = tuple((frame.filename, frame.function) for frame in sample.stack)
        groups.setdefault(key, []).append(sample)
    # max() keeps the first of equals: prefer the group seen first on ties.
    largest = max(groups.values(), key=len)
    exact = Counter(sample.stack for sample in largest)
    stack, _ = exact.most_common(1)[0]
    return next(sample for sample in largest if sample.stack == stack)


def excused(sample: Sample) -> bool:
    """True if the culprit is a tool's own work or covered by a user allowance.

    User allowances (:func:`loopwarden.allow`, ``guard(allow=...)``) that
    cover the ``stall`` primitive or family, or all primitives, apply when
    any frame of the culprit stack matches them, as for blocking calls.
    ``allow_blocking`` scopes cannot be seen from the watchdog thread (they
    are context variables of the loop thread) and do not silence stalls.
    """
    if sample.tool:
        return True
    allowances = list(engine.global_allowances)
    for warden in list(engine.active_wardens):
        allowances.extend(warden.allowances)
    return any(
        allowance.covers("stall", "stall") and allowance.matches_frame(frame.module, frame.function)
        for allowance in allowances
        for frame in sample.stack
    )


def build_finding(
    thread_id: int,
    loop: str,
    sample: Sample | None,
    details: dict[str, Any],
) -> Finding:
    """A ``stall`` finding built like the engine's (caller, user_caller, stack)."""
    thread = next((t for t in threading.enumerate() if t.ident == thread_id), None)
    stack = sample.stack if sample is not None else ()
    return Finding(
        primitive="stall",
        family="stall",
        thread_name=thread.name if thread is not None else f"thread {thread_id}",
        thread_id=thread_id,
        loop=loop,
        caller=str(stack[-1]) if stack else "<unknown>",
        user_caller=sample.user_caller if sample is not None else "<unknown>",
        stack=stack,
        suggestion=STALL_SUGGESTION,
        timestamp=time.time(),
        details=details,
        library_caller=sample.library_caller if sample is not None else "",
    )


def deliver(finding: Finding, sample: Sample | None) -> None:
    """Record ``finding`` on every active warden, then act on the innermost's mode.

    Unlike :func:`loopwarden.engine.report`, this runs on the watchdog thread
    and never raises: in ``"raise"`` mode the stall is recorded and logged
    (the stalled code has moved on; the pytest plugin fails the test for
    it); in ``"warn"`` mode a :class:`~loopwarden.BlockingCallWarning` is
    issued, attributed to the culprit's line.
    """
    mode = engine.record(finding)
    if mode is None:
        return
    try:
        if mode == "raise":
            logger.error("loopwarden: %s", finding.format())
        elif mode == "warn":
            filename, lineno, module = (
                sample.user_frame
                if sample is not None and sample.user_frame is not None
                else ("<loopwarden watchdog>", 0, "loopwarden.watchdog")
            )
            warnings.warn_explicit(
                BlockingCallWarning(finding.message),
                BlockingCallWarning,
                filename,
                lineno,
                module=module,
            )
    except Exception:  # e.g. -W error turns the warning into an error here
        logger.debug("loopwarden: reporting a stall failed", exc_info=True)
