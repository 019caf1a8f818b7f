"""Each change event goes to its tenant's mode's queue: real-time tenants' on ``changes``,
batch-mode tenants' on ``changes_bulk``; a message never mixes the two. Real Redis broker, the
queues read back in the order a worker would take them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

from benchmarks.deployment import tenant_table
from giftsync.examples import transaction
from giftsync.settings import get_settings, load_settings
from mapping.tenant import TenantSettings
from producers.publish import enqueue_valid, publish, publish_many
from workers.queue.broker import build_broker, reset_broker
from workers.queue.queues import BULK_CHANGES_QUEUE, CHANGES_QUEUE

pytestmark = pytest.mark.integration

LIVE, BULK, OTHER_BULK = "live", "bulk", "other-bulk"
ACTORS = {CHANGES_QUEUE: "map_changes", BULK_CHANGES_QUEUE: "map_bulk_changes"}


def _tenants(url: str) -> str:
    return (
        tenant_table(LIVE, url, "VIRTUOUS_TOKEN_HOPE", mode="real_time")
        + tenant_table(BULK, url, "VIRTUOUS_TOKEN_HOPE", mode="batch")
        + tenant_table(OTHER_BULK, url, "VIRTUOUS_TOKEN_HOPE", mode="batch")
    )


def _reset_wiring() -> None:
    reset_broker()
    get_settings.cache_clear()


class Queues:
    """The change queues of this test's key prefix, read back message by message."""

    def __init__(self, prefix: str, client: redis.Redis) -> None:
        self.prefix = prefix
        self.redis = client

    def messages(self, queue: str) -> list[dict[str, Any]]:
        """The messages waiting on ``queue``, first to run first."""
        base = f"{self.prefix}:dramatiq:{queue}"
        ids = self.redis.lrange(base, 0, -1)
        raws = self.redis.hmget(f"{base}.msgs", ids) if ids else []
        found = [json.loads(raw) for raw in raws if raw is not None]
        assert all(m["actor_name"] == ACTORS[queue] for m in found), queue
        return found

    def chunks(self, queue: str) -> list[list[tuple[str, int]]]:
        """(tenant, record id) of every event, one list per message on ``queue``."""
        return [
            [(e["tenant"], e["record"]["id"]) for e in m["kwargs"]["events"]]
            for m in self.messages(queue)
        ]


@pytest.fixture
def queues(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Queues]:
    config = tmp_path / "tenants.toml"
    config.write_text(_tenants("http://127.0.0.1:1"), encoding="utf-8")
    prefix = f"gs-routing-{uuid.uuid4().hex[:8]}"
    for key, value in {
        "GIFTSYNC_CONFIG": str(config),
        "REDIS_URL": redis_url,
        "GIFTSYNC_PREFIX": prefix,
    }.items():
        monkeypatch.setenv(key, value)
    _reset_wiring()
    client = redis.Redis.from_url(redis_url)
    yield Queues(prefix, client)
    for key in client.scan_iter(f"{prefix}:*", count=1000):
        client.delete(key)
    client.close()
    _reset_wiring()


def test_publish_puts_each_event_on_its_tenants_mode_queue(queues: Queues) -> None:
    publish(transaction(BULK, 1))
    publish(transaction(LIVE, 2))
    publish(transaction(OTHER_BULK, 3))
    assert queues.chunks(CHANGES_QUEUE) == [[(LIVE, 2)]]
    assert queues.chunks(BULK_CHANGES_QUEUE) == [[(BULK, 1)], [(OTHER_BULK, 3)]]


def test_publish_many_splits_mixed_chunks_by_mode_and_keeps_the_chunk_size(
    queues: Queues,
) -> None:
    # Interleaved: every third event a real-time tenant's, the rest two batch tenants'.
    names = [LIVE if i % 3 == 0 else (BULK if i % 3 == 1 else OTHER_BULK) for i in range(250)]
    assert publish_many(transaction(name, i + 1) for i, name in enumerate(names)) == 250
    assert queues.chunks(CHANGES_QUEUE) == [
        [(LIVE, i + 1) for i in range(250) if i % 3 == 0],  # 84 events: under one chunk
    ]
    bulk = queues.chunks(BULK_CHANGES_QUEUE)
    # 166 events: a full chunk of 100, then the rest; publish order kept within the queue.
    assert [len(chunk) for chunk in bulk] == [100, 66]
    assert [event for chunk in bulk for event in chunk] == [
        (name, i + 1) for i, name in enumerate(names) if name != LIVE
    ]


def test_publish_many_fills_each_queues_chunks_apart(queues: Queues) -> None:
    events = [transaction(LIVE if i % 2 else BULK, i + 1) for i in range(40)]
    assert publish_many(events, chunk_size=7) == 40
    for queue, tenant in ((CHANGES_QUEUE, LIVE), (BULK_CHANGES_QUEUE, BULK)):
        chunks = queues.chunks(queue)
        assert [len(chunk) for chunk in chunks] == [7, 7, 6]
        assert {name for chunk in chunks for name, _ in chunk} == {tenant}


def test_enqueue_valid_routes_by_the_tenants_it_is_given(queues: Queues) -> None:
    # What ingest does: its own settings and broker, not this process's defaults.
    settings = load_settings()
    flipped: dict[str, TenantSettings] = {
        LIVE: replace(settings.tenants[LIVE], mode="batch"),
        BULK: settings.tenants[BULK],
    }
    broker = build_broker(settings)
    try:
        sent = enqueue_valid(
            [transaction(LIVE, 1), transaction(BULK, 2)], broker=broker, tenants=flipped
        )
    finally:
        broker.close()
    assert sent == 2
    assert queues.chunks(CHANGES_QUEUE) == []
    assert queues.chunks(BULK_CHANGES_QUEUE) == [[(LIVE, 1), (BULK, 2)]]
