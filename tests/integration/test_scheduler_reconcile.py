"""The scheduler's reconcile task starts a sweep only where one has something to look up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.deployment import deployment, tenant_table
from tests.integration.test_pull import pull_config

pytestmark = pytest.mark.integration

NAMES = ("old-gift", "new-gift", "in-review", "old-donor", "idle")


def tenants(url: str) -> str:
    return "".join(
        tenant_table(name, url, "VIRTUOUS_TOKEN_RIVER", reconcile_after_seconds=60)
        for name in NAMES
    )


def test_reconcile_is_enqueued_only_for_tenants_with_lookups_due(
    tmp_path: Path, redis_url: str
) -> None:
    from workers.queue import scheduler
    from workers.runtime import runtime

    with deployment(tmp_path, redis_url, tenants=tenants, sandbox_config=pull_config()) as dep:
        rt = runtime()
        now = rt.ledger.server_ms()
        dep.redis.zadd(dep.key("unconfirmed", "old-gift"), {"transaction:1": now - 120_000})
        dep.redis.zadd(dep.key("unconfirmed", "new-gift"), {"transaction:2": now - 1_000})
        dep.redis.zadd(dep.key("review", "in-review"), {"transaction:3": now - 1_000})
        dep.redis.zadd(dep.key("donors-pending", "old-donor"), {"44": now - 120_000})
        dep.redis.zadd(dep.key("donors-pending", "new-gift"), {"45": now - 1_000})

        scheduler.Scheduler(rt).reconcile()

        queued = dep.redis.hvals(dep.key("dramatiq", "confirm.msgs"))
        started = sorted(json.loads(raw)["kwargs"]["tenant"] for raw in queued)
        assert started == ["in-review", "old-donor", "old-gift"]
