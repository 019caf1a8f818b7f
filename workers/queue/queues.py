"""The queues, by what they carry, and how a worker process takes them.

A leaf: it imports nothing, so the broker's middleware, the scheduler, the metrics and the CLI
can name queues without importing the message builders (which reach the broker).
"""

from __future__ import annotations

# The queues, by what they carry.
CHANGES_QUEUE = "changes"
# Batch-mode tenants' changes have a queue of their own: a 200,000-gift backfill is 2,000
# messages, and on one FIFO queue with everyone's changes a real-time tenant's gift would wait
# behind all of them before its intake even began.
BULK_CHANGES_QUEUE = "changes_bulk"
CHANGE_QUEUES = (CHANGES_QUEUE, BULK_CHANGES_QUEUE)
SEND_QUEUE = "send"
# Batch sends have a queue of their own: a giving day's batches wake by the hundred when a
# window's tokens free, and on one queue with the real-time sends they would stand in front of
# every other tenant's gifts until they were all sent.
BATCH_QUEUE = "batches"
# Batch sends back from a throttle wait for their turn on a queue of their own: a giving day's
# window of them comes back together, and behind them on ``batches`` another tenant's batch,
# which its own cap lets go at once, would wait until they had all gone.
THROTTLED_BATCH_QUEUE = "batches_throttled"
CONFIRM_QUEUE = "confirm"
PULL_QUEUE = "pull"
QUEUES = (
    CHANGES_QUEUE,
    BULK_CHANGES_QUEUE,
    SEND_QUEUE,
    BATCH_QUEUE,
    THROTTLED_BATCH_QUEUE,
    CONFIRM_QUEUE,
    PULL_QUEUE,
)
# Bulk intake messages one worker process holds at once. Intake is mostly Python, and a
# process's threads share one GIL: with every thread on a backfill chunk, a real-time change
# would get an eighth of the interpreter. Two keep Redis busy (a backfill's pace is set by its
# cap, not by intake) and leave the other threads to real-time work.
BULK_INTAKE_PER_PROCESS = 2


def bounded_queues(batch_sends_per_process: int) -> dict[str, int]:
    """The queues a worker process holds only a few messages of at once, and how many.

    Batch sends are bounded by the setting (``GIFTSYNC_BATCH_SENDS_PER_PROCESS``): a giving
    day's window of calls wakes together, and unbounded it would take every thread."""
    return {
        BULK_CHANGES_QUEUE: BULK_INTAKE_PER_PROCESS,
        BATCH_QUEUE: batch_sends_per_process,
        THROTTLED_BATCH_QUEUE: batch_sends_per_process,
    }


def shown_as(queue: str) -> str:
    """The queue whose depth ``queue``'s messages count in: a throttled batch send is still a
    batch send to the operator."""
    return BATCH_QUEUE if queue == THROTTLED_BATCH_QUEUE else queue


def queue_after_throttle(queue: str) -> str:
    """The queue a message taken from ``queue`` waits on once throttled."""
    return THROTTLED_BATCH_QUEUE if queue == BATCH_QUEUE else queue
