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
"""

from __future__ import annotations

import time
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Pipelines,
    ShutdownNotifications,
    TimeLimit,
)

from giftsync.settings import Settings, get_settings
from workers.queue.retries import DeadLetterHook, LogContext, Retries
from workers.store.connection import Durability, connect
from workers.store.keys import Keys

# A send can wait on a slow Virtuous; nothing legitimate runs longer than this.
TIME_LIMIT_MS = 10 * 60 * 1000


def namespace(settings: Settings) -> str:
    """dramatiq's key namespace, under giftsync's prefix so test runs never share queues."""
    return Keys(settings.key_prefix).dramatiq_namespace


class DurableRedisBroker(RedisBroker):
    """dramatiq's Redis broker whose enqueue returns once the replicas hold the message."""

    def __init__(self, *, durability: Durability, **options: Any) -> None:
        super().__init__(**options)  # type: ignore[no-untyped-call]
        self.durability = durability

    def do_enqueue(self, queue_name: str, *args: Any) -> Any:
        """The broker's own enqueue command, run through :class:`Durability`."""
        if not self.durability.enabled:
            return self._dispatch("enqueue")(queue_name, *args)  # type: ignore[no-untyped-call]
        dispatch = self.scripts["dispatch"]
        # The argument list of dramatiq's dispatch script, as its own _dispatch builds it.
        argv = [
            "enqueue",
            int(time.time() * 1000),
            queue_name,
            self.broker_id,
            self.heartbeat_timeout,
            self.dead_message_ttl,
            self._should_do_maintenance("enqueue"),
            self._max_unpack_size(),  # type: ignore[no-untyped-call]
            *args,
        ]
        return self.durability.run(
            lambda client: dispatch(keys=[self.namespace], args=argv, client=client)
        )

    def close(self) -> None:
        """Close the broker's connections, the durable writes' ones included."""
        super().close()
        self.durability.close()
        self.client.close()


def build_broker(settings: Settings, on_dead_letter: DeadLetterHook | None = None) -> RedisBroker:
    """A Redis broker with giftsync's middleware stack."""
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


def get_broker(on_dead_letter: DeadLetterHook | None = None) -> RedisBroker:
    """The process's broker, built from the settings on first use and set as dramatiq's.

    Only a worker process passes ``on_dead_letter`` (the actors module does, before it declares
    the actors): dead letters happen where messages run."""
    global _broker
    if _broker is None:
        _broker = build_broker(get_settings(), on_dead_letter=on_dead_letter)
        dramatiq.set_broker(_broker)
    return _broker


def reset_broker() -> None:
    """Forget the process's broker (after the settings changed: tests, config reloads)."""
    global _broker
    if _broker is not None:
        _broker.close()
    _broker = None
