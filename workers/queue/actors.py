"""The dramatiq actors. Each is thin: load, call mapping/ or a sender, persist.

Run them with ``giftsync worker`` (which also starts the scheduler and the metrics
endpoint) or plainly with ``dramatiq workers.queue.actors``.
"""

from __future__ import annotations

from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import CurrentMessage

from giftsync.logs import configure_logging
from mapping.tenant import TenantSettings
from workers.flows import batch_send, intake
from workers.observe import metrics
from workers.queue.broker import CHANGES_QUEUE, CONFIRM_QUEUE, PULL_QUEUE, SEND_QUEUE, get_broker
from workers.runtime import runtime

log = structlog.get_logger("giftsync.actors")

broker = get_broker()
configure_logging(runtime().settings.log_level)
metrics.initialise(sorted(runtime().settings.tenants))


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
    """Validate, decide, map and route a chunk of change events (see workers.flows.intake)."""
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
    """Send one stored batch if this message owns it (see workers.flows.batch_send)."""
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
    """Create or update one gift in real time (see workers.flows.gifts)."""
    from workers.flows import gifts as realtime

    realtime.send_gift(runtime(), runtime().settings.tenant(tenant), member)


@dramatiq.actor(queue_name=SEND_QUEUE)
def send_recurring(tenant: str, member: str) -> None:
    """Create or update one recurring gift with its dependencies (see workers.flows.recurring)."""
    from workers.flows import recurring

    recurring.send_recurring(runtime(), runtime().settings.tenant(tenant), member)


@dramatiq.actor(queue_name=SEND_QUEUE)
def send_contact(tenant: str, member: str) -> None:
    """Send one donor as a Contact Transaction (see workers.flows.donors)."""
    from workers.flows import donors

    donors.send_contact(runtime(), runtime().settings.tenant(tenant), member)


@dramatiq.actor(queue_name=CONFIRM_QUEUE)
def confirm_webhook(tenant: str, payload: dict[str, Any]) -> None:
    """Apply one verified Virtuous webhook delivery (see workers.flows.confirm)."""
    from workers.flows import confirm

    rt = runtime()
    result = confirm.apply_webhook(rt, rt.settings.tenant(tenant), payload)
    log.info("webhook_applied", outcomes=result.outcomes)


# A sweep holds its tenant this long at most (a crashed sweep frees it by itself).
RECONCILE_LOCK_SECONDS = 300


@dramatiq.actor(queue_name=CONFIRM_QUEUE)
def reconcile(tenant: str) -> None:
    """Look up the tenant's gifts that stayed unconfirmed (see workers.flows.confirm.sweep)."""
    from workers.flows import confirm

    rt = runtime()
    lock = f"{rt.keys.prefix}:reconcile-lock:{tenant}"
    if not rt.redis.set(lock, "1", nx=True, ex=RECONCILE_LOCK_SECONDS):
        return
    try:
        from workers.flows import donors

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
    """Pull the tenant's Gifts changed in Virtuous since its cursor (see workers.flows.pull)."""
    from workers.flows import pull

    pull.run(runtime(), runtime().settings.tenant(tenant), "gifts", _message_id())


@dramatiq.actor(queue_name=PULL_QUEUE)
def pull_recurring(tenant: str) -> None:
    """Pull the tenant's RecurringGifts changed since its cursor (see workers.flows.pull)."""
    from workers.flows import pull

    pull.run(runtime(), runtime().settings.tenant(tenant), "recurring", _message_id())
