"""The Redis key layout: every key giftsync writes, named in one place.

All keys start with the settings' prefix (default ``giftsync``), so several deployments or
test runs can share one Redis. A *member* names one platform record inside a tenant:
``"{kind}:{id}"`` such as ``"transaction:1234"``.

Some Lua scripts learn keys only as they run (a batch's members, a split's new halves) and
build them from the prefix the way :meth:`Keys.record`, :meth:`Keys.batch` and its
``:entries``/``:members`` do; ``tests/unit/test_architecture.py`` holds them to this module.
"""

from __future__ import annotations

from dataclasses import dataclass


def member(kind: str, record_id: object) -> str:
    """The member name of one platform record."""
    return f"{kind}:{record_id}"


# dramatiq's own keys under its namespace (:attr:`Keys.dramatiq_namespace`), read where giftsync
# counts or tidies its queues. The namespace is taken as given so a caller holding a broker
# names that broker's keys.


def dramatiq_messages(namespace: str, queue: str) -> str:
    """HASH (dramatiq's): message id -> encoded message, for one queue (``{queue}.DQ`` for its
    delayed messages)."""
    return f"{namespace}:{queue}.msgs"


def dramatiq_dead(namespace: str, queue: str) -> str:
    """ZSET (dramatiq's): the ids of one queue's dead messages -> when they died; their bodies
    are in ``dramatiq_messages(namespace, f"{queue}.XQ")``."""
    return f"{namespace}:{queue}.XQ"


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix."""

    prefix: str = "giftsync"

    def record(self, tenant: str, member_name: str) -> str:
        """HASH: the ledger entry of one record (state, version, virtuous_id, batch_id, ...)."""
        return f"{self.prefix}:rec:{tenant}:{member_name}"

    def state_counts(self, tenant: str) -> str:
        """HASH: state -> number of records in it, kept in step by every state change."""
        return f"{self.prefix}:states:{tenant}"

    def terminal(self, tenant: str) -> str:
        """ZSET: record key -> when (Redis ms) it last entered a terminal state; the retention
        sweep's work list. ``state_prelude.lua`` derives this name from :meth:`state_counts`
        (that key + ``:terminal``), so every state change keeps it without declaring it."""
        return self.state_counts(tenant) + ":terminal"

    def retention_progress(self, tenant: str) -> str:
        """HASH: the retention sweep's pass over records older than the terminal index
        (``cursor``: its SCAN cursor; ``indexed``: set once the pass is complete)."""
        return f"{self.prefix}:retention:{tenant}"

    def buffer_entries(self, tenant: str) -> str:
        """HASH: member -> batch entry JSON waiting to be batched."""
        return f"{self.prefix}:buf:{tenant}:entries"

    def buffer_order(self, tenant: str) -> str:
        """ZSET: member -> when it was first buffered (ms), oldest first."""
        return f"{self.prefix}:buf:{tenant}:order"

    @property
    def buffered_tenants(self) -> str:
        """SET: tenants whose buffer may hold entries (the flush timer's work list)."""
        return f"{self.prefix}:buf:tenants"

    @property
    def batch_seq(self) -> str:
        """STRING: counter that numbers batches."""
        return f"{self.prefix}:batch:seq"

    def batch(self, batch_id: str) -> str:
        """HASH: one batch (tenant, state, count, body, owner message id, ...)."""
        return f"{self.prefix}:batch:{batch_id}"

    def batch_entries(self, batch_id: str) -> str:
        """LIST: the batch's entries as stored JSON, in body order."""
        return f"{self.prefix}:batch:{batch_id}:entries"

    def batch_members(self, batch_id: str) -> str:
        """LIST: the members of the batch's entries, same order as the entries."""
        return f"{self.prefix}:batch:{batch_id}:members"

    @property
    def unsent_batches(self) -> str:
        """ZSET: batch ids not yet settled (sent, split or quarantined) -> created ms."""
        return f"{self.prefix}:batches:unsent"

    def tenant_batches(self, tenant: str) -> str:
        """ZSET: every batch id of a tenant -> created ms (until retention.py deletes it)."""
        return f"{self.prefix}:batches:{tenant}"

    @property
    def writeback(self) -> str:
        """STREAM: every outcome, for the platform to read with a consumer group; entries
        older than the retention are trimmed (retention.py)."""
        return f"{self.prefix}:writeback"

    @property
    def dead_letters(self) -> str:
        """HASH: message id -> dead letter JSON; kept until replayed (no expiry)."""
        return f"{self.prefix}:dead"

    def limiter(self, tenant: str, part: str) -> str:
        """One of the limiter's keys of a tenant (``state``, ``block``, ``inflight``, ``calls``,
        ``lookups``; see limiter.py). ``{tenant}`` is a Redis Cluster hash tag, so each of its
        scripts' keys share one slot."""
        return f"{self.prefix}:limiter:{{{tenant}}}:{part}"

    def paused(self, tenant: str) -> str:
        """STRING: why a tenant is paused (Virtuous said 401); absent when running."""
        return f"{self.prefix}:paused:{tenant}"

    def quarantine(self, tenant: str) -> str:
        """ZSET: members quarantined by Virtuous's validation -> when."""
        return f"{self.prefix}:quarantine:{tenant}"

    def unconfirmed(self, tenant: str) -> str:
        """ZSET: members submitted to Virtuous whose real Gift id is not known yet -> when."""
        return f"{self.prefix}:unconfirmed:{tenant}"

    def review(self, tenant: str) -> str:
        """ZSET: members past the review deadline with no Gift in Virtuous -> when marked."""
        return f"{self.prefix}:review:{tenant}"

    def donors_pending(self, tenant: str) -> str:
        """ZSET: donor ids sent to Virtuous (Contact Transaction or embedded) whose Contact id
        is not known yet -> when first sent."""
        return f"{self.prefix}:donors-pending:{tenant}"

    def waiting_on_donor(self, tenant: str, donor_id: str) -> str:
        """SET: members held until this donor's Contact id is known."""
        return f"{self.prefix}:waiting-donor:{tenant}:{donor_id}"

    def record_lock(self, tenant: str, member_name: str) -> str:
        """STRING: which message owns a record's real-time send right now."""
        return f"{self.prefix}:lock:{tenant}:{member_name}"

    def recheck(self, tenant: str) -> str:
        """HASH: member -> when (ms) the reconcile sweep may look it up again."""
        return f"{self.prefix}:recheck:{tenant}"

    def related_id(self, tenant: str, kind: str, platform_id: object) -> str:
        """STRING: the Virtuous id learned for a related platform record (donor, campaign,
        fund)."""
        return f"{self.prefix}:dep:{tenant}:{kind}:{platform_id}"

    def related_lock(self, tenant: str, kind: str, platform_id: object) -> str:
        """STRING: which sender holds the right to create a related record right now."""
        return self.related_id(tenant, kind, platform_id) + ":lock"

    def sweep_lock(self, tenant: str) -> str:
        """STRING: held while one reconcile sweep of the tenant runs."""
        return f"{self.prefix}:reconcile-lock:{tenant}"

    def ingest_seen(self, tenant: str, digest: str) -> str:
        """STRING: a signed ingest request already accepted (replay protection)."""
        return f"{self.prefix}:ingest:seen:{tenant}:{digest}"

    def webhook_seen(self, tenant: str, delivery: str) -> str:
        """STRING: a webhook delivery already accepted (replay protection)."""
        return f"{self.prefix}:webhook-seen:{tenant}:{delivery}"

    @property
    def dramatiq_namespace(self) -> str:
        """The prefix of dramatiq's own keys (queues, delays, dead messages)."""
        return f"{self.prefix}:dramatiq"

    def pull_cursor(self, tenant: str, kind: str) -> str:
        """HASH: one pull's saved position and totals (by, date, id, gen, synced_ms, runs, ...).

        ``kind`` is the pull's name: ``gifts`` or ``recurring``.
        """
        return f"{self.prefix}:pull:{tenant}:{kind}:cursor"

    def pull_told(self, tenant: str, kind: str) -> str:
        """HASH: Virtuous id -> what the pull last told the platform about that record (JSON)."""
        return f"{self.prefix}:pull:{tenant}:{kind}:told"

    def pull_pending(self, tenant: str, kind: str) -> str:
        """STRING: the message id of the pull queued or running (expires after a lease)."""
        return f"{self.prefix}:pull:{tenant}:{kind}:pending"

    def pull_waiting_since(self, tenant: str, kind: str) -> str:
        """STRING: when a scrape first saw this pull without a cursor (Redis clock, ms)."""
        return f"{self.prefix}:pull:{tenant}:{kind}:waiting_since"

    def pull_due(self, tenant: str, kind: str) -> str:
        """STRING: when the scheduler next enqueues this pull (Redis clock, ms)."""
        return f"{self.prefix}:pull:{tenant}:{kind}:due"
