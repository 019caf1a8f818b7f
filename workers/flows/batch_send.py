"""Sending one stored batch to ``POST /api/v2/Gift/Transactions`` and settling the answer.

2xx: every entry is submitted under the batch's ``btch_`` id. 400: Virtuous refused
something in the batch, so the batch is split in halves that are sent on their own until the
bad entry stands alone; it is quarantined with Virtuous's reason (or counted as submitted when
the reason is that its transactionId was already submitted) and every good entry goes
through. 5xx, timeouts and dropped connections propagate to the retry middleware: resending
is safe because every entry carries transactionSource + transactionId and the body is the same
bytes every time. 429 and 401 become waits (see :mod:`workers.flows.gate`).
"""

from __future__ import annotations

import uuid

import structlog

from mapping.tenant import TenantSettings
from workers.errors import RejectedError, refusal_reason
from workers.flows.gate import call
from workers.observe import metrics
from workers.queue import messages
from workers.runtime import Runtime
from workers.store.batches import Batch, Settled

log = structlog.get_logger("giftsync.batch_send")


def cut_and_enqueue(rt: Runtime, tenant: TenantSettings, *, force: bool = False) -> list[str]:
    """Cut every batch due for ``tenant`` and enqueue the message that owns each."""
    cut = rt.batcher.cut_all_due(tenant, lambda: str(uuid.uuid4()), force=force)
    for batch_id, owner in cut:
        messages.enqueue(messages.send_batch(tenant.name, batch_id, owner))
        rt.batcher.mark_enqueued(batch_id)
    return [batch_id for batch_id, _ in cut]


def run(rt: Runtime, tenant: TenantSettings, batch_id: str, owner: str) -> str:
    """Send a stored batch if the message ``owner`` still owns it; returns what happened."""
    batch = rt.batcher.load(batch_id)
    if batch is None or batch.state != "pending":
        return "already_settled"
    if batch.owner != owner or not rt.batcher.attempt(batch_id, owner):
        log.info("batch_owned_elsewhere", owner=batch.owner)
        return "owned_elsewhere"
    return send(rt, tenant, batch, owner)


def send(rt: Runtime, tenant: TenantSettings, batch: Batch, owner: str) -> str:
    """Send ``batch`` (owned by ``owner``) and settle it; returns what happened."""
    try:
        call(rt, tenant, lambda client: client.post_gift_transactions(batch.body))
    except RejectedError as exc:
        if batch.count == 1:
            return _settle_single(rt, tenant, batch, owner, exc)
        return _split(rt, tenant, batch, owner)
    settled = rt.batcher.settle(batch, "submitted", "accepted", owner)
    if settled is None:
        return "already_settled"
    metrics.GIFTS_SUBMITTED.labels(tenant.name, "batch").inc(batch.count)
    metrics.BATCH_SIZE.labels(tenant.name).observe(batch.count)
    publish_to_submit = metrics.PUBLISH_TO_SUBMIT.labels(tenant.name, "batch")
    for delay in settled.delays:
        publish_to_submit.observe(delay / 1000)
    _send_now(tenant, settled)
    log.info("batch_submitted", entries=batch.count)
    return "submitted"


def _send_now(tenant: TenantSettings, settled: Settled) -> None:
    # Newer changes whose real Gift id is already known: close their gap by a direct send.
    for member in settled.send_now:
        messages.enqueue(messages.send_gift(tenant.name, member))


def _settle_single(
    rt: Runtime, tenant: TenantSettings, batch: Batch, owner: str, exc: RejectedError
) -> str:
    if exc.already_submitted:
        settled = rt.batcher.settle(batch, "submitted", "already_submitted", owner)
        if settled is not None:
            metrics.GIFTS_SUBMITTED.labels(tenant.name, "batch").inc()
            _send_now(tenant, settled)
        return "already_submitted"
    reason = refusal_reason(exc)
    if rt.batcher.settle(batch, "quarantined", reason, owner) is not None:
        metrics.GIFTS_QUARANTINED.labels(tenant.name).inc()
        log.warning("entry_quarantined", member=batch.members[0], reason=reason)
    return "quarantined"


def _split(rt: Runtime, tenant: TenantSettings, batch: Batch, owner: str) -> str:
    owners = (str(uuid.uuid4()), str(uuid.uuid4()))
    children = rt.batcher.split(batch, owner, owners)
    if not children:
        return "already_settled"
    metrics.BATCH_SPLITS.labels(tenant.name).inc()
    for child, child_owner in zip(children, owners, strict=True):
        messages.enqueue(messages.send_batch(tenant.name, child, child_owner))
        rt.batcher.mark_enqueued(child)
    log.info("batch_split", children=children)
    return "split"
