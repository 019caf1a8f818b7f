"""The chaos soak: every sendable gift arrives exactly once while everything around it fails.

Four tenants, two in batch mode and two in real time, get ``GIFTSYNC_CHAOS_EVENTS`` change
events (default 5,000; the README's figures come from 100,000) in ten chunks, plus a later
version of some real-time gifts. Meanwhile, on a schedule: worker deployments are SIGKILLed
and restarted mid-flight, the Redis (an embedded redis-server with AOF on, which REDIS_URL
points to) is restarted once, a burst of 429s is injected, and all along the sandbox answers
5% of calls with a 500, applies 2% and then stalls past the client's timeout, and drops 1% of
connections (half of them after applying).

At the end the sandbox must hold exactly one import entry (batch) or Gift (real time) per
sendable record, with the newest version's amount and designations; nothing else; no
duplicate Gift created; and the ledger and the writeback stream must say the same.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis

from benchmarks.deployment import Deployment, deployment, make_config, org, tenant_table
from giftsync.embedded_redis import EmbeddedRedis, start_embedded_redis
from giftsync.examples import FUNDS, transaction, version_at
from giftsync.settings import get_settings
from giftsync.waiting import WaitTimeout, wait_for
from mapping.decision import decide
from mapping.events import Transaction, parse_event
from mapping.tenant import TenantSettings
from producers.publish import publish_many
from sandbox.config import FaultConfig
from workers.observe.process_files import process_registry
from workers.store.limiter import Limiter

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = int(os.environ.get("GIFTSYNC_CHAOS_EVENTS", "5000"))
BATCH = ("hope-shelter", "north-food-bank")
REALTIME = ("river-arts", "lake-trust")
TENANTS = BATCH + REALTIME
SHORT = {
    "hope-shelter": "hope",
    "north-food-bank": "north",
    "river-arts": "river",
    "lake-trust": "lake",
}
BIG_CAP = 10_000_000
FAULTS = FaultConfig(
    fail_rate=0.05, timeout_after_apply_rate=0.02, drop_rate=0.01, stall_seconds=1.5
)
# After which chunk (of ten) each disturbance happens.
SCHEDULE = {
    1: "kill A",
    2: "429 burst",
    3: "restart Redis",
    5: "kill B",
    7: "kill both",
    8: "kill A",
}


def chaos_tenants(url: str) -> str:
    return "".join(
        tenant_table(
            t,
            url,
            f"VIRTUOUS_TOKEN_{SHORT[t].upper()}",
            calls_per_hour=BIG_CAP,
            mode="real_time" if t in REALTIME else "batch",
            batch_max_wait_seconds=0.5,
        )
        for t in TENANTS
    )


def chaos_events(count: int, contacts: dict[str, int]) -> list[dict[str, Any]]:
    """``count`` varied events round-robin over the tenants, then later versions of 5% of the
    real-time ones (new amount, same record)."""
    rng = random.Random(2026)
    out, updates = [], []
    for i in range(count):
        tenant = TENANTS[i % len(TENANTS)]
        amount = rng.randrange(100, 500_000)
        allocations = None
        if rng.random() < 0.25:
            first = amount // 3
            allocations = [
                {"fund": FUNDS[1], "amount": first},
                {"fund": FUNDS[2], "amount": amount - first},
            ]
        status = rng.choices(["success", "processing", "failed", "pending"], [92, 3, 3, 2])[0]
        contact: int | None = 5000
        if tenant in REALTIME:
            contact = None if rng.random() < 0.1 else contacts[tenant]
        out.append(
            transaction(
                tenant,
                i + 1,
                amount=amount,
                status=status,
                version=version_at(i),
                contact_id=contact,
                fund=rng.choice(FUNDS),
                allocations=allocations,
            )
        )
        if tenant in REALTIME and status == "success" and rng.random() < 0.05:
            updates.append(
                transaction(
                    tenant,
                    i + 1,
                    amount=amount + 100,
                    version=version_at(count + i),
                    contact_id=contact,
                    fund=out[-1]["record"]["fund"],
                )
            )
    return out + updates


def designations(tx: Transaction) -> list[tuple[int, Decimal]]:
    """(project id, amount) lines the gift must carry, by the event."""
    lines = [(a.fund.virtuous_id, a.amount) for a in tx.allocations] or [
        (tx.fund.virtuous_id, tx.amount)
    ]
    return sorted((int(p or 0), Decimal(c) / 100) for p, c in lines)


def held_lines(gift: dict[str, Any]) -> list[tuple[int, Decimal]]:
    return sorted(
        (int(d["projectId"]), Decimal(str(d["amountDesignated"])).quantize(Decimal("0.01")))
        for d in gift["giftDesignations"]
    )


def retries(prom_dir: Path) -> int:
    """Failed attempts the workers retried, from their multiprocess metric files."""
    registry = process_registry(prom_dir)
    return int(
        sum(
            sample.value
            for family in registry.collect()
            if family.name == "giftsync_retries"
            for sample in family.samples
            if sample.name.endswith("_total")
        )
    )


class Chaos:
    """The disturbances, applied to one deployment and its Redis."""

    def __init__(self, dep: Deployment, server: EmbeddedRedis, prom: Path) -> None:
        self.dep, self.server, self.prom = dep, server, prom
        self.workers = {"A": self.start(), "B": self.start()}
        self.kills = 0
        self.redis_restarts = 0

    def start(self) -> Any:
        return self.dep.start_worker(
            processes=1, threads=8, extra={"PROMETHEUS_MULTIPROC_DIR": str(self.prom)}
        )

    def kill(self, *names: str) -> None:
        for name in names:
            self.dep.kill_worker(self.workers[name])
            self.kills += 1
        for name in names:
            self.workers[name] = self.start()

    def restart_redis(self) -> None:
        port, directory = self.server.port, self.server.directory
        self.server.stop()  # a clean shutdown: AOF holds every write
        self.server = start_embedded_redis(port=port, appendonly=True, directory=directory)
        self.redis_restarts += 1

    def apply(self, what: str) -> None:
        if what == "429 burst":
            self.dep.admin("POST", "faults", json={"burst_429": 25, "burst_retry_after": 1})
        elif what == "restart Redis":
            self.restart_redis()
        else:
            self.kill(*(("A", "B") if what == "kill both" else (what[-1],)))


def test_chaos_soak_delivers_every_sendable_gift_exactly_once(tmp_path: Path) -> None:
    started = time.monotonic()
    (tmp_path / "redis").mkdir()
    prom = tmp_path / "prom"
    prom.mkdir()
    server = start_embedded_redis(appendonly=True, directory=tmp_path / "redis")
    config = make_config(
        *(org(t, f"demo-token-{SHORT[t]}", calls_per_hour=BIG_CAP) for t in TENANTS),
        faults=FAULTS,
        seed=9,
    )
    env = {
        "VIRTUOUS_TOKEN_LAKE": "demo-token-lake",
        "GIFTSYNC_VIRTUOUS_TIMEOUT_SECONDS": "1",
        "GIFTSYNC_LOG_LEVEL": "WARNING",
    }
    chaos: Chaos | None = None
    try:
        with deployment(
            tmp_path, server.url, tenants=chaos_tenants, sandbox_config=config, env=env
        ) as dep:
            contacts = {
                t: dep.admin(
                    "POST", "contacts", json={"org": t, "firstName": "Kim", "lastName": "Lee"}
                )["contacts"][0]["id"]
                for t in REALTIME
            }
            events = chaos_events(EVENTS, contacts)
            chaos = Chaos(dep, server, prom)
            final = {(e["tenant"], e["record"]["id"]): e for e in events}
            settings = get_settings()
            sendable: dict[tuple[str, int], Transaction] = {}
            for key, event in final.items():
                tx = parse_event(event).record
                assert isinstance(tx, Transaction)
                if decide(tx, settings.tenant(key[0])).send:
                    sendable[key] = tx

            def finished() -> int:
                return sum(
                    dep.state_counts(t).get(s, 0)
                    for t in TENANTS
                    for s in ("submitted", "sent", "skipped")
                )

            def progressed(before: int) -> bool:
                return finished() > before

            chunk = -(-len(events) // 10)
            for index in range(10):
                publish_many(events[index * chunk : (index + 1) * chunk])
                if index in SCHEDULE:
                    wait_for(
                        partial(progressed, finished()),
                        timeout=120,
                        what="work in flight before the disturbance",
                    )
                    chaos.apply(SCHEDULE[index])

            def settled() -> bool:
                busy = ("buffered", "batched", "queued")
                return finished() == len(final) and not any(
                    dep.state_counts(t).get(s) for t in TENANTS for s in busy
                )

            try:
                wait_for(
                    settled,
                    timeout=240 + len(events) / 50,
                    interval=0.5,
                    what="every record in an end state",
                )
            except WaitTimeout as exc:
                raise AssertionError(f"{exc}\n{stuck(dep)}") from None
            check_sandbox_and_ledger(
                dep, len(events), final, sendable, chaos, time.monotonic() - started
            )
    finally:
        (chaos.server if chaos else server).stop()


def stuck(dep: Deployment) -> str:
    """What a stalled run is waiting on: states, delayed messages, limiter states, locks."""
    now = time.time() * 1000
    delayed: Counter[tuple[str, int, str]] = Counter()
    delayed_raw = [
        raw
        for name in ("send.DQ.msgs", "batches.DQ.msgs", "batches_throttled.DQ.msgs")
        for raw in dep.redis.hvals(dep.key("dramatiq", name))
    ]
    for raw in delayed_raw:
        message = json.loads(raw)
        options = message["options"]
        delayed[
            (
                message["actor_name"],
                round((options.get("eta", now) - now) / 1000),
                str(options.get("last_error", ""))[:80],
            )
        ] += 1
    limiters = {t: dep.redis.hgetall(f"{dep.prefix}:limiter:{{{t}}}:state") for t in TENANTS}
    messages = [
        json.loads(raw)["kwargs"]
        for name in (
            "send.msgs",
            "send.DQ.msgs",
            "batches.msgs",
            "batches.DQ.msgs",
            "batches_throttled.msgs",
            "batches_throttled.DQ.msgs",
        )
        for raw in dep.redis.hvals(dep.key("dramatiq", name))
    ]
    wanted = {(m.get("tenant"), m.get("member")) for m in messages}
    queued = [
        (
            t,
            key.decode().rsplit(":", 2)[-2] + ":" + key.decode().rsplit(":", 1)[-1],
            dep.redis.hget(key, "create_attempted"),
        )
        for t in REALTIME
        for key in dep.redis.scan_iter(dep.key("rec", t, "*"))
        if dep.redis.hget(key, "state") == b"queued"
    ]
    orphans = [(t, m, bool(a)) for t, m, a in queued if (t, m) not in wanted]
    return (
        f"states: { ({t: dep.state_counts(t) for t in TENANTS}) }\n"
        f"dead letters: {dep.redis.hlen(dep.key('dead'))}\n"
        f"delayed sends (actor, due in s, last error): {delayed.most_common(10)}\n"
        f"limiters: {limiters}\n"
        f"record locks: {len(list(dep.redis.scan_iter(dep.key('lock', '*'))))}\n"
        f"queued records with no send message: {len(orphans)} of {len(queued)}, "
        f"attempted: {sum(a for *_, a in orphans)}; e.g. {orphans[:5]}"
    )


def check_sandbox_and_ledger(
    dep: Deployment,
    published: int,
    final: dict[tuple[str, int], Any],
    sendable: dict[tuple[str, int], Transaction],
    chaos: Chaos,
    seconds: float,
) -> None:
    imports = dep.admin("GET", "imports")
    held = {t: [e for b in imports[t] for e in b["entries"]] for t in BATCH}
    held |= {t: dep.admin("GET", "gifts")[t] for t in REALTIME}
    stats = dep.admin("GET", "stats")["orgs"]
    duplicates = 0
    lost: list[tuple[str, int]] = []
    wrong: list[tuple[str, int | str, str]] = []
    for tenant, items in held.items():
        ids = Counter(int(item["transactionId"]) for item in items)
        duplicates += sum(n - 1 for n in ids.values())
        expected = {rid for (t, rid) in sendable if t == tenant}
        lost += [(tenant, rid) for rid in expected - set(ids)]
        wrong += [(tenant, rid, "not sendable") for rid in set(ids) - expected]
        for item in items:
            tx = sendable.get((tenant, int(item["transactionId"])))
            gift = item.get("gift", item)
            if tx is not None and (
                Decimal(str(gift["amount"])).quantize(Decimal("0.01")) != Decimal(tx.amount) / 100
                or held_lines(gift) != designations(tx)
            ):
                wrong.append(
                    (
                        tenant,
                        tx.id,
                        f"expected {tx.amount} cents {designations(tx)}, "
                        f"holds {gift['amount']} {held_lines(gift)}",
                    )
                )
    made_twice = sum(stats[t]["duplicate_gifts_created"] for t in TENANTS)
    faults: Counter[str] = Counter()
    for t in TENANTS:
        faults.update(stats[t]["faults_injected"])
    print(
        f"\nchaos soak: {published} events ({len(final)} records, {len(sendable)} sendable); "
        f"{chaos.kills} worker kills, {chaos.redis_restarts} Redis restart; faults injected "
        f"{dict(faults)}; 429s served {sum(stats[t]['rate_limited'] for t in TENANTS)}; "
        f"retries {retries(chaos.prom)}; resends absorbed "
        f"{sum(stats[t]['duplicates_noop'] for t in TENANTS)}; duplicate contacts "
        f"{sum(stats[t]['duplicate_contacts_created'] for t in TENANTS)}; "
        f"duplicates {duplicates + made_twice}; lost {len(lost)}; {seconds:.0f} s"
    )
    assert not lost, f"lost: {lost[:20]}"
    assert duplicates == 0 and made_twice == 0, "a gift reached Virtuous twice"
    assert not wrong, wrong[:20]
    # The ledger agrees with the sandbox, record by record and in the writeback stream.
    writeback = Counter((w["tenant"], w["type"]) for w in dep.writeback() if "tenant" in w)
    for tenant in TENANTS:
        count = sum(1 for t, _ in sendable if t == tenant)
        records = sum(1 for t, _ in final if t == tenant)
        done = "submitted" if tenant in BATCH else "sent"
        assert dep.state_counts(tenant) == {done: count, "skipped": records - count}, tenant
        created = "gift.submitted" if tenant in BATCH else "gift.created"
        assert writeback[(tenant, created)] == count, (tenant, writeback)
    assert not dep.redis.hlen(dep.key("dead")), "a message was dead-lettered"


def test_a_short_429_burst_does_not_stop_the_tenant_for_the_window(
    redis_client: redis.Redis, unique: str
) -> None:
    # What the soak's 429 burst exposed: an answer saying "0 left, reset in 1 s" merged into
    # the hour's "N left, reset in 3600 s" read as "0 left for the hour".
    limiter = Limiter(redis_client, prefix=f"chaos-{unique}")
    settings = TenantSettings(
        name="burst",
        virtuous_base_url="http://127.0.0.1:1",
        virtuous_token_env="UNUSED",
        timezone="UTC",
        calls_per_hour=10_000,
    )
    start = 1_800_000_000.0
    try:
        limiter._observe_at(settings, remaining=9_000, reset_seconds=3600.0, limit=None, now=start)
        limiter._observe_at(settings, remaining=0, reset_seconds=1.0, limit=None, now=start + 0.1)
        assert not limiter._acquire_at(settings, kind="push", cost=1, now=start + 0.5).granted
        assert limiter._acquire_at(settings, kind="push", cost=1, now=start + 1.2).granted
    finally:
        for key in redis_client.scan_iter(match=f"chaos-{unique}:*"):
            redis_client.delete(key)
