"""dramatiq middleware written once for every actor: retries, throttling, log context.

giftsync replaces dramatiq's own ``Retries`` with :class:`Retries` here because a throttle is
not a failure: an actor that must wait for the tenant's limiter (or a 429, or a paused
tenant) raises :class:`Throttled`, and the message goes back to the queue with the wait as
its delay, its attempt count untouched. dramatiq's rate limiters would count that wait as a
failed try and burn the retry budget, so they are not used.

Both kinds of re-enqueue happen in ``after_process_message``, which dramatiq runs before it
acknowledges the original, so a crash between the two leaves the original to be redelivered:
a message is never lost, at worst it runs twice, and every actor is idempotent. While Redis is
unreachable the re-enqueue waits for it: dramatiq swallows an exception from this hook and
then acknowledges the original as soon as the connection is back, so giving up would lose
the message (found by the chaos soak, tests/integration/test_chaos.py).
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable
from typing import Any

import dramatiq
import redis
import structlog
from dramatiq.common import compute_backoff
from dramatiq.middleware import Middleware

from workers.errors import Throttled
from workers.observe import metrics
from workers.queue.queues import queue_after_throttle
from workers.store.limiter import held_ticket

log = structlog.get_logger("giftsync.retries")

# How long a re-enqueue waits before trying again while Redis is unreachable.
ENQUEUE_RETRY_SECONDS = 1.0
# The message option holding the limiter's wake-up ticket of a throttled message.
TICKET_OPTION = "limiter_ticket"
# Context keys copied from a message's kwargs onto every log line it produces.
CONTEXT_KWARGS = ("tenant", "batch_id", "member", "record_id")


DeadLetterHook = Callable[[dramatiq.broker.MessageProxy, BaseException], None]


class Retries(Middleware):
    """Exponential backoff with jitter for failures; a delay, not an attempt, for throttles."""

    def __init__(
        self,
        *,
        max_retries: int,
        min_backoff_ms: int,
        max_backoff_ms: int,
        on_dead_letter: DeadLetterHook | None = None,
    ) -> None:
        self.max_retries = max_retries
        self.min_backoff_ms = min_backoff_ms
        self.max_backoff_ms = max_backoff_ms
        self.on_dead_letter = on_dead_letter

    @property
    def actor_options(self) -> set[str]:
        return {"max_retries"}

    def before_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.broker.MessageProxy
    ) -> None:
        ticket = message.options.get(TICKET_OPTION)
        held_ticket.set(float(ticket) if isinstance(ticket, int | float) else None)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.broker.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        held_ticket.set(None)
        if exception is None:
            return
        if isinstance(exception, Throttled):
            metrics.THROTTLE_DELAYS.labels(
                metrics.tenant_of(message.kwargs), message.actor_name, exception.reason
            ).inc()
            delay_ms = int(exception.delay_seconds * 1000)
            if exception.ticket_at is None:
                # A small jitter keeps throttled messages of many workers from waking together
                # (the limiter spaces its waiters' tickets itself).
                delay_ms += random.randint(0, 50)
            ticket = {TICKET_OPTION: exception.ticket_at}
            again = message.copy(
                options=ticket, queue_name=queue_after_throttle(message.queue_name)
            )
            _enqueue_until_sent(broker, again, max(delay_ms, 1))
            return
        actor = broker.get_actor(message.actor_name)
        retries = message.options.get("retries", 0)
        max_retries = actor.options.get("max_retries", self.max_retries)
        message.options["retries"] = retries + 1
        message.options["last_error"] = _describe(exception)
        if retries >= max_retries:
            log.error(
                "dead_letter",
                actor=message.actor_name,
                attempts=retries + 1,
                error=message.options["last_error"],
            )
            metrics.DEAD_LETTERS.labels(metrics.tenant_of(message.kwargs), message.actor_name).inc()
            message.fail()
            if self.on_dead_letter is not None:
                self.on_dead_letter(message, exception)
            return
        _, delay_ms = compute_backoff(
            retries, factor=self.min_backoff_ms, jitter=True, max_backoff=self.max_backoff_ms
        )
        metrics.RETRIES.labels(metrics.tenant_of(message.kwargs), message.actor_name).inc()
        log.warning(
            "retrying",
            actor=message.actor_name,
            attempt=retries + 1,
            delay_ms=delay_ms,
            error=message.options["last_error"],
        )
        _enqueue_until_sent(broker, message.copy(options={TICKET_OPTION: None}), delay_ms)


def _enqueue_until_sent(broker: dramatiq.Broker, message: Any, delay_ms: int) -> None:
    """Enqueue ``message``, waiting out a Redis outage as dramatiq's own acknowledgement does
    (a worker stopped meanwhile leaves the original unacknowledged, so it is redelivered)."""
    while True:
        try:
            broker.enqueue(message, delay=delay_ms)
            return
        except (redis.ConnectionError, redis.TimeoutError, dramatiq.errors.ConnectionError) as exc:
            log.warning("requeue_waits_for_redis", error=_describe(exc))
            time.sleep(ENQUEUE_RETRY_SECONDS)


def _describe(exception: BaseException) -> str:
    """One line naming the error; never the request (which could carry personal data)."""
    text = str(exception).splitlines()[0] if str(exception) else ""
    return f"{type(exception).__name__}: {text}"[:500]


class LogContext(Middleware):
    """Bind the message's tenant, ids and attempt to every log line written while it runs."""

    def before_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.broker.MessageProxy
    ) -> None:
        context = {key: message.kwargs[key] for key in CONTEXT_KWARGS if key in message.kwargs}
        structlog.contextvars.bind_contextvars(
            actor=message.actor_name,
            message_id=message.message_id,
            attempt=message.options.get("retries", 0) + 1,
            **context,
        )

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.broker.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if exception is not None and not isinstance(exception, Throttled):
            log.warning("actor_failed", error=_describe(exception), tb=_short_tb(exception))
        structlog.contextvars.clear_contextvars()

    after_skip_message = after_process_message


def _short_tb(exception: BaseException) -> str:
    frames = traceback.extract_tb(exception.__traceback__)[-3:]
    return " | ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in frames)
