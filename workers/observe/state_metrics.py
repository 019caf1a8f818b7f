"""Gauges read from Redis at scrape time: the state every process shares.

Queue depth, the age of each tenant's oldest buffered entry, gifts by state, paused
tenants, dead letters and calls used in the current window are facts about Redis, not
about one process, so they are collected on scrape by whichever process serves
``/metrics`` rather than kept in each worker.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from workers.queue.messages import QUEUES
from workers.runtime import Runtime


class StateCollector(Collector):
    """Collects giftsync's Redis-held state as gauges."""

    def __init__(self, rt: Runtime, namespace: str) -> None:
        self._rt = rt
        self._namespace = namespace

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rt = self._rt
        depth = GaugeMetricFamily(
            "giftsync_queue_depth", "Messages waiting or in flight per queue.", labels=["queue"]
        )
        for queue in QUEUES:
            total = rt.redis.hlen(f"{self._namespace}:{queue}.msgs")
            total += rt.redis.hlen(f"{self._namespace}:{queue}.DQ.msgs")
            depth.add_metric([queue], float(total))
        yield depth

        now = rt.batcher.server_ms()
        age = GaugeMetricFamily(
            "giftsync_buffer_oldest_age_seconds",
            "Age of the oldest entry waiting in a tenant's batch buffer.",
            labels=["tenant"],
        )
        size = GaugeMetricFamily(
            "giftsync_buffer_entries", "Entries waiting in a tenant's buffer.", labels=["tenant"]
        )
        states = GaugeMetricFamily(
            "giftsync_gifts", "Records per ledger state.", labels=["tenant", "state"]
        )
        paused = GaugeMetricFamily(
            "giftsync_tenant_paused", "1 while a tenant is paused by a 401.", labels=["tenant"]
        )
        window = GaugeMetricFamily(
            "giftsync_calls_in_window",
            "Calls granted to a tenant in the current rolling window.",
            labels=["tenant"],
        )
        unconfirmed = GaugeMetricFamily(
            "giftsync_oldest_unconfirmed_seconds",
            "Age of the oldest gift Virtuous accepted whose real Gift id is not known yet.",
            labels=["tenant"],
        )
        cap = GaugeMetricFamily(
            "giftsync_calls_cap", "A tenant's configured calls per window.", labels=["tenant"]
        )
        for name, tenant in sorted(rt.settings.tenants.items()):
            oldest = rt.batcher.oldest_buffered_ms(name)
            age.add_metric([name], max(now - oldest, 0) / 1000 if oldest is not None else 0.0)
            size.add_metric([name], float(rt.batcher.buffer_size(name)))
            for state, count in rt.ledger.state_counts(name).items():
                states.add_metric([name, state], float(count))
            paused.add_metric([name], 1.0 if rt.redis.exists(rt.keys.paused(name)) else 0.0)
            window.add_metric([name], float(rt.limiter.calls_in_window(tenant)))
            cap.add_metric([name], float(tenant.calls_per_hour))
            first = rt.redis.zrange(rt.keys.unconfirmed(name), 0, 0, withscores=True)
            unconfirmed.add_metric(
                [name], max(now - float(first[0][1]), 0) / 1000 if first else 0.0
            )
        yield from (age, size, states, paused, window, cap, unconfirmed)

        yield _pull_lag(rt, now)

        dead = GaugeMetricFamily("giftsync_dead_letters", "Dead letters kept by the ledger.")
        dead.add_metric([], float(rt.redis.hlen(rt.keys.dead_letters)))
        yield dead


def _pull_lag(rt: Runtime, now_ms: int) -> GaugeMetricFamily:
    """How far behind now each pull's saved cursor is (absent before its first page)."""
    from workers.flows.pull import cursor_lag_seconds
    from workers.flows.pull_plan import KINDS

    lag = GaugeMetricFamily(
        "giftsync_pull_cursor_lag_seconds",
        "How far behind now a pull is: its cursor's date, or when it last reached the end.",
        labels=["tenant", "kind"],
    )
    for name in sorted(rt.settings.tenants):
        for kind, spec in KINDS.items():
            seconds = cursor_lag_seconds(rt, name, kind, now_ms)
            if seconds is not None:
                lag.add_metric([name, spec.metric_kind], seconds)
    return lag
