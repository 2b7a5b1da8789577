"""The registry reuses a rule's wrapper across installs, and the reuse cache stays bounded."""

from __future__ import annotations

import time

import pytest

import loopwarden
from loopwarden import registry as registry_module
from loopwarden.registry import Registry
from loopwarden.rules import Rule


def test_a_second_guard_installs_the_very_same_wrappers() -> None:
    with loopwarden.guard(mode="record"):
        first = time.sleep
    assert time.sleep is not first  # restored in between
    with loopwarden.guard(mode="record"):
        assert time.sleep is first
        assert first.__loopwarden_rule__.target == "time:sleep"  # type: ignore[attr-defined]


def test_rules_made_afresh_for_every_install_do_not_grow_the_cache_without_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry_module, "_WRAPPER_CACHE_BOUND", 50)

    def fresh_rules() -> list[Rule]:
        return [Rule(target="time:sleep", family="sleep", suggestion="use asyncio.sleep")]

    registry = Registry(rule_source=fresh_rules, wrap_source=list)
    for _ in range(200):
        registry.install()
        assert getattr(time.sleep, "__loopwarden_rule__", None) is not None
        registry.uninstall()
    assert getattr(time.sleep, "__loopwarden_rule__", None) is None
    assert len(registry_module._wrapper_cache) <= 50
