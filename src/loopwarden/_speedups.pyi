# Stub of the optional C extension (src/loopwarden/_speedups.c).
from collections.abc import Callable
from typing import Any

ABI: int

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
