"""'Did you mean ...?' for mistyped names (a leaf module: standard library only)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["closest_names", "did_you_mean"]


def closest_names(name: str, candidates: Iterable[str], *, limit: int = 3) -> list[str]:
    """The valid names closest to a mistyped ``name`` (difflib), best first."""
    return difflib.get_close_matches(name, sorted(set(candidates)), n=limit, cutoff=0.75)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'a' or 'b'?"``, or ``""`` when nothing is close."""
    close = closest_names(name, candidates)
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
