"""What the many-tenants benchmark builds and reads: a fleet of tenants (one tenants file, one
sandbox organisation and one token each), a meter of Redis's own load, the worker processes'
CPU and memory, and the two probes it runs beside a backlog.

The real-time probe publishes one gift every ``gap`` seconds round-robin over some tenants
whose donor Virtuous knows, and times each from just before ``publish()`` to the Gift's
``createDateTimeUtc`` (the sandbox stamps it in this process, on this clock), as
``benchmarks/latency.py`` does for one tenant. The batch watch polls some batch tenants'
ledger counts every 50 ms and notes when each one's gifts are all ``submitted``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from benchmarks.deployment import Deployment, make_config, org, tenant_table
from benchmarks.harness import _process_group, rss_kib
from giftsync.examples import transaction, version_at
from giftsync.waiting import wait_for
from producers.publish import publish
from sandbox import SandboxConfig

# The big tenant: a giving day's backlog, in batch mode, at a low cap.
BIG = "giving-day"
# Clock ticks per second of /proc/<pid>/stat's utime and stime (Linux's USER_HZ).
CLOCK_TICKS = 100


def token_env(name: str) -> str:
    """The environment variable holding ``name``'s Virtuous token."""
    return "VIRTUOUS_TOKEN_" + name.upper().replace("-", "_")


def token(name: str) -> str:
    return f"token-{name}"


@dataclass(frozen=True)
class Fleet:
    """The tenants of one deployment: the big one, real-time ones and small batch ones."""

    big: str | None
    real_time: tuple[str, ...]
    batch: tuple[str, ...]
    big_cap: int = 600
    big_window: float = 60.0
    batch_wait: float = 10.0

    @classmethod
    def of(cls, count: int, batch: int, cap: int, window: float, batch_wait: float) -> Fleet:
        """``count`` tenants: the big one, ``batch`` small batch ones, the rest real time."""
        return cls(
            BIG,
            tuple(f"rt-{i:04d}" for i in range(count - 1 - batch)),
            tuple(f"batch-{i:04d}" for i in range(batch)),
            cap,
            window,
            batch_wait,
        )

    @property
    def names(self) -> list[str]:
        return [*([self.big] if self.big else []), *self.real_time, *self.batch]

    def env(self) -> dict[str, str]:
        """Every tenant's token, under the variable its table names."""
        return {token_env(name): token(name) for name in self.names}

    def sandbox_config(self) -> SandboxConfig:
        """One organisation per tenant; the big one with its compressed cap."""
        orgs = [
            org(name, token(name), calls_per_hour=self.big_cap, window_seconds=self.big_window)
            if name == self.big
            else org(name, token(name))
            for name in self.names
        ]
        return make_config(*orgs)

    def tenants_file(self, url: str) -> str:
        """The tenants TOML naming every tenant."""
        tables = []
        if self.big:
            tables.append(
                tenant_table(
                    self.big,
                    url,
                    token_env(self.big),
                    calls_per_hour=self.big_cap,
                    rate_window_seconds=self.big_window,
                )
            )
        tables += [tenant_table(n, url, token_env(n), mode="real_time") for n in self.real_time]
        tables += [
            tenant_table(n, url, token_env(n), batch_max_wait_seconds=self.batch_wait)
            for n in self.batch
        ]
        return "".join(tables)


@dataclass(frozen=True)
class RedisReading:
    """Redis's own counters at one moment (``at``: this process's monotonic clock)."""

    at: float
    commands: int
    cpu_seconds: float
    used_memory: int


def read_redis(dep: Deployment) -> RedisReading:
    """Redis's commands processed, CPU seconds used (user + system) and memory, now."""
    stats, cpu, memory = dep.redis.info("stats"), dep.redis.info("cpu"), dep.redis.info("memory")
    return RedisReading(
        time.monotonic(),
        int(stats["total_commands_processed"]),
        float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        int(memory["used_memory"]),
    )


def redis_load(first: RedisReading, last: RedisReading) -> tuple[float, float]:
    """(commands per second, share of one core) between two readings."""
    span = last.at - first.at
    return (last.commands - first.commands) / span, (last.cpu_seconds - first.cpu_seconds) / span


def _cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(fields[11]) + int(fields[12])


def worker_pids(dep: Deployment) -> list[int]:
    """Every process of every worker deployment started (dramatiq's main, workers, forks)."""
    return [pid for proc in dep.workers for pid in _process_group(proc.pid)]


def worker_cpu_seconds(dep: Deployment) -> float:
    """CPU seconds the worker processes have used so far."""
    return sum(_cpu_ticks(pid) for pid in worker_pids(dep)) / CLOCK_TICKS


def worker_rss_mib(dep: Deployment) -> float:
    """Resident memory of every worker process together, MiB."""
    return sum(rss_kib(pid) for pid in worker_pids(dep)) / 1024


def idle_load(dep: Deployment, seconds: float) -> dict[str, float]:
    """Redis's and the workers' load while nothing is published."""
    time.sleep(2)  # let the schedulers make their first pass (it starts each pull's clock)
    first, cpu = read_redis(dep), worker_cpu_seconds(dep)
    time.sleep(seconds)  # the span measured, not a wait for work
    last, cpu_after = read_redis(dep), worker_cpu_seconds(dep)
    ops, share = redis_load(first, last)
    return {
        "ops": ops,
        "redis_cpu": share,
        "worker_cpu": (cpu_after - cpu) / (last.at - first.at),
        "memory": last.used_memory / 2**20,
        "rss": worker_rss_mib(dep),
    }


def scrape_seconds(mp_dir: str) -> tuple[float, float, int]:
    """Seconds for the Redis-held gauges, seconds for the merged worker counters, series."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    from workers.observe.state_metrics import StateCollector
    from workers.queue.broker import namespace
    from workers.runtime import runtime

    rt = runtime()
    gauges = CollectorRegistry()
    gauges.register(StateCollector(rt, namespace(rt.settings)))
    started = time.perf_counter()
    generate_latest(gauges)
    state_seconds = time.perf_counter() - started
    counters = CollectorRegistry()
    MultiProcessCollector(counters, path=mp_dir)  # type: ignore[no-untyped-call]
    started = time.perf_counter()
    text = generate_latest(counters)
    series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    return state_seconds, time.perf_counter() - started, series


def pull_pass_seconds() -> float:
    """One steady pass of the scheduler's pull task over every tenant, timed in this process."""
    from workers.queue.scheduler import Scheduler
    from workers.runtime import runtime

    scheduler = Scheduler(runtime())
    scheduler.schedule_pulls()  # a new scheduler's first pass reads every tenant's clock
    started = time.perf_counter()
    scheduler.schedule_pulls()
    return time.perf_counter() - started


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()


def known_donors(dep: Deployment, tenants: list[str]) -> dict[str, int]:
    """A Contact in each tenant's Virtuous, so a real-time gift is one ``POST /api/Gift``."""
    found = {}
    for name in tenants:
        made = dep.admin(
            "POST", "contacts", json={"org": name, "firstName": "Kim", "lastName": "Lee"}
        )
        found[name] = int(made["contacts"][0]["id"])
    return found


@dataclass
class RealTimeProbe:
    """Real-time gifts, one every ``gap`` seconds, round-robin over ``donors``' tenants."""

    dep: Deployment
    donors: dict[str, int]
    gap: float = 0.1
    published: dict[tuple[str, str], float] = field(default_factory=dict)
    _next_id: int = 1

    def publish_one(self, index: int) -> None:
        """Publish gift ``index`` of the run into the next tenant."""
        tenants = list(self.donors)
        tenant = tenants[index % len(tenants)]
        tx_id = self._next_id
        self._next_id += 1
        event = transaction(
            tenant,
            tx_id,
            amount=1000 + tx_id,
            version=version_at(tx_id),
            contact_id=self.donors[tenant],
        )
        self.published[(tenant, str(tx_id))] = time.time()
        publish(event)

    def run(
        self,
        count: int,
        *,
        alongside: Callable[[int], None] | None = None,
        until: Callable[[], bool] | None = None,
    ) -> list[tuple[str, str]]:
        """Publish ``count`` gifts (or, with ``until``, until it holds); ``alongside(i)`` runs
        after each. Returns the keys published."""
        keys_before = set(self.published)
        index = 0
        while (until is None and index < count) or (until is not None and not until()):
            self.publish_one(index)
            if alongside is not None:
                alongside(index)
            index += 1
            time.sleep(self.gap)  # the load's pace, not a wait for work
        return [key for key in self.published if key not in keys_before]

    def latencies(self, keys: list[tuple[str, str]], timeout: float) -> list[float]:
        """Milliseconds from publish to Gift created for ``keys``, once all exist."""
        state = self.dep.sandbox.state
        wanted = {tenant for tenant, _ in keys}

        def created() -> dict[tuple[str, str], str] | None:
            with state.lock:
                gifts = {
                    (tenant, g["transactionId"]): g["createDateTimeUtc"]
                    for tenant in wanted
                    for g in state.org(tenant).gifts.values()
                }
            return gifts if all(key in gifts for key in keys) else None

        gifts = wait_for(created, timeout=timeout, what=f"{len(keys)} real-time gifts")
        return [1000 * (_epoch(gifts[key]) - self.published[key]) for key in keys]

    def intake_delays(self, keys: list[tuple[str, str]]) -> list[float]:
        """Milliseconds from publish to the ledger's record (the changes queue and intake)."""
        pipe = self.dep.redis.pipeline(transaction=False)
        for tenant, tx_id in keys:
            pipe.hget(self.dep.key("rec", tenant, f"transaction:{tx_id}"), "first_ms")
        firsts = pipe.execute()
        return [
            int(first) - 1000 * self.published[key] for key, first in zip(keys, firsts, strict=True)
        ]


class BatchWatch:
    """Notes when each watched batch tenant's newest gift is submitted (polled every 50 ms)."""

    def __init__(self, dep: Deployment, first_id: int = 1) -> None:
        self.dep = dep
        self.published: dict[str, float] = {}
        self.submitted: dict[str, float] = {}
        self._expected: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batch-watch", daemon=True)
        self._next_id = first_id

    def _count(self, tenant: str) -> int:
        return int(self.dep.redis.hget(self.dep.key("states", tenant), "submitted") or 0)

    def publish(self, tenant: str) -> None:
        """Publish one gift into ``tenant``; its batch's clock starts now."""
        tx_id = self._next_id
        self._next_id += 1
        with self._lock:
            self._expected[tenant] = self._count(tenant) + 1
            self.published[tenant] = time.time()
        publish(transaction(tenant, tx_id, amount=2000 + tx_id, version=version_at(tx_id)))

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                waiting = [t for t in self._expected if t not in self.submitted]
                now = time.time()
                for tenant in waiting:
                    if self._count(tenant) >= self._expected[tenant]:
                        self.submitted[tenant] = now
            self._stop.wait(0.05)

    def delays(self, timeout: float) -> list[float]:
        """Seconds from publish to submitted, once every published tenant's batch went."""
        wait_for(
            lambda: set(self.published) <= set(self.submitted),
            timeout=timeout,
            interval=0.1,
            what="the small tenants' batches",
        )
        return [self.submitted[t] - self.published[t] for t in self.published]

    def __enter__(self) -> BatchWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
