"""The scheduler: the periodic work no message asks for.

Every tick it cuts the batches whose oldest entry has waited the tenant's max wait, runs
the broker's maintenance (so a killed worker's messages come back within about the
heartbeat timeout, not whenever a random command happens to run it), and gives orphaned
batches a new owning message: cut but never enqueued (a crash between the two), or enqueued
but with an owner silent for hours (its message was lost). Later ticks add the reconcile
sweep, the pulls and the retention sweep (``workers/store/retention.py``).

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

from giftsync.logs import configure_logging
from workers.flows import pull
from workers.flows.batch_send import cut_and_enqueue
from workers.queue import messages
from workers.queue.broker import get_broker, run_maintenance
from workers.queue.messages import QUEUES
from workers.runtime import Runtime, runtime

log = structlog.get_logger("giftsync.scheduler")

# How often the flush timer looks at every buffer (the max-wait resolution).
FLUSH_EVERY_SECONDS = 0.5
# How often dead workers' messages are given back.
MAINTENANCE_EVERY_SECONDS = 5.0
# How often orphaned batches are looked for.
ORPHANS_EVERY_SECONDS = 10.0
# How often each tenant's pulls are checked for being due (each runs every pull_interval_seconds).
PULLS_EVERY_SECONDS = 1.0
# How often what has been at rest longer than the retention is expired (retention is in days).
RETENTION_EVERY_SECONDS = 60.0


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
            _Periodic(RETENTION_EVERY_SECONDS, self.expire_old, "retention"),
        ]

    def flush_due(self) -> None:
        """Cut every batch whose tenant's buffer is full or old enough."""
        for name in self.rt.batcher.buffered_tenants():
            tenant = self.rt.settings.tenants.get(name)
            if tenant is not None:
                cut_and_enqueue(self.rt, tenant)

    def maintenance(self) -> None:
        """Give back the messages of dead workers."""
        run_maintenance(get_broker(), QUEUES)

    def adopt_orphans(self) -> None:
        """Enqueue a new owner for every batch whose message never reached the queue or was
        lost."""
        batcher = self.rt.batcher
        for batch_id, seen in batcher.adoptable(batcher.server_ms()):
            batch = batcher.load(batch_id)
            if batch is None or batch.state != "pending":
                continue
            owner = str(uuid.uuid4())
            if not batcher.reown(batch_id, owner, seen):
                continue
            messages.enqueue(messages.send_batch(batch.tenant, batch_id, owner))
            batcher.mark_enqueued(batch_id)
            log.warning("orphan_batch_adopted", batch_id=batch_id)

    def reconcile(self) -> None:
        """Start each tenant's reconcile sweep (the actor skips if one is already running)."""
        for name in sorted(self.rt.settings.tenants):
            messages.enqueue(messages.reconcile(name))

    def schedule_pulls(self) -> None:
        """Enqueue each tenant's gift and recurring pulls when due and none is pending."""
        for name, tenant in sorted(self.rt.settings.tenants.items()):
            for kind in ("gifts", "recurring"):
                message = messages.pull(kind, name)
                if pull.claim_schedule(self.rt, tenant, kind, message.message_id):
                    messages.enqueue(message)

    def expire_old(self) -> None:
        """Expire records, batches and writeback entries at rest longer than the retention."""
        swept = self.rt.retention.sweep(sorted(self.rt.settings.tenants))
        if swept.anything:
            log.info(
                "retention_swept",
                records=swept.records,
                batches=swept.batches,
                writeback=swept.writeback,
                indexed=swept.indexed,
                complete=swept.complete,
            )

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
    rt = runtime()
    configure_logging(rt.settings.log_level)
    log.info("scheduler_started", tenants=sorted(rt.settings.tenants))
    Scheduler(rt).run()
