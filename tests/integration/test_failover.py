"""A Redis failover under load: a primary, a replica and three Sentinels on this machine, the
primary SIGKILLed while real-time and batch gifts flow through real workers to the sandbox.

Every change whose publish returned reaches the sandbox exactly once, and no direct Gift is
created twice: the workers follow Sentinel to the new primary, and acknowledgements (publish,
the ``create_attempted`` mark) waited for the replica before they returned. A command cut off
by the primary's death is retried on the primary Sentinel names, never at the old address:
the operator brings the old node back there with an empty database, and it answers as a
primary until Sentinel demotes it, so a retry landing on it would find nothing to send (its
message then acknowledged, its gifts never sent) and write what the node's resync wipes.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from benchmarks.deployment import Deployment, deployment, make_config, org, tenant_table
from giftsync.examples import transaction
from giftsync.settings import load_settings
from giftsync.waiting import wait_for
from producers.publish import publish_many
from workers.store.connection import connect

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVICE = "giftsync-test"
REALTIME = "river-arts"
BATCH = "hope-shelter"
BIG_CAP = 1_000_000
PER_TENANT = 300
CHUNK = 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Cluster:
    """Redis nodes and Sentinels, each a process of this test."""

    workdir: Path
    nodes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    sentinels: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_node(self, port: int, replica_of: int | None = None) -> None:
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.workdir)]
        args += ["--dbfilename", f"dump-{port}.rdb"]
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        self.nodes[port] = self._spawn(args, f"redis-{port}.log")
        wait_for(lambda: _pings(port), timeout=10, what=f"redis on {port}")

    def start_sentinel(self, primary: int) -> None:
        port = free_port()
        conf = self.workdir / f"sentinel-{port}.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n",
            encoding="utf-8",
        )
        self._spawn(["redis-server", str(conf), "--sentinel"], f"sentinel-{port}.log")
        self.sentinels.append(port)
        wait_for(lambda: _pings(port), timeout=10, what=f"sentinel on {port}")

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        out = (self.workdir / log).open("wb")
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        self.processes.append(proc)
        return proc

    def kill(self, port: int) -> None:
        proc = self.nodes.pop(port)
        proc.kill()
        proc.wait(timeout=10)

    def primary(self) -> int | None:
        """The primary's port as every Sentinel names it, or None while they disagree."""
        seen = set()
        for port in self.sentinels:
            client = redis.Redis(port=port, socket_timeout=1)
            try:
                addr = client.sentinel_get_master_addr_by_name(SERVICE)
            except redis.RedisError:
                return None
            finally:
                client.close()
            if not isinstance(addr, tuple):
                return None
            seen.add(int(addr[1]))
        return seen.pop() if len(seen) == 1 else None

    def replicas_of(self, port: int) -> int:
        client = redis.Redis(port=port, socket_timeout=1)
        try:
            return int(client.info("replication").get("connected_slaves", 0))
        except redis.RedisError:
            return 0
        finally:
            client.close()

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def _pings(port: int) -> bool:
    client = redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@contextmanager
def cluster(workdir: Path) -> Iterator[tuple[Cluster, int, int]]:
    """A primary, its replica and three Sentinels watching them."""
    workdir.mkdir(exist_ok=True)
    running = Cluster(workdir)
    primary, replica = free_port(), free_port()
    try:
        running.start_node(primary)
        running.start_node(replica, replica_of=primary)
        wait_for(lambda: running.replicas_of(primary) == 1, timeout=20, what="the replica")
        for _ in range(3):
            running.start_sentinel(primary)
        wait_for(lambda: running.primary() == primary, timeout=20, what="sentinels agree")
        yield running, primary, replica
    finally:
        running.stop()


def blocked_clients(port: int) -> int:
    client = redis.Redis(port=port, socket_timeout=1)
    try:
        return int(client.info("clients").get("blocked_clients", 0))
    except redis.RedisError:
        return 0
    finally:
        client.close()


def test_a_command_cut_off_by_the_failover_is_retried_on_the_new_primary(
    tmp_path: Path,
) -> None:
    """A BLPOP blocked on the primary when it dies is retried on the new primary, even once
    the old node is back, empty, at its address."""
    with cluster(tmp_path / "redis") as (nodes, primary, replica):
        config = tmp_path / "tenants.toml"
        config.write_text(tenant_table("t1", "http://127.0.0.1:9", "T1_TOKEN"), encoding="utf-8")
        settings = load_settings(
            {
                "GIFTSYNC_CONFIG": str(config),
                "REDIS_SENTINELS": ",".join(f"127.0.0.1:{p}" for p in nodes.sentinels),
                "REDIS_SENTINEL_MASTER": SERVICE,
                "GIFTSYNC_REDIS_FAILOVER_SECONDS": "60",
            }
        )
        client = connect(settings)
        popped: list[object] = []

        def pop() -> None:
            try:
                popped.append(client.blpop(["handoff"], timeout=20))
            except redis.RedisError as exc:  # shown by the assertion, not lost in the thread
                popped.append(exc)

        waiter = threading.Thread(target=pop, daemon=True)
        waiter.start()
        wait_for(lambda: blocked_clients(primary) == 1, timeout=10, what="the BLPOP on the primary")
        nodes.kill(primary)
        wait_for(lambda: nodes.primary() == replica, timeout=90, what="the failover")
        nodes.start_node(primary)
        new_primary = redis.Redis(port=replica)
        new_primary.rpush("handoff", "after the failover")
        new_primary.close()
        wait_for(lambda: popped, timeout=60, what="the BLPOP's answer")
        client.close()
        assert popped == [(b"handoff", b"after the failover")]


def tenants(url: str) -> str:
    return tenant_table(
        REALTIME, url, "VIRTUOUS_TOKEN_RIVER", mode="real_time", calls_per_hour=BIG_CAP
    ) + tenant_table(BATCH, url, "VIRTUOUS_TOKEN_HOPE", calls_per_hour=BIG_CAP)


class Publisher(threading.Thread):
    """Plays the platform: publishes in small chunks and remembers what was acknowledged."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.events = events
        self.acked: list[tuple[str, str]] = []
        self.failed: list[tuple[str, str]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for start in range(0, len(self.events), CHUNK):
                chunk = self.events[start : start + CHUNK]
                ids = [(e["tenant"], str(e["record"]["id"])) for e in chunk]
                try:
                    publish_many(chunk)
                except redis.RedisError:
                    self.failed.extend(ids)  # not acknowledged: the platform would retry
                    continue
                self.acked.extend(ids)
        except BaseException as exc:  # surfaced by the test, not lost in the thread
            self.error = exc


def delivered(dep: Deployment) -> Counter[tuple[str, str]]:
    """Each (tenant, transactionId) the sandbox holds, counted: direct Gifts and Import entries."""
    found: Counter[tuple[str, str]] = Counter()
    for gift in dep.admin("GET", "gifts").get(REALTIME, []):
        found[(REALTIME, str(gift["transactionId"]))] += 1
    for batch in dep.admin("GET", "imports").get(BATCH, []):
        for entry in batch["entries"]:
            found[(BATCH, str(entry["transactionId"]))] += 1
    return found


def test_a_primary_killed_mid_flow_loses_no_acknowledged_change(
    tmp_path: Path,
) -> None:
    config = make_config(
        org(REALTIME, "demo-token-river", calls_per_hour=BIG_CAP),
        org(BATCH, "demo-token-hope", calls_per_hour=BIG_CAP),
    )
    with cluster(tmp_path / "redis") as (nodes, primary, replica):
        env = {
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{p}" for p in nodes.sentinels),
            "REDIS_SENTINEL_MASTER": SERVICE,
            "GIFTSYNC_MIN_REPLICAS": "1",
            "GIFTSYNC_REDIS_FAILOVER_SECONDS": "60",
        }
        with deployment(
            tmp_path,
            f"redis://127.0.0.1:{primary}/0",
            tenants=tenants,
            sandbox_config=config,
            env=env,
        ) as dep:
            contact = dep.admin(
                "POST", "contacts", json={"org": REALTIME, "firstName": "Kim", "lastName": "Lee"}
            )["contacts"][0]["id"]
            dep.start_worker(processes=1, threads=4)
            dep.start_worker(processes=1, threads=4)
            events = []
            for i in range(1, PER_TENANT + 1):
                events.append(transaction(REALTIME, i, amount=100 + i, contact_id=contact))
                events.append(transaction(BATCH, i, amount=200 + i))
            publisher = Publisher(events)
            publisher.start()
            # Kill the primary once work is flowing: some of it delivered, much still queued.
            wait_for(
                lambda: sum(delivered(dep).values()) >= 40,
                timeout=60,
                interval=0.2,
                what="gifts flowing",
            )
            nodes.kill(primary)
            wait_for(lambda: nodes.primary() == replica, timeout=90, what="the failover")
            # The operator brings the old node back; Sentinel makes it the new replica.
            nodes.start_node(primary)
            wait_for(lambda: nodes.replicas_of(replica) == 1, timeout=120, what="a new replica")
            publisher.join(timeout=180)
            assert not publisher.is_alive(), "the publisher never finished"
            assert publisher.error is None, publisher.error
            assert len(publisher.acked) >= PER_TENANT, "too little was acknowledged to judge"

            acked = set(publisher.acked)
            wait_for(
                lambda: sorted(acked - set(delivered(dep))),
                until=lambda missing: not missing,
                timeout=180,
                interval=0.5,
                what="every acknowledged change in the sandbox (last: those missing)",
            )
            counts = delivered(dep)
            twice = {key: n for key, n in counts.items() if n > 1}
            assert twice == {}, f"reached the sandbox more than once: {twice}"
            stats = dep.admin("GET", "stats")["orgs"][REALTIME]
            assert stats["duplicate_gifts_created"] == 0
