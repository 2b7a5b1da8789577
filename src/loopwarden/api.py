"""Process-wide customisation: extra rules and allowances from code."""

from __future__ import annotations

from collections.abc import Iterable

from loopwarden import engine
from loopwarden.allowances import Allowance, check_allowance, parse_allowance
from loopwarden.findings import Family
from loopwarden.registry import registry
from loopwarden.rules import BlocksWhen, Rule

__all__ = ["allow", "disallow", "mark_blocking", "unmark_blocking"]


def mark_blocking(
    target: str,
    *,
    suggestion: str,
    family: Family = "custom",
    blocks_when: BlocksWhen | None = None,
    condition: str = "always",
) -> Rule:
    """Treat a third-party function as blocking, process-wide.

    Args:
        target: ``"package.module:function"`` or ``"package.module:Class.method"``.
        suggestion: What to use instead; shown in every finding.
        family: Family of the findings (default ``"custom"``).
        blocks_when: Optional predicate on the call's arguments.
        condition: Human-readable form of ``blocks_when`` for the rules reference.

    Returns:
        The new :class:`~loopwarden.Rule`; pass it to :func:`unmark_blocking`
        to remove it. If detection is active, the target is patched at once.

    Raises:
        ConfigError: if ``target`` is malformed, or (for an imported module)
            does not exist or names a class rather than a function or method.

    Example:
        >>> import loopwarden
        >>> rule = loopwarden.mark_blocking(
        ...     "json:load", suggestion="Parse in a worker thread.", family="filesystem")
        >>> loopwarden.unmark_blocking(rule)
    """
    # Imported here: loopwarden.config is the light configuration reader.
    from loopwarden.config import check_rule_target

    check_rule_target(target, where="mark_blocking()")
    rule = Rule(
        target=target,
        family=family,
        suggestion=suggestion,
        blocks_when=blocks_when,
        condition=condition,
    )
    registry.add_rule(rule)
    return rule


def unmark_blocking(rule: Rule) -> None:
    """Remove a rule added with :func:`mark_blocking` and restore its target."""
    registry.remove_rule(rule)


def allow(spec: str, *, reason: str, primitives: Iterable[str] = ()) -> Allowance:
    """Accept blocking calls made inside ``"package.module:qualname"``, process-wide.

    Args:
        spec: ``"package.module"`` (the whole module or package) or
            ``"package.module:qualname"`` (a function, or a class's methods).
        reason: Why blocking is acceptable there. Required.
        primitives: Only these primitives or families; none: all.

    Returns:
        The :class:`~loopwarden.Allowance`; pass it to :func:`disallow` to remove it.

    Raises:
        ConfigError: for a malformed spec, a missing reason, an unknown primitive
            or family, or a qualname that does not exist in an already imported
            module (naming the closest names). A module that is not imported yet
            is not checked.
    """
    allowance = check_allowance(parse_allowance(spec, reason, primitives), where="allow()")
    engine.global_allowances.append(allowance)
    return allowance


def disallow(allowance: Allowance) -> None:
    """Remove an allowance added with :func:`allow`."""
    if allowance in engine.global_allowances:
        engine.global_allowances.remove(allowance)
