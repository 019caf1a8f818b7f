"""The scheduler: the periodic work no message asks for.

Every tick it cuts the batches whose oldest entry has waited the tenant's max wait, runs
the broker's maintenance (so a killed worker's messages come back within about the
heartbeat timeout, not whenever a random command happens to run it), and gives orphaned
batches (cut, never enqueued: a crash between the two) a new owning message. Later ticks add
the reconcile sweep and the pulls.

Several schedulers may run at once (one per worker pod): each step is atomic or idempotent, so
they only duplicate a little work.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from workers.runtime import Runtime, runtime
from workers.store.scripts import decode

log = structlog.get_logger("giftsync.scheduler")

# How often the flush timer looks at every buffer (the max-wait resolution).
FLUSH_EVERY_SECONDS = 0.5
# How often dead workers' messages are given back.
MAINTENANCE_EVERY_SECONDS = 5.0
# How often orphaned batches are looked for.
ORPHANS_EVERY_SECONDS = 10.0
# How often each tenant's pulls are checked for being due (each runs every pull_interval_seconds).
PULLS_EVERY_SECONDS = 1.0


@dataclass
class _Periodic:
    every: float
    run: Callable[[], None]
    name: str
    due: float = 0.0


@dataclass
class Scheduler:
    """Runs each periodic task when due; ``tick()`` is one pass, ``run()`` loops."""

    rt: Runtime
    stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._tasks = [
            _Periodic(FLUSH_EVERY_SECONDS, self.flush_due, "flush"),
            _Periodic(MAINTENANCE_EVERY_SECONDS, self.maintenance, "maintenance"),
            _Periodic(ORPHANS_EVERY_SECONDS, self.adopt_orphans, "orphans"),
            _Periodic(self.rt.settings.reconcile_every_seconds, self.reconcile, "reconcile"),
            _Periodic(PULLS_EVERY_SECONDS, self.schedule_pulls, "pulls"),
        ]

    def flush_due(self) -> None:
        """Cut every batch whose tenant's buffer is full or old enough."""
        from workers.queue.actors import cut_and_enqueue

        for raw in self.rt.redis.smembers(self.rt.keys.buffered_tenants):
            name = decode(raw)
            tenant = self.rt.settings.tenants.get(name)
            if tenant is not None:
                cut_and_enqueue(tenant)

    def maintenance(self) -> None:
        """Give back the messages of dead workers."""
        from workers.queue.actors import broker
        from workers.queue.broker import run_maintenance

        run_maintenance(broker)

    def adopt_orphans(self) -> None:
        """Enqueue a new owner for every batch whose message never reached the queue."""
        from workers.queue.actors import batch_message, broker

        batcher = self.rt.batcher
        for batch_id in batcher.orphans(batcher.server_ms()):
            batch = batcher.load(batch_id)
            if batch is None or batch.state != "pending":
                continue
            owner = str(uuid.uuid4())
            batcher.reown(batch_id, owner)
            broker.enqueue(batch_message(batch.tenant, batch_id, owner))
            batcher.mark_enqueued(batch_id)
            log.warning("orphan_batch_adopted", batch_id=batch_id)

    def reconcile(self) -> None:
        """Start each tenant's reconcile sweep (the actor skips if one is already running)."""
        from workers.queue.actors import reconcile

        for name in sorted(self.rt.settings.tenants):
            reconcile.send(tenant=name)

    def schedule_pulls(self) -> None:
        """Enqueue each tenant's gift and recurring pulls when due and none is pending."""
        from workers.flows import pull
        from workers.queue.actors import broker, pull_gifts, pull_recurring

        for name, tenant in sorted(self.rt.settings.tenants.items()):
            for kind, actor in (("gifts", pull_gifts), ("recurring", pull_recurring)):
                message = actor.message(tenant=name)
                if pull.claim_schedule(self.rt, tenant, kind, message.message_id):
                    broker.enqueue(message)

    def tick(self) -> None:
        """Run every task that is due; a failing task is logged and retried next time."""
        now = time.monotonic()
        for task in self._tasks:
            if now < task.due:
                continue
            task.due = now + task.every
            try:
                task.run()
            except Exception as exc:
                log.error("scheduler_task_failed", task=task.name, error=repr(exc)[:300])

    def run(self) -> None:
        """Tick until stopped."""
        while not self.stop_event.is_set():
            self.tick()
            self.stop_event.wait(FLUSH_EVERY_SECONDS / 2)


def run() -> None:
    """Entry point for ``dramatiq --fork-function workers.queue.scheduler:run``."""
    from giftsync.logs import configure_logging

    rt = runtime()
    configure_logging(rt.settings.log_level)
    log.info("scheduler_started", tenants=sorted(rt.settings.tenants))
    Scheduler(rt).run()
