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
Gift id), ``queued``/``sent`` (real-time path), ``expired`` (a tombstone: the record was at
rest longer than the retention, see :mod:`workers.store.retention`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

import redis

from workers.store.connection import Durability
from workers.store.keys import Keys
from workers.store.keys import member as member_of
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
    "expired",
)


def version_number(version: datetime) -> int:
    """A version timestamp as integer microseconds since the epoch (exact, comparable in Lua)."""
    delta = version.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# One change for the accept script: member, version (integer microseconds), route, entry or
# payload JSON, reason, state to set (skip/hold/realtime routes), the event JSON (batch route).
Change = tuple[str, int, Route, str, str, str, str]


@dataclass(frozen=True)
class Accepted:
    """What the ledger did with one change."""

    outcome: str  # stale | buffered | held | skipped | realtime | hold
    state: str
    buffered: int = 0  # the tenant buffer's size after a 'buffered' outcome


class Ledger:
    """Reads and writes ledger records; every multi-key change is one Lua script."""

    def __init__(
        self, client: redis.Redis, keys: Keys, *, durability: Durability | None = None
    ) -> None:
        self._redis = client
        self.keys = keys
        self._durability = durability
        self._accept = load_script(client, "ledger_accept.lua")
        self._applied = load_script(client, "ledger_applied.lua")
        self._confirm = load_script(client, "ledger_confirm.lua")
        self._review = load_script(client, "ledger_review.lua")
        self._wait = load_script(client, "ledger_wait.lua")
        self._release = load_script(client, "ledger_release.lua")
        self._mark = load_script(client, "ledger_mark.lua")
        self._known = load_script(client, "ledger_known.lua", prelude=None)

    def accept_many(
        self,
        tenant: str,
        changes: Sequence[Change],
        *,
        published_ms: int = 0,
        pipe: redis.client.Pipeline | None = None,
    ) -> list[Accepted] | None:
        """Apply ``tenant``'s changes in order, each dropped as stale unless newer, in one
        script call; with ``pipe``, queue it instead (read its reply with parse_accepted_many).
        """
        keys = self.keys
        args: list[str | int] = [tenant, published_ms]
        for member_name, version, route, payload, reason, state, event in changes:
            args.extend((version, route, member_name, payload, reason, state, event))
        result = self._accept(
            keys=[
                keys.state_counts(tenant),
                keys.buffer_entries(tenant),
                keys.buffer_order(tenant),
                keys.buffered_tenants,
                *(keys.record(tenant, change[0]) for change in changes),
            ],
            args=args,
            client=pipe or self._redis,
        )
        if pipe is not None:
            return None
        return parse_accepted_many(result)

    def known_ids(self, records: Sequence[tuple[str, str]]) -> list[str | None]:
        """The id each (tenant, member) is known by in Virtuous: its Gift id, or its ``btch_``
        id once handed over (see ledger_known.lua); None when neither."""
        if not records:
            return []
        known = self._known(keys=[self.keys.record(t, m) for t, m in records], args=[])
        return [decode(value) or None for value in known]

    def pipeline(self) -> redis.client.Pipeline:
        """A non-transactional pipeline on the ledger's Redis, for batching round trips."""
        return self._redis.pipeline(transaction=False)

    def record(self, tenant: str, member_name: str) -> dict[str, str]:
        """The ledger hash of one record ({} when unknown)."""
        raw = self._redis.hgetall(self.keys.record(tenant, member_name))
        return {decode(k): decode(v) for k, v in raw.items()}

    def fields(self, records: Sequence[tuple[str, str]], *names: str) -> list[list[str | None]]:
        """The named fields of each (tenant, member) record, None where absent; one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for tenant, member_name in records:
            pipe.hmget(self.keys.record(tenant, member_name), list(names))
        return [[decode(v) if v is not None else None for v in row] for row in pipe.execute()]

    def known(self, tenant: str, members: Sequence[str]) -> list[bool]:
        """Whether the ledger holds each record; one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for member_name in members:
            pipe.exists(self.keys.record(tenant, member_name))
        return [bool(hit) for hit in pipe.execute()]

    def scan_field(self, tenant: str, kind: str, name: str) -> Iterator[tuple[str, str]]:
        """(member, value) of every ``kind`` record of the tenant holding field ``name``: one
        SCAN of the tenant's ledger (it keeps no reverse index), read 1000 records at a time."""
        start = len(self.keys.record(tenant, ""))
        chunk: list[bytes] = []
        for key in self._redis.scan_iter(
            match=self.keys.record(tenant, member_of(kind, "*")), count=1000
        ):
            chunk.append(key)
            if len(chunk) >= 1000:
                yield from self._field_of(chunk, name, start)
                chunk = []
        yield from self._field_of(chunk, name, start)

    def _field_of(self, keys: list[bytes], name: str, start: int) -> Iterator[tuple[str, str]]:
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.hget(key, name)
        for key, value in zip(keys, pipe.execute(), strict=True):
            if value is not None:
                yield decode(key)[start:], decode(value)

    def state_counts(self, tenant: str) -> dict[str, int]:
        """Records per state for one tenant (states never entered are absent)."""
        raw = self._redis.hgetall(self.keys.state_counts(tenant))
        return {decode(k): int(v) for k, v in raw.items() if int(v)}

    def update(
        self, tenant: str, member_name: str, fields: Mapping[str, Any], *, durable: bool = False
    ) -> None:
        """Set non-state fields of a record (attempts, last_error, ...).

        ``durable``: return only once the replicas hold them (GIFTSYNC_MIN_REPLICAS), for a mark
        that must survive a failover, such as the intent to make a call that cannot be repeated.
        """
        if "state" in fields:
            raise ValueError("state changes go through the ledger's scripts")
        key = self.keys.record(tenant, member_name)

        def write(client: redis.Redis) -> None:
            client.hset(key, mapping={k: str(v) for k, v in fields.items()})

        if durable and self._durability is not None:
            self._durability.run(write)
        else:
            write(self._redis)

    def pending(self, tenant: str, member_name: str) -> dict[str, str] | None:
        """The record if it holds a stored version newer than the one last applied, else None."""
        record = self.record(tenant, member_name)
        if not record.get("payload"):
            return None
        if int(record.get("applied_version", "-1")) >= int(record.get("version", "-1")):
            return None
        return record

    def applied(
        self,
        tenant: str,
        member_name: str,
        *,
        version: str,
        state: str,
        virtuous_id: str,
        writeback_type: str,
        reason: str,
    ) -> int:
        """Record an applied version (and write it back); returns the record's newest version."""
        kind, record_id = member_name.split(":", 1)
        keys = self.keys
        newest = self._applied(
            keys=[keys.record(tenant, member_name), keys.state_counts(tenant), keys.writeback],
            args=[version, state, virtuous_id, writeback_type, tenant, kind, record_id, reason],
        )
        return int(newest)

    def quarantined(self, tenant: str, member_name: str, when_ms: int) -> None:
        """List a record among the tenant's quarantined ones."""
        self._redis.zadd(self.keys.quarantine(tenant), {member_name: when_ms})

    def newest_quarantined(self, tenant: str, limit: int) -> list[tuple[str, str, int]]:
        """The tenant's most recently quarantined records: (member, reason, when ms).

        A record whose newer version went out since is no longer quarantined: it is dropped
        from the list as it is met."""
        key = self.keys.quarantine(tenant)
        found: list[tuple[str, str, int]] = []
        start = 0
        while len(found) < limit:
            page = cast(
                "list[tuple[bytes, float]]",
                self._redis.zrevrange(key, start, start + limit - 1, withscores=True),
            )
            if not page:
                break
            pipe = self._redis.pipeline(transaction=False)
            for member, _ in page:
                pipe.hmget(self.keys.record(tenant, decode(member)), "state", "reason")
            moved_on = []
            for (member, score), (state, reason) in zip(page, pipe.execute(), strict=True):
                if state is not None and decode(state) == "quarantined":
                    found.append((decode(member), decode(reason) if reason else "", int(score)))
                else:
                    moved_on.append(member)
            if moved_on:
                self._redis.zrem(key, *moved_on)
            start += len(page) - len(moved_on)
        return found[:limit]

    def in_review(self, tenant: str) -> list[tuple[str, str | None]]:
        """The records waiting for a person: (member, the batch that carried it, if known)."""
        members = decode(self._redis.zrange(self.keys.review(tenant), 0, -1))
        if not members:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for member_name in members:
            pipe.hget(self.keys.record(tenant, member_name), "batch_id")
        return [
            (member_name, decode(batch_id) if batch_id else None)
            for member_name, batch_id in zip(members, pipe.execute(), strict=True)
        ]

    def oldest_unconfirmed(self, tenant: str) -> tuple[str, float] | None:
        """The record submitted longest ago whose real Gift id is not known: (member, when ms)."""
        oldest = self._redis.zrange(self.keys.unconfirmed(tenant), 0, 0, withscores=True)
        return (decode(oldest[0][0]), float(oldest[0][1])) if oldest else None

    def quarantined_count(self, tenant: str) -> int:
        """How many of the tenant's records are quarantined now (the state counts')."""
        return int(self._redis.hget(self.keys.state_counts(tenant), "quarantined") or 0)

    def confirm(
        self, tenant: str, member_name: str, gift_id: int, source: str
    ) -> tuple[str, str, int]:
        """Record the real Gift id of a submitted transaction.

        Returns (outcome, previous state, published ms); see ledger_confirm.lua."""
        keys = self.keys
        _, record_id = member_name.split(":", 1)
        outcome, previous, published = decode(
            self._confirm(
                keys=[
                    keys.record(tenant, member_name),
                    keys.state_counts(tenant),
                    keys.writeback,
                    keys.unconfirmed(tenant),
                    keys.review(tenant),
                    keys.recheck(tenant),
                ],
                args=[gift_id, source, tenant, "transaction", record_id, member_name],
            )
        )
        return str(outcome), str(previous), int(published)

    def mark_review(self, tenant: str, member_name: str) -> bool:
        """Move an unconfirmed record to needs_review; False if it was not unconfirmed."""
        keys = self.keys
        _, record_id = member_name.split(":", 1)
        done = self._review(
            keys=[
                keys.record(tenant, member_name),
                keys.state_counts(tenant),
                keys.writeback,
                keys.unconfirmed(tenant),
                keys.review(tenant),
            ],
            args=[tenant, "transaction", record_id, member_name],
        )
        return bool(done)

    def lookups_due(self, cutoffs: Mapping[str, float]) -> list[str]:
        """The tenants whose reconcile sweep may have something to look up: a gift unconfirmed
        or a donor pending since before the tenant's cutoff (Redis ms), or a gift in review.
        One round trip for every tenant."""
        pipe = self._redis.pipeline(transaction=False)
        for tenant, cutoff in cutoffs.items():
            pipe.zcount(self.keys.unconfirmed(tenant), "-inf", cutoff)
            pipe.zcard(self.keys.review(tenant))
            pipe.zcount(self.keys.donors_pending(tenant), "-inf", cutoff)
        counts = pipe.execute()
        return [
            tenant for index, tenant in enumerate(cutoffs) if any(counts[3 * index : 3 * index + 3])
        ]

    def due_for_lookup(self, tenant: str, now_ms: int, window_ms: float) -> list[tuple[str, float]]:
        """Unconfirmed members submitted more than ``window_ms`` ago, then review members, each
        with when it was submitted, leaving out those rechecked lately."""
        unconfirmed = self._redis.zrangebyscore(
            self.keys.unconfirmed(tenant),
            "-inf",
            now_ms - window_ms,
            start=0,
            num=5000,
            withscores=True,
        )
        review = self._redis.zrange(self.keys.review(tenant), 0, 5000, withscores=True)
        candidates = [(decode(m), float(s)) for m, s in [*unconfirmed, *review]]
        if not candidates:
            return []
        rechecks = self._redis.hmget(self.keys.recheck(tenant), [m for m, _ in candidates])
        return [
            (member_name, submitted)
            for (member_name, submitted), after in zip(candidates, rechecks, strict=True)
            if after is None or int(after) <= now_ms
        ]

    def recheck_after(self, tenant: str, member_name: str, when_ms: int) -> None:
        """Look ``member_name`` up again no sooner than ``when_ms``."""
        self._redis.hset(self.keys.recheck(tenant), member_name, when_ms)

    def wait_for_donor(self, tenant: str, member_name: str, donor_id: str, reason: str) -> None:
        """Hold a record until the donor's Contact id is known (see ledger_wait.lua)."""
        keys = self.keys
        self._wait(
            keys=[
                keys.record(tenant, member_name),
                keys.state_counts(tenant),
                keys.waiting_on_donor(tenant, donor_id),
            ],
            args=[member_name, reason],
        )

    def release_waiting(self, tenant: str, donor_id: str) -> list[str]:
        """Release every record held for the donor; returns their members."""
        released = self._release(
            keys=[self.keys.state_counts(tenant), self.keys.waiting_on_donor(tenant, donor_id)],
            args=[self.keys.prefix, tenant],
        )
        return [str(m) for m in decode(released)]

    def keep_dead_letter(self, message_id: str, letter: Mapping[str, Any]) -> None:
        """Keep a dead message (its JSON-ready fields) until it is replayed."""
        self._redis.hset(self.keys.dead_letters, message_id, json.dumps(letter))

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every dead letter kept, as :meth:`keep_dead_letter` was given it (in no order)."""
        return [json.loads(decode(raw)) for raw in self._redis.hvals(self.keys.dead_letters)]

    def forget_dead_letter(self, message_id: str) -> None:
        """Drop a dead letter (it has been replayed)."""
        self._redis.hdel(self.keys.dead_letters, message_id)

    def mark(self, tenant: str, state: str, reason: str, members: list[str]) -> None:
        """Move records to ``state`` with ``reason`` (dead letters and their replay)."""
        self._mark(
            keys=[self.keys.state_counts(tenant)],
            args=[self.keys.prefix, tenant, state, reason, *members],
        )

    def server_ms(self) -> int:
        """Redis's clock in ms: every process measures waits on one clock."""
        seconds, micros = self._redis.time()
        return int(seconds) * 1000 + int(micros) // 1000


def parse_accepted_many(result: Any) -> list[Accepted]:
    """Turn the accept script's reply into one :class:`Accepted` per change."""
    flat = decode(result)
    accepted: list[Accepted] = []
    for i in range(0, len(flat), 2):
        outcome, detail = flat[i], flat[i + 1]
        if outcome == "buffered":
            accepted.append(Accepted(outcome, "buffered", int(detail)))
        else:
            accepted.append(Accepted(outcome, detail))
    return accepted
