"""One tenant's batches waiting to be sent do not hold up another tenant's real-time gifts.

A batch tenant's 40 batches are all queued at once against a slow Virtuous (every call takes
a second) and one worker process with two threads: sending them takes some 20 seconds. A
real-time gift of another tenant published while they wait is created within a few seconds,
not after them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from benchmarks.deployment import deployment, make_config, org, tenant_table
from giftsync.examples import transaction, version_at
from giftsync.waiting import wait_for
from producers.publish import publish, publish_many
from sandbox.config import FaultConfig

pytestmark = pytest.mark.integration

BIG, LIVE = "north-food-bank", "river-arts"
CAP = 1_000_000
GIFTS = 4_000


def tenants(url: str) -> str:
    return tenant_table(BIG, url, "VIRTUOUS_TOKEN_NORTH", calls_per_hour=CAP) + tenant_table(
        LIVE, url, "VIRTUOUS_TOKEN_RIVER", mode="real_time", calls_per_hour=CAP
    )


def test_a_real_time_gift_is_not_queued_behind_another_tenants_batches(
    tmp_path: Path, redis_url: str
) -> None:
    config = make_config(
        org(BIG, "demo-token-north", calls_per_hour=CAP),
        org(LIVE, "demo-token-river", calls_per_hour=CAP),
        org_faults={BIG: FaultConfig(slow_rate=1.0, slow_seconds=1.0)},
    )
    with deployment(tmp_path, redis_url, tenants=tenants, sandbox_config=config) as dep:
        contact = dep.admin(
            "POST", "contacts", json={"org": LIVE, "firstName": "Kim", "lastName": "Lee"}
        )
        contact_id = int(contact["contacts"][0]["id"])
        dep.start_worker(processes=1, threads=2)
        publish_many(transaction(BIG, i, version=version_at(i)) for i in range(1, GIFTS + 1))
        wait_for(
            lambda: sum(dep.state_counts(BIG).values()) >= GIFTS and not dep.changes_waiting(),
            timeout=60,
            what="the batch tenant's gifts in the ledger",
        )
        published = time.monotonic()
        publish(transaction(LIVE, 1, version=version_at(1), contact_id=contact_id))
        state = dep.sandbox.state

        def created() -> bool:
            with state.lock:
                return bool(state.org(LIVE).gifts)

        wait_for(created, timeout=60, interval=0.05, what="the real-time gift")
        took = time.monotonic() - published
        batches_left = GIFTS - dep.state_counts(BIG).get("submitted", 0)
        assert took < 6, f"the real-time gift waited {took:.1f} s behind the batches"
        assert batches_left >= 1000, "the batches were sent before the real-time gift: no test"
