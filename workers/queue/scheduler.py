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
from workers.queue.queues import QUEUES
from workers.runtime import Runtime, runtime

log = structlog.get_logger("giftsync.scheduler")

# How often the flush timer looks at every buffer (the max-wait resolution).
FLUSH_EVERY_SECONDS = 0.5
# How often dead workers' messages are given back.
MAINTENANCE_EVERY_SECONDS = 5.0
# How often orphaned batches are looked for.
ORPHANS_EVERY_SECONDS = 10.0
# How often the pulls are looked at (each runs every pull_interval_seconds; a pull's schedule
# says how long it cannot be due, and is not asked again before then).
PULLS_EVERY_SECONDS = 1.0
# How often what has been at rest longer than the retention is expired (retention is in days).
RETENTION_EVERY_SECONDS = 60.0
PULL_KINDS = ("gifts", "recurring")


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
        # (tenant, kind) -> monotonic time before which that pull cannot be due.
        self._quiet_until: dict[tuple[str, str], float] = {}
        # tenant -> monotonic time before which its buffer cannot be due.
        self._cut_quiet_until: dict[str, float] = {}
        self._tenants = sorted(self.rt.settings.tenants.items())
        self._tasks = [
            _Periodic(FLUSH_EVERY_SECONDS, self.flush_due, "flush"),
            _Periodic(MAINTENANCE_EVERY_SECONDS, self.maintenance, "maintenance"),
            _Periodic(ORPHANS_EVERY_SECONDS, self.adopt_orphans, "orphans"),
            _Periodic(self.rt.settings.reconcile_every_seconds, self.reconcile, "reconcile"),
            _Periodic(PULLS_EVERY_SECONDS, self.schedule_pulls, "pulls"),
            _Periodic(RETENTION_EVERY_SECONDS, self.expire_old, "retention"),
        ]

    def flush_due(self) -> None:
        """Cut every batch whose tenant's buffer is full or old enough.

        The buffers are read in one round trip, and a buffer that cannot be due yet is not read
        again before it may be: with many batch tenants each holding a few gifts, a cut tried on
        every buffer every tick would be most of the deployment's Redis load."""
        now = time.monotonic()
        tenants = self.rt.settings.tenants
        waiting = [
            tenants[name]
            for name in self.rt.batcher.buffered_tenants()
            if name in tenants and now >= self._cut_quiet_until.get(name, 0.0)
        ]
        for name, seconds in self.rt.batcher.due_in(waiting).items():
            if seconds > 0:
                self._cut_quiet_until[name] = now + seconds
            else:
                self._cut_quiet_until.pop(name, None)
                cut_and_enqueue(self.rt, tenants[name])

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
        """Start the reconcile sweep of each tenant with something to look up (the actor skips
        if one is already running). A tenant with nothing due would sweep nothing: with many
        tenants, a message each every interval would be most of the confirm queue's work."""
        now = self.rt.ledger.server_ms()
        cutoffs = {
            name: now - tenant.reconcile_after_seconds * 1000 for name, tenant in self._tenants
        }
        for name in self.rt.ledger.lookups_due(cutoffs):
            messages.enqueue(messages.reconcile(name))

    def schedule_pulls(self) -> None:
        """Enqueue each tenant's gift and recurring pulls when due and none is pending.

        Only the pulls that may be due are asked about: with many tenants, asking Redis about
        every pull every second would be most of an idle deployment's Redis load."""
        for name, tenant in self._tenants:
            for kind in PULL_KINDS:
                now = time.monotonic()
                if now < self._quiet_until.get((name, kind), 0.0):
                    continue
                message = messages.pull(kind, name)
                claim = pull.claim_schedule(self.rt, tenant, kind, message.message_id)
                if claim.claimed:
                    messages.enqueue(message)
                self._quiet_until[(name, kind)] = now + claim.quiet_seconds

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
