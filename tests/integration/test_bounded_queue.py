"""A bounded queue: a worker process runs at most its bound of the queue's messages at once,
its other threads take other queues' messages meanwhile, and a settled message frees its slot
at once (dramatiq's own consumer, its prefetch full, sleeps up to a poll interval first). A
throttled batch send waits on a bounded queue of its own.

A real Redis and a real dramatiq worker in this process, with a long poll interval so a slot
left to the poll would show.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
from dramatiq.middleware import CurrentMessage

from benchmarks.deployment import tenant_table
from giftsync.commands import worker_queues
from giftsync.settings import Settings, SettingsError, load_settings
from giftsync.waiting import wait_for
from workers.errors import Throttled
from workers.queue.broker import DurableRedisBroker, build_broker
from workers.queue.queues import (
    BATCH_QUEUE,
    QUEUES,
    SEND_QUEUE,
    THROTTLED_BATCH_QUEUE,
    bounded_queues,
)
from workers.store.limiter import held_ticket

pytestmark = pytest.mark.integration

POLL_MS = 5_000
# How long each bounded message holds its slot: long enough for dramatiq's consumer, full,
# to have backed off to sleeps of a few hundred milliseconds.
HOLD_SECONDS = 1.0
CHAIN = 4


@pytest.fixture
def broker(redis_url: str, unique: str) -> Iterator[DurableRedisBroker]:
    settings = Settings(
        redis_url=redis_url,
        config_path=Path("unused.toml"),
        tenants={},
        key_prefix=f"gs-test-{unique}",
        batch_sends_per_process=1,
    )
    built = build_broker(settings, prefetch_bounds=bounded_queues(settings.batch_sends_per_process))
    assert isinstance(built, DurableRedisBroker)
    yield built
    built.flush_all()
    built.close()


def test_a_bounded_queue_runs_its_bound_at_once_and_hands_a_slot_on_at_once(
    broker: DurableRedisBroker,
) -> None:
    lock = threading.Lock()
    running: list[int] = []
    most_at_once = 0
    started: dict[int, float] = {}
    finished: dict[int, float] = {}
    quick_done = threading.Event()
    release_first = threading.Event()

    def bounded(n: int) -> None:
        nonlocal most_at_once
        with lock:
            running.append(n)
            most_at_once = max(most_at_once, len(running))
            started[n] = time.monotonic()
        if n == 0:
            release_first.wait(timeout=30)
        else:
            # A slow call: the slot is held, and dramatiq's consumer backs off meanwhile.
            time.sleep(HOLD_SECONDS)
        with lock:
            running.remove(n)
            finished[n] = time.monotonic()

    def quick() -> None:
        quick_done.set()

    bounded_actor = dramatiq.actor(broker=broker, queue_name=BATCH_QUEUE)(bounded)
    quick_actor = dramatiq.actor(broker=broker, queue_name="other")(quick)
    for n in range(CHAIN + 1):
        bounded_actor.send(n)
    worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=POLL_MS)
    worker.start()
    try:
        wait_for(lambda: 0 in started, timeout=30, what="the first bounded message")
        quick_actor.send()
        # Another queue's message runs while the bounded queue's slot is taken...
        assert quick_done.wait(timeout=30)
        # ...and no second bounded message has started, though three threads are free.
        assert running == [0] and len(started) == 1
        release_first.set()
        wait_for(lambda: len(finished) == CHAIN + 1, timeout=60, what="every bounded message")
    finally:
        worker.stop()
    assert most_at_once == 1
    order = sorted(started, key=started.__getitem__)
    gaps = [started[b] - finished[a] for a, b in itertools.pairwise(order)]
    # Each slot handed on within a fraction of the poll interval, not after a backed-off sleep.
    assert sum(gaps) < 0.4, f"slots idled between messages: {[round(g, 3) for g in gaps]}"


def test_the_batch_send_bound_is_read_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "giftsync.toml"
    config.write_text(tenant_table("hope", "http://virtuous.invalid", "TOKEN"))
    env = {"GIFTSYNC_CONFIG": str(config)}
    assert bounded_queues(load_settings(env).batch_sends_per_process)[BATCH_QUEUE] == 2
    custom = load_settings({**env, "GIFTSYNC_BATCH_SENDS_PER_PROCESS": "5"})
    assert bounded_queues(custom.batch_sends_per_process)[BATCH_QUEUE] == 5
    for bad in ("0", "-1", "two"):
        with pytest.raises(SettingsError, match="GIFTSYNC_BATCH_SENDS_PER_PROCESS"):
            load_settings({**env, "GIFTSYNC_BATCH_SENDS_PER_PROCESS": bad})


def test_a_throttled_batch_send_waits_on_a_queue_of_its_own_with_its_ticket(
    broker: DurableRedisBroker,
) -> None:
    """Behind throttled batch sends woken together, another tenant's fresh batch would wait on
    one queue until they had all gone: they come back on their own queue, ticket and all. A
    throttled real-time send comes back where it was."""
    runs: list[tuple[str, str, float | None]] = []
    lock = threading.Lock()

    def throttled_once(kind: str) -> None:
        message = CurrentMessage.get_current_message()
        assert message is not None
        with lock:
            runs.append((kind, message.queue_name, held_ticket.get()))
            first = sum(1 for k, _, _ in runs if k == kind) == 1
        if first:
            raise Throttled(0.01, "a window's calls are spent", ticket_at=123.5)

    broker.declare_queue(THROTTLED_BATCH_QUEUE)
    batch = dramatiq.actor(broker=broker, queue_name=BATCH_QUEUE, actor_name="batch")(
        throttled_once
    )
    send = dramatiq.actor(broker=broker, queue_name=SEND_QUEUE, actor_name="send")(throttled_once)
    batch.send("batch")
    send.send("send")
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        wait_for(lambda: len(runs) == 4, timeout=30, what="both messages back once")
    finally:
        worker.stop()
    assert set(runs) == {
        ("batch", BATCH_QUEUE, None),
        ("batch", THROTTLED_BATCH_QUEUE, 123.5),
        ("send", SEND_QUEUE, None),
        ("send", SEND_QUEUE, 123.5),
    }


def test_a_worker_taking_batch_sends_takes_their_throttled_queue_too() -> None:
    assert set(worker_queues(None)) == set(QUEUES)
    assert worker_queues(["send", BATCH_QUEUE]) == ["send", BATCH_QUEUE, THROTTLED_BATCH_QUEUE]
    assert worker_queues(["send"]) == ["send"]
