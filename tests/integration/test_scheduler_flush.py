"""The scheduler's flush timer cuts a buffer once its oldest entry has waited the max wait,
and does not read a buffer again before it may be due."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks.deployment import deployment, tenant_table
from giftsync.examples import transaction
from giftsync.waiting import wait_for
from tests.integration.test_pull import pull_config

pytestmark = pytest.mark.integration

WAITS = {"quick": 1, "slow": 3600, "full": 3600}


def tenants(url: str) -> str:
    return "".join(
        tenant_table(name, url, "VIRTUOUS_TOKEN_RIVER", batch_max_wait_seconds=wait)
        for name, wait in WAITS.items()
    )


def test_a_buffer_is_read_again_only_once_it_may_be_due(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers.flows import intake
    from workers.queue import scheduler
    from workers.runtime import runtime

    with deployment(tmp_path, redis_url, tenants=tenants, sandbox_config=pull_config()) as dep:
        rt = runtime()
        events = [transaction("quick", 1), transaction("slow", 2)]
        # "full" gets a whole batch's worth, but intake's own cut is left out, as by a crash.
        events += [transaction("full", 100 + i) for i in range(100)]
        monkeypatch.setattr(intake, "cut_and_enqueue", lambda *args: [])
        intake.run(rt, events, published_ms=1)
        read: list[list[str]] = []
        due_in = rt.batcher.due_in

        def counting(waiting: list[Any]) -> dict[str, float]:
            read.append(sorted(t.name for t in waiting))
            return due_in(waiting)

        monkeypatch.setattr(rt.batcher, "due_in", counting)
        ticker = scheduler.Scheduler(rt)
        ticker.flush_due()
        assert read == [["full", "quick", "slow"]]
        assert dep.state_counts("full") == {"batched": 100}  # a full buffer is due at once
        ticker.flush_due()
        assert read[-1] == []  # neither other buffer can be due yet: neither is read

        def cut() -> bool:
            ticker.flush_due()
            return dep.state_counts("quick") == {"batched": 1}

        wait_for(cut, timeout=10, interval=0.1, what="the 1 s buffer to be cut")
        assert all("slow" not in names for names in read[1:])
        assert dep.state_counts("slow") == {"buffered": 1}
