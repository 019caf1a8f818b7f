"""Marks that expire on their own: a paused tenant, and the requests already accepted.

A pause is one string per tenant (why it is paused) that lifts itself after a while; an
accepted signed ingest request or webhook delivery leaves a mark for its replay window, so the
same request sent again is refused. Each mark is one key with a TTL, so nothing sweeps them.
"""

from __future__ import annotations

import redis

from workers.store.keys import Keys
from workers.store.scripts import decode


class Marks:
    """Tenant pauses and replay marks, under one key prefix."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self.keys = keys

    def pause(self, tenant: str, reason: str, seconds: int) -> None:
        """Pause the tenant for ``seconds`` (a newer pause replaces the reason and the time)."""
        self._redis.set(self.keys.paused(tenant), reason, ex=seconds)

    def resume(self, tenant: str) -> bool:
        """Lift a pause now; True if the tenant was paused."""
        return bool(self._redis.delete(self.keys.paused(tenant)))

    def paused_reason(self, tenant: str) -> str | None:
        """Why the tenant is paused, or None."""
        value = self._redis.get(self.keys.paused(tenant))
        return decode(value) if value is not None else None

    def first_ingest(self, tenant: str, digest: str, seconds: int) -> bool:
        """Mark a signed ingest request accepted; False when it already was (a replay)."""
        return bool(self._redis.set(self.keys.ingest_seen(tenant, digest), 1, nx=True, ex=seconds))

    def forget_ingest(self, tenant: str, digest: str) -> None:
        """Drop an ingest request's mark, so an exact retry gets in."""
        self._redis.delete(self.keys.ingest_seen(tenant, digest))

    def first_webhook(self, tenant: str, digest: str, seconds: int) -> bool:
        """Mark a webhook delivery accepted; False when it already was (a replay)."""
        return bool(
            self._redis.set(self.keys.webhook_seen(tenant, digest), "1", nx=True, ex=seconds)
        )

    def forget_webhook(self, tenant: str, digest: str) -> None:
        """Drop a delivery's mark, so Virtuous's retry of it gets in."""
        self._redis.delete(self.keys.webhook_seen(tenant, digest))
