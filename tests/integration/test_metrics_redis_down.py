"""A worker's /metrics when Redis goes away, and the series that exist before anything
happened: run as ``giftsync worker`` against a Redis of the test's own, which the test stops.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.deployment import tenant_table
from giftsync.embedded_redis import start_embedded_redis
from giftsync.waiting import wait_for
from tests.deploy.processes import answers, free_port, role
from tests.deploy.test_roles_start import assert_json_lines

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=15).text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def test_metrics_keep_serving_counters_when_redis_is_down(tmp_path: Path) -> None:
    config = tmp_path / "giftsync.toml"
    # Virtuous is nowhere: the worker only has to start, scrape and lose Redis.
    config.write_text(
        tenant_table("hope-shelter", "http://127.0.0.1:1", "TOKEN_HOPE", mode="batch")
        + tenant_table("river-arts", "http://127.0.0.1:1", "TOKEN_RIVER", mode="real_time")
    )
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    log = tmp_path / "worker.log"
    with start_embedded_redis() as server:
        env = {
            "PATH": "/usr/bin:/bin",
            "REDIS_URL": server.url,
            "GIFTSYNC_CONFIG": str(config),
            "TOKEN_HOPE": "t",
            "TOKEN_RIVER": "t",
            "GIFTSYNC_METRICS_PORT": str(port),
            "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        }
        with role(["worker", "--processes", "1", "--threads", "2"], env, log) as proc:
            answers(url, proc, log, timeout=60)
            up = scrape(url)
            assert up["giftsync_redis_up"] == [({}, 1.0)]
            # Series the alerts need exist before anything happened: pull lag before the
            # first pull, queue depth and dead letters for every tenant.
            lag = {(s["tenant"], s["kind"]) for s, _ in up["giftsync_pull_cursor_lag_seconds"]}
            assert {("hope-shelter", "gift"), ("river-arts", "recurring")} <= lag
            depth = {(s["queue"], s["tenant"]) for s, _ in up["giftsync_queue_depth"]}
            assert ("send", "river-arts") in depth and ("changes", "hope-shelter") in depth
            kept = {s["tenant"] for s, _ in up["giftsync_dead_letters_kept"]}
            assert {"hope-shelter", "river-arts"} <= kept
            assert "giftsync_retries_total" in up

            server.stop()

            def down() -> bool:
                return scrape(url).get("giftsync_redis_up") == [({}, 0.0)]

            wait_for(down, timeout=30, what="the scrape to say Redis is unreachable")
            after = scrape(url)
            # The in-process counters are still served; the Redis-held gauges are not.
            assert "giftsync_retries_total" in after
            assert "giftsync_events_received_total" in after
            assert "giftsync_queue_depth" not in after
    assert_json_lines(log)
