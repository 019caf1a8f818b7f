"""Refunds and edits that arrive while their batch is on its way to Virtuous are never lost.

60 batch gifts; while their batch waits on a slow answer, the platform refunds 10 and edits 10
others. After the import, Virtuous holds all 60 once: the refunded ones zeroed, the edited ones
at their new amounts. Real workers, the webhook receiver and the sandbox over loopback.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from benchmarks.deployment import deployment, tenant_table
from giftsync.examples import transaction, version_at
from giftsync.waiting import wait_for
from producers.publish import publish_many

pytestmark = pytest.mark.integration

TENANT = "hope-shelter"
SECRET = "whsec-inflight"
ENV = {
    "WEBHOOK_SECRET_HOPE": SECRET,
    "GIFTSYNC_RECONCILE_EVERY_SECONDS": "0.5",
    # The batch's answer is held back longer than the changes take to arrive, and the client
    # waits for it (a timeout would make the batch's fate ambiguous, another test's subject).
    "GIFTSYNC_VIRTUOUS_TIMEOUT_SECONDS": "60",
}
GIFTS = range(1, 61)
REFUNDED = range(1, 11)
EDITED = range(11, 21)


def tenants(url: str) -> str:
    return tenant_table(
        TENANT,
        url,
        "VIRTUOUS_TOKEN_HOPE",
        webhook_secret_env="WEBHOOK_SECRET_HOPE",
        batch_max_wait_seconds=0.5,
        reconcile_after_seconds=2,
        review_deadline_seconds=600,
    )


def amount(tx_id: int) -> int:
    return 1000 + tx_id


def held_by_virtuous(dep: Any) -> dict[str, list[dict[str, Any]]]:
    gifts: dict[str, list[dict[str, Any]]] = {}
    for gift in dep.admin("GET", f"gifts?org={TENANT}")[TENANT]:
        gifts.setdefault(str(gift["transactionId"]), []).append(gift)
    return gifts


def test_refunds_and_edits_during_an_in_flight_batch_reach_virtuous(
    tmp_path: Path, redis_url: str
) -> None:
    from giftsync import webhooks
    from giftsync.serving import serve_in_thread
    from giftsync.settings import get_settings

    with deployment(tmp_path, redis_url, tenants=tenants, env=ENV) as dep:
        settings = get_settings()
        with serve_in_thread(webhooks.create_app(settings), name="webhooks") as receiver:
            webhooks.subscribe(settings, settings.tenant(TENANT), receiver)
            # Every answer now takes 15 s: the batch stays in flight while the changes arrive.
            dep.admin("POST", "faults", json={"slow_rate": 1.0, "slow_seconds": 15.0})
            dep.start_worker(processes=1, threads=4)
            donor = dep.admin("GET", f"contacts?org={TENANT}")[TENANT][0]["id"]
            first = [
                transaction(TENANT, i, amount=amount(i), contact_id=donor, version=version_at(1))
                for i in GIFTS
            ]
            publish_many(first)
            wait_for(
                lambda: dep.state_counts(TENANT).get("batched", 0) == 60,
                timeout=30,
                what="the 60 gifts batched, their answer pending",
            )
            later = version_at(2)
            changes = [
                transaction(
                    TENANT, i, amount=amount(i), status="refunded", contact_id=donor, version=later
                )
                for i in REFUNDED
            ] + [
                transaction(TENANT, i, amount=amount(i) + 500, contact_id=donor, version=later)
                for i in EDITED
            ]
            publish_many(changes)
            wait_for(
                lambda: (
                    dep.redis.hget(dep.key("rec", TENANT, f"transaction:{EDITED[-1]}"), "version")
                    is not None
                    and dep.state_counts(TENANT).get("batched", 0) == 60
                ),
                timeout=30,
                what="the changes accepted while the batch is still in flight",
            )
            dep.admin("POST", "faults", json={"slow_rate": 0.0})
            wait_for(
                lambda: (
                    sum(dep.state_counts(TENANT).get(s, 0) for s in ("submitted", "update_held"))
                    == 60
                ),
                timeout=60,
                what="the batch answered",
            )
            dep.admin("POST", "nightly", json={"org": TENANT})
            for batch in dep.admin("GET", f"imports?org={TENANT}&entries=0")[TENANT]:
                dep.admin("POST", f"imports/{batch['id']}/import")

            def wrong() -> list[tuple[str, list[Decimal], str]]:
                gifts = held_by_virtuous(dep)
                out = []
                for i in GIFTS:
                    if i in REFUNDED:
                        want = "0.00"
                    else:
                        want = f"{(amount(i) + (500 if i in EDITED else 0)) / 100:.2f}"
                    found = [Decimal(str(g["amount"])) for g in gifts.get(str(i), [])]
                    if found != [Decimal(want)]:
                        out.append((str(i), found, want))
                return out

            wait_for(
                wrong,
                until=lambda mismatches: not mismatches,
                timeout=120,
                what="Virtuous to hold every gift once, at its newest",
            )
            wait_for(
                lambda: dep.state_counts(TENANT),
                until=lambda counts: counts.get("confirmed", 0) + counts.get("sent", 0) == 60,
                timeout=60,
                what="every record at rest: confirmed, or sent at its newest version",
            )
