"""Allowances: places where a blocking call is knowingly accepted.

Three kinds, checked in this order on a guarded thread:

1. :func:`allow_blocking` scopes (context-local: under asyncio they cover only
   the current task);
2. default allowances (:data:`DEFAULT_ALLOWANCES`): standard-library machinery
   such as imports, logging and warnings that excuse a call when they stand
   between it and the nearest frame outside the standard library; and tool
   frames (pytest, pluggy, coverage, debuggers) when they *are* that frame;
3. user allowances (:class:`Allowance`, ``"package.module:qualname"``), which
   excuse a call made anywhere inside the named function, like BlockHound's
   ``allowBlockingCallsInside`` (within the callback chain the loop is
   running: the function that started the loop does not allow everything).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import sys
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TypeVar, cast

from loopwarden.errors import ConfigError
from loopwarden.suggest import did_you_mean

__all__ = [
    "DEFAULT_ALLOWANCES",
    "Allowance",
    "allow_blocking",
    "check_allowance",
    "check_allowance_target",
    "check_primitive_names",
    "known_primitive_names",
    "parse_allowance",
]

_F = TypeVar("_F", bound=Callable[..., Any])

# Parts of a __qualname__ that are not identifiers ("outer.<locals>.inner").
_QUALNAME_MARKERS = frozenset({"<locals>", "<lambda>"})

#: Everything blocking is allowed in this scope.
ALL: frozenset[str] = frozenset({"*"})

#: The primitives (or families) allowed in the current context; empty: none.
allowed_here: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "loopwarden_allowed_here", default=frozenset()
)


@dataclasses.dataclass(frozen=True)
class Allowance:
    """Blocking accepted inside a function, module or package.

    Attributes:
        module: Module or package name; a package covers its submodules.
        qualname: Function qualname inside ``module`` (``"Class.method"``); a
            class name covers its methods. Empty: the whole module.
        reason: Why it is acceptable (shown in reports and required).
        primitives: Only these primitives or families; empty: all.
    """

    module: str
    qualname: str
    reason: str
    primitives: frozenset[str] = frozenset()

    def matches_frame(self, module: str, qualname: str) -> bool:
        """True if a frame of ``module`` running ``qualname`` is covered."""
        if module != self.module and not module.startswith(self.module + "."):
            return False
        if not self.qualname:
            return True
        return qualname == self.qualname or qualname.startswith(self.qualname + ".")

    def covers(self, primitive: str, family: str) -> bool:
        """True if this allowance applies to ``primitive`` of ``family``."""
        return not self.primitives or primitive in self.primitives or family in self.primitives

    @property
    def spec(self) -> str:
        """The ``"module:qualname"`` text this allowance was made from."""
        return f"{self.module}:{self.qualname}" if self.qualname else self.module


def parse_allowance(spec: str, reason: str, primitives: Iterable[str] = ()) -> Allowance:
    """Build an :class:`Allowance` from ``"package.module:qualname"``.

    Raises:
        ConfigError: if ``spec`` or ``reason`` is empty or malformed.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(
            f"allowance {spec!r} must be 'package.module' or 'package.module:qualname'"
        )
    if not isinstance(reason, str) or not reason.strip():
        raise ConfigError(f"allowance {spec!r} needs a reason: say why blocking is acceptable")
    module, _, qualname = spec.strip().partition(":")
    if not module or any(not part.isidentifier() for part in module.split(".")):
        raise ConfigError(
            f"allowance {spec!r}: {module!r} is not a module name "
            "(expected 'package.module' or 'package.module:qualname')"
        )
    if qualname and not all(
        part.isidentifier() or part in _QUALNAME_MARKERS for part in qualname.split(".")
    ):
        raise ConfigError(
            f"allowance {spec!r}: {qualname!r} is not a qualified name; expected "
            "'package.module:function' or 'package.module:Class.method' (a reason goes in "
            "its own field, or after '=' where a text form is accepted)"
        )
    return Allowance(module, qualname, reason.strip(), frozenset(primitives))


def check_allowance_target(allowance: Allowance, *, where: str = "allowance") -> Allowance:
    """Check that an allowance's qualname exists, when its module is already imported.

    A module that is not imported yet is not imported here (that would run the
    application's code at an unexpected time): its allowance is accepted as
    written, and a typo in it simply never matches. Imported modules, which is
    the usual case for ``allow()`` called from the application itself, are
    checked attribute by attribute.

    Raises:
        ConfigError: naming the missing attribute and the closest existing names.
    """
    module = sys.modules.get(allowance.module)
    if module is None or not allowance.qualname:
        return allowance
    owner: Any = module
    for part in allowance.qualname.split("."):
        if part in _QUALNAME_MARKERS:
            break  # a function's locals cannot be looked up
        if not hasattr(owner, part):
            name = getattr(owner, "__qualname__", None) or getattr(owner, "__name__", "?")
            raise ConfigError(
                f"{where} {allowance.spec!r}: {name!r} has no attribute {part!r}"
                f"{did_you_mean(part, dir(owner))}"
            )
        owner = getattr(owner, part)
    return allowance


def check_allowance(
    allowance: Allowance, *, where: str = "allowance", extra_names: Iterable[str] = ()
) -> Allowance:
    """Both checks for an allowance about to take effect: its target and its primitives.

    Raises:
        ConfigError: for a missing qualname (imported modules only) or an unknown
            primitive or family, naming the closest valid names.
    """
    check_allowance_target(allowance, where=where)
    if allowance.primitives:
        check_primitive_names(
            sorted(allowance.primitives - set(extra_names)), where=f"{where} {allowance.spec!r}"
        )
    return allowance


#: Primitive names a finding can carry that are not rule names. Detectors that
#: make findings without a rule register their names here (the watchdog: "stall").
EXTRA_PRIMITIVES: set[str] = {"stall"}

# The names known at the last check; refreshed when a name is missing from it,
# so the common case (a valid name) costs one set lookup.
_known_names: frozenset[str] = frozenset()


def known_primitive_names() -> frozenset[str]:
    """Every name ``allow_blocking()`` and ``primitives=`` accept right now.

    Families, the names of every rule (built in, :func:`loopwarden.mark_blocking`,
    and those passed to an active warden), and :data:`EXTRA_PRIMITIVES`.
    """
    from loopwarden import engine
    from loopwarden.findings import FAMILIES
    from loopwarden.registry import registry

    names = set(FAMILIES) | EXTRA_PRIMITIVES | {rule.name for rule in registry.rules()}
    for warden in list(engine.active_wardens):
        names.update(rule.name for rule in getattr(warden, "_rules", ()))
    return frozenset(names)


def check_primitive_names(names: Iterable[object], *, where: str) -> tuple[str, ...]:
    """Validate primitive or family names; a typo is an error naming the closest valid names.

    Raises:
        ConfigError: for a name that is not a primitive, a family or a rule name.
    """
    global _known_names
    checked = tuple(names)
    for name in checked:
        if not isinstance(name, str) or not name:
            raise ConfigError(
                f"{where}: primitives must be names such as 'time.sleep' or families such "
                f"as 'filesystem', got {name!r}"
            )
    unknown = [n for n in checked if n not in _known_names]
    if unknown:
        _known_names = known_primitive_names()
        for name in unknown:
            if name not in _known_names:
                raise ConfigError(
                    f"{where}: unknown primitive or family {name!r}"
                    f"{did_you_mean(str(name), _known_names)} (families: "
                    + ", ".join(_families())
                    + "; 'python -m loopwarden rules' lists every primitive)"
                )
    return cast("tuple[str, ...]", checked)


def _families() -> tuple[str, ...]:
    from loopwarden.findings import FAMILIES

    return FAMILIES


#: Standard-library code that excuses a blocking call when it stands between
#: the call and the nearest frame outside the standard library. Each entry is
#: ``"module"`` (the whole module) or ``"module:qualname"``.
@dataclasses.dataclass(frozen=True)
class _AllowanceExcept(Allowance):
    """A default allowance for a module except some of its functions."""

    excluding: frozenset[str] = frozenset()

    def matches_frame(self, module: str, qualname: str) -> bool:
        if module == self.module and qualname in self.excluding:
            return False
        return super().matches_frame(module, qualname)


_LOG_CALLS = ("debug", "info", "warning", "warn", "error", "exception", "critical", "fatal", "log")

#: logging's dispatch from a logger call to its handlers. It is not excused, so
#: that the handler rule (``logging.Handler.handle``, which reports handlers
#: writing to files) sees the application's logging call; everything a handler
#: does inside is that rule's business alone.
_LOGGING_DISPATCH = frozenset(
    {
        *_LOG_CALLS,
        *(f"Logger.{name}" for name in (*_LOG_CALLS, "_log", "handle", "callHandlers")),
        *(f"LoggerAdapter.{name}" for name in (*_LOG_CALLS, "_log")),
    }
)

_LOGGING = _AllowanceExcept(
    "logging",
    "",
    "logging's own machinery (configuration, handler set-up, its module lock); a handler "
    "writing records to a file is reported by the logging.Handler.handle rule",
    excluding=_LOGGING_DISPATCH,
)

DEFAULT_ALLOWANCES: tuple[Allowance, ...] = tuple(
    _LOGGING if spec == "logging" else parse_allowance(spec, reason)
    for spec, reason in (
        ("importlib._bootstrap", "the import system reads and stats module files"),
        ("importlib._bootstrap_external", "the import system reads and stats module files"),
        ("_frozen_importlib", "the import system reads and stats module files"),
        ("_frozen_importlib_external", "the import system reads and stats module files"),
        ("zipimport", "the import system reads zipped modules"),
        ("importlib.metadata", "entry-point discovery made by tools at start-up"),
        ("linecache", "traceback formatting reads source lines"),
        ("tokenize", "traceback formatting reads source lines"),
        ("traceback", "traceback formatting reads source lines"),
        ("logging", "logging writes synchronously by design; use a QueueHandler for slow sinks"),
        ("warnings", "the warnings machinery writes to stderr and reads source lines"),
        ("pdb", "a debugger waits for input on purpose"),
        ("bdb", "a debugger waits for input on purpose"),
        ("threading:Thread.start", "waits a moment for the new thread to start"),
        ("threading:_shutdown", "interpreter shutdown joins threads after the loop is gone"),
        ("concurrent.futures.thread:_python_exit", "interpreter shutdown joins workers"),
        (
            "asyncio.base_events:BaseEventLoop.shutdown_default_executor",
            "runs its join in a thread",
        ),
    )
)


class allow_blocking:  # noqa: N801 - reads like a function at the call site
    """Accept blocking calls in a block of code or a function.

    Usable as a context manager or as a decorator (sync or ``async def``).
    The allowance is context-local: under asyncio it covers only the current
    task, never other tasks that run while this one awaits.

    Args:
        *primitives: Only these primitives (``"time.sleep"``) or families
            (``"filesystem"``); none given: everything.
        reason: Why blocking is acceptable here. Required.

    Example:
        >>> import time, loopwarden
        >>> with loopwarden.allow_blocking(reason="start-up, before the UI shows"):
        ...     time.sleep(0)
    """

    def __init__(self, *primitives: str, reason: str) -> None:
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError("allow_blocking() needs a reason: say why blocking is acceptable")
        if primitives:
            check_primitive_names(primitives, where="allow_blocking()")
        self.primitives = frozenset(primitives) if primitives else ALL
        self.reason = reason
        self._tokens: list[contextvars.Token[frozenset[str]]] = []

    def __enter__(self) -> allow_blocking:
        current = allowed_here.get()
        self._tokens.append(allowed_here.set(current | self.primitives))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        allowed_here.reset(self._tokens.pop())

    def __call__(self, func: _F) -> _F:
        """Use as a decorator: every call of ``func`` runs inside the allowance."""
        # Imported here: the config reader imports this module, and must stay light.
        import asyncio

        primitives, reason = tuple(self.primitives - ALL), self.reason

        if asyncio.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with allow_blocking(*primitives, reason=reason):
                    return await func(*args, **kwargs)

            return cast(_F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # A fresh scope per call keeps the decorator re-entrant and thread-safe.
            with allow_blocking(*primitives, reason=reason):
                return func(*args, **kwargs)

        return cast(_F, wrapper)
