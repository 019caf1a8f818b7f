"""One owner-checked lock: taken with a token and a time to live, released only by its owner.

Every short-lived exclusive right in giftsync is one of these: a record's real-time send, the
creation of a related record, a tenant's reconcile sweep, a queued pull. A holder that dies
loses the lock when it expires; a holder that outlives its lock cannot release the next
owner's.
"""

from __future__ import annotations

import uuid

import redis

from workers.store.scripts import load_script


class OwnedLock:
    """A lock on ``key`` owned by ``token`` (a fresh one unless given)."""

    def __init__(self, client: redis.Redis, key: str, ttl_ms: int, token: str = "") -> None:
        self._redis = client
        self.key = key
        self.ttl_ms = ttl_ms
        self.token = token or str(uuid.uuid4())

    def acquire(self) -> bool:
        """Take the lock if nobody holds it; True when taken."""
        return bool(self._redis.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def release(self) -> bool:
        """Give the lock up if this owner still holds it; True when released."""
        return release(self._redis, self.key, self.token)


def release(client: redis.Redis, key: str, token: str) -> bool:
    """Delete ``key`` only while it holds ``token``."""
    script = load_script(client, "lock_release.lua", prelude=None)
    return bool(script(keys=[key], args=[token]))
