"""Crash safety: SIGKILL the workers mid-flush and mid-send, lose a batch's message; every gift
still arrives once."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from functools import partial
from pathlib import Path

import pytest

from benchmarks.deployment import deployment, make_config, org, tenant_table
from giftsync.waiting import wait_for
from producers.publish import publish_many
from sandbox.config import FaultConfig
from tests.integration.test_pipeline_batch import events_for, import_entries
from workers.flows import intake
from workers.runtime import runtime
from workers.store.batches import SILENT_OWNER_MS

pytestmark = pytest.mark.integration


def test_sigkill_mid_flush_and_mid_send_delivers_every_gift_exactly_once(
    tmp_path: Path, redis_url: str
) -> None:
    # Slow answers keep sends in flight, so a kill lands in the middle of one.
    config = make_config(
        org("hope-shelter", "demo-token-hope"),
        faults=FaultConfig(slow_rate=0.5, slow_seconds=0.4),
    )
    tenants = lambda url: tenant_table(  # noqa: E731
        "hope-shelter", url, "VIRTUOUS_TOKEN_HOPE", batch_max_wait_seconds=0.3
    )
    with deployment(tmp_path, redis_url, tenants=tenants, sandbox_config=config) as dep:
        total = 2000
        events = events_for(("hope-shelter",), total)
        worker = dep.start_worker(processes=1, threads=4)
        kills = 0
        recovery: list[float] = []

        def in_flight(end: int) -> bool:
            return (
                dep.state_counts("hope-shelter").get("batched", 0) > 0
                or dep.state_counts("hope-shelter").get("submitted", 0) >= end
            )

        def progressed(before: int) -> bool:
            return dep.state_counts("hope-shelter").get("submitted", 0) > before

        for chunk_start in range(0, total, 400):
            publish_many(events[chunk_start : chunk_start + 400])
            # Kill while the chunk is being mapped, flushed and sent.
            wait_for(
                partial(in_flight, chunk_start + 400),
                timeout=30,
                what="a batch in flight",
            )
            dep.kill_worker(worker)
            kills += 1
            killed_at = time.monotonic()
            worker = dep.start_worker(processes=1, threads=4)
            before = dep.state_counts("hope-shelter").get("submitted", 0)
            wait_for(
                partial(progressed, before),
                timeout=60,
                what="progress after a restart",
            )
            recovery.append(time.monotonic() - killed_at)

        wait_for(
            lambda: dep.state_counts("hope-shelter").get("submitted", 0) == total,
            timeout=120,
            what="every gift submitted",
        )
        entries = import_entries(dep)
        refs = Counter(e["transactionId"] for e in entries)
        assert len(refs) == total
        stats = dep.admin("GET", "stats")["orgs"]["hope-shelter"]
        # A resend after a kill is answered as a no-op by Virtuous: never a second entry.
        assert max(refs.values()) == 1
        counts = dep.state_counts("hope-shelter")
        assert counts == {"submitted": total}, counts
        print(
            f"\nkills={kills} recovery seconds={[round(r, 1) for r in recovery]} "
            f"repeats no-oped={stats['duplicates_noop']}"
        )


def test_a_killed_workers_message_comes_back_within_the_heartbeat_timeout(
    tmp_path: Path, redis_url: str
) -> None:
    # Every answer stalls, so the batch's message is in the killed worker's hands.
    config = make_config(
        org("hope-shelter", "demo-token-hope"),
        faults=FaultConfig(slow_rate=1.0, slow_seconds=60),
    )
    tenants = lambda url: tenant_table("hope-shelter", url, "VIRTUOUS_TOKEN_HOPE")  # noqa: E731
    heartbeat_ms = 5000
    env = {"GIFTSYNC_HEARTBEAT_TIMEOUT_MS": str(heartbeat_ms)}
    with deployment(tmp_path, redis_url, tenants=tenants, sandbox_config=config, env=env) as dep:
        worker = dep.start_worker(processes=1, threads=2)
        publish_many(events_for(("hope-shelter",), 100))
        wait_for(
            lambda: dep.admin("GET", "stats")["orgs"]["hope-shelter"]["faults_injected"].get(
                "slow"
            ),
            what="the batch's request to be stalled in Virtuous",
        )
        dep.kill_worker(worker)
        killed = time.monotonic()
        dep.admin("POST", "faults", json={"clear": True})
        dep.start_worker(processes=1, threads=2)
        wait_for(
            lambda: dep.state_counts("hope-shelter").get("submitted", 0) == 100,
            timeout=60,
            what="the killed worker's batch to come back and be sent",
        )
        returned = time.monotonic() - killed
        print(f"\na killed worker's message came back and was sent after {returned:.1f}s")
        # Heartbeat timeout, plus at most one scheduler maintenance period, plus the send.
        assert returned < heartbeat_ms / 1000 + 5 + 10


def test_a_batch_whose_message_was_lost_gets_a_new_owner(tmp_path: Path, redis_url: str) -> None:
    tenants = lambda url: tenant_table("hope-shelter", url, "VIRTUOUS_TOKEN_HOPE")  # noqa: E731
    with deployment(tmp_path, redis_url, tenants=tenants) as dep:
        rt = runtime()
        intake.run(rt, events_for(("hope-shelter",), 5))
        tenant = rt.settings.tenant("hope-shelter")
        # Cut and marked enqueued, but its message never reaches a worker, and no attempt was
        # made since, longer ago than a live owner ever stays silent.
        lost = rt.batcher.cut(tenant, str(uuid.uuid4()), force=True)
        assert lost is not None
        rt.batcher.mark_enqueued(lost)
        long_ago = rt.batcher.server_ms() - SILENT_OWNER_MS - 60_000
        dep.redis.hset(dep.key("batch", lost), "created_ms", long_ago)
        dep.redis.zadd(dep.key("batches", "unsent"), {lost: long_ago})

        dep.start_worker(processes=1, threads=2)
        wait_for(
            lambda: dep.state_counts("hope-shelter").get("submitted", 0) == 5,
            timeout=60,
            what="the lost batch sent by its new owner",
        )
        assert Counter(e["transactionId"] for e in import_entries(dep)) == Counter(
            str(i) for i in range(1, 6)
        )


def test_an_owner_that_tries_again_keeps_its_batch(tmp_path: Path, redis_url: str) -> None:
    tenants = lambda url: tenant_table("hope-shelter", url, "VIRTUOUS_TOKEN_HOPE")  # noqa: E731
    with deployment(tmp_path, redis_url, tenants=tenants):
        rt = runtime()
        intake.run(rt, events_for(("hope-shelter",), 3))
        owner = str(uuid.uuid4())
        batch = rt.batcher.cut(rt.settings.tenant("hope-shelter"), owner, force=True)
        assert batch is not None
        rt.batcher.mark_enqueued(batch)
        later = rt.batcher.server_ms() + SILENT_OWNER_MS + 1
        assert rt.batcher.adoptable(later) == [(batch, "")]
        # The owner runs between the sweep's look and its re-own: the sweep stands down.
        assert rt.batcher.attempt(batch, owner)
        assert not rt.batcher.reown(batch, str(uuid.uuid4()), "")
        [(_, seen)] = rt.batcher.adoptable(later + SILENT_OWNER_MS)
        assert rt.batcher.reown(batch, str(uuid.uuid4()), seen)
        # Once re-owned, the old owner no longer sends it.
        assert not rt.batcher.attempt(batch, owner)
