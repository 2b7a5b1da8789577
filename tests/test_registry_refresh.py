"""Registry.refresh(): modules imported after install() get patched later."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

import loopwarden
from loopwarden.registry import Registry


def _fresh_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    # A real module file that is not imported yet when the registry installs.
    (tmp_path / f"{name}.py").write_text("def work(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # setitem first so that monkeypatch removes the module again after the test.
    monkeypatch.setitem(sys.modules, name, None)  # type: ignore[arg-type]
    monkeypatch.delitem(sys.modules, name)


def _anchored_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rules: list[loopwarden.Rule]
) -> Registry:
    # refresh() only acts while something is installed: an already imported
    # "anchor" module gives the registry one patch from the start.
    _fresh_module(tmp_path, monkeypatch, "lw_refresh_anchor")
    importlib.import_module("lw_refresh_anchor")
    return Registry(lambda: [_rule("lw_refresh_anchor"), *rules])


def _rule(name: str) -> loopwarden.Rule:
    return loopwarden.Rule(
        target=f"{name}:work", family="custom", suggestion="n/a", import_module=False
    )


def test_refresh_patches_module_imported_after_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "lw_refresh_late_module"
    _fresh_module(tmp_path, monkeypatch, name)
    reg = _anchored_registry(tmp_path, monkeypatch, [_rule(name)])
    reg.install()  # the late module is not imported yet
    try:
        assert reg.installed
        reg.refresh()  # still nothing; the rule stays pending
        assert f"{name}:work" not in reg.patched_targets()
        module = importlib.import_module(name)
        original = module.work
        reg.refresh()
        assert f"{name}:work" in reg.patched_targets()
        assert module.work is not original
        assert module.work(1) == 2
    finally:
        reg.uninstall()
    assert module.work is original


def test_refresh_sees_rule_added_after_a_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "lw_refresh_added_rule"
    _fresh_module(tmp_path, monkeypatch, name)
    reg = _anchored_registry(tmp_path, monkeypatch, [])
    reg.install()
    try:
        reg.refresh()
        reg.add_rule(_rule(name))  # its module is not imported yet
        module = importlib.import_module(name)
        original = module.work
        reg.refresh()
        assert module.work is not original
    finally:
        reg.uninstall()
    assert module.work is original
