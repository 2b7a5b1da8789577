"""Shared test configuration: Qt runs offscreen; loop helpers as fixtures."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
