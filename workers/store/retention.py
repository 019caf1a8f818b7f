"""Retention: what giftsync holds about finished work goes after ``GIFTSYNC_RETENTION_DAYS``.

A record at rest (a TERMINAL state: ``confirmed``, ``sent``, ``skipped``, ``quarantined``)
that nothing changed for the retention is *expired*: its hash becomes a tombstone (state
``expired``, its versions, ids and timestamps; no event, entry, reason or error, so no donor's
name, email, phone or address), its count moves to ``expired`` and it leaves the quarantine,
unconfirmed, review and recheck indexes, all in one script
(``retention_records.lua``). A batch settled before the cutoff loses its body and entries and,
once none of its records still needs it, everything else (``retention_batches.lua``). Writeback
stream entries older than the cutoff are trimmed. Nothing that is not at rest ever expires.

Why a sweep, not Redis ``EXPIRE``: a key that expires by itself disappears without a script
running, so the state counts and the secondary indexes that name it would drift, and no
tombstone could stay behind to keep a replayed old version stale. The sweep runs from the
scheduler; each step is one atomic script, so several schedulers at once only repeat a look.

Records that reached a terminal state before the terminal index existed are put into it by
a pass over the tenant's records (SCAN, a bounded number of steps per sweep), once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import redis

from workers.store.keys import Keys
from workers.store.scripts import decode, load_script

# The states that expire: the same four as TERMINAL in state_prelude.lua.
TERMINAL_STATES = frozenset({"confirmed", "sent", "skipped", "quarantined"})
# The state of a tombstone.
EXPIRED = "expired"
# Records or batches one script call looks at: each call is short, so Redis stays responsive.
STEP = 200
# SCAN steps per tenant and sweep for the one-time pass over records older than the index.
INDEX_STEPS = 20
SCAN_COUNT = 1000
DAY_MS = 86_400_000
# One sweep's time budget: the scheduler's flush timer waits while it runs, and what is left
# waits for the next sweep.
SWEEP_BUDGET_SECONDS = 2.0


@dataclass
class Swept:
    """What one sweep did."""

    records: dict[str, int] = field(default_factory=dict)  # tenant -> records expired
    batches: dict[str, int] = field(default_factory=dict)  # tenant -> batches deleted
    writeback: int = 0  # stream entries trimmed
    indexed: int = 0  # older terminal records put into the index
    complete: bool = True  # False when the time budget ended the sweep early

    @property
    def anything(self) -> bool:
        """True when the sweep changed anything."""
        return bool(
            sum(self.records.values())
            or sum(self.batches.values())
            or self.writeback
            or self.indexed
        )


class Retention:
    """Expires what has been at rest longer than ``retention_ms`` (0 keeps everything)."""

    def __init__(self, client: redis.Redis, keys: Keys, retention_ms: int) -> None:
        self._redis = client
        self.keys = keys
        self.retention_ms = retention_ms
        self._records = load_script(client, "retention_records.lua")
        self._batches = load_script(client, "retention_batches.lua")
        self._index = load_script(client, "retention_index.lua")

    def server_ms(self) -> int:
        """Redis's clock in ms: the clock every state change is stamped with."""
        seconds, micros = self._redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def sweep(
        self,
        tenants: list[str],
        *,
        now_ms: int | None = None,
        budget_seconds: float = SWEEP_BUDGET_SECONDS,
    ) -> Swept:
        """Expire every tenant's records and batches at rest since before ``now_ms`` minus the
        retention (``now_ms``: Redis's clock unless given) and trim the writeback stream;
        stops early, to go on next time, once ``budget_seconds`` have passed."""
        swept = Swept()
        if self.retention_ms <= 0:
            return swept
        now = self.server_ms() if now_ms is None else now_ms
        cutoff = now - self.retention_ms
        deadline = time.monotonic() + budget_seconds
        for tenant in tenants:
            swept.indexed += self.index_older(tenant)
            swept.records[tenant] = 0
            while time.monotonic() < deadline:
                expired, _later, read = self.expire_records(tenant, cutoff, now)
                swept.records[tenant] += expired
                if read < STEP:
                    break
            else:
                swept.complete = False
            swept.batches[tenant] = 0
            offset = 0
            while time.monotonic() < deadline:
                deleted, kept, read = self.expire_batches(tenant, cutoff, offset)
                swept.batches[tenant] += deleted
                offset += kept
                if read < STEP:
                    break
            else:
                swept.complete = False
        swept.writeback = self.trim_writeback(cutoff)
        return swept

    def expire_records(self, tenant: str, cutoff_ms: int, now_ms: int) -> tuple[int, int, int]:
        """One step of ``retention_records.lua``: (expired, looked at later, read)."""
        keys = self.keys
        result = self._records(
            keys=[
                keys.terminal(tenant),
                keys.state_counts(tenant),
                keys.quarantine(tenant),
                keys.unconfirmed(tenant),
                keys.review(tenant),
                keys.recheck(tenant),
            ],
            args=[keys.record(tenant, ""), cutoff_ms, now_ms, STEP],
        )
        expired, later, read = (int(n) for n in result)
        return expired, later, read

    def expire_batches(self, tenant: str, cutoff_ms: int, offset: int) -> tuple[int, int, int]:
        """One step of ``retention_batches.lua``: (deleted, kept, read)."""
        result = self._batches(
            keys=[self.keys.tenant_batches(tenant)],
            args=[self.keys.prefix, tenant, cutoff_ms, offset, STEP],
        )
        deleted, kept, read = (int(n) for n in result)
        return deleted, kept, read

    def trim_writeback(self, cutoff_ms: int) -> int:
        """Drop writeback entries appended before ``cutoff_ms`` (stream ids are Redis ms)."""
        return int(self._redis.xtrim(self.keys.writeback, minid=cutoff_ms, approximate=False))

    def index_older(self, tenant: str, steps: int = INDEX_STEPS) -> int:
        """Go on with the one-time pass that indexes terminal records older than the index;
        returns how many it added."""
        progress = self.keys.retention_progress(tenant)
        state = {decode(k): decode(v) for k, v in self._redis.hgetall(progress).items()}
        if state.get("indexed"):
            return 0
        cursor = int(state.get("cursor", 0))
        pattern = self.keys.record(tenant, "*")
        added = 0
        for _ in range(steps):
            cursor, found = self._redis.scan(cursor=cursor, match=pattern, count=SCAN_COUNT)
            if found:
                added += int(self._index(keys=[self.keys.terminal(tenant)], args=list(found)))
            if cursor == 0:
                self._redis.hset(progress, mapping={"indexed": "1", "cursor": "0"})
                return added
        self._redis.hset(progress, "cursor", str(cursor))
        return added
