"""The scheduler's pulls: due every pull_interval_seconds, never piling up behind one running."""

from __future__ import annotations

from collections import Counter
from functools import partial
from pathlib import Path

import pytest

from benchmarks.deployment import deployment, text
from giftsync.waiting import wait_for
from tests.integration.test_pull import ORG, pull_config, pull_tenant, pulled, runs, seed

pytestmark = pytest.mark.integration


def test_a_due_pull_is_claimed_once_and_waits_while_one_is_pending(
    tmp_path: Path, redis_url: str
) -> None:
    from workers.flows import pull
    from workers.runtime import runtime

    with deployment(tmp_path, redis_url, tenants=pull_tenant, sandbox_config=pull_config()) as dep:
        rt = runtime()
        tenant = rt.settings.tenant(ORG)
        due = dep.key("pull", ORG, "gifts", "due")
        pending = dep.key("pull", ORG, "gifts", "pending")
        assert not pull.claim_schedule(rt, tenant, "gifts", "m1")  # first sight starts the clock
        assert int(text(dep.redis.get(due))) > rt.batcher.server_ms() + 3_000_000
        dep.redis.set(due, 0)
        assert pull.claim_schedule(rt, tenant, "gifts", "m2")
        assert dep.redis.get(pending) == b"m2"
        dep.redis.set(due, 0)
        assert not pull.claim_schedule(rt, tenant, "gifts", "m3")  # m2 still queued/running
        pull.release(rt, ORG, "gifts", "m3")  # not the holder: nothing happens
        assert dep.redis.get(pending) == b"m2"
        pull.release(rt, ORG, "gifts", "m2")
        assert dep.redis.get(pending) is None
        assert pull.claim_schedule(rt, tenant, "gifts", "m4")  # still due, now free


def test_the_scheduler_pulls_each_tenant_every_interval(tmp_path: Path, redis_url: str) -> None:
    def tenants(url: str) -> str:
        return pull_tenant(url, pull_interval_seconds=1)

    with deployment(tmp_path, redis_url, tenants=tenants, sandbox_config=pull_config()) as dep:
        seeded = seed(dep, 30, 6)
        dep.start_worker(processes=1, threads=2)
        for kind in ("gifts", "recurring"):
            wait_for(
                partial(runs, dep, kind),
                until=lambda done: done >= 2,
                timeout=20,
                what=f"two scheduled {kind} pulls",
            )
        entries = pulled(dep)
        assert max(Counter(e["key"] for e in entries).values()) == 1
        created = {int(e["virtuous_id"]) for e in entries if e["type"].endswith("pulled_create")}
        rg_created = {
            int(e["virtuous_id"])
            for e in entries
            if e["type"] == "scheduled_donation.pulled_create"
        }
        assert rg_created == seeded.rg_created
        assert {
            int(e["virtuous_id"]) for e in entries if e["type"] == "transaction.pulled_create"
        } == seeded.created
        assert len(created) <= len(entries)
