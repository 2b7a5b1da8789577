"""The troubleshooting page's headings are the messages users really see.

Each test produces a message from the code itself and checks that
``docs/troubleshooting.md`` has it as a heading, so a reworded message fails
here until the page follows.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import pytest

import loopwarden
from loopwarden import registry
from loopwarden.findings import Finding

PAGE = Path(__file__).resolve().parents[1] / "docs" / "troubleshooting.md"
HEADINGS = [
    match.group(1)
    for match in re.finditer(r"^#{2,4} `(.+)`$", PAGE.read_text(encoding="utf-8"), re.MULTILINE)
]


def _error_message(make: Callable[[], object]) -> str:
    with pytest.raises((loopwarden.ConfigError, ValueError)) as info:
        make()
    return str(info.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: loopwarden.guard(mode="fail"),  # type: ignore[arg-type]
        lambda: loopwarden.allow_blocking(reason=""),
        lambda: loopwarden.allow("myapp.startup:load_settings", reason=""),
        lambda: loopwarden.allow("", reason="x"),
        lambda: loopwarden.allow("my-app.startup:load", reason="x"),
        lambda: loopwarden.guard(allow=["myapp.startup:load_settings"]),
        lambda: loopwarden.Rule(target="time.sleep", family="sleep", suggestion="x"),
        lambda: loopwarden.mark_blocking("vendor:read", suggestion="x", family="io"),  # type: ignore[arg-type]
    ],
    ids=[
        "mode",
        "allow_blocking-reason",
        "allowance-reason",
        "allowance-empty",
        "allowance-module",
        "allowance-pair",
        "rule-target",
        "rule-family",
    ],
)
def test_config_error_is_a_heading(make: Callable[[], object]) -> None:
    assert _error_message(make) in HEADINGS


def _finding(**overrides: object) -> Finding:
    values: dict[str, object] = {
        "primitive": "time.sleep",
        "family": "sleep",
        "thread_name": "MainThread",
        "thread_id": 1,
        "loop": "asyncio loop asyncio.unix_events._UnixSelectorEventLoop",
        "caller": "app.py:12 in refresh",
        "user_caller": "app.py:12 in refresh",
        "stack": (),
        "suggestion": "Use ...",
        "timestamp": 0.0,
    }
    values.update(overrides)
    return Finding(**values)  # type: ignore[arg-type]


def test_finding_message_is_a_heading() -> None:
    assert _finding().message in HEADINGS


def test_stall_message_is_a_heading() -> None:
    stall = _finding(
        primitive="stall",
        family="stall",
        loop="asyncio loop qasync.QSelectorEventLoop",
        caller="app/report.py:88 in build_summary",
        user_caller="app/report.py:88 in build_summary",
        suggestion="...",
        details={"duration_ms": 312.0},
    )
    assert stall.message in HEADINGS


def test_patch_error_prefix_is_a_heading() -> None:
    prefix = "loopwarden could not install its patches: "
    assert prefix in inspect.getsource(registry)
    assert prefix + "..." in HEADINGS


def _matches_heading(message: str) -> bool:
    # Headings show object reprs as "<function ...>"; compare the fixed text around them.
    for heading in HEADINGS:
        pattern = re.escape(heading).replace(re.escape("<function ...>"), "<function .+>")
        if re.fullmatch(pattern, message):
            return True
    return False


def test_callback_failure_log_is_a_heading(caplog: pytest.LogCaptureFixture) -> None:
    def broken_callback(finding: Finding) -> None:
        raise RuntimeError("oops")

    async def main() -> None:
        time.sleep(0.001)

    with (
        caplog.at_level(logging.ERROR, logger="loopwarden"),
        loopwarden.guard(mode="record", on_finding=broken_callback) as warden,
    ):
        asyncio.run(main())
    assert len(warden.findings) == 1
    messages = [record.getMessage() for record in caplog.records]
    assert any(_matches_heading(message) for message in messages), messages


def test_broken_predicate_log_is_a_heading(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    vendor_sdk = types.ModuleType("vendor_sdk")
    vendor_sdk.read_frame = lambda: b"frame"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vendor_sdk", vendor_sdk)

    def wrong_signature(device: object) -> bool:  # read_frame() takes no argument
        return True

    rule = loopwarden.Rule(
        target="vendor_sdk:read_frame", family="custom", suggestion="x", blocks_when=wrong_signature
    )

    async def main() -> None:
        vendor_sdk.read_frame()

    with (
        caplog.at_level(logging.ERROR, logger="loopwarden"),
        loopwarden.guard(mode="record", rules=[rule]) as warden,
    ):
        asyncio.run(main())
    expected = "loopwarden: the check of rule vendor_sdk.read_frame failed; ignoring it"
    assert warden.findings == []  # the call went ahead, treated as not blocking
    assert expected in [record.getMessage() for record in caplog.records]
    assert expected in HEADINGS


def test_plugin_usage_error_is_a_heading(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--block-detect=fial")
    line = next(line for line in result.errlines if "invalid --block-detect mode" in line)
    assert line.strip() in HEADINGS


def test_activate_from_env_bad_value_is_a_heading(capsys: pytest.CaptureFixture[str]) -> None:
    assert loopwarden.activate_from_env({"LOOPWARDEN": "loud"}) is None
    assert capsys.readouterr().err.strip() in HEADINGS


def test_type_version_pool_log_is_a_heading(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The decision is ours to replace; tests/test_type_versions.py spends the
    # real pool on CPython 3.12.
    monkeypatch.setattr(registry, "can_modify_builtin_types", lambda: False)
    monkeypatch.setattr(registry, "_pool_warned", False)
    with caplog.at_level(logging.WARNING, logger="loopwarden"), loopwarden.guard(mode="record"):
        pass
    messages = [record.getMessage() for record in caplog.records]
    assert any("type version tags" in message for message in messages), messages
    assert all(message in HEADINGS for message in messages if "type version tags" in message)


def test_feature_import_log_is_a_heading(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PySide6's table of modules and their feature bits, as it has it once
    # myapp.window ran `from __feature__ import snake_case` (a real one is
    # process-wide: tests/qt/test_qt_feature_select.py runs it in a subprocess).
    from loopwarden.qt import features

    table = {"PySide6": 0, "enum": -1, "myapp.window": 0x01}
    monkeypatch.setitem(
        sys.modules, "__feature__", types.SimpleNamespace(pyside_feature_dict=table)
    )
    monkeypatch.setattr(features, "_warned", set())
    monkeypatch.setattr(features, "_seen_size", -1)
    assert features.feature_modules() == {"myapp.window": ("snake_case",)}
    with caplog.at_level(logging.WARNING, logger="loopwarden"):
        features.warn_feature_modules()
        features.warn_feature_modules()  # once per module
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1 and messages[0] in HEADINGS, messages
