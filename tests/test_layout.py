"""The package layout: the core never imports a detector package.

loopwarden is three detectors (blocking-call rules, the stall watchdog, thread
affinity) over one core (docs/architecture.md). Importing a core module alone,
in a fresh interpreter, must not load any detector package: that is what lets
the pytest plugin read the configuration, and ``registry``/``engine`` serve
every detector, without dragging the others in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import loopwarden

#: The shared core (docs/architecture.md, "The core").
CORE = (
    "loopwarden._one_copy",
    "loopwarden.allowances",
    "loopwarden.c_wrappers",
    "loopwarden.config",
    "loopwarden.console_streams",
    "loopwarden.engine",
    "loopwarden.errors",
    "loopwarden.families",
    "loopwarden.findings",
    "loopwarden.frames",
    "loopwarden.modes",
    "loopwarden.native",
    "loopwarden.patching",
    "loopwarden.registry",
    "loopwarden.rules",
    "loopwarden.scheduling",
    "loopwarden.sites",
    "loopwarden.suggest",
    "loopwarden.threads",
    "loopwarden.uninterruptible",
    "loopwarden.wraps",
    "loopwarden.report",
    "loopwarden.api",
    "loopwarden.env",
)

DETECTORS = ("loopwarden.blocking", "loopwarden.watchdog", "loopwarden.affinity")

_PROBE = """
import json, sys
import {module}
{then}
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after_import(module: str, then: str = "") -> list[str]:
    src = str(Path(loopwarden.__file__).parent.parent)
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module, then=then)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": src},
        check=True,
    )
    loaded: list[str] = json.loads(result.stdout)
    return loaded


@pytest.mark.parametrize("module", CORE)
def test_core_module_loads_no_detector_package(module: str) -> None:
    loaded = _modules_after_import(module)
    assert module in loaded  # the probe really imported it
    detectors = [m for m in loaded if m.startswith(DETECTORS)]
    assert detectors == [], f"{module} imports detector packages: {detectors}"


def test_a_detector_package_does_load_when_imported() -> None:
    # The check above can fail: importing a detector shows up in sys.modules.
    loaded = _modules_after_import("loopwarden.watchdog")
    assert "loopwarden.watchdog.heartbeats" in loaded
    assert "loopwarden.engine" in loaded  # it sits on the core


def test_the_rule_tables_load_only_when_the_registry_asks() -> None:
    # families (core) names the tables; asking it for the rules imports every
    # detector's tables, so the check above would see a top-level import of them.
    loaded = _modules_after_import("loopwarden.families", "loopwarden.families.default_rules()")
    assert "loopwarden.blocking.sync" in loaded
    assert "loopwarden.blocking.socket_readiness" in loaded
    assert "loopwarden.affinity.family" in loaded
