"""What loopwarden reports: one :class:`Finding` per blocking call or stall."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, NamedTuple, get_args

__all__ = ["FAMILIES", "Family", "Finding", "StackFrame", "format_duration"]

Family = Literal[
    "sleep",
    "filesystem",
    "network",
    "database",
    "sync",
    "process",
    "console",
    "qt",
    "reentrancy",
    "stall",
    "thread",
    "custom",
]

#: Every family a finding can belong to, in display order.
FAMILIES: tuple[Family, ...] = get_args(Family)


class StackFrame(NamedTuple):
    """One frame of a finding's stack (a named tuple: cheap to create)."""

    filename: str
    lineno: int
    function: str
    module: str

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno} in {self.function}"

    def source_line(self) -> str:
        """The frame's source line, read lazily (never on the hot path)."""
        import linecache

        return linecache.getline(self.filename, self.lineno).strip()


@dataclasses.dataclass(frozen=True)
class Finding:
    """A blocking call (or stall) seen on a guarded loop thread, or a wrong-thread call.

    Attributes:
        primitive: Dotted name of what blocked, e.g. ``"time.sleep"`` or
            ``"socket.socket.connect"``; ``"stall"`` for watchdog findings.
        family: The rule family (see :data:`FAMILIES`).
        thread_name: Name of the thread that blocked.
        thread_id: ``threading.get_ident()`` of that thread.
        loop: Description of the loop that was running on it.
        caller: ``"path:line in func"`` of the first frame outside loopwarden.
        user_caller: The place to fix: the nearest frame of *your* code that
            led to the call (outside the standard library, site-packages and
            tools; with the pytest plugin, inside ``--block-detect-scope`` if
            set, else under the rootdir). When no such frame is on the stack,
            the nearest frame outside the standard library. Findings are
            grouped by this line.
        stack: The call stack, outermost frame first, loopwarden's own frames
            hidden.
        suggestion: The non-blocking alternative.
        timestamp: ``time.time()`` when the call was seen.
        details: Extra facts. ``details["duration_ms"]`` is how long the loop
            was blocked, in milliseconds: the wall time of the blocking call
            (set when the call returns; absent when it did not run, as in
            ``"raise"`` mode) or the length of a stall. Read it with
            :attr:`duration_ms`. A ``thread`` finding has
            ``{"owner_thread": "MainThread", "owner_thread_id": ...}`` (its
            ``thread_name`` is the calling thread).
        library_caller: When the call was made inside a library (the nearest
            frame outside the standard library is not your code): that
            library frame; empty otherwise.
    """

    primitive: str
    family: Family
    thread_name: str
    thread_id: int
    loop: str
    caller: str
    user_caller: str
    stack: tuple[StackFrame, ...]
    suggestion: str
    timestamp: float
    details: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)
    library_caller: str = ""

    @property
    def library_module(self) -> str:
        """The module of :attr:`library_caller`'s frame (empty when there is none)."""
        if not self.library_caller:
            return ""
        for frame in reversed(self.stack):
            if str(frame) == self.library_caller:
                return frame.module
        return ""

    @property
    def allow_hint(self) -> str:
        """How to accept blocking inside the library, if the user decides to ("" if none)."""
        module = self.library_module
        if not module or module == "?":
            return ""
        package = module.partition(".")[0]
        return (
            f"If blocking inside {package} is acceptable, allow it: "
            f'loopwarden.allow("{package}", reason="..."), or in pyproject.toml '
            f'[tool.loopwarden] allow = ["{package} = <reason>"].'
        )

    @property
    def duration_ms(self) -> float | None:
        """How long the loop was blocked, in milliseconds; None when unknown.

        For a blocking call, the wall time of the call itself, measured only
        for calls that are reported; None while the call is still running and
        when it never ran (``"raise"`` mode, a certain deadlock). For a stall,
        how long the loop did not respond.
        """
        value = self.details.get("duration_ms")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return None

    @property
    def message(self) -> str:
        """The advice shown to users: what blocked, where, and what to use instead."""
        where = self.caller
        if self.library_caller and self.library_caller != self.caller:
            where = f"{self.caller} in {self.library_caller}"
        scheduled_via = self.details.get("scheduled_via")
        if isinstance(scheduled_via, str) and scheduled_via:
            # A callback with no user frame: say where it was scheduled.
            if self.user_caller == self.caller:
                where = f"{where}, in a callback scheduled there with {scheduled_via}()"
            else:
                where = (
                    f"{where}, in a callback scheduled with {scheduled_via}() at {self.user_caller}"
                )
        elif self.user_caller and self.user_caller != self.caller:
            where = f"{where} (reached from {self.user_caller})"
        if self.family == "stall":
            duration = self.details.get("duration_ms")
            head = (
                f"The event loop stalled for {duration:.0f} ms"
                if isinstance(duration, (int, float))
                else "The event loop stalled"
            )
            return (
                f"{head} on thread {self.thread_name!r} ({self.loop}); "
                f"the loop thread was busy in {where}. {self.suggestion}"
            )
        if self.family == "thread":
            owner = self.details.get("owner_thread")
            belongs = f"thread {owner!r}" if isinstance(owner, str) else "another thread"
            return (
                f"Wrong-thread call {self.primitive}() from thread {self.thread_name!r}: "
                f"it belongs to {belongs} ({self.loop}), at {where}. {self.suggestion}"
            )
        hint = self.allow_hint
        via = self.details.get("via")
        what = (
            f"{self.primitive}() (via {via})"
            if isinstance(via, str) and via
            else (f"{self.primitive}()")
        )
        return (
            f"Blocking call {what} on thread {self.thread_name!r} "
            f"while {self.loop} was running, at {where}. {self.suggestion}"
            + (f" {hint}" if hint else "")
        )

    def format(self, *, with_stack: bool = True) -> str:
        """Return the message and, optionally, the stack as text."""
        lines = [self.message]
        if with_stack and self.stack:
            lines.append("Stack (most recent call last):")
            for frame in self.stack:
                lines.append(f"  {frame}")
                source = frame.source_line()
                if source:
                    lines.append(f"    {source}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of this finding."""
        data = dataclasses.asdict(self)
        data["stack"] = [frame._asdict() for frame in self.stack]
        data["message"] = self.message
        # Also at the top level for readers of the JSON; from_dict takes it
        # back from details, where it lives.
        data["duration_ms"] = self.duration_ms
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        """Rebuild a finding from :meth:`to_dict` output."""
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in fields}
        kwargs["stack"] = tuple(StackFrame(**frame) for frame in data.get("stack", ()))
        kwargs.setdefault("details", {})
        return cls(**kwargs)


def format_duration(duration_ms: float | None) -> str:
    """``"0.02 ms"``, ``"12.3 ms"``, ``"1.25 s"``; ``"?"`` for an unknown duration."""
    if duration_ms is None:
        return "?"
    if duration_ms >= 1000.0:
        return f"{duration_ms / 1000.0:.2f} s"
    if duration_ms >= 10.0:
        return f"{duration_ms:.1f} ms"
    if duration_ms >= 0.1:
        return f"{duration_ms:.2f} ms"
    return f"{duration_ms:.3f} ms"
