"""Batch mode end to end: real Redis, real ``giftsync worker`` processes, the sandbox over HTTP."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from benchmarks.deployment import deployment, make_config, org, tenant_table
from giftsync.examples import FUNDS, transaction, version_at
from giftsync.waiting import wait_for
from producers.publish import publish_many
from sandbox.config import FaultConfig

pytestmark = pytest.mark.integration

THREE = ("hope-shelter", "river-arts", "north-food-bank")
TOKENS = {
    "hope-shelter": "VIRTUOUS_TOKEN_HOPE",
    "river-arts": "VIRTUOUS_TOKEN_RIVER",
    "north-food-bank": "VIRTUOUS_TOKEN_NORTH",
}


def three_batch_tenants(url: str, **settings: Any) -> str:
    return "".join(tenant_table(name, url, TOKENS[name], **settings) for name in THREE)


def import_entries(dep: Any) -> list[dict[str, Any]]:
    """Every Gift Transaction entry the sandbox holds in Import batches, all organisations."""
    imports = dep.admin("GET", "imports")
    return [
        entry | {"_batch": b["id"], "_org": name}
        for name, batches in imports.items()
        for b in batches
        for entry in b["entries"]
    ]


def events_for(tenants: tuple[str, ...], count: int, *, start: int = 1) -> list[dict[str, Any]]:
    return [
        transaction(tenants[i % len(tenants)], start + i, amount=1000 + i, version=version_at(i))
        for i in range(count)
    ]


def test_thousand_changes_from_three_tenants_become_exactly_a_thousand_entries(
    tmp_path: Path, redis_url: str
) -> None:
    with deployment(tmp_path, redis_url, tenants=three_batch_tenants) as dep:
        dep.start_worker(processes=2, threads=4)
        events = events_for(THREE, 1000)
        assert publish_many(events) == 1000

        wait_for(
            lambda: sum(dep.state_counts(t).get("submitted", 0) for t in THREE) == 1000,
            timeout=90,
            what="1000 submitted",
        )
        entries = import_entries(dep)
        refs = Counter((e["_org"], e["transactionId"]) for e in entries)
        assert len(entries) == 1000
        assert max(refs.values()) == 1, "an entry reached Virtuous twice"
        sizes = Counter(e["_batch"] for e in entries)
        assert max(sizes.values()) <= 100
        by_org = Counter(e["_org"] for e in entries)
        assert by_org == {t: sum(1 for ev in events if ev["tenant"] == t) for t in THREE}
        # Amounts arrive exact, as two-decimal strings.
        some = next(e for e in entries if e["transactionId"] == "7")
        assert some["gift"]["amount"] in ("10.06", 10.06)

        submitted = [w for w in dep.writeback() if w["type"] == "gift.submitted"]
        assert len(submitted) == 1000
        assert all(w["virtuous_id"].startswith("btch_") for w in submitted)

        # Stale and duplicate changes change nothing: the same 1000 again, plus older versions.
        older = [
            transaction(e["tenant"], e["record"]["id"], amount=1, version=version_at(-100))
            for e in events[:50]
        ]
        publish_many(events + older)
        wait_for(
            lambda: dep.changes_waiting() == 0,
            timeout=30,
            what="the changes queues to drain",
        )
        assert len(import_entries(dep)) == 1000
        assert len([w for w in dep.writeback() if w["type"] == "gift.submitted"]) == 1000
        assert sum(dep.state_counts(t).get("submitted", 0) for t in THREE) == 1000


def test_poisoned_batch_delivers_good_entries_and_quarantines_bad_ones(
    tmp_path: Path, redis_url: str
) -> None:
    with deployment(tmp_path, redis_url, tenants=three_batch_tenants) as dep:
        dep.start_worker(processes=1, threads=4)
        unknown_project = {"id": 99, "name": "Gone", "virtuous_id": 999, "code": None}
        events = [
            transaction(
                "hope-shelter",
                i,
                amount=500 + i,
                fund=unknown_project if i in (13, 57, 88) else FUNDS[1],
            )
            for i in range(1, 101)
        ]
        publish_many(events)
        wait_for(
            lambda: (
                dep.state_counts("hope-shelter").get("submitted", 0) == 97
                and dep.state_counts("hope-shelter").get("quarantined", 0) == 3
            ),
            timeout=60,
            what="97 submitted and 3 quarantined",
        )
        ids = sorted(int(e["transactionId"]) for e in import_entries(dep))
        assert ids == [i for i in range(1, 101) if i not in (13, 57, 88)]
        quarantined = [w for w in dep.writeback() if w["type"] == "gift.quarantined"]
        assert sorted(int(w["id"]) for w in quarantined) == [13, 57, 88]
        # Every piece of the split batch reached Virtuous as an import of its own name.
        names = [b["name"] for b in dep.admin("GET", "imports?entries=0")["hope-shelter"]]
        assert len(names) > 1 and len(set(names)) == len(names), names
        root = min(names, key=len).rsplit(".", 1)[0].split(".")[0]
        assert all(name.startswith(root) for name in names), names
        assert all("999" in w["reason"] or "project" in w["reason"].lower() for w in quarantined)


def test_429_and_5xx_storms_delay_but_lose_nothing(tmp_path: Path, redis_url: str) -> None:
    faults = FaultConfig(fail_rate=0.3, drop_rate=0.1, burst_429=5, burst_retry_after=1)
    config = make_config(
        org("hope-shelter", "demo-token-hope"),
        faults=faults,
    )
    with deployment(
        tmp_path,
        redis_url,
        tenants=lambda url: tenant_table("hope-shelter", url, "VIRTUOUS_TOKEN_HOPE"),
        sandbox_config=config,
    ) as dep:
        dep.start_worker(processes=1, threads=8)
        publish_many(events_for(("hope-shelter",), 600))
        wait_for(
            lambda: dep.state_counts("hope-shelter").get("submitted", 0) == 600,
            timeout=120,
            what="600 submitted through the storm",
        )
        entries = import_entries(dep)
        assert sorted(int(e["transactionId"]) for e in entries) == list(range(1, 601))
        stats = dep.admin("GET", "stats")["orgs"]["hope-shelter"]
        assert stats["faults_injected"], "the storm never happened"


def test_a_tenant_with_a_bad_token_does_not_slow_the_others(tmp_path: Path, redis_url: str) -> None:
    def tenants(url: str) -> str:
        return three_batch_tenants(url) + tenant_table("broken", url, "VIRTUOUS_TOKEN_BAD")

    with deployment(tmp_path, redis_url, tenants=tenants) as dep:
        dep.start_worker(processes=1, threads=4)
        good = events_for(THREE, 300)
        bad = events_for(("broken",), 300, start=5000)
        publish_many(bad + good)
        wait_for(
            lambda: sum(dep.state_counts(t).get("submitted", 0) for t in THREE) == 300,
            timeout=60,
            what="the good tenants' 300 gifts",
        )
        assert dep.redis.get(dep.key("paused", "broken")) is not None
        assert dep.state_counts("broken").get("submitted", 0) == 0
        # Kept, not failed: its batches wait for a good token.
        assert dep.state_counts("broken").get("batched", 0) == 300
        assert not dep.redis.hlen(dep.key("dead"))
