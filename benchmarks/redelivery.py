"""Following a dead worker's messages back into other workers' hands, from dramatiq's own keys.

dramatiq's Redis broker keeps, per broker id (one per worker process) and queue, the set of
messages that process fetched and has not acknowledged (``{ns}:__acks__.{id}.{queue}``), and
a sorted set of every id's last command (``{ns}:__heartbeats__``). When a process dies, its
sets stay until maintenance finds its heartbeat older than the timeout and pushes their
messages back onto their queues, where another process fetches them.

:func:`broker_ids` reads who is alive now; :class:`Redelivery` takes the dead ids' sets right
after the kill and, polled, records when each message left the dead set ("given back") and
when it was then no longer waiting in its queue ("picked up": another process fetched it,
and may already have finished it).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import redis

from workers.store.scripts import decode

# (queue name, message id)
Held = tuple[str, str]


def broker_ids(client: redis.Redis, namespace: str) -> set[str]:
    """Every broker id that has sent dramatiq a command (enqueue, fetch, ack...)."""
    return {decode(m) for m in client.zrange(f"{namespace}:__heartbeats__", 0, -1)}


class Redelivery:
    """The messages some dead broker ids held, and when each was given back and picked up."""

    def __init__(
        self, client: redis.Redis, namespace: str, dead: set[str], killed_at: float
    ) -> None:
        self._client, self._namespace, self.killed_at = client, namespace, killed_at
        self.held: dict[Held, str] = {}
        for broker_id in dead:
            marker = f"{namespace}:__acks__.{broker_id}."
            for key in client.scan_iter(f"{marker}*", count=1000):
                name = decode(key)
                queue = name[len(marker) :]
                for message_id in client.smembers(name):
                    self.held[(queue, decode(message_id))] = name
        # The actor each held message runs, from the message itself (gone once acknowledged).
        self.actors: dict[Held, str] = {}
        for queue, message_id in self.held:
            body = client.hget(f"{namespace}:{queue}.msgs", message_id)
            if body is not None:
                self.actors[(queue, message_id)] = json.loads(body)["actor_name"]
        self.given_back: dict[Held, float] = {}
        self.picked_up: dict[Held, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="redelivery", daemon=True)

    def by_queue(self) -> dict[str, int]:
        """How many messages the dead held, per queue."""
        return dict(Counter(queue for queue, _ in self.held))

    def by_actor(self) -> dict[str, int]:
        """How many messages the dead held, per actor."""
        return dict(Counter(self.actors.values()))

    def poll(self) -> bool:
        """Look once; True when every held message has been picked up."""
        pending = [held for held in self.held if held not in self.picked_up]
        if not pending:
            return True
        pipe = self._client.pipeline(transaction=False)
        for queue, message_id in pending:
            pipe.sismember(self.held[(queue, message_id)], message_id)
            pipe.lpos(f"{self._namespace}:{queue}", message_id)
        replies = pipe.execute()
        now = time.monotonic()
        for i, held in enumerate(pending):
            stranded, waiting = replies[2 * i], replies[2 * i + 1]
            if not stranded:
                self.given_back.setdefault(held, now)
                if waiting is None:
                    self.picked_up[held] = now
        return len(self.picked_up) == len(self.held)

    def done(self) -> bool:
        """Every held message picked up."""
        return len(self.picked_up) == len(self.held)

    def last_given_back(self) -> float | None:
        """Seconds from the kill until the last held message was given back."""
        return max(self.given_back.values()) - self.killed_at if self.done() and self.held else None

    def last_picked_up(self) -> float | None:
        """Seconds from the kill until the last held message was picked up."""
        return max(self.picked_up.values()) - self.killed_at if self.done() and self.held else None

    def _run(self) -> None:
        while not self._stop.is_set() and not self.poll():
            self._stop.wait(0.05)

    def __enter__(self) -> Redelivery:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
