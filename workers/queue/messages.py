"""One message builder per actor, named for the actor it runs (the queues are
:mod:`workers.queue.queues`).

It imports only the queue names at module level, so any module (a flow, the
scheduler, the CLI, the platform's own code through :mod:`producers`) can say "run this actor
with these arguments" without importing the actors, which only the worker entry point loads.
A builder returns a dramatiq message; :func:`enqueue` puts it on its queue.
"""

from __future__ import annotations

from typing import Any

import dramatiq

from workers.queue.queues import (
    BATCH_QUEUE,
    BULK_CHANGES_QUEUE,
    CHANGES_QUEUE,
    CONFIRM_QUEUE,
    PULL_QUEUE,
    SEND_QUEUE,
)

Message = dramatiq.Message[Any]


def _message(queue: str, actor: str, message_id: str = "", **kwargs: Any) -> Message:
    message: Message = dramatiq.Message(
        queue_name=queue, actor_name=actor, args=(), kwargs=kwargs, options={}
    )
    return message.copy(message_id=message_id) if message_id else message


def map_changes(events: list[Any], published_ms: int) -> Message:
    """Validate, map and route a chunk of real-time tenants' change events."""
    return _message(CHANGES_QUEUE, "map_changes", events=events, published_ms=published_ms)


def map_bulk_changes(events: list[Any], published_ms: int) -> Message:
    """Validate, map and route a chunk of batch-mode tenants' change events."""
    return _message(
        BULK_CHANGES_QUEUE, "map_bulk_changes", events=events, published_ms=published_ms
    )


def send_batch(tenant: str, batch_id: str, owner: str) -> Message:
    """Send one stored batch; the message's id is the batch's owner."""
    return _message(BATCH_QUEUE, "send_batch", owner, tenant=tenant, batch_id=batch_id)


def send_gift(tenant: str, member: str) -> Message:
    """Create or update one gift in real time."""
    return _message(SEND_QUEUE, "send_gift", tenant=tenant, member=member)


def send_recurring(tenant: str, member: str) -> Message:
    """Create or update one recurring gift with its dependencies."""
    return _message(SEND_QUEUE, "send_recurring", tenant=tenant, member=member)


def send_contact(tenant: str, member: str) -> Message:
    """Send one donor as a Contact Transaction."""
    return _message(SEND_QUEUE, "send_contact", tenant=tenant, member=member)


def send_record(tenant: str, member: str) -> Message:
    """The direct send that applies ``member``'s newest stored version, by its kind."""
    kind = member.split(":", 1)[0]
    if kind == "scheduled_donation":
        return send_recurring(tenant, member)
    if kind == "donor":
        return send_contact(tenant, member)
    return send_gift(tenant, member)


def confirm_webhook(tenant: str, payload: dict[str, Any], event: str = "other") -> Message:
    """Apply one verified Virtuous webhook delivery (``event`` as the receiver named it)."""
    return _message(CONFIRM_QUEUE, "confirm_webhook", tenant=tenant, payload=payload, event=event)


def reconcile(tenant: str) -> Message:
    """Look up the tenant's gifts that stayed unconfirmed."""
    return _message(CONFIRM_QUEUE, "reconcile", tenant=tenant)


def pull(kind: str, tenant: str) -> Message:
    """Pull the tenant's Gifts (``kind`` "gifts") or RecurringGifts ("recurring")."""
    actor = "pull_gifts" if kind == "gifts" else "pull_recurring"
    return _message(PULL_QUEUE, actor, tenant=tenant)


def enqueue(message: Message, broker: dramatiq.Broker | None = None) -> Message:
    """Put ``message`` on its queue through ``broker`` (the process's broker by default)."""
    if broker is None:
        # Imported on first use so that importing the builders (what producers and flows do)
        # builds no broker, reads no settings and registers no metrics.
        from workers.queue.broker import get_broker

        broker = get_broker()
    return broker.enqueue(message)
