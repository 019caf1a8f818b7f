"""Related records: the Virtuous ids learned for donors, campaigns and funds, and the donors
whose Contact id is still pending.

An id is kept once per tenant and platform record; the first time it is learned it goes to the
writeback stream as ``{kind}.linked``, so the platform hears of it once however many senders
learn it at the same moment.
"""

from __future__ import annotations

import redis

from workers.store.keys import Keys
from workers.store.lock import OwnedLock
from workers.store.scripts import decode

# How long one sender may hold the right to create a related record.
CREATE_LOCK_MS = 60_000


class RelatedRecords:
    """Reads and writes learned ids and pending donors."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self.keys = keys

    def known_id(self, tenant: str, kind: str, platform_id: object) -> int | None:
        """The Virtuous id already learned for a platform record, or None."""
        value = self._redis.get(self.keys.related_id(tenant, kind, platform_id))
        return int(value) if value is not None else None

    def remember(self, tenant: str, kind: str, platform_id: object, virtuous_id: int) -> None:
        """Keep a learned id, and tell the platform the first time."""
        first = self._redis.set(
            self.keys.related_id(tenant, kind, platform_id), virtuous_id, nx=True
        )
        if kind == "donor":
            self._redis.zrem(self.keys.donors_pending(tenant), str(platform_id))
        if first:
            self._redis.xadd(
                self.keys.writeback,
                {
                    "type": f"{kind}.linked",
                    "tenant": tenant,
                    "kind": kind,
                    "id": str(platform_id),
                    "virtuous_id": str(virtuous_id),
                },
            )

    def create_lock(self, tenant: str, kind: str, platform_id: object) -> OwnedLock:
        """The lock a sender holds while it creates a related record."""
        key = self.keys.related_lock(tenant, kind, platform_id)
        return OwnedLock(self._redis, key, CREATE_LOCK_MS)

    def donor_pending(
        self,
        tenant: str,
        donor_id: str,
        since_ms: int,
        *,
        pipe: redis.client.Pipeline | None = None,
    ) -> None:
        """Note a donor sent to Virtuous whose Contact id is not known yet (first time kept);
        with ``pipe``, queue it there instead."""
        target = pipe if pipe is not None else self._redis
        target.zadd(self.keys.donors_pending(tenant), {donor_id: since_ms}, nx=True)

    def is_donor_pending(self, tenant: str, donor_id: str) -> bool:
        """True while the donor's Contact id is awaited."""
        return self._redis.zscore(self.keys.donors_pending(tenant), donor_id) is not None

    def pending_donors(self, tenant: str, sent_before_ms: float, limit: int) -> list[str]:
        """Pending donors sent (or last looked up) before ``sent_before_ms``, oldest first."""
        raw = self._redis.zrangebyscore(
            self.keys.donors_pending(tenant), "-inf", sent_before_ms, start=0, num=limit
        )
        return [decode(item) for item in raw]

    def look_again_later(self, tenant: str, donor_id: str, now_ms: int) -> None:
        """A pending donor not found yet: look again after another window."""
        self._redis.zadd(self.keys.donors_pending(tenant), {donor_id: now_ms}, xx=True)

    def gift_deleted(self, tenant: str, member_name: str, gift_id: int) -> None:
        """Tell the platform a Gift giftsync knows of was deleted in Virtuous."""
        kind, record_id = member_name.split(":", 1)
        self._redis.xadd(
            self.keys.writeback,
            {
                "type": "gift.deleted_in_virtuous",
                "tenant": tenant,
                "kind": kind,
                "id": record_id,
                "virtuous_id": str(gift_id),
            },
        )
