"""Rows of thread-affinity rules: one rule per method of a class, all alike but the name."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from loopwarden.rules import Rule


def method_rules(
    module: str,
    cls: str,
    methods: Iterable[str],
    *,
    prefix: str,
    suggestion: str,
    condition: str,
    import_module: bool,
    wrap: Callable[[Rule, Any], Any],
) -> list[Rule]:
    """A ``thread``-family rule for each method of ``module:cls``, named ``prefix.method``."""
    return [
        Rule(
            target=f"{module}:{cls}.{method}",
            family="thread",
            suggestion=suggestion,
            condition=condition,
            name=f"{prefix}.{method}",
            import_module=import_module,
            wrap=wrap,
        )
        for method in methods
    ]
