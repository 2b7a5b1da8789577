"""Bounded memory (issue 12.4): a warden keeps a limited number of full findings, exact counts."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import loopwarden
from loopwarden.config import settings_from_env, settings_from_table
from loopwarden.env import activate_from_env
from loopwarden.errors import ConfigError
from loopwarden.sites import DEFAULT_MAX_FINDINGS, SiteTable


@pytest.fixture(autouse=True)
def _off() -> Iterator[None]:
    yield
    loopwarden.deactivate()


async def _stat_twice_per_round(path: Path, rounds: int) -> None:
    for _ in range(rounds):
        os.stat(path)  # site A
        os.stat(path)  # site B


def test_the_limit_keeps_full_findings_and_counts_stay_exact(tmp_path: Path) -> None:
    with loopwarden.guard(mode="record", max_findings=5) as warden:
        asyncio.run(_stat_twice_per_round(tmp_path, 40))
    assert len(warden.findings) == 5
    assert warden.total == 80
    assert warden.dropped == 75
    sites = warden.sites
    assert [s.count for s in sites] == [40, 40]
    assert {s.primitive for s in sites} == {"os.stat"}
    assert sites[0].caller != sites[1].caller
    for site in sites:
        assert site.first_timestamp <= site.last_timestamp
        assert site.first.primitive == "os.stat"  # a full sample per site, whatever the limit
        assert site.caller in (site.first.user_caller, site.first.caller)


def test_the_default_limit_is_large_and_documented() -> None:
    warden = loopwarden.guard(mode="record")
    assert warden.max_findings == DEFAULT_MAX_FINDINGS == 10_000
    text = Path(__file__).parents[1].joinpath("docs", "configuration.md").read_text()
    assert "max_findings" in text


def test_zero_keeps_no_full_finding_but_counts(tmp_path: Path) -> None:
    with loopwarden.guard(mode="record", max_findings=0) as warden:
        asyncio.run(_stat_twice_per_round(tmp_path, 3))
    assert warden.findings == []
    assert warden.total == 6
    assert sum(s.count for s in warden.sites) == 6


def test_off_the_loop_nothing_is_counted(tmp_path: Path) -> None:
    with loopwarden.guard(mode="record", max_findings=1) as warden:
        worker = threading.Thread(target=lambda: [os.stat(tmp_path) for _ in range(5)])
        worker.start()
        worker.join()
    assert warden.total == 0
    assert warden.sites == []


@pytest.mark.parametrize("bad", [-1, 1.5, "many", True])
def test_a_bad_limit_names_the_valid_values(bad: object) -> None:
    with pytest.raises(ConfigError, match="whole number >= 0"):
        loopwarden.guard(mode="record", max_findings=bad)  # type: ignore[arg-type]


def test_the_limit_from_the_environment_and_pyproject(tmp_path: Path) -> None:
    assert settings_from_env({"LOOPWARDEN_MAX_FINDINGS": "7"}).max_findings == 7
    assert settings_from_table({"max_findings": 9}).max_findings == 9
    with pytest.raises(ConfigError, match="LOOPWARDEN_MAX_FINDINGS"):
        settings_from_env({"LOOPWARDEN_MAX_FINDINGS": "lots"})
    with pytest.raises(ConfigError, match="max_findings"):
        settings_from_table({"max_findings": -3})
    warden = activate_from_env(
        {"LOOPWARDEN": "record", "LOOPWARDEN_MAX_FINDINGS": "2"}, start_dir=tmp_path
    )
    assert warden is not None
    assert warden.max_findings == 2
    asyncio.run(_stat_twice_per_round(tmp_path, 3))
    assert (len(warden.findings), warden.total) == (2, 6)


def test_reactivating_keeps_the_counts(tmp_path: Path) -> None:
    first = loopwarden.activate(mode="record", max_findings=1)
    asyncio.run(_stat_twice_per_round(tmp_path, 2))
    second = loopwarden.activate(mode="record", max_findings=1)
    asyncio.run(_stat_twice_per_round(tmp_path, 1))
    assert first is not second
    assert second.total == 6
    assert [s.count for s in second.sites] == [3, 3]


def test_expect_blocking_takes_expected_calls_back_from_the_counts(tmp_path: Path) -> None:
    async def main() -> None:
        with loopwarden.expect_blocking("os.stat"):
            os.stat(tmp_path)

    with loopwarden.guard(mode="record") as warden:
        asyncio.run(main())
    assert warden.findings == []
    assert warden.total == 0
    assert warden.sites == []


def test_clear_forgets_the_counts(tmp_path: Path) -> None:
    with loopwarden.guard(mode="record") as warden:
        asyncio.run(_stat_twice_per_round(tmp_path, 2))
        warden.clear()
    assert (warden.findings, warden.total, warden.sites) == ([], 0, [])


def test_durations_are_summed_and_the_longest_kept(tmp_path: Path) -> None:
    with loopwarden.guard(mode="record") as warden:
        asyncio.run(_stat_twice_per_round(tmp_path, 1))
    sample = warden.findings[0]
    table = SiteTable()
    for ms in (5.0, 20.0, 12.5):
        table.add(dataclasses.replace(sample, details={"duration_ms": ms}))
    table.add(dataclasses.replace(sample, details={}))  # no duration: counted, not timed
    (site,) = table.sites()
    assert site.count == 4
    assert site.timed == 3
    assert site.total_duration_ms == 37.5
    assert site.max_duration_ms == 20.0


def test_counts_are_exact_across_loop_threads(tmp_path: Path) -> None:
    def run_loop() -> None:
        asyncio.run(_stat_twice_per_round(tmp_path, 150))

    with loopwarden.guard(mode="record", max_findings=10) as warden:
        threads = [threading.Thread(target=run_loop) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert warden.total == 4 * 300
    assert len(warden.findings) <= 10 + 4  # the limit, give or take a racing append
    assert sorted(s.count for s in warden.sites) == [600, 600]


def test_the_plugins_test_warden_keeps_every_finding_of_its_test(tmp_path: Path) -> None:
    from pytest_loopwarden.wardens import TestWarden

    with TestWarden("record") as warden:
        asyncio.run(_stat_twice_per_round(tmp_path, 6000))
    assert len(warden.findings) == warden.total == 12_000 > DEFAULT_MAX_FINDINGS
