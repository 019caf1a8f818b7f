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
so a create is never made twice. The mark is on the replicas before the create goes
(``GIFTSYNC_MIN_REPLICAS``), so a Redis failover cannot lose it.
"""

from __future__ import annotations

from typing import Any

import structlog

from mapping.decision import decide
from mapping.events import Transaction, parse_event_json, real_gift_id
from mapping.realtime import realtime_create, realtime_desired, realtime_update, zeroing_update
from mapping.tenant import TenantSettings
from workers.errors import Throttled
from workers.flows import direct_send
from workers.flows.gate import call
from workers.flows.related import ensure_contact
from workers.observe import metrics
from workers.runtime import Runtime
from workers.virtuous.client import VirtuousClient

log = structlog.get_logger("giftsync.gifts")
# Throttle reasons that follow an answer saying the request was not processed.
REFUSED_UNPROCESSED = frozenset({"429", "paused"})


def send_gift(rt: Runtime, tenant: TenantSettings, member: str) -> None:
    """Apply the newest stored version of one transaction to Virtuous."""
    direct_send.run(
        rt, tenant, member, lambda record: _send(rt, tenant, member, record), kind="gift"
    )


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
        return direct_send.applied(
            rt,
            tenant.name,
            member,
            record["version"],
            state="skipped",
            virtuous_id="",
            writeback_type="gift.skipped",
            reason=decision.reason,
        )
    if gift_id is not None:
        outcome = _update(rt, tenant, tx, gift_id, decision.zero_amount, decision)
    else:
        gift_id, outcome = _create(rt, tenant, member, tx, record, decision)
    newest = direct_send.applied(
        rt,
        tenant.name,
        member,
        record["version"],
        state="sent",
        virtuous_id=str(gift_id),
        writeback_type=f"gift.{outcome}",
        reason=decision.reason,
    )
    metrics.GIFTS_SUBMITTED.labels(tenant.name, "real_time").inc()
    published = int(record.get("published_ms", "0"))
    if published:
        seconds = max(rt.ledger.server_ms() - published, 0) / 1000
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
            before=lambda: rt.ledger.update(
                tenant.name, member, {"create_attempted": "1"}, durable=True
            ),
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
    desired = None if zero else realtime_desired(tx, tenant, decision)

    def get_and_put(client: VirtuousClient) -> None:
        existing = client.get_gift(gift_id)
        body = zeroing_update(existing) if desired is None else realtime_update(existing, desired)
        client.update_gift(gift_id, body)

    # One grant for both calls: a PUT throttled after its GET would spend the GET again on
    # every retry, and at the cap never get through.
    call(rt, tenant, get_and_put, cost=2)
    return "zeroed" if zero else "updated"
