"""Fixtures for the pytest-plugin tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def offscreen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Qt offscreen and no LOOPWARDEN for in-process pytester runs."""
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.delenv("LOOPWARDEN", raising=False)
