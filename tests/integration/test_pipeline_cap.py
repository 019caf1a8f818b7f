"""The shared limiter against the sandbox's cap, with "an hour" compressed to seconds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from benchmarks.deployment import deployment, make_config, org, tenant_table
from giftsync.waiting import wait_for
from producers.publish import publish_many
from tests.integration.test_pipeline_batch import events_for

pytestmark = pytest.mark.integration

CAP = 20
WINDOW = 4.0


def test_a_backlog_far_above_the_cap_gets_no_429_and_stays_under_it(
    tmp_path: Path, redis_url: str
) -> None:
    config = make_config(
        org("hope-shelter", "demo-token-hope", calls_per_hour=CAP, window_seconds=WINDOW)
    )
    tenants = lambda url: tenant_table(  # noqa: E731
        "hope-shelter",
        url,
        "VIRTUOUS_TOKEN_HOPE",
        calls_per_hour=CAP,
        rate_window_seconds=WINDOW,
        batch_max_wait_seconds=0.2,
        # A compressed window on a loaded 2-core machine: allow for late arrivals.
        rate_guard_seconds=1.0,
        # The reconcile sweep looks up what was submitted while the backlog is still going.
        reconcile_after_seconds=0.5,
    )
    env = {"GIFTSYNC_RECONCILE_EVERY_SECONDS": "0.5"}
    with deployment(tmp_path, redis_url, tenants=tenants, sandbox_config=config, env=env) as dep:
        total = 6000  # 60 batches: three times the cap of one window
        publish_many(events_for(("hope-shelter",), total))
        # Two worker deployments share one limiter through Redis.
        dep.start_worker(processes=1, threads=8)
        dep.start_worker(processes=1, threads=8)
        started = time.monotonic()
        wait_for(
            lambda: dep.state_counts("hope-shelter").get("submitted", 0) == total,
            timeout=120,
            what="the whole backlog submitted",
        )
        elapsed = time.monotonic() - started

        def lookups() -> int:
            endpoints = dep.admin("GET", "stats")["requests"]["by_endpoint"]
            return sum(v["count"] for k, v in endpoints.items() if k.startswith("GET /api/Gift/"))

        # The sweep's lookups share the limiter with the pushes, which win while the backlog
        # lasts (on a loaded machine they may take every token): the lookups go as tokens free,
        # under the same bound.
        wait_for(lambda: lookups() > 0, timeout=60, what="the reconcile sweep's lookups")
        stats = dep.admin("GET", "stats")["orgs"]["hope-shelter"]
        pushes = dep.admin("GET", "stats")["requests"]["by_endpoint"][
            "POST /api/v2/Gift/Transactions"
        ]["count"]
        assert stats["rate_limited"] == 0, "Virtuous answered 429"
        assert stats["max_calls_in_window"] <= CAP
        # 60 pushes at 20 per window cannot take less than two full windows after the first 20.
        assert pushes == 60 and elapsed >= 2 * WINDOW * 0.9
        print(
            f"\n{total} gifts in {pushes} pushes and {lookups()} lookups, {elapsed:.1f}s; "
            f"busiest window {stats['max_calls_in_window']} of {CAP}; "
            f"429s {stats['rate_limited']}"
        )
