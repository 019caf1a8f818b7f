"""The dramatiq broker, configured on purpose rather than by default.

dramatiq's Redis broker gives a dead worker's unacknowledged messages back only after the
worker's heartbeat is ``heartbeat_timeout`` old *and* some later broker command happens to run
maintenance (``maintenance_chance`` in a million). Its defaults (60 s, 0.1 %) can leave a
killed worker's messages stranded for minutes on a quiet queue, so giftsync shortens the
heartbeat timeout and raises the chance, and the scheduler runs maintenance every few seconds
(:func:`run_maintenance`), which bounds recovery to about the heartbeat timeout.
"""

from __future__ import annotations

import time

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
from workers.store.keys import Keys

# A send can wait on a slow Virtuous; nothing legitimate runs longer than this.
TIME_LIMIT_MS = 10 * 60 * 1000


def namespace(settings: Settings) -> str:
    """dramatiq's key namespace, under giftsync's prefix so test runs never share queues."""
    return Keys(settings.key_prefix).dramatiq_namespace


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
    return RedisBroker(  # type: ignore[no-untyped-call]
        url=settings.redis_url,
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
