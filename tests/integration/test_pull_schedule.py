"""The scheduler's pulls: due every pull_interval_seconds, never piling up behind one running."""

from __future__ import annotations

from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from benchmarks.deployment import deployment, tenant_table, text
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
        first = pull.claim_schedule(rt, tenant, "gifts", "m1")  # first sight starts the clock
        assert not first.claimed and first.quiet_seconds == 3600
        assert int(text(dep.redis.get(due))) > rt.batcher.server_ms() + 3_000_000
        later = pull.claim_schedule(rt, tenant, "gifts", "m1")
        assert not later.claimed and 3000 < later.quiet_seconds <= 3600
        dep.redis.set(due, 0)
        claim = pull.claim_schedule(rt, tenant, "gifts", "m2")
        assert claim.claimed and claim.quiet_seconds == 3600
        assert dep.redis.get(pending) == b"m2"
        dep.redis.set(due, 0)
        blocked = pull.claim_schedule(rt, tenant, "gifts", "m3")  # m2 still queued/running
        assert not blocked.claimed and blocked.quiet_seconds == 0
        pull.release(rt, ORG, "gifts", "m3")  # not the holder: nothing happens
        assert dep.redis.get(pending) == b"m2"
        pull.release(rt, ORG, "gifts", "m2")
        assert dep.redis.get(pending) is None
        assert pull.claim_schedule(rt, tenant, "gifts", "m4").claimed  # still due, now free


def test_the_scheduler_asks_about_a_pull_only_once_it_may_be_due(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers.flows import pull
    from workers.queue import scheduler
    from workers.runtime import runtime

    names = [f"org-{i}" for i in range(3)]

    def tenants(url: str) -> str:
        return "".join(
            tenant_table(name, url, "VIRTUOUS_TOKEN_RIVER", pull_interval_seconds=interval)
            for name, interval in zip(names, (1, 3600, 3600), strict=True)
        )

    asked: list[tuple[str, str]] = []
    claim_schedule = pull.claim_schedule

    def counting(rt: Any, tenant: Any, kind: str, message_id: str) -> Any:
        asked.append((tenant.name, kind))
        return claim_schedule(rt, tenant, kind, message_id)

    monkeypatch.setattr(pull, "claim_schedule", counting)
    with deployment(tmp_path, redis_url, tenants=tenants, sandbox_config=pull_config()) as dep:
        ticker = scheduler.Scheduler(runtime())
        ticker.schedule_pulls()
        assert sorted(asked) == sorted((n, k) for n in names for k in ("gifts", "recurring"))
        asked.clear()
        ticker.schedule_pulls()
        assert asked == []  # no pull can be due yet: Redis is not asked
        pending = dep.key("pull", names[0], "gifts", "pending")

        def claimed() -> bool:
            ticker.schedule_pulls()
            return dep.redis.get(pending) is not None

        wait_for(claimed, timeout=10, interval=0.2, what="the 1 s pull to be claimed")
        assert {tenant for tenant, _ in asked} == {names[0]}


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
