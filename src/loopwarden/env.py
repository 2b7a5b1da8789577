"""Switching detection on from the environment, at an application's start-up.

::

    import loopwarden
    loopwarden.activate_from_env()      # early in main()

    $ LOOPWARDEN=warn LOOPWARDEN_REPORT=blocking.html python app.py

Variables:

* ``LOOPWARDEN``: ``raise``, ``warn``, ``record`` or ``off``. Unset, empty or
  ``off``: nothing is patched and nothing else is read.
* ``LOOPWARDEN_STALL_MS``: stall watchdog threshold in milliseconds (0: off).
* ``LOOPWARDEN_REPORT``: ``path.json`` or ``path.html``, checked at once and
  written at exit, on SIGTERM and every minute while new findings come in
  (atomically; ``{pid}`` in the name is replaced by the process id, and a
  child process that inherits the variable writes ``path.pid<N>.html``).
* ``LOOPWARDEN_MAX_FINDINGS``: full findings kept (later ones are only counted).
* ``LOOPWARDEN_ALLOW``: comma-separated ``package.module:qualname`` allowances.

Settings not given in the environment come from ``[tool.loopwarden]`` in the
nearest pyproject.toml (see :mod:`loopwarden.config` for the precedence).
"""

from __future__ import annotations

import os
import sys
import threading

from loopwarden.errors import ConfigError

# Not typing.TYPE_CHECKING: with detection off this module must stay cheap to import.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from loopwarden.config import Settings
    from loopwarden.report import FindingCollector
    from loopwarden.warden import Warden

# The switch's name. The core, config and report modules are imported only once
# it is set, so `import loopwarden` + `activate_from_env()` stays light when off.
ENV_MODE = "LOOPWARDEN"

__all__ = ["activate_from_env", "warden_options"]

_lock = threading.Lock()
_hook_registered = False


def warden_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``activate()`` or ``guard()`` from merged settings."""
    options: dict[str, Any] = {
        "mode": settings.warden_mode,
        "allow": list(settings.allow),
        "rules": list(settings.rules),
    }
    if settings.watchdog_ms is not None:
        options["stall_ms"] = settings.watchdog_ms
    if settings.max_findings is not None:
        options["max_findings"] = settings.max_findings
    return options


def activate_from_env(
    environ: Mapping[str, str] | None = None,
    *,
    start_dir: str | os.PathLike[str] | None = None,
) -> Warden | None:
    """Switch detection on if ``LOOPWARDEN`` asks for it.

    Never raises: a bad value prints one line to stderr that names the valid
    values, and detection stays off. Calling it again replaces the options
    of the earlier activation (like :func:`loopwarden.activate`).

    Args:
        environ: The variables to read (default: ``os.environ``).
        start_dir: Where to look for pyproject.toml (default: the current directory).

    Returns:
        The active :class:`~loopwarden.Warden`, or None when detection is off.
    """
    env = os.environ if environ is None else environ
    raw = env.get(ENV_MODE)
    # The common case must cost next to nothing: one dict lookup.
    if not raw or raw.strip().lower() in ("", "off"):
        return None
    try:
        from loopwarden.config import Settings, load_pyproject_config, settings_from_env
        from loopwarden.report import FindingCollector
        from loopwarden.warden import activate

        settings = Settings.merge(settings_from_env(env), load_pyproject_config(start_dir))
        if settings.warden_mode == "off":
            return None
        collector = FindingCollector() if settings.report else None
        options = warden_options(settings)
        if collector is not None:
            options["on_finding"] = collector
            collector.meta.update(
                command=" ".join(sys.argv),
                mode=settings.warden_mode,
                stall_ms=settings.watchdog_ms,
            )
        warden = activate(**options)
        # An absolute path: the app may change directory before it exits.
        report = os.path.abspath(settings.report) if settings.report else None
        _set_exit_report(collector, report, environ)
        return warden
    except ConfigError as exc:
        print(f"loopwarden: {exc}; detection is off", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - never crash the host app at start-up
        print(
            f"loopwarden: could not switch detection on ({type(exc).__name__}: {exc}); "
            "detection is off",
            file=sys.stderr,
        )
    return None


def _set_exit_report(
    collector: FindingCollector | None, path: str | None, environ: Mapping[str, str] | None
) -> None:
    from loopwarden import env_report

    if collector is None or path is None:
        env_report.disarm()
        return
    owner = env_report.claim(environ)
    if env_report.arm(collector, path, owner):
        _watch_deactivation()


def _watch_deactivation() -> None:
    """Once: when ``deactivate()`` switches detection off, give SIGTERM back."""
    global _hook_registered
    with _lock:
        if _hook_registered:
            return
        _hook_registered = True
    from loopwarden import env_report
    from loopwarden import warden as _warden

    def on_state_change() -> None:
        current = _warden._global_warden
        if current is None or not current.active:
            env_report.release()

    _warden.state_hooks.append(on_state_change)
