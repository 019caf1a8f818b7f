"""A pull throttled by the tenant's capped pull share waits as a delay, not a failure, and
resumes from its saved cursor: every page is read once, every record written back once."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest

from benchmarks.deployment import deployment
from giftsync.waiting import wait_for
from tests.integration.test_pull import (
    ORG,
    check_first_pull,
    enqueue_pull,
    pull_config,
    pull_tenant,
    runs,
    seed,
)
from workers.observe.process_files import process_registry

pytestmark = pytest.mark.integration


def samples(directory: Path, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """One metric's samples from the workers' multiprocess files, by label set."""
    registry = process_registry(directory)
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == name
    }


def value(found: dict[tuple[tuple[str, str], ...], float], **labels: str) -> float:
    return sum(v for key, v in found.items() if set(labels.items()) <= set(key))


def test_a_throttled_pull_resumes_from_its_cursor(tmp_path: Path, redis_url: str) -> None:
    def tenants(url: str) -> str:
        # The pull share: 2 calls per 4-second window, so both pulls must wait for a token.
        return pull_tenant(url, calls_per_hour=100, rate_window_seconds=4, lookup_budget_share=0.02)

    prom = tmp_path / "prom"
    prom.mkdir()
    with deployment(tmp_path, redis_url, tenants=tenants, sandbox_config=pull_config()) as dep:
        seeded = seed(dep, 2500, 300)
        dep.start_worker(processes=1, threads=2, extra={"PROMETHEUS_MULTIPROC_DIR": str(prom)})
        enqueue_pull("gifts")
        enqueue_pull("recurring")
        for kind in ("gifts", "recurring"):
            wait_for(
                partial(runs, dep, kind),
                until=lambda done: done >= 1,
                timeout=30,
                what=f"the throttled {kind} pull to finish",
            )
        check_first_pull(dep, seeded)
        endpoints: dict[str, Any] = dep.admin("GET", "stats")["requests"]["by_endpoint"]
        queries = sum(e["count"] for name, e in endpoints.items() if "Gift/Query/FullGift" in name)
        assert queries == 3, endpoints  # a throttle waits before a call: no page read twice

        throttles = samples(prom, "giftsync_throttle_delays_total")
        assert value(throttles, actor="pull_gifts", reason="limiter") >= 1
        pull_runs = samples(prom, "giftsync_pull_runs_total")
        assert value(pull_runs, tenant=ORG, kind="gift", outcome="done") == 1
        assert value(pull_runs, tenant=ORG, kind="gift", outcome="limiter") >= 1
        records = samples(prom, "giftsync_pull_records_total")
        assert value(records, tenant=ORG, kind="gift", outcome="created") == len(seeded.created)
        assert value(records, tenant=ORG, kind="gift", outcome="echo") == len(seeded.echoes)
