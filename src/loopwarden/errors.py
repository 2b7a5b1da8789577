"""Exceptions and warnings raised by loopwarden."""

from __future__ import annotations

# Not typing.TYPE_CHECKING: `import loopwarden` must not pay for importing typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from loopwarden.findings import Finding

__all__ = ["BlockingCallError", "BlockingCallWarning", "ConfigError"]


class BlockingCallError(RuntimeError):
    """Raised at the call site of a blocking call in ``"raise"`` mode.

    Attributes:
        finding: The :class:`~loopwarden.Finding` that describes the call.
    """

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding

    def __reduce__(self) -> tuple[type[BlockingCallError], tuple[Finding]]:
        # Keeps the error picklable (pytest-xdist sends failures between processes).
        return (type(self), (self.finding,))


class BlockingCallWarning(RuntimeWarning):
    """Emitted in ``"warn"`` mode, attributed to the line that made the call.

    Use ``-W error::loopwarden.BlockingCallWarning`` or pytest's
    ``filterwarnings`` to turn it into an error.
    """


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the valid values."""
