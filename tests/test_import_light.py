"""`import loopwarden` and the configuration reader load none of the patching core."""

from __future__ import annotations

import subprocess
import sys

import pytest

import loopwarden

CORE = (
    "engine",
    "registry",
    "patching",
    "warden",
    "watchdog",
    "families",
    "blocking",
    "report",
    "api",
)

_PROBE = """
import sys
{code}
print(sorted(m for m in {core!r} if "loopwarden." + m in sys.modules))
"""


@pytest.mark.parametrize(
    "code",
    [
        "import loopwarden; assert loopwarden.activate_from_env({}) is None",
        "import loopwarden.config as c; c.settings_from_table({'allow': ['x:y = z']})",
        "import loopwarden; loopwarden.ConfigError, loopwarden.__version__",
    ],
    ids=["activate-from-env-off", "config-reader", "errors-and-version"],
)
def test_light_imports_load_no_core(code: str) -> None:
    probe = _PROBE.format(code=code, core=CORE)
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"


def test_public_names_still_resolve() -> None:
    for name in loopwarden.__all__:
        assert getattr(loopwarden, name) is not None, name
    assert set(loopwarden.__all__) <= set(dir(loopwarden))
    from loopwarden import Warden, guard

    assert guard is loopwarden.guard and isinstance(Warden, type)
    with pytest.raises(AttributeError, match="no attribute 'gaurd'"):
        loopwarden.gaurd  # noqa: B018 - the attribute access is the test
