"""The pull's saved state per tenant and kind: the cursor hash, the told index, and the
pending flag that keeps one pull queued or running at a time.

A page's writeback entries, told-index updates and the cursor move are committed in one
script (``cursor_commit.lua``) that refuses when the cursor's generation changed since it was
read, so a reset or a concurrent run never interleaves with a page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from workers.store.keys import Keys
from workers.store.lock import release
from workers.store.scripts import decode, load_script


@dataclass(frozen=True)
class ScheduleClaim:
    """What one look at a pull's schedule said."""

    # The caller must enqueue the pull now.
    claimed: bool
    # No scheduler can claim the pull for this long (0.0: look again on the next pass).
    quiet_seconds: float


class PullCursors:
    """Reads and writes the pulls' saved state."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self.keys = keys
        self._commit = load_script(client, "cursor_commit.lua")
        self._schedule = load_script(client, "cursor_schedule.lua", prelude=None)

    def saved(self, tenant: str, kind: str) -> dict[str, str]:
        """The cursor hash ({} before the first commit)."""
        raw = self._redis.hgetall(self.keys.pull_cursor(tenant, kind))
        return {decode(k): decode(v) for k, v in raw.items()}

    def commit(self, tenant: str, kind: str, args: Sequence[str | int]) -> bool:
        """Commit one page (see cursor_commit.lua for ``args``); False if the cursor moved."""
        keys = self.keys
        result = decode(
            self._commit(
                keys=[keys.pull_cursor(tenant, kind), keys.pull_told(tenant, kind), keys.writeback],
                args=list(args),
            )
        )
        return bool(result[0] == "ok")

    def reset(self, tenant: str, kind: str, pull_by: str, date: str) -> None:
        """Move the cursor to ``date`` under a new generation."""
        key = self.keys.pull_cursor(tenant, kind)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(key, mapping={"by": pull_by, "date": date, "id": 0})
        pipe.hdel(key, "next")
        pipe.hincrby(key, "gen", 1)
        pipe.execute()

    def finished(self, tenant: str, kind: str, now_ms: int) -> None:
        """Count a run that reached the end."""
        key = self.keys.pull_cursor(tenant, kind)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hincrby(key, "runs", 1)
        pipe.hset(key, "last_run_ms", now_ms)
        pipe.execute()

    def hold_pending(self, tenant: str, kind: str, message_id: str, lease_ms: int) -> None:
        """Mark ``message_id`` as the pull queued or running, for ``lease_ms``."""
        self._redis.set(self.keys.pull_pending(tenant, kind), message_id, px=lease_ms)

    def refresh_pending(self, tenant: str, kind: str, lease_ms: int) -> None:
        """Extend the running pull's lease."""
        self._redis.pexpire(self.keys.pull_pending(tenant, kind), lease_ms)

    def release_pending(self, tenant: str, kind: str, message_id: str) -> None:
        """Clear the pending flag if this message still holds it."""
        release(self._redis, self.keys.pull_pending(tenant, kind), message_id)

    def told(self, tenant: str, kind: str, ids: Sequence[int]) -> list[Any]:
        """The told index's raw entries for these Virtuous ids (None where there is none)."""
        return self._redis.hmget(self.keys.pull_told(tenant, kind), ids) if ids else []

    def waiting_since(self, tenant: str, kind: str, now_ms: int) -> int:
        """When a pull with no cursor yet was first seen waiting (``now_ms`` the first time)."""
        key = self.keys.pull_waiting_since(tenant, kind)
        self._redis.set(key, now_ms, nx=True)
        return int(decode(self._redis.get(key)) or now_ms)

    def claim_schedule(
        self, tenant: str, kind: str, message_id: str, interval_ms: int, lease_ms: int
    ) -> ScheduleClaim:
        """Whether the scheduler must enqueue ``message_id`` now, and how long the pull stays
        unclaimable (see cursor_schedule.lua)."""
        keys = [self.keys.pull_due(tenant, kind), self.keys.pull_pending(tenant, kind)]
        claimed, quiet_ms = self._schedule(keys=keys, args=[interval_ms, message_id, lease_ms])
        return ScheduleClaim(bool(claimed), int(quiet_ms) / 1000)
