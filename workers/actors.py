"""The dramatiq actors. Each is thin: load, call mapping/ or a sender, persist.

Run them with ``giftsync worker`` (which also starts the scheduler and the metrics
endpoint) or plainly with ``dramatiq workers.actors``.
"""

from __future__ import annotations

from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import CurrentMessage

from giftsync.logs import configure_logging
from mapping.tenant import TenantSettings
from workers import batch_send, intake, metrics
from workers.broker import CHANGES_QUEUE, CONFIRM_QUEUE, PULL_QUEUE, SEND_QUEUE, get_broker
from workers.runtime import runtime

log = structlog.get_logger("giftsync.actors")

broker = get_broker()
configure_logging(runtime().settings.log_level)
metrics.initialise(sorted(runtime().settings.tenants))
# Deliveries applied, per tenant and event: the dashboard's per-tenant webhook series.
for _tenant in runtime().settings.tenants:
    for _event in ("giftCreate", "contactCreate", "contactUpdate", "other"):
        metrics.WEBHOOKS_RECEIVED.labels(_tenant, _event, "applied")


def batch_message(tenant: str, batch_id: str, owner: str) -> dramatiq.Message[Any]:
    """The send_batch message that owns ``batch_id`` (its id is the batch's owner)."""
    return dramatiq.Message(
        queue_name=SEND_QUEUE,
        actor_name="send_batch",
        args=(),
        kwargs={"tenant": tenant, "batch_id": batch_id},
        options={},
        message_id=owner,
    )


def cut_and_enqueue(tenant: TenantSettings, *, force: bool = False) -> list[str]:
    """Cut every batch due for ``tenant`` and enqueue the message that owns each."""
    import uuid

    rt = runtime()
    cut = rt.batcher.cut_all_due(tenant, lambda: str(uuid.uuid4()), force=force)
    for batch_id, owner in cut:
        broker.enqueue(batch_message(tenant.name, batch_id, owner))
        rt.batcher.mark_enqueued(batch_id)
    return [batch_id for batch_id, _ in cut]


@dramatiq.actor(queue_name=CHANGES_QUEUE)
def map_changes(events: list[Any], published_ms: int = 0) -> None:
    """Validate, decide, map and route a chunk of change events (see workers.intake)."""
    rt = runtime()
    tenants = rt.settings.tenants
    planned, _invalid = intake.plan(events, tenants, rt.ledger)
    result = intake.apply(rt.ledger, planned, published_ms)
    for tenant_name in sorted(result.full_buffers):
        cut_and_enqueue(tenants[tenant_name])
    senders = {"scheduled_donation": send_recurring, "donor": send_contact}
    for tenant_name, member, kind in result.sends:
        senders.get(kind, send_gift).send(tenant=tenant_name, member=member)


@dramatiq.actor(queue_name=SEND_QUEUE)
def send_batch(tenant: str, batch_id: str) -> None:
    """Send one stored batch if this message owns it (see workers.batch_send)."""
    rt = runtime()
    message = CurrentMessage.get_current_message()
    owner = message.message_id if message is not None else ""
    batch = rt.batcher.load(batch_id)
    if batch is None or batch.state != "pending":
        return
    if batch.owner != owner:
        log.info("batch_owned_elsewhere", owner=batch.owner)
        return
    batch_send.send(rt, rt.settings.tenant(tenant), batch, owner, batch_message, broker.enqueue)


@dramatiq.actor(queue_name=SEND_QUEUE)
def send_gift(tenant: str, member: str) -> None:
    """Create or update one gift in real time (see workers.realtime)."""
    from workers import realtime

    realtime.send_gift(runtime(), runtime().settings.tenant(tenant), member)


@dramatiq.actor(queue_name=SEND_QUEUE)
def send_recurring(tenant: str, member: str) -> None:
    """Create or update one recurring gift with its dependencies (see workers.recurring)."""
    from workers import recurring

    recurring.send_recurring(runtime(), runtime().settings.tenant(tenant), member)


@dramatiq.actor(queue_name=SEND_QUEUE)
def send_contact(tenant: str, member: str) -> None:
    """Send one donor as a Contact Transaction (see workers.donors)."""
    from workers import donors

    donors.send_contact(runtime(), runtime().settings.tenant(tenant), member)


@dramatiq.actor(queue_name=CONFIRM_QUEUE)
def confirm_webhook(tenant: str, payload: dict[str, Any], event: str = "other") -> None:
    """Apply one verified Virtuous webhook delivery (see workers.confirm)."""
    from workers import confirm

    rt = runtime()
    result = confirm.apply_webhook(rt, rt.settings.tenant(tenant), payload)
    # Counted here per tenant: the receiver's own /metrics is public and names no tenant.
    metrics.WEBHOOKS_RECEIVED.labels(tenant, event, "applied").inc()
    log.info("webhook_applied", outcomes=result.outcomes)


# A sweep holds its tenant this long at most (a crashed sweep frees it by itself).
RECONCILE_LOCK_SECONDS = 300


@dramatiq.actor(queue_name=CONFIRM_QUEUE)
def reconcile(tenant: str) -> None:
    """Look up the tenant's gifts that stayed unconfirmed (see workers.confirm.sweep)."""
    from workers import confirm

    rt = runtime()
    lock = f"{rt.keys.prefix}:reconcile-lock:{tenant}"
    if not rt.redis.set(lock, "1", nx=True, ex=RECONCILE_LOCK_SECONDS):
        return
    try:
        from workers import donors

        settings = rt.settings.tenant(tenant)
        confirm.sweep(rt, settings)
        donors.sweep(rt, settings)
    finally:
        rt.redis.delete(lock)


def _message_id() -> str:
    message = CurrentMessage.get_current_message()
    return message.message_id if message is not None else ""


@dramatiq.actor(queue_name=PULL_QUEUE)
def pull_gifts(tenant: str) -> None:
    """Pull the tenant's Gifts changed in Virtuous since its cursor (see workers.pull)."""
    from workers import pull

    pull.run(runtime(), runtime().settings.tenant(tenant), "gifts", _message_id())


@dramatiq.actor(queue_name=PULL_QUEUE)
def pull_recurring(tenant: str) -> None:
    """Pull the tenant's RecurringGifts changed in Virtuous since its cursor (see workers.pull)."""
    from workers import pull

    pull.run(runtime(), runtime().settings.tenant(tenant), "recurring", _message_id())
