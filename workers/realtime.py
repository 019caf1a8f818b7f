"""Real-time gifts: ``POST /api/Gift`` to create, ``GET`` + ``PUT /api/Gift/{id}`` to update or
zero (seed 002, "Push -- real-time single path").

Ordering: the ledger stores each record's newest accepted event; a send applies whatever is
newest *when it runs*, under a per-record lock, and records the version it applied. So with
any number of workers a later change never lands before an earlier one finishes, a stale
change is never sent, and a message that finds its version already applied does nothing.

Ambiguous outcomes: once the limiter has granted a create and right before it is sent, the
record is marked ``create_attempted`` (a create throttled before it went costs no lookup). If the
answer is lost (a timeout after sending, a connection dropped mid-response), the retry first
looks the gift up by ``transactionSource``/``transactionId`` and adopts it if Virtuous has it,
so a create is never made twice.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog

from mapping.decision import decide
from mapping.events import Transaction, parse_event_json, real_gift_id
from mapping.realtime import realtime_create, realtime_desired, realtime_update, zeroing_update
from mapping.tenant import TenantSettings
from workers import metrics
from workers.batch_send import rejection_reason
from workers.dependencies import ContactPending, ensure_contact, hold_for_donor
from workers.errors import NotFoundError, RejectedError
from workers.middleware import Throttled
from workers.runtime import Runtime
from workers.scripts import load_script
from workers.sending import call

log = structlog.get_logger("giftsync.realtime")

# How long one message may hold a record (longer than any send).
RECORD_LOCK_MS = 120_000
# How soon a message that found the record busy tries again.
BUSY_RETRY_SECONDS = 0.2
# Throttle reasons that follow an answer saying the request was not processed.
REFUSED_UNPROCESSED = frozenset({"429", "paused"})


class RecordLock:
    """A per-record lock owned by one message, released only by its owner."""

    def __init__(self, rt: Runtime, tenant: str, member: str) -> None:
        self._rt = rt
        self._key = rt.keys.record_lock(tenant, member)
        self._token = str(uuid.uuid4())

    def __enter__(self) -> RecordLock:
        if not self._rt.redis.set(self._key, self._token, nx=True, px=RECORD_LOCK_MS):
            raise Throttled(BUSY_RETRY_SECONDS, "record_busy")
        return self

    def __exit__(self, *exc: object) -> None:
        # Delete only if still ours (it may have expired and been taken by another).
        self._rt.redis.eval(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end"
            " return 0",
            1,
            self._key,
            self._token,
        )


def mark_applied(
    rt: Runtime,
    tenant: str,
    member: str,
    *,
    version: str,
    state: str,
    virtuous_id: str,
    writeback_type: str,
    reason: str,
) -> int:
    """Record an applied version (and writeback it); returns the record's newest version."""
    kind, record_id = member.split(":", 1)
    script = load_script(rt.redis, "ledger_applied.lua")
    newest = script(
        keys=[rt.keys.record(tenant, member), rt.keys.state_counts(tenant), rt.keys.writeback],
        args=[version, state, virtuous_id, writeback_type, tenant, kind, record_id, reason],
    )
    return int(newest)


def pending_record(rt: Runtime, tenant: str, member: str) -> dict[str, str] | None:
    """The record if it holds a stored version newer than the one last applied, else None."""
    record = rt.ledger.record(tenant, member)
    if not record.get("payload"):
        return None
    if int(record.get("applied_version", "-1")) >= int(record.get("version", "-1")):
        return None
    return record


def quarantine(
    rt: Runtime,
    tenant: str,
    member: str,
    version: str,
    reason: str,
    writeback_type: str = "gift.quarantined",
) -> int:
    """Virtuous refused this version: record why, tell the platform, and do not retry it.

    Returns the record's newest version (a newer change may still be sent)."""
    newest = mark_applied(
        rt,
        tenant,
        member,
        version=version,
        state="quarantined",
        virtuous_id="",
        writeback_type=writeback_type,
        reason=reason,
    )
    rt.redis.zadd(rt.keys.quarantine(tenant), {member: rt.batcher.server_ms()})
    metrics.GIFTS_QUARANTINED.labels(tenant).inc()
    log.warning("record_quarantined", member=member, reason=reason)
    return newest


def send_gift(rt: Runtime, tenant: TenantSettings, member: str) -> None:
    """Apply the newest stored version of one transaction to Virtuous."""
    with RecordLock(rt, tenant.name, member):
        record = pending_record(rt, tenant.name, member)
        if record is None:
            return
        try:
            newest = _send(rt, tenant, member, record)
        except RejectedError as exc:
            reason = rejection_reason(exc)
            newest = quarantine(rt, tenant.name, member, record["version"], reason)
        except NotFoundError:
            reason = "the Gift this record points at no longer exists in Virtuous"
            newest = quarantine(rt, tenant.name, member, record["version"], reason)
        except ContactPending as exc:
            hold_for_donor(rt, tenant.name, member, exc.donor_id)
            return
    if newest > int(record["version"]):
        # A newer change arrived while this one was in flight: its own message may already
        # have found the record busy, so make sure someone applies it.
        from workers.actors import send_gift as send_gift_actor

        send_gift_actor.send(tenant=tenant.name, member=member)


def _send(rt: Runtime, tenant: TenantSettings, member: str, record: dict[str, str]) -> int:
    """Create or update the gift; returns the record's newest version afterwards."""
    event = parse_event_json(record["payload"])
    tx = event.record
    assert isinstance(tx, Transaction)
    gift_id = real_gift_id(record.get("virtuous_id")) or real_gift_id(tx.virtuous_id)
    if gift_id is not None and real_gift_id(tx.virtuous_id) is None:
        # Confirmation learned the real id after the event was published (a held refund or
        # update released): decide on what Virtuous holds now.
        tx = tx.model_copy(update={"virtuous_id": gift_id})
    decision = decide(tx, tenant)
    if not decision.send:
        return mark_applied(
            rt,
            tenant.name,
            member,
            version=record["version"],
            state="skipped",
            virtuous_id="",
            writeback_type="gift.skipped",
            reason=decision.reason,
        )
    if gift_id is not None:
        outcome = _update(rt, tenant, tx, gift_id, decision.zero_amount, decision)
    else:
        gift_id, outcome = _create(rt, tenant, member, tx, record, decision)
    newest = mark_applied(
        rt,
        tenant.name,
        member,
        version=record["version"],
        state="sent",
        virtuous_id=str(gift_id),
        writeback_type=f"gift.{outcome}",
        reason=decision.reason,
    )
    metrics.GIFTS_SUBMITTED.labels(tenant.name, "real_time").inc()
    published = int(record.get("published_ms", "0"))
    if published:
        seconds = max(rt.batcher.server_ms() - published, 0) / 1000
        metrics.PUBLISH_TO_SUBMIT.labels(tenant.name, "real_time").observe(seconds)
    log.info("gift_sent", outcome=outcome, member=member)
    return newest


def _create(
    rt: Runtime,
    tenant: TenantSettings,
    member: str,
    tx: Transaction,
    record: dict[str, str],
    decision: Any,
) -> tuple[int, str]:
    if record.get("create_attempted"):
        found = call(
            rt,
            tenant,
            lambda c: c.find_gift(tenant.transaction_source, str(tx.id)),
            kind="lookup",
        )
        if found is not None:
            log.info("ambiguous_create_adopted", member=member)
            # The create that went through may have carried an older version: a newer change
            # can arrive before this retry. Bring the adopted gift to the version applied now,
            # or Virtuous keeps the older amount and designations (found by the chaos soak).
            _update(rt, tenant, tx, int(found["id"]), decision.zero_amount, decision)
            return int(found["id"]), "created"
    contact_id = ensure_contact(rt, tenant, tx.owner)
    owner = tx.owner.model_copy(update={"virtuous_contact_id": contact_id})
    payload = realtime_create(tx.model_copy(update={"owner": owner}), tenant, decision)
    try:
        created = call(
            rt,
            tenant,
            lambda c: c.create_gift(payload),
            before=lambda: rt.ledger.update(tenant.name, member, {"create_attempted": "1"}),
        )
    except Throttled as exc:
        if exc.reason in REFUSED_UNPROCESSED:
            # A 429 or a 401 is an answer: Virtuous did not apply the create.
            rt.ledger.update(tenant.name, member, {"create_attempted": ""})
        raise
    return int(created["id"]), "created"


def _update(
    rt: Runtime,
    tenant: TenantSettings,
    tx: Transaction,
    gift_id: int,
    zero: bool,
    decision: Any,
) -> str:
    if zero and tenant.refund_method == "reversing":
        call(rt, tenant, lambda c: c.reversing_transaction({"reversedGiftId": gift_id}))
        return "reversed"
    existing = call(rt, tenant, lambda c: c.get_gift(gift_id))
    if zero:
        body = zeroing_update(existing)
    else:
        body = realtime_update(existing, realtime_desired(tx, tenant, decision))
    call(rt, tenant, lambda c: c.update_gift(gift_id, body))
    return "zeroed" if zero else "updated"
