"""Dead letters: messages that failed every retry, kept until someone replays them.

dramatiq moves such a message to its own dead-letter set, which expires after 7 days. The
ledger keeps its own record (``Keys.dead_letters``) with the reason and the whole message,
and marks the records it carried ``dead``, so nothing is forgotten however long it waits.
``giftsync dlq list`` reads these; ``giftsync dlq replay`` sends them back with a fresh retry
budget under the same message id (so a batch's owner still owns it).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy

from workers.queue.retries import TICKET_OPTION
from workers.runtime import runtime
from workers.store.keys import dramatiq_dead, dramatiq_messages

# What a replay forgets of the dead message: its spent retry budget, its error, and any wake-up
# ticket (see workers.queue.retries).
FORGOTTEN_OPTIONS = ("retries", "last_error", TICKET_OPTION)


@dataclass(frozen=True)
class DeadLetter:
    """One dead message as the ledger keeps it."""

    message_id: str
    actor: str
    queue: str
    tenant: str
    reason: str
    failed_ms: int
    attempts: int
    kwargs: dict[str, Any]
    encoded: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "actor": self.actor,
            "queue": self.queue,
            "tenant": self.tenant,
            "reason": self.reason,
            "failed_ms": self.failed_ms,
            "attempts": self.attempts,
            "kwargs": self.kwargs,
        }


def record_dead_letter(message: MessageProxy, exception: BaseException) -> None:
    """Retries' hook: keep the dead message and mark the records it carried as dead."""
    rt = runtime()
    kwargs = dict(message.kwargs)
    tenant = str(kwargs.get("tenant", ""))
    reason = str(message.options.get("last_error", type(exception).__name__))
    letter = {
        "message_id": message.message_id,
        "actor": message.actor_name,
        "queue": message.queue_name,
        "tenant": tenant,
        "reason": reason,
        "failed_ms": int(time.time() * 1000),
        "attempts": int(message.options.get("retries", 0)),
        "kwargs": kwargs,
        "encoded": message._message.encode().decode("utf-8"),
    }
    rt.ledger.keep_dead_letter(message.message_id, letter)
    members = _members_of(kwargs)
    if tenant and members:
        _mark(tenant, "dead", f"dead letter: {reason}", members)


def _members_of(kwargs: dict[str, Any]) -> list[str]:
    rt = runtime()
    if "batch_id" in kwargs:
        batch = rt.batcher.load(str(kwargs["batch_id"]))
        return batch.members if batch and batch.state == "pending" else []
    if "member" in kwargs:
        return [str(kwargs["member"])]
    return []


def _mark(tenant: str, state: str, reason: str, members: list[str]) -> None:
    runtime().ledger.mark(tenant, state, reason, members)


def list_dead_letters(tenant: str | None = None) -> list[DeadLetter]:
    """Every dead letter the ledger holds (optionally one tenant's), oldest first."""
    rt = runtime()
    letters = []
    for data in rt.ledger.dead_letters():
        if tenant is None or data["tenant"] == tenant:
            letters.append(DeadLetter(**data))
    return sorted(letters, key=lambda letter: letter.failed_ms)


def replay(letters: list[DeadLetter], broker: dramatiq.Broker) -> int:
    """Send dead letters back to their queues with a fresh retry budget; returns how many."""
    rt = runtime()
    replayed = 0
    for letter in letters:
        message = dramatiq.Message.decode(letter.encoded.encode("utf-8"))
        options = {k: v for k, v in message.options.items() if k not in FORGOTTEN_OPTIONS}
        # Message.copy merges options; a fresh retry budget needs them replaced.
        fresh = replace(message, options=options, queue_name=message.queue_name.removesuffix(".DQ"))
        members = _members_of(letter.kwargs)
        if letter.tenant and members:
            _mark(
                letter.tenant,
                "batched" if "batch_id" in letter.kwargs else "queued",
                "replayed",
                members,
            )
        broker.enqueue(fresh)
        rt.ledger.forget_dead_letter(letter.message_id)
        _forget_in_dramatiq(broker, fresh.queue_name, letter.message_id)
        replayed += 1
    return replayed


def _forget_in_dramatiq(broker: dramatiq.Broker, queue: str, message_id: str) -> None:
    """Drop dramatiq's own copy from its dead-letter set so it is not listed twice."""
    namespace = getattr(broker, "namespace", None)
    client = getattr(broker, "client", None)
    if namespace is None or client is None:
        return
    dead, bodies = dramatiq_dead(namespace, queue), dramatiq_messages(namespace, f"{queue}.XQ")
    for redis_id in client.zrange(dead, 0, -1):
        raw = client.hget(bodies, redis_id)
        if raw and json.loads(raw).get("message_id") == message_id:
            client.zrem(dead, redis_id)
            client.hdel(bodies, redis_id)
