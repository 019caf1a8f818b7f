"""The batcher: per-tenant buffers become batches of at most 100 Gift Transactions.

A batch is cut when a tenant's buffer holds ``BATCH_SIZE`` entries or its oldest entry has
waited the tenant's ``batch_max_wait_seconds``. Cutting, splitting and settling are each one
Lua script, so a worker killed at any instruction leaves every entry in exactly one place.

A batch names the one dramatiq message allowed to send it (its *owner*). The message id is
chosen before the batch is cut and the message is enqueued right after; if the process dies
in between, :meth:`Batcher.adoptable` finds the batch (never enqueued, old enough) and the
scheduler gives it a new owner and message. Each attempt of the owner is noted on the batch,
so a batch whose message was lost after it was enqueued is found the same way: its owner has
not tried to send it for ``SILENT_OWNER_MS``. A stale owner that runs later sees it no longer
owns the batch and does nothing, so two messages never both send it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis

from mapping.tenant import TenantSettings
from workers.store.keys import Keys
from workers.store.scripts import decode, load_script

# Virtuous's batch importer takes chunks of 100 (seed 002).
BATCH_SIZE = 100
# A batch not marked enqueued this long after it was cut is an orphan of a crash.
ORPHAN_GRACE_MS = 30_000
# A pending batch whose owner has not tried to send it for this long lost its message. Longer
# than any wait a live owner is put through (the limiter's hourly window, a retry's backoff,
# a paused tenant), so only a lost owner is replaced.
SILENT_OWNER_MS = 2 * 3600 * 1000


@dataclass(frozen=True)
class Batch:
    """One stored batch."""

    batch_id: str
    tenant: str
    state: str
    count: int
    body: bytes
    owner: str
    created_ms: int
    members: list[str]


@dataclass(frozen=True)
class Settled:
    """What settling a batch did."""

    # Publish-to-settle delays (ms) of the submitted entries whose publish time is known.
    delays: list[int]
    # Records that want a newer version than the batch carried and whose real Gift id is
    # already known: the caller sends each now.
    send_now: list[str]


class Batcher:
    """Cuts, splits and settles batches."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self.keys = keys
        self._flush = load_script(client, "batches_flush.lua")
        self._settle = load_script(client, "batches_settle.lua")
        self._split = load_script(client, "batches_split.lua")
        self._attempt = load_script(client, "batches_attempt.lua")
        self._reown = load_script(client, "batches_reown.lua")

    def cut(self, tenant: TenantSettings, owner: str, *, force: bool = False) -> str | None:
        """Cut one batch for ``tenant`` if one is due (or ``force``); returns its id."""
        keys = self.keys
        result = self._flush(
            keys=[
                keys.buffer_entries(tenant.name),
                keys.buffer_order(tenant.name),
                keys.batch_seq,
                keys.unsent_batches,
                keys.state_counts(tenant.name),
                keys.tenant_batches(tenant.name),
                keys.buffered_tenants,
            ],
            args=[
                tenant.name,
                keys.prefix,
                BATCH_SIZE,
                int(tenant.batch_max_wait_seconds * 1000),
                "1" if force else "0",
                tenant.transaction_source,
                tenant.import_name_prefix,
                owner,
            ],
        )
        return decode(result) if result else None

    def cut_all_due(
        self, tenant: TenantSettings, new_owner: Callable[[], str], *, force: bool = False
    ) -> list[tuple[str, str]]:
        """Cut every batch due now; returns (batch id, owner) pairs to enqueue."""
        cut: list[tuple[str, str]] = []
        while True:
            owner = new_owner()
            batch_id = self.cut(tenant, owner, force=force)
            if batch_id is None:
                return cut
            cut.append((batch_id, owner))

    def mark_enqueued(self, batch_id: str) -> None:
        """Record that the owner's message is in the queue (so it is no orphan)."""
        self._redis.hset(self.keys.batch(batch_id), "enqueued", "1")

    def load(self, batch_id: str) -> Batch | None:
        """The stored batch, or None when it does not exist."""
        raw = self._redis.hgetall(self.keys.batch(batch_id))
        if not raw:
            return None
        fields = {decode(k): v for k, v in raw.items()}
        # A batch settled longer ago than the retention has no body left (retention.py).
        body = fields.get("body", b"")
        members = decode(self._redis.lrange(self.keys.batch_members(batch_id), 0, -1))
        return Batch(
            batch_id=batch_id,
            tenant=decode(fields["tenant"]),
            state=decode(fields["state"]),
            count=int(fields["count"]),
            body=body if isinstance(body, bytes) else body.encode(),
            owner=decode(fields.get("owner", b"")),
            created_ms=int(fields["created_ms"]),
            members=members,
        )

    def settle(self, batch: Batch, outcome: str, reason: str, owner: str) -> Settled | None:
        """Record Virtuous's answer for every entry, once, and close each record's gap.

        None when the batch was already settled or is not ``owner``'s.
        """
        keys = self.keys
        result = decode(
            self._settle(
                keys=[
                    keys.batch(batch.batch_id),
                    keys.unsent_batches,
                    keys.state_counts(batch.tenant),
                    keys.writeback,
                    keys.quarantine(batch.tenant),
                    keys.unconfirmed(batch.tenant),
                    keys.buffer_entries(batch.tenant),
                    keys.buffer_order(batch.tenant),
                    keys.buffered_tenants,
                ],
                args=[keys.prefix, outcome, reason, owner],
            )
        )
        if result[0] != "settled":
            return None
        now, count = int(result[1]), int(result[2])
        published = result[3 : 3 + count]
        return Settled(
            delays=[now - int(p) for p in published if int(p) > 0],
            send_now=list(result[3 + count :]),
        )

    def split(self, batch: Batch, owner: str, owners: tuple[str, str]) -> list[str]:
        """Replace ``batch`` by its two halves owned by ``owners``; returns the child ids."""
        keys = self.keys
        result = self._split(
            keys=[
                keys.batch(batch.batch_id),
                keys.unsent_batches,
                keys.tenant_batches(batch.tenant),
                keys.state_counts(batch.tenant),
            ],
            args=[keys.prefix, owner, owners[0], owners[1]],
        )
        return list(decode(result)) if result else []

    def attempt(self, batch_id: str, owner: str) -> bool:
        """Note that ``owner`` is sending the batch now; False (nothing noted) when the batch
        is settled or someone else's."""
        return bool(self._attempt(keys=[self.keys.batch(batch_id)], args=[owner]))

    def reown(self, batch_id: str, owner: str, seen: str) -> bool:
        """Give a batch a new owner (the old message, if it ever runs, stands down), unless its
        owner tried to send it since ``seen`` (its ``tried_ms`` as :meth:`adoptable` saw it)."""
        return bool(self._reown(keys=[self.keys.batch(batch_id)], args=[owner, seen]))

    def adoptable(
        self,
        now_ms: int,
        grace_ms: int = ORPHAN_GRACE_MS,
        silent_ms: int = SILENT_OWNER_MS,
    ) -> list[tuple[str, str]]:
        """Unsettled batches whose message never reached the queue (cut more than ``grace_ms``
        ago, never marked enqueued) or was lost (no attempt, nor cut, for ``silent_ms``), each
        with its ``tried_ms`` as seen, for :meth:`reown`."""
        candidates = decode(
            self._redis.zrangebyscore(self.keys.unsent_batches, "-inf", now_ms - grace_ms)
        )
        if not candidates:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for batch_id in candidates:
            pipe.hmget(self.keys.batch(batch_id), ["enqueued", "created_ms", "tried_ms"])
        found = []
        for batch_id, (enqueued, created, tried) in zip(candidates, pipe.execute(), strict=True):
            last = max(int(created or 0), int(tried or 0))
            if enqueued != b"1" or last <= now_ms - silent_ms:
                found.append((batch_id, decode(tried) or ""))
        return found

    def import_names(self, batch_ids: list[str]) -> dict[str, str]:
        """The Import Tool import each batch went in as, for the batches that have one."""
        pipe = self._redis.pipeline(transaction=False)
        for batch_id in batch_ids:
            pipe.hget(self.keys.batch(batch_id), "import_name")
        return {b: decode(n) for b, n in zip(batch_ids, pipe.execute(), strict=True) if n}

    def batch_count(self, tenant: str) -> int:
        """Batches of a tenant still kept (retention deletes settled ones in time)."""
        return int(self._redis.zcard(self.keys.tenant_batches(tenant)))

    def buffer_size(self, tenant: str) -> int:
        """Entries waiting in a tenant's buffer."""
        return int(self._redis.zcard(self.keys.buffer_order(tenant)))

    def oldest_buffered_ms(self, tenant: str) -> int | None:
        """When the oldest waiting entry was buffered (Redis clock, ms), or None."""
        oldest = self._redis.zrange(self.keys.buffer_order(tenant), 0, 0, withscores=True)
        return int(oldest[0][1]) if oldest else None

    def due_in(self, tenants: list[TenantSettings]) -> dict[str, float]:
        """Seconds until each tenant's buffer is due to be cut: 0.0 when it is due now (full, or
        its oldest entry has waited the max wait) or empty (a cut then only tidies up). One
        round trip for every tenant.

        A buffer's due time never comes sooner than this says, except by filling up (which the
        intake that fills it cuts at once): entries join with the current time and leave oldest
        first, so its oldest entry only ever gets younger."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.time()
        for tenant in tenants:
            order = self.keys.buffer_order(tenant.name)
            pipe.zcard(order)
            pipe.zrange(order, 0, 0, withscores=True)
        replies = pipe.execute()
        seconds, micros = replies[0]
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        due: dict[str, float] = {}
        for index, tenant in enumerate(tenants):
            size, oldest = replies[1 + 2 * index], replies[2 + 2 * index]
            if not size or size >= BATCH_SIZE or not oldest:
                due[tenant.name] = 0.0
                continue
            wait_ms = int(oldest[0][1]) + tenant.batch_max_wait_seconds * 1000 - now_ms
            due[tenant.name] = max(wait_ms, 0) / 1000
        return due

    def buffered_tenants(self) -> list[str]:
        """Tenants whose buffer may hold entries (the flush timer's work list)."""
        return sorted(decode(raw) for raw in self._redis.smembers(self.keys.buffered_tenants))

    def server_ms(self) -> int:
        """Redis's clock in ms: every age giftsync computes uses this one clock."""
        seconds, micros = self._redis.time()
        return int(seconds) * 1000 + int(micros) // 1000
