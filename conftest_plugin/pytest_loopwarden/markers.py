"""Markers: ``allow_blocking`` and ``block_detect``, read once per test."""

from __future__ import annotations

import dataclasses

import pytest

from loopwarden.suggest import did_you_mean
from pytest_loopwarden.options import PLUGIN_MODES

__all__ = ["MARKERS", "ItemOptions", "check_marker_names", "item_options", "register_markers"]

#: Marker name -> the line ``pytest --markers`` shows.
MARKERS: dict[str, str] = {
    "allow_blocking": "allow_blocking(*primitives, reason): loopwarden accepts blocking calls "
    "in this test: all of them, or only the given primitives or families "
    "('time.sleep', 'filesystem'). reason= is required.",
    "block_detect": "block_detect(mode): loopwarden mode for this test only: "
    + ", ".join(PLUGIN_MODES)
    + ". Has no effect unless --block-detect is on.",
}


def register_markers(config: pytest.Config) -> None:
    """Register the markers, so ``--strict-markers`` accepts them (plugin on or off)."""
    for text in MARKERS.values():
        # "name(args): help" is how pytest's own markers read in `pytest --markers`.
        config.addinivalue_line("markers", text)


def check_marker_names(items: list[pytest.Item]) -> None:
    """Reject unknown primitive or family names in ``allow_blocking`` markers, before any test runs.

    A typo (``"filesytem"``) would otherwise allow nothing and pass silently.

    Raises:
        pytest.UsageError: naming the test, the bad name and the closest valid names.
    """
    from loopwarden.allowances import check_primitive_names
    from loopwarden.errors import ConfigError

    for item in items:
        for marker in item.iter_markers("allow_blocking"):
            names = [p for p in marker.args if isinstance(p, str) and p]
            if not names:
                continue
            try:
                check_primitive_names(names, where=f"{item.nodeid}: @pytest.mark.allow_blocking")
            except ConfigError as exc:
                raise pytest.UsageError(str(exc)) from None


def _unknown_names(names: list[str], nodeid: str) -> str | None:
    from loopwarden.allowances import check_primitive_names
    from loopwarden.errors import ConfigError

    try:
        check_primitive_names(names, where=f"{nodeid}: @pytest.mark.allow_blocking")
    except ConfigError as exc:
        return str(exc)
    return None


@dataclasses.dataclass(frozen=True)
class ItemOptions:
    """One test's loopwarden options, from its markers."""

    mode: str
    allow_all: bool = False
    allowed: frozenset[str] = frozenset()
    error: str | None = None


def item_options(item: pytest.Item, default_mode: str) -> ItemOptions:
    """Read ``item``'s markers; misuse is reported in ``error`` (the test then errors)."""
    mode = default_mode
    marker = item.get_closest_marker("block_detect")
    if marker is not None:
        value = marker.args[0] if marker.args else marker.kwargs.get("mode")
        if value not in PLUGIN_MODES:
            return ItemOptions(
                mode,
                error=f"@pytest.mark.block_detect({value!r}): invalid mode"
                f"{did_you_mean(str(value), PLUGIN_MODES)}; "
                f"valid modes: {', '.join(PLUGIN_MODES)}",
            )
        mode = str(value)
    allow_all = False
    allowed: set[str] = set()
    for allow in item.iter_markers("allow_blocking"):
        reason = allow.kwargs.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            return ItemOptions(
                mode,
                error="@pytest.mark.allow_blocking needs reason='...': say why blocking "
                "is acceptable in this test",
            )
        bad = [p for p in allow.args if not isinstance(p, str) or not p]
        if bad:
            return ItemOptions(
                mode,
                error=f"@pytest.mark.allow_blocking: primitives must be names such as "
                f"'time.sleep' or families such as 'filesystem', got {bad!r}",
            )
        if allow.args:
            error = _unknown_names(list(allow.args), item.nodeid)
            if error:
                return ItemOptions(mode, error=error)
            allowed.update(allow.args)
        else:
            allow_all = True
    return ItemOptions(mode, allow_all=allow_all, allowed=frozenset(allowed))
