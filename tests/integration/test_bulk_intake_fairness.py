"""One batch-mode tenant's backfill waiting for intake does not hold up another tenant's
real-time gift.

The backfill (20,000 gifts, 200 messages) is published before any worker runs, the real-time
gift after it; then one worker process with two threads starts. Its gift is created in
Virtuous while most of the backfill still waits on its queue, and the backfill is ingested
whole afterwards. With one changes queue for every tenant the gift would come after all of it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.deployment import deployment, make_config, org, tenant_table
from giftsync.examples import transaction, version_at
from giftsync.waiting import wait_for
from producers.publish import publish, publish_many
from workers.queue.queues import BULK_CHANGES_QUEUE

pytestmark = pytest.mark.integration

BIG, LIVE = "north-food-bank", "river-arts"
CAP = 1_000_000
GIFTS = 20_000
CHUNKS = GIFTS // 100


def tenants(url: str) -> str:
    # A long max wait: the backfill's partial batches stay buffered, so what the workers do
    # is the intake and the full batches it cuts.
    return tenant_table(
        BIG, url, "VIRTUOUS_TOKEN_NORTH", calls_per_hour=CAP, batch_max_wait_seconds=86_400
    ) + tenant_table(LIVE, url, "VIRTUOUS_TOKEN_RIVER", mode="real_time", calls_per_hour=CAP)


def test_a_real_time_gift_is_not_queued_behind_another_tenants_backfill(
    tmp_path: Path, redis_url: str
) -> None:
    config = make_config(
        org(BIG, "demo-token-north", calls_per_hour=CAP),
        org(LIVE, "demo-token-river", calls_per_hour=CAP),
    )
    with deployment(tmp_path, redis_url, tenants=tenants, sandbox_config=config) as dep:
        contact = dep.admin(
            "POST", "contacts", json={"org": LIVE, "firstName": "Kim", "lastName": "Lee"}
        )
        contact_id = int(contact["contacts"][0]["id"])
        assert (
            publish_many(transaction(BIG, i, version=version_at(i)) for i in range(1, GIFTS + 1))
            == GIFTS
        )
        publish(transaction(LIVE, 1, version=version_at(1), contact_id=contact_id))
        assert dep.changes_waiting() == CHUNKS + 1
        bulk_key = dep.key("dramatiq", f"{BULK_CHANGES_QUEUE}.msgs")
        state = dep.sandbox.state

        def backfill_left_when_created() -> tuple[int, int] | None:
            """(backfill messages not yet done, backfill gifts in the ledger), read the moment
            the real-time gift exists in Virtuous."""
            with state.lock:
                if not state.org(LIVE).gifts:
                    return None
            return int(dep.redis.hlen(bulk_key)), sum(dep.state_counts(BIG).values())

        dep.start_worker(processes=1, threads=2)
        left, ledgered = wait_for(
            backfill_left_when_created, timeout=90, interval=0.05, what="the real-time gift"
        )
        assert left >= CHUNKS // 2, f"only {left} of {CHUNKS} backfill messages were left"
        assert ledgered <= GIFTS // 2, f"{ledgered} of {GIFTS} backfill gifts were in first"
        wait_for(lambda: dep.state_counts(LIVE) == {"sent": 1}, what="the gift marked sent")

        # The backfill's own intake then runs to the end: every gift in the ledger once.
        wait_for(
            lambda: dep.changes_waiting() == 0 and sum(dep.state_counts(BIG).values()) == GIFTS,
            timeout=240,
            interval=0.2,
            what="the whole backfill in the ledger",
        )
