"""A Ctrl-C anywhere in patching a built-in type never leaves CPython's caches stale.

CPython caches what a lookup on a type found, as a borrowed pointer, for as long
as the type's version tag is unchanged. loopwarden writes built-in types'
dictionaries directly and then calls ``PyType_Modified``; a dictionary written
without that call makes a lookup disagree with the dictionary (and, once the
replaced object is freed, crash). This checks that no interruption point of a
patch-and-rollback cycle, rollback restarted as the registry does, leaves it so.
"""

from __future__ import annotations

import _thread
import contextlib
from typing import Any

from interrupts import injection_points, interrupt_at
from loopwarden.patching import Patch, apply_patch, revert_patch

_OWNER = _thread.LockType
_ORIGINAL = _OWNER.__dict__["locked"]


def _replacement(self: Any) -> bool:
    return bool(_ORIGINAL(self))


def _roll_back(journal: list[Patch]) -> None:
    # What the registry does: revert, then forget; restartable.
    while journal:
        revert_patch(journal[-1])
        journal.pop()


def test_an_interrupt_anywhere_in_a_built_in_type_patch_leaves_lookups_consistent() -> None:
    journal: list[Patch] = []

    def cycle() -> None:
        try:
            apply_patch(_OWNER, "locked", _replacement, journal)
            _OWNER.locked  # noqa: B018 - the app looks it up: the cache holds the replacement
        finally:
            _roll_back(journal)

    points = injection_points(cycle, rounds=1)
    assert len(points) >= 4
    for point in points:
        with contextlib.suppress(KeyboardInterrupt), interrupt_at(point):
            cycle()
        _roll_back(journal)  # the interrupted rollback, run again
        assert _OWNER.__dict__["locked"] is _ORIGINAL, point
        assert _OWNER.locked is _ORIGINAL, point  # the cache agrees with the dictionary
        assert _thread.allocate_lock().locked() is False
