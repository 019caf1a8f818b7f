"""The dramatiq broker, configured on purpose rather than by default.

dramatiq's Redis broker gives a dead worker's unacknowledged messages back only after the
worker's heartbeat is ``heartbeat_timeout`` old *and* some later broker command happens to run
maintenance (``maintenance_chance`` in a million). Its defaults (60 s, 0.1 %) can leave a
killed worker's messages stranded for minutes on a quiet queue, so giftsync shortens the
heartbeat timeout and raises the chance, and the scheduler runs maintenance every few seconds
(:func:`run_maintenance`), which bounds recovery to about the heartbeat timeout.

The broker's Redis client comes from :func:`workers.store.connection.connect`, so it finds the
primary through Sentinel when configured and retries through a failover; an enqueue returns
only once the replicas hold the message (``GIFTSYNC_MIN_REPLICAS``), which is what makes
``publish()`` and ingest's 202 an acknowledgement that survives a failover.

A message's own acknowledgement is the other way round: after a failover, the writes a message
made may have died with the old primary while its ack, retried, lands on the new one, and the
message would be gone with its effects. So once this process has met a broken Redis
connection, the broker takes a new id: acks under the new id do not touch messages fetched
under the old one, whose heartbeat stops, so maintenance gives them back and they run again
(every actor is idempotent). An ack is sent once, never retried for the same reason.

Some queues hold at most a few messages per process (:class:`BoundedConsumer`): a worker
process then runs at most that many of them at once, and its other threads stay free for the
rest, without any message waiting on a thread.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

import dramatiq
import redis
import structlog
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Pipelines,
    ShutdownNotifications,
    TimeLimit,
)
from redis.exceptions import ReadOnlyError

from giftsync.settings import Settings, get_settings
from workers.queue.retries import DeadLetterHook, LogContext, Retries
from workers.store.connection import Durability, connect, disturbances, note_disturbance
from workers.store.keys import Keys

log = structlog.get_logger("giftsync.broker")

# A send can wait on a slow Virtuous; nothing legitimate runs longer than this.
TIME_LIMIT_MS = 10 * 60 * 1000


def namespace(settings: Settings) -> str:
    """dramatiq's key namespace, under giftsync's prefix so test runs never share queues."""
    return Keys(settings.key_prefix).dramatiq_namespace


class BoundedConsumer(_RedisConsumer):
    """dramatiq's Redis consumer that fetches again as soon as a message it holds is settled.

    dramatiq's own one, holding its full prefetch, sleeps up to a poll interval before it looks
    again; with a prefetch of a few messages that sleep would idle the queue's slots."""

    def __init__(self, broker: RedisBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)  # type: ignore[no-untyped-call]
        self._settled = threading.Condition()

    def _full(self) -> bool:
        return bool(self.outstanding_message_count >= self.prefetch)

    def ack(self, message: Any) -> None:
        try:
            super().ack(message)  # type: ignore[no-untyped-call]
        finally:
            self._wake()

    def nack(self, message: Any) -> None:
        try:
            super().nack(message)  # type: ignore[no-untyped-call]
        finally:
            self._wake()

    def _wake(self) -> None:
        with self._settled:
            self._settled.notify_all()

    def __next__(self) -> Any:
        if not self.message_cache and self._full():
            with self._settled:
                self._settled.wait_for(lambda: not self._full(), timeout=self.timeout / 1000)
            if self._full():
                return None
            self.misses = 0
        return super().__next__()  # type: ignore[no-untyped-call]


class DurableRedisBroker(RedisBroker):
    """dramatiq's Redis broker whose enqueue returns once the replicas hold the message, and
    whose ack is never repeated on a new primary."""

    def __init__(
        self,
        *,
        durability: Durability,
        prefetch_bounds: Mapping[str, int] | None = None,
        **options: Any,
    ) -> None:
        self._seen_disturbances = disturbances()
        super().__init__(**options)  # type: ignore[no-untyped-call]
        self.durability = durability
        self.prefetch_bounds = dict(prefetch_bounds or {})

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Any:
        """A consumer of ``queue_name`` holding at most its bound of messages, if it has one."""
        bound = self.prefetch_bounds.get(queue_name)
        if bound is None:
            return super().consume(queue_name, prefetch, timeout)
        return BoundedConsumer(self, queue_name, min(prefetch, bound), timeout)

    @property
    def broker_id(self) -> str:
        """This broker's id in Redis; a new one after this process met a broken connection."""
        seen = disturbances()
        if seen != self._seen_disturbances:
            self._seen_disturbances = seen
            self._broker_id = str(uuid.uuid4())
            log.warning("broker_id_renewed")
        return self._broker_id

    @broker_id.setter
    def broker_id(self, value: str) -> None:
        self._broker_id = value

    def _argv(self, command: str, queue_name: str, *args: Any) -> list[Any]:
        # The argument list of dramatiq's dispatch script, as its own _dispatch builds it.
        return [
            command,
            int(time.time() * 1000),
            queue_name,
            self.broker_id,
            self.heartbeat_timeout,
            self.dead_message_ttl,
            self._should_do_maintenance(command),
            self._max_unpack_size(),  # type: ignore[no-untyped-call]
            *args,
        ]

    def do_enqueue(self, queue_name: str, *args: Any) -> Any:
        """The broker's own enqueue command, run through :class:`Durability`."""
        dispatch = self.scripts["dispatch"]
        argv = self._argv("enqueue", queue_name, *args)
        return self.durability.run(
            lambda client: dispatch(keys=[self.namespace], args=argv, client=client)
        )

    def do_ack(self, queue_name: str, *args: Any) -> Any:
        """Acknowledge once; after a broken connection, leave the message to be given back."""
        dispatch = self.scripts["dispatch"]
        argv = self._argv("ack", queue_name, *args)
        try:
            return self.durability.once(
                lambda client: dispatch(keys=[self.namespace], args=argv, client=client)
            )
        except (redis.ConnectionError, redis.TimeoutError, ReadOnlyError):
            # Its fate is unknown: the message runs again once this id's heartbeat is stale.
            note_disturbance()
            log.warning("ack_left_to_maintenance", queue=queue_name)
            return None

    def close(self) -> None:
        """Close the broker's connections, the durable writes' ones included."""
        super().close()
        self.durability.close()
        self.client.close()


def build_broker(
    settings: Settings,
    on_dead_letter: DeadLetterHook | None = None,
    prefetch_bounds: Mapping[str, int] | None = None,
) -> RedisBroker:
    """A Redis broker with giftsync's middleware stack; a worker's holds at most
    ``prefetch_bounds[queue]`` messages of each queue named there."""
    middleware = [
        AgeLimit(),
        TimeLimit(time_limit=TIME_LIMIT_MS),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        CurrentMessage(),
        LogContext(),
        Retries(
            max_retries=settings.max_retries,
            min_backoff_ms=settings.min_backoff_ms,
            max_backoff_ms=settings.max_backoff_ms,
            on_dead_letter=on_dead_letter,
        ),
    ]
    client = connect(settings)
    return DurableRedisBroker(
        durability=Durability(settings, client),
        prefetch_bounds=prefetch_bounds,
        client=client,
        namespace=namespace(settings),
        middleware=middleware,
        heartbeat_timeout=settings.heartbeat_timeout_ms,
        maintenance_chance=settings.maintenance_chance,
        dead_message_ttl=settings.dead_message_ttl_ms,
    )


def run_maintenance(broker: RedisBroker, queues: tuple[str, ...]) -> None:
    """Give back, now, the messages of workers whose heartbeat stopped, on every queue.

    dramatiq runs maintenance only as a side effect of its dispatch script, so this calls that
    script with a harmless command ("qsize") and the maintenance flag set.
    """
    dispatch = broker.scripts["dispatch"]
    for queue in queues:
        for name in (queue, f"{queue}.DQ"):
            dispatch(
                args=[
                    "qsize",
                    int(time.time() * 1000),
                    name,
                    broker.broker_id,
                    broker.heartbeat_timeout,
                    broker.dead_message_ttl,
                    "1",
                    broker._max_unpack_size(),  # type: ignore[no-untyped-call]
                ],
                keys=[broker.namespace],
            )


_broker: RedisBroker | None = None


def get_broker(
    on_dead_letter: DeadLetterHook | None = None,
    prefetch_bounds: Mapping[str, int] | None = None,
) -> RedisBroker:
    """The process's broker, built from the settings on first use and set as dramatiq's.

    Only a worker process passes ``on_dead_letter`` and ``prefetch_bounds`` (the actors module
    does, before it declares the actors): dead letters happen, and messages are held, where
    messages run."""
    global _broker
    if _broker is None:
        _broker = build_broker(get_settings(), on_dead_letter, prefetch_bounds)
        dramatiq.set_broker(_broker)
    return _broker


def reset_broker() -> None:
    """Forget the process's broker (after the settings changed: tests, config reloads)."""
    global _broker
    if _broker is not None:
        _broker.close()
    _broker = None
