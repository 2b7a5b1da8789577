"""pytest-xdist: workers detect, the controller collects every worker's findings.

Workers send their records as plain dicts in ``config.workeroutput`` (execnet
carries only builtin types); the controller reads them when each node goes
down. Test failures themselves travel in pytest's own serialized reports.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_loopwarden.records import Record

__all__ = [
    "COUNTS_KEY",
    "KEY",
    "counts_from_node",
    "is_controller",
    "is_worker",
    "records_from_node",
    "send_counts",
    "send_records",
    "worker_id",
]

#: Key in ``workeroutput``.
KEY = "loopwarden_records"
#: Key in ``workeroutput`` for the worker's counters (phases failed, findings warned).
COUNTS_KEY = "loopwarden_counts"


def is_worker(config: pytest.Config) -> bool:
    """True in an xdist worker process."""
    return hasattr(config, "workerinput")


def worker_id(config: pytest.Config) -> str | None:
    """``gw0``, ``gw1``... in a worker, else None."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    return None if workerinput is None else str(workerinput.get("workerid"))


def is_controller(config: pytest.Config) -> bool:
    """True in the xdist controller, which runs no tests itself."""
    return not is_worker(config) and config.pluginmanager.has_plugin("dsession")


def send_records(config: pytest.Config, records: list[Record]) -> None:
    """Hand this worker's records to the controller."""
    workeroutput: dict[str, Any] = getattr(config, "workeroutput", {})
    workeroutput[KEY] = [record.to_dict() for record in records]


def records_from_node(node: Any) -> list[Record]:
    """The records a finished worker sent (none if it crashed)."""
    output: dict[str, Any] = getattr(node, "workeroutput", None) or {}
    return [Record.from_dict(data) for data in output.get(KEY, [])]


def send_counts(config: pytest.Config, counts: dict[str, int]) -> None:
    """Hand this worker's counters to the controller."""
    workeroutput: dict[str, Any] = getattr(config, "workeroutput", {})
    workeroutput[COUNTS_KEY] = dict(counts)


def counts_from_node(node: Any) -> dict[str, int]:
    """The counters a finished worker sent (empty if it crashed)."""
    output: dict[str, Any] = getattr(node, "workeroutput", None) or {}
    counts = output.get(COUNTS_KEY, {})
    return {str(k): v for k, v in counts.items() if isinstance(v, int)}
