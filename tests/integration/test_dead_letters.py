"""Dead letters: kept by the ledger with their reason, listed and replayed by the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.deployment import REPO, deployment, make_config, org, tenant_table
from giftsync.examples import transaction
from giftsync.waiting import wait_for
from mapping.tenant import TenantSettings
from producers.publish import publish_many
from tests.integration.test_pipeline_batch import events_for
from tests.runtimes import isolated_runtime
from workers.flows import intake
from workers.queue import messages
from workers.queue.queues import BULK_CHANGES_QUEUE
from workers.runtime import Runtime

pytestmark = pytest.mark.integration

TENANT = "dead-org"
SETTINGS = TenantSettings(
    name=TENANT,
    virtuous_base_url="http://virtuous.invalid",
    virtuous_token_env="TOKEN",
    timezone="America/Chicago",
)


def giftsync(dep: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "giftsync.cli", *args],
        cwd=REPO,
        env=dep.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_batch_that_fails_every_retry_is_kept_listed_and_replayed(
    tmp_path: Path, redis_url: str
) -> None:
    config = make_config(org("hope-shelter", "demo-token-hope"))
    env = {"GIFTSYNC_MAX_RETRIES": "2", "GIFTSYNC_MIN_BACKOFF_MS": "50"}
    tenants = lambda url: tenant_table("hope-shelter", url, "VIRTUOUS_TOKEN_HOPE")  # noqa: E731
    with deployment(tmp_path, redis_url, tenants=tenants, sandbox_config=config, env=env) as dep:
        dep.admin("POST", "faults", json={"fail_rate": 1.0})
        dep.start_worker(processes=1, threads=2)
        publish_many(events_for(("hope-shelter",), 30))
        wait_for(lambda: dep.state_counts("hope-shelter").get("dead", 0) == 30, what="30 dead")

        listed = giftsync(dep, "dlq", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        [letter] = json.loads(listed.stdout)
        assert letter["actor"] == "send_batch" and letter["tenant"] == "hope-shelter"
        assert "500" in letter["reason"] or "Transient" in letter["reason"]
        assert letter["attempts"] == 3
        record = dep.redis.hgetall(dep.key("rec", "hope-shelter", "transaction:1"))
        assert record[b"state"] == b"dead" and b"dead letter" in record[b"reason"]

        # A replay comes with a fresh retry budget: still failing, it is tried three times again.
        again = giftsync(dep, "dlq", "replay", "--tenant", "hope-shelter")
        assert again.returncode == 0, again.stderr
        wait_for(
            lambda: (
                dep.state_counts("hope-shelter").get("dead", 0) == 30
                and len(json.loads(giftsync(dep, "dlq", "list", "--json").stdout)) == 1
            ),
            what="the replayed batch dead again",
        )
        [letter] = json.loads(giftsync(dep, "dlq", "list", "--json").stdout)
        assert letter["attempts"] == 3

        dep.admin("POST", "faults", json={"clear": True})
        replayed = giftsync(dep, "dlq", "replay", "--tenant", "hope-shelter")
        assert replayed.returncode == 0, replayed.stderr
        assert "replayed 1" in replayed.stdout
        wait_for(
            lambda: dep.state_counts("hope-shelter") == {"submitted": 30},
            what="the replayed batch submitted",
        )
        assert json.loads(giftsync(dep, "dlq", "list", "--json").stdout) == []
        entries = dep.admin("GET", "imports?org=hope-shelter")["hope-shelter"]
        assert sum(len(b["entries"]) for b in entries) == 30


@pytest.fixture
def rt(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setattr(messages, "enqueue", lambda message, broker=None: message)
    with isolated_runtime(redis_url, SETTINGS) as runtime:
        yield runtime


def test_a_bulk_chunk_that_fails_every_retry_is_kept_and_replayed_to_its_queue(
    tmp_path: Path, redis_url: str
) -> None:
    env = {"GIFTSYNC_MAX_RETRIES": "2", "GIFTSYNC_MIN_BACKOFF_MS": "50"}
    tenants = lambda url: tenant_table("hope-shelter", url, "VIRTUOUS_TOKEN_HOPE")  # noqa: E731
    with deployment(tmp_path, redis_url, tenants=tenants, env=env) as dep:
        # A chunk the intake cannot read: it fails on every attempt.
        broken = messages.map_bulk_changes([], 0).copy(kwargs={"events": 5, "published_ms": 0})
        messages.enqueue(broken)
        dep.start_worker(processes=1, threads=2)

        def letters() -> list[dict[str, Any]]:
            listed = giftsync(dep, "dlq", "list", "--json")
            assert listed.returncode == 0, listed.stderr
            found: list[dict[str, Any]] = json.loads(listed.stdout)
            return found

        [letter] = wait_for(letters, what="the chunk's dead letter")
        assert letter["actor"] == "map_bulk_changes" and letter["attempts"] == 3
        assert letter["queue"].removesuffix(".DQ") == BULK_CHANGES_QUEUE

        # Replayed to the bulk queue with a fresh budget: tried three times again there.
        again = giftsync(dep, "dlq", "replay", letter["message_id"])
        assert again.returncode == 0, again.stderr
        [letter] = wait_for(letters, what="the replayed chunk dead again")
        assert letter["actor"] == "map_bulk_changes" and letter["attempts"] == 3
        assert letter["queue"].removesuffix(".DQ") == BULK_CHANGES_QUEUE


def test_a_dead_letter_strands_only_records_still_waiting_on_a_message(rt: Runtime) -> None:
    member = "transaction:1"

    def dies_then_state() -> str:
        rt.ledger.mark(TENANT, "dead", "dead letter: test", [member])
        return rt.ledger.record(TENANT, member)["state"]

    intake.run(rt, [transaction(TENANT, 1, contact_id=5000)], published_ms=1)
    assert dies_then_state() == "buffered"  # no message carries it yet
    rt.batcher.cut_all_due(SETTINGS, lambda: "owner", force=True)
    assert dies_then_state() == "dead"
    rt.ledger.mark(TENANT, "batched", "replayed", [member])
    assert rt.ledger.record(TENANT, member)["state"] == "batched"
    batch = rt.batcher.load(rt.ledger.record(TENANT, member)["batch_id"])
    assert batch is not None
    rt.batcher.settle(batch, "submitted", "accepted", "owner")
    # A stale duplicate of the batch's message dying later leaves the record at rest.
    assert dies_then_state() == "submitted"
    rt.ledger.mark(TENANT, "batched", "replayed", [member])
    assert rt.ledger.record(TENANT, member)["state"] == "submitted"
    assert rt.ledger.state_counts(TENANT) == {"submitted": 1}
