"""The modes a warden can run in (a leaf module: the config reader needs it without the core)."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["MODES", "Mode"]

Mode = Literal["raise", "warn", "record"]
#: The modes a warden can run in.
MODES: tuple[str, ...] = get_args(Mode)
