"""Gauges read from Redis at scrape time: the state every process shares.

Queue depth, the age of each tenant's oldest buffered entry, gifts by state, paused
tenants, dead letters and calls used in the current window are facts about Redis, not
about one process, so they are collected on scrape by whichever process serves
``/metrics`` rather than kept in each worker.

While Redis cannot be reached the collector yields only ``giftsync_redis_up 0``: the
in-process counters beside it in the same registry keep being served, and an alert reads
the gauge. It uses its own Redis client with short timeouts and no retries, so a scrape
answers in a few seconds whatever Redis does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import redis
import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from workers.flows.pull import cursor_lag_seconds
from workers.flows.pull_plan import KINDS
from workers.queue.queues import QUEUES, shown_as
from workers.runtime import Runtime
from workers.store.connection import connect
from workers.store.keys import dramatiq_messages

log = structlog.get_logger("giftsync.metrics")

# A scrape gives up on Redis after this long (Prometheus's own scrape timeout is 10 s).
REDIS_TIMEOUT_SECONDS = 2.0
# Messages read per HSCAN step when counting queue depth by tenant.
SCAN_COUNT = 1000
# The first tenant a queued message names (a send names one; a chunk of changes names its
# events' tenant, and publish() chunks by tenant). A regex, not a JSON parse: cheap per scrape.
_TENANT = re.compile(rb'"tenant"\s*:\s*"([^"\\]{1,200})"')
# The tenant label of a message that names no configured tenant.
NO_TENANT = "none"


class StateCollector(Collector):
    """Collects giftsync's Redis-held state as gauges, and whether Redis answers at all."""

    def __init__(self, rt: Runtime, namespace: str) -> None:
        self._rt = Runtime(rt.settings)
        # Runtime builds its client lazily; set one with scrape-sized timeouts first.
        self._rt.__dict__["redis"] = connect(
            rt.settings,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            connect_timeout=REDIS_TIMEOUT_SECONDS,
            retry=False,
        )
        self._namespace = namespace

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "giftsync_redis_up", "1 when this process reached Redis at the last scrape, else 0."
        )
        try:
            families = self._families()
        except redis.RedisError as exc:
            log.warning("metrics_redis_unreachable", error=type(exc).__name__)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from families

    def _families(self) -> list[GaugeMetricFamily]:
        rt = self._rt
        tenants = sorted(rt.settings.tenants)
        families = [self._queue_depth(tenants)]
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
            paused.add_metric([name], 1.0 if rt.marks.paused_reason(name) is not None else 0.0)
            window.add_metric([name], float(rt.limiter.calls_in_window(tenant)))
            cap.add_metric([name], float(tenant.calls_per_hour))
            first = rt.ledger.oldest_unconfirmed(name)
            unconfirmed.add_metric([name], max(now - first[1], 0) / 1000 if first else 0.0)
        families += [age, size, states, paused, window, cap, unconfirmed]
        families.append(_pull_lag(rt, now))
        families.append(_dead_letters(rt, tenants))
        return families

    def _queue_depth(self, tenants: list[str]) -> GaugeMetricFamily:
        """Messages waiting or delayed per queue and tenant; every pair exists, zero or not."""
        depth = GaugeMetricFamily(
            "giftsync_queue_depth",
            "Messages waiting, delayed or in flight per queue and tenant.",
            labels=["queue", "tenant"],
        )
        known = set(tenants)
        shown = {shown_as(queue): dict.fromkeys([*tenants, NO_TENANT], 0) for queue in QUEUES}
        for queue in QUEUES:
            counts = shown[shown_as(queue)]
            for name in (queue, f"{queue}.DQ"):
                key = dramatiq_messages(self._namespace, name)
                for _, raw in self._rt.redis.hscan_iter(key, count=SCAN_COUNT):
                    found = _TENANT.search(raw)
                    name = found.group(1).decode("utf-8", "replace") if found else NO_TENANT
                    counts[name if name in known else NO_TENANT] += 1
        for queue, counts in shown.items():
            for name, count in counts.items():
                depth.add_metric([queue, name], float(count))
        return depth


def _dead_letters(rt: Runtime, tenants: list[str]) -> GaugeMetricFamily:
    """Dead letters the ledger keeps for replay, per tenant (named apart from the counter
    ``giftsync_dead_letters_total``: OpenMetrics gives both one family name otherwise)."""
    kept = GaugeMetricFamily(
        "giftsync_dead_letters_kept",
        "Dead letters the ledger keeps for replay, per tenant.",
        labels=["tenant"],
    )
    counts = dict.fromkeys([*tenants, NO_TENANT], 0)
    for letter in rt.ledger.dead_letters():
        name = str(letter.get("tenant") or NO_TENANT)
        counts[name if name in counts else NO_TENANT] += 1
    for name, count in counts.items():
        kept.add_metric([name], float(count))
    return kept


def _pull_lag(rt: Runtime, now_ms: int) -> GaugeMetricFamily:
    """How far behind now each pull's saved cursor is. Before a pull's first page, the time
    since a scrape first saw it waiting: the series exists from the start and grows until
    the first pull commits, so a pull that never runs is alerted on like one that stalls."""

    lag = GaugeMetricFamily(
        "giftsync_pull_cursor_lag_seconds",
        "How far behind now a pull is: its cursor's date, or when it last reached the end.",
        labels=["tenant", "kind"],
    )
    for name in sorted(rt.settings.tenants):
        for kind, spec in KINDS.items():
            seconds = cursor_lag_seconds(rt, name, kind, now_ms)
            if seconds is None:
                since = rt.cursors.waiting_since(name, kind, now_ms)
                seconds = max(now_ms - since, 0) / 1000
            lag.add_metric([name, spec.metric_kind], seconds)
    return lag
