"""Helpers shared by the reports/CLI/env/demo tests: real subprocesses, clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without LOOPWARDEN* variables, offscreen Qt, no colours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPWARDEN")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["NO_COLOR"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def run_python(
    *args: str, cwd: Path, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python *args`` in ``cwd`` with :func:`clean_env` plus ``env``."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_cli(
    *args: str, cwd: Path, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m loopwarden *args`` in ``cwd``."""
    return run_python("-m", "loopwarden", *args, cwd=cwd, timeout=timeout, **env)


#: A script whose coroutine sleeps and reads a file on the loop thread.
BLOCKING_SCRIPT = """
import asyncio, sys, time

async def tick():
    time.sleep(0.001)

async def main():
    for _ in range(3):
        await tick()
    with open(__file__) as f:
        f.read()

print("argv:", sys.argv[1:])
print("name:", __name__)
asyncio.run(main())
"""

#: A script whose coroutine does its blocking work in a worker thread.
CLEAN_SCRIPT = """
import asyncio, time

async def main():
    await asyncio.to_thread(time.sleep, 0.001)
    await asyncio.sleep(0.001)

asyncio.run(main())
"""

#: A script that swallows the error raise mode throws: exit code 0 unless findings count.
SWALLOWING_SCRIPT = """
import asyncio, time

async def main():
    try:
        time.sleep(0.001)
    except RuntimeError:
        pass

asyncio.run(main())
"""
