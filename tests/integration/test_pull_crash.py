"""Crash safety of the pull: SIGKILL the worker mid-page, restart it, and the writeback holds
the same entries a clean pull writes, none twice."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from benchmarks.deployment import deployment
from giftsync.waiting import wait_for
from tests.integration.test_pull import (
    ORG,
    check_first_pull,
    enqueue_pull,
    pull_config,
    pull_tenant,
    runs,
    saved,
    seed,
)

pytestmark = pytest.mark.integration


def test_sigkill_mid_page_then_restart_writes_back_the_same_set(
    tmp_path: Path, redis_url: str
) -> None:
    with deployment(tmp_path, redis_url, tenants=pull_tenant, sandbox_config=pull_config()) as dep:
        seeded = seed(dep, 2500, 300)
        # Every Virtuous answer takes a second, so the kill lands inside the second page.
        dep.admin("POST", "faults", json={"org": ORG, "slow_rate": 1.0, "slow_seconds": 1.0})
        worker = dep.start_worker(processes=1, threads=2)
        enqueue_pull("gifts")
        enqueue_pull("recurring")
        wait_for(
            lambda: int(saved(dep, "gifts").get("gen", 0)) >= 1,
            timeout=20,
            what="the first page committed",
        )
        dep.kill_worker(worker)
        assert saved(dep, "gifts")["gen"] == "1", "the kill should land inside the second page"
        written_before = len(dep.writeback())
        assert written_before >= 1000 - len(seeded.echoes)

        dep.admin("POST", "faults", json={"org": ORG, "clear": True})
        dep.start_worker(processes=1, threads=2)
        # The killed messages come back once the dead worker's heartbeat times out.
        for kind in ("gifts", "recurring"):
            wait_for(
                partial(runs, dep, kind),
                until=lambda done: done >= 1,
                timeout=40,
                what=f"the {kind} pull resumed and finished",
            )
        check_first_pull(dep, seeded)
        assert int(saved(dep, "gifts")["gen"]) == 3  # three pages, each committed once
