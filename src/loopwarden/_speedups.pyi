# Stub of the optional C extension (src/loopwarden/_speedups.c).
from collections.abc import Callable, Sequence
from typing import Any

ABI: int
#: Whether a free Lock is taken without the acquire call (its layout checked at import).
FAST_LOCK_TAKE: bool

class LockMethod:
    """The lock rules' wrapper: the off-loop and free-lock paths in C."""

    def __init__(
        self,
        original: Callable[..., Any],
        take: Callable[[Any, bool], bool],
        slow: Callable[..., Any],
        running_loop: Callable[[], object],
        probes: dict[int, Any],
        wardens: list[Any],
        held: dict[Any, list[Any]] | None,
        last: object,
    ) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, obj: object, owner: type | None = None) -> Any: ...
    @property
    def python_wrapper(self) -> Callable[..., Any]: ...
    @property
    def raw_take(self) -> int: ...

class StreamMethod:
    """The file-object rules' wrapper: the off-loop and console paths in C."""

    def __init__(
        self,
        original: Callable[..., Any],
        slow: Callable[..., Any],
        running_loop: Callable[[], object],
        probes: dict[int, Any],
        wardens: list[Any],
        console: list[Any] | None,
        sys_dict: dict[str, Any],
        check_timeout: bool,
        handler_kinds: dict[type, bool] | None = None,
        own_selector: bool = False,
    ) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, obj: object, owner: type | None = None) -> Any: ...
    @property
    def python_wrapper(self) -> Callable[..., Any]: ...

# The registry's replay loops (loopwarden.registry, _Plan.native_steps).
def write_patches(
    steps: tuple[tuple[Any, ...], ...],
    patches: tuple[Any, ...],
    journal: list[Any],
    stale: set[type],
    missing: object,
) -> None: ...
def unwrite_patches(
    steps: tuple[tuple[Any, ...], ...], journal: list[Any], stale: set[type], missing: object
) -> None: ...
def all_hold(checks: tuple[tuple[Any, str, Any, Any], ...], missing: object) -> bool: ...
def lookups_hold(lookups: tuple[tuple[Any, str, Any], ...], modules: dict[str, Any]) -> bool: ...
def same_items(a: Sequence[Any], b: Sequence[Any]) -> bool: ...

# CPython 3.10 and 3.11 only (not on Windows): _asyncio._get_running_loop
# without its getpid() system call (loopwarden.threads.running_loop).
def running_loop() -> Any: ...

class MarkMethod:
    """A Qt entry point's dispatch mark: the GUI-thread test and the mark in C."""

    def __init__(
        self,
        original: Callable[..., Any],
        name: str,
        marks: object,
        entries: list[str],
        slow: Callable[..., Any],
    ) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, obj: object, owner: type | None = None) -> Any: ...
    @property
    def python_wrapper(self) -> Callable[..., Any]: ...

class LoopMethod:
    """An asyncio thread-affinity check: the call on the loop's own thread in C."""

    def __init__(
        self,
        original: Callable[..., Any],
        slow: Callable[..., Any],
        running_loop: Callable[[], object],
        bound: bool,
    ) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, obj: object, owner: type | None = None) -> Any: ...
    @property
    def python_wrapper(self) -> Callable[..., Any]: ...

class OwnerMethod:
    """A QObject thread-affinity check: an event loop's own QObjects pass in C."""

    def __init__(
        self,
        original: Callable[..., Any],
        slow: Callable[..., Any],
        verdicts: dict[type, bool],
    ) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, obj: object, owner: type | None = None) -> Any: ...
    @property
    def python_wrapper(self) -> Callable[..., Any]: ...

class InstanceHook:
    """A Shiboken class's __getattribute__ that runs the original under the caller's frame."""

    def __init__(
        self,
        original: Callable[[Any, str], Any],
        table: dict[str, Any],
        make: Callable[[Any, Any, Any], Any],
        slow: Callable[[Any, str], Any],
    ) -> None: ...
    def __call__(self, obj: Any, attr: str) -> Any: ...
    def __get__(self, obj: object, owner: type | None = None) -> Any: ...
    @property
    def python_wrapper(self) -> Callable[[Any, str], Any]: ...

class ScheduleMethod:
    """The scheduling-site wrap: callbacks that need no site pass in C."""

    def __init__(
        self,
        original: Callable[..., Any],
        slow: Callable[..., Any],
        position: int,
        wardens: list[Any],
        running_loop: Callable[[], object],
        probes: dict[int, Any],
        plain: tuple[type, ...],
        futures: tuple[type, ...],
        code_info: dict[Any, Any],
        site_categories: frozenset[int],
    ) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, obj: object, owner: type | None = None) -> Any: ...
    @property
    def python_wrapper(self) -> Callable[..., Any]: ...
