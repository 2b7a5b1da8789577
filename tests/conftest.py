"""Shared test configuration: Qt runs offscreen; loop helpers as fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from rules_support import Peers, open_peers


@pytest.fixture
def peers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Peers]:
    """Real peers for the rule tests (sockets, servers, files), cleaned up after."""
    with open_peers(request, tmp_path) as p:
        yield p
