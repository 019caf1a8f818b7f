"""The ledger: what giftsync knows about every platform record it was told about.

One Redis hash per record (see :class:`workers.store.keys.Keys.record`) holds its state, the last
applied version, the Virtuous id (a ``btch_`` batch id until the real Gift id is known), the
batch it went in, attempts and the last error. State changes happen only inside Lua scripts
that also keep the per-tenant state counts, so ``giftsync status`` reads counts, not scans.

States: ``buffered`` (waiting in the tenant's batch buffer), ``batched`` (in a batch not yet
answered), ``submitted`` (Virtuous accepted it into the holding state), ``confirmed`` (the
real Gift id is known), ``needs_review`` (still no Gift after the review deadline),
``quarantined`` (Virtuous rejected the entry; the reason is kept), ``dead`` (every retry
failed), ``skipped`` (the send decision said no), ``held`` (waits for something, with the
reason), ``update_held`` (a newer version of a gift already handed over waits for its real
Gift id), ``queued``/``sent`` (real-time path).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import redis

from workers.store.keys import Keys
from workers.store.scripts import decode, load_script

Route = Literal["batch", "skip", "hold", "realtime"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

STATES = (
    "buffered",
    "batched",
    "submitted",
    "confirmed",
    "needs_review",
    "quarantined",
    "dead",
    "skipped",
    "held",
    "update_held",
    "queued",
    "sent",
)


def version_number(version: datetime) -> int:
    """A version timestamp as integer microseconds since the epoch (exact, comparable in Lua)."""
    delta = version.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True)
class Accepted:
    """What the ledger did with one change."""

    outcome: str  # stale | buffered | held | skipped | realtime | hold
    state: str
    buffered: int = 0  # the tenant buffer's size after a 'buffered' outcome


class Ledger:
    """Reads and writes ledger records; every multi-key change is one Lua script."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self.keys = keys
        self._accept = load_script(client, "ledger_accept.lua")

    def accept(
        self,
        tenant: str,
        member_name: str,
        *,
        version: int,
        route: Route,
        payload: str = "",
        reason: str = "",
        published_ms: int = 0,
        state: str = "",
        event: str = "",
        pipe: redis.client.Pipeline | None = None,
    ) -> Accepted | None:
        """Apply one change (dropped as stale unless newer); with ``pipe``, queue it instead."""
        keys = self.keys
        result = self._accept(
            keys=[
                keys.record(tenant, member_name),
                keys.state_counts(tenant),
                keys.buffer_entries(tenant),
                keys.buffer_order(tenant),
                keys.buffered_tenants,
            ],
            args=[
                version,
                route,
                member_name,
                payload,
                reason,
                tenant,
                published_ms,
                state,
                event,
            ],
            client=pipe or self._redis,
        )
        if pipe is not None:
            return None
        return parse_accepted(result)

    def pipeline(self) -> redis.client.Pipeline:
        """A non-transactional pipeline on the ledger's Redis, for batching round trips."""
        return self._redis.pipeline(transaction=False)

    def record(self, tenant: str, member_name: str) -> dict[str, str]:
        """The ledger hash of one record ({} when unknown)."""
        raw = self._redis.hgetall(self.keys.record(tenant, member_name))
        return {decode(k): decode(v) for k, v in raw.items()}

    def state_counts(self, tenant: str) -> dict[str, int]:
        """Records per state for one tenant (states never entered are absent)."""
        raw = self._redis.hgetall(self.keys.state_counts(tenant))
        return {decode(k): int(v) for k, v in raw.items() if int(v)}

    def update(self, tenant: str, member_name: str, fields: Mapping[str, Any]) -> None:
        """Set non-state fields of a record (attempts, last_error, ...)."""
        if "state" in fields:
            raise ValueError("state changes go through the ledger's scripts")
        self._redis.hset(
            self.keys.record(tenant, member_name), mapping={k: str(v) for k, v in fields.items()}
        )


def parse_accepted(result: Any) -> Accepted:
    """Turn the accept script's reply into an :class:`Accepted`."""
    outcome, detail = decode(result)
    if outcome == "buffered":
        return Accepted(outcome, "buffered", int(detail))
    return Accepted(outcome, detail)
