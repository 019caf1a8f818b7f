"""The dramatiq actors: the one module that declares them, loaded only by the worker entry
point (``giftsync worker``, or plainly ``dramatiq workers.queue.actors``). Nothing imports it:
every other module names an actor through :mod:`workers.queue.messages`.

Each actor is one line into its flow. Importing this module builds the process's broker (with
the dead-letter hook, since dead letters happen where messages run); logging and the metric
series are set up when the worker process boots (:class:`ProcessSetup`).
"""

from __future__ import annotations

from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import CurrentMessage, Middleware

from giftsync.logs import configure_logging
from giftsync.settings import get_settings
from workers.flows import batch_send, confirm, donors, gifts, intake, pull, recurring
from workers.observe import metrics
from workers.queue.broker import get_broker
from workers.queue.deadletters import record_dead_letter
from workers.queue.queues import (
    BATCH_QUEUE,
    BULK_CHANGES_QUEUE,
    CHANGES_QUEUE,
    CONFIRM_QUEUE,
    PULL_QUEUE,
    SEND_QUEUE,
    THROTTLED_BATCH_QUEUE,
    bounded_queues,
)
from workers.runtime import runtime

log = structlog.get_logger("giftsync.actors")

# dramatiq runs a lower number first among the messages a worker process has fetched: a thread
# that frees up while batch sends wait takes a real-time send (priority 0) before them.
BATCH_PRIORITY = 10
# Batch-mode tenants' changes run behind everything real time: a thread that frees up while a
# backfill's chunks wait takes a real-time tenant's change or send first, so a backfill costs
# the others at most the chunk a thread is already working on. They run ahead of batch sends
# all the same: intake is quick Redis work that gets the backfill into the ledger (its state
# and writeback, whatever the cap), while a batch send waits on its tenant's limiter anyway,
# and the batches it would send are cut from what intake buffers.
BULK_CHANGES_PRIORITY = 5


class ProcessSetup(Middleware):
    """Configure logging and create every metric series once a worker process has booted."""

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        settings = runtime().settings
        configure_logging(settings.log_level)
        metrics.initialise(sorted(settings.tenants))
        # Deliveries applied, per tenant and event: the dashboard's per-tenant webhook series.
        for tenant in settings.tenants:
            for event in (
                "giftCreate",
                "giftUpdate",
                "giftDelete",
                "contactCreate",
                "contactUpdate",
                "other",
            ):
                metrics.WEBHOOKS_RECEIVED.labels(tenant, event, "applied")


broker = get_broker(
    on_dead_letter=record_dead_letter,
    prefetch_bounds=bounded_queues(get_settings().batch_sends_per_process),
)
broker.add_middleware(ProcessSetup())


def _message_id() -> str:
    message = CurrentMessage.get_current_message()
    return message.message_id if message is not None else ""


@dramatiq.actor(queue_name=CHANGES_QUEUE)
def map_changes(events: list[Any], published_ms: int = 0) -> None:
    """Validate, decide, map and route a chunk of change events (see workers.flows.intake)."""
    intake.run(runtime(), events, published_ms)


@dramatiq.actor(queue_name=BULK_CHANGES_QUEUE, priority=BULK_CHANGES_PRIORITY)
def map_bulk_changes(events: list[Any], published_ms: int = 0) -> None:
    """The same intake for a chunk of batch-mode tenants' change events (a worker process
    holds at most ``BULK_INTAKE_PER_PROCESS`` of them: see workers.queue.queues)."""
    intake.run(runtime(), events, published_ms)


# send_batch also runs from here: its messages wait here once throttled (see queues.py).
broker.declare_queue(THROTTLED_BATCH_QUEUE)


@dramatiq.actor(queue_name=BATCH_QUEUE, priority=BATCH_PRIORITY)
def send_batch(tenant: str, batch_id: str) -> None:
    """Send one stored batch if this message owns it (see workers.flows.batch_send)."""
    rt = runtime()
    batch_send.run(rt, rt.settings.tenant(tenant), batch_id, _message_id())


@dramatiq.actor(queue_name=SEND_QUEUE)
def send_gift(tenant: str, member: str) -> None:
    """Create or update one gift in real time (see workers.flows.gifts)."""
    gifts.send_gift(runtime(), runtime().settings.tenant(tenant), member)


@dramatiq.actor(queue_name=SEND_QUEUE)
def send_recurring(tenant: str, member: str) -> None:
    """Create or update one recurring gift with its dependencies (see workers.flows.recurring)."""
    recurring.send_recurring(runtime(), runtime().settings.tenant(tenant), member)


@dramatiq.actor(queue_name=SEND_QUEUE)
def send_contact(tenant: str, member: str) -> None:
    """Send one donor as a Contact Transaction (see workers.flows.donors)."""
    donors.send_contact(runtime(), runtime().settings.tenant(tenant), member)


@dramatiq.actor(queue_name=CONFIRM_QUEUE)
def confirm_webhook(tenant: str, payload: dict[str, Any], event: str = "other") -> None:
    """Apply one verified Virtuous webhook delivery (see workers.flows.confirm)."""
    rt = runtime()
    result = confirm.apply_webhook(rt, rt.settings.tenant(tenant), payload)
    # Counted here per tenant: the receiver's own /metrics is public and names no tenant.
    metrics.WEBHOOKS_RECEIVED.labels(tenant, event, "applied").inc()
    log.info("webhook_applied", outcomes=result.outcomes)


@dramatiq.actor(queue_name=CONFIRM_QUEUE)
def reconcile(tenant: str) -> None:
    """Look up the tenant's unconfirmed gifts and pending donors (see workers.flows.confirm)."""
    rt = runtime()
    confirm.reconcile(rt, rt.settings.tenant(tenant))


@dramatiq.actor(queue_name=PULL_QUEUE)
def pull_gifts(tenant: str) -> None:
    """Pull the tenant's Gifts changed in Virtuous since its cursor (see workers.flows.pull)."""
    pull.run(runtime(), runtime().settings.tenant(tenant), "gifts", _message_id())


@dramatiq.actor(queue_name=PULL_QUEUE)
def pull_recurring(tenant: str) -> None:
    """Pull the tenant's RecurringGifts changed since its cursor (see workers.flows.pull)."""
    pull.run(runtime(), runtime().settings.tenant(tenant), "recurring", _message_id())
