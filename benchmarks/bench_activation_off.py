"""What loopwarden costs in a dev-build app when detection is off.

The "ship it in dev builds only" pattern (docs/dev-builds.md) keeps
``import loopwarden`` and ``loopwarden.activate_from_env()`` in the app's
start-up and switches detection on with ``LOOPWARDEN=warn``. This script
measures what that costs when ``LOOPWARDEN`` is unset:

* start-up: a fresh interpreter running ``import loopwarden;
  loopwarden.activate_from_env()`` against one running ``pass``, interleaved,
  medians of ``--runs`` processes each;
* the call itself: ``activate_from_env()`` with ``LOOPWARDEN`` unset, in-process;
* afterwards: whether anything is patched (it must not be: the patched
  functions then cost exactly nothing).

    python benchmarks/bench_activation_off.py             # 30 processes each
    python benchmarks/bench_activation_off.py --runs 5    # smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import timeit

_WITH = "import loopwarden; loopwarden.activate_from_env()"
_BASELINE = "pass"
_CHECK = """
import os, sys, time
import loopwarden
assert loopwarden.activate_from_env() is None
core = [m for m in ("engine", "registry", "patching", "warden", "watchdog", "families")
        if f"loopwarden.{m}" in sys.modules]
patched = hasattr(time.sleep, "__loopwarden_rule__") or hasattr(os.stat, "__loopwarden_rule__")
print(len([m for m in sys.modules if m.startswith("loopwarden")]), core, patched)
"""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LOOPWARDEN")}


def _run(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=_env(), check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="processes per variant")
    args = parser.parse_args()

    with_times: list[float] = []
    base_times: list[float] = []
    for _ in range(args.runs):  # interleaved, so machine noise hits both alike
        base_times.append(_run(_BASELINE))
        with_times.append(_run(_WITH))
    base, with_ = statistics.median(base_times), statistics.median(with_times)
    print(f"python -c 'pass'                          median {base * 1000:7.1f} ms")
    print(f"python -c '{_WITH}'  median {with_ * 1000:7.1f} ms")
    print(f"start-up cost of import + activate_from_env() (off): {(with_ - base) * 1000:.1f} ms")

    env_backup = os.environ.pop("LOOPWARDEN", None)
    try:
        import loopwarden

        number = 100_000
        seconds = min(timeit.repeat(loopwarden.activate_from_env, number=number, repeat=5))
        print(f"activate_from_env() with LOOPWARDEN unset: {seconds / number * 1e9:.0f} ns a call")
    finally:
        if env_backup is not None:
            os.environ["LOOPWARDEN"] = env_backup

    out = subprocess.run(
        [sys.executable, "-c", _CHECK], env=_env(), check=True, capture_output=True, text=True
    ).stdout.split(" ", 1)
    print(f"loopwarden modules loaded: {out[0]}; core modules and patched: {out[1].strip()}")


if __name__ == "__main__":
    main()
