"""pytest plugin for loopwarden: ``pytest --block-detect`` guards every test.

Loaded through the ``pytest11`` entry point and inert unless switched on
(``--block-detect[=MODE]`` or the ini option ``block_detect``): when off, it
registers its options, markers and the ``loopwarden`` fixture and nothing
else; no patches, no per-test hooks.

Modules: :mod:`~pytest_loopwarden.options` (options and settings; ``[tool.loopwarden]``
and ``LOOPWARDEN_ALLOW`` through :mod:`loopwarden.config`, the shared reader),
:mod:`~pytest_loopwarden.markers`, :mod:`~pytest_loopwarden.runtime`
(per-test hooks), :mod:`~pytest_loopwarden.wardens` (the per-test warden),
:mod:`~pytest_loopwarden.records`, :mod:`~pytest_loopwarden.summary`
(failures and the terminal summary), :mod:`~pytest_loopwarden.reporting`
(JSON), :mod:`~pytest_loopwarden.xdist_support`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from pytest_loopwarden.markers import register_markers
from pytest_loopwarden.options import add_options, resolve_settings, split_bare_flag

if TYPE_CHECKING:
    # Imported lazily: loopwarden is loaded only when the plugin is switched on
    # (or a test asks for the fixture), so being installed costs nothing.
    from pytest_loopwarden.runtime import BlockDetectPlugin
    from pytest_loopwarden.wardens import TestWarden

__all__ = ["RUNTIME_KEY"]

#: Where the running per-test plugin is kept on ``config.stash`` (absent when off).
RUNTIME_KEY: pytest.StashKey[BlockDetectPlugin] = pytest.StashKey()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--block-detect`` and friends."""
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    """Read ``--block-detect tests/`` as the bare flag followed by a path."""
    split_bare_flag(args)


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers; switch the per-test machinery on if asked to."""
    register_markers(config)
    settings = resolve_settings(config)
    if not settings.enabled:
        return
    from pytest_loopwarden.runtime import BlockDetectPlugin

    plugin = BlockDetectPlugin(config, settings)
    config.stash[RUNTIME_KEY] = plugin
    config.pluginmanager.register(plugin, "loopwarden-runtime")


@pytest.fixture(name="loopwarden")
def loopwarden_fixture(request: pytest.FixtureRequest) -> Iterator[TestWarden]:
    """The test's active warden: its findings so far, ``allow()``, ``add_rule()``.

    Without ``--block-detect`` (or with detection off for this test) it is a
    record-mode warden active for this test only, so tests can still inspect
    findings.
    """
    plugin = request.config.stash.get(RUNTIME_KEY, None)
    warden = plugin.warden_for(request.node) if plugin is not None else None
    if warden is not None:
        yield warden
        return
    from pytest_loopwarden.wardens import TestWarden

    own = TestWarden("record")
    with own:
        yield own
