"""Webhook subscriptions and their delivery, the way Virtuous sends them.

A delivery is a JSON POST of ``{"event": "GiftCreate", "gift": {...}}`` (or, in bulk mode,
``{"event": "GiftCreate", "models": [{"gift": {...}}, ...]}``, at most 100 models each) to the
subscription's ``payloadUrl``, signed with HMAC-SHA256 of the raw body under the
subscription's secret, Base64, in ``X-Virtuous-Signature``. ``X-Virtuous-Event`` names the event and
``X-Virtuous-Delivery`` is an id that stays the same across retries of one delivery.

The events are those a production receiver handles (m-henke/Virtuous-Webhook server.js):
GiftCreate, GiftUpdate, GiftDelete, ContactCreate and ContactUpdate. A subscription that sets
no event flag gets all of them ("send me everything").

Deliveries run on background threads with httpx: a non-2xx answer or a transport error is
retried with doubling backoff up to ``max_attempts``. Every delivery is recorded (bodies only
for the most recent ones, so a long soak does not hold every payload in memory).
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from sandbox.jsonio import dumps

SIGNATURE_HEADER = "X-Virtuous-Signature"
EVENT_HEADER = "X-Virtuous-Event"
DELIVERY_HEADER = "X-Virtuous-Delivery"

# Subscription flag -> event name in the payload.
EVENT_FLAGS = {
    "giftCreate": "GiftCreate",
    "giftUpdate": "GiftUpdate",
    "giftDelete": "GiftDelete",
    "contactCreate": "ContactCreate",
    "contactUpdate": "ContactUpdate",
}
# Event name -> the key its model travels under.
MODEL_KEYS = {
    "GiftCreate": "gift",
    "GiftUpdate": "gift",
    "GiftDelete": "gift",
    "ContactCreate": "contact",
    "ContactUpdate": "contact",
}
# A bulk delivery carries at most this many models (a big nightly run makes several).
BULK_MAX_MODELS = 100
# Keep payload bodies of this many most recent deliveries.
KEEP_BODIES = 2000


def sign(secret: str, body: bytes) -> str:
    """Base64 HMAC-SHA256 of the raw body: the ``X-Virtuous-Signature`` value."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass
class Subscription:
    id: int
    org: str
    payload_url: str
    secret: str
    events: frozenset[str]
    active: bool = True
    name: str | None = None
    created: str = ""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "payloadUrl": self.payload_url,
            "secret": self.secret,
            "active": self.active,
            "createDateTimeUtc": self.created,
        }
        for flag, event in EVENT_FLAGS.items():
            body[flag] = event in self.events
        return body


@dataclass(frozen=True)
class Event:
    """Something a webhook may report: the event name and the model's JSON at that moment."""

    name: str
    model: dict[str, Any]


@dataclass(slots=True)
class Delivery:
    id: int
    org: str
    subscription_id: int
    url: str
    event: str
    refs: list[list[Any]]
    secret: str
    body: bytes | None
    status: str = "pending"
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    # False once the body fell out of the most recent KEEP_BODIES.
    keep_body: bool = True
    created: float = field(default_factory=time.time)

    def to_json(self, with_body: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "org": self.org,
            "subscription_id": self.subscription_id,
            "url": self.url,
            "event": self.event,
            "status": self.status,
            "attempts": self.attempts,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "refs": self.refs,
        }
        if with_body and self.body is not None:
            out["payload"] = json.loads(self.body)
        return out


def _refs(event: Event) -> list[Any]:
    """The identifying pair of a model: (transactionSource, transactionId, id) for gifts."""
    m = event.model
    if MODEL_KEYS[event.name] == "gift":
        return [m.get("transactionSource"), m.get("transactionId"), m.get("id")]
    return [None, None, m.get("id")]


class Dispatcher:
    """Sends deliveries from a few worker threads, retrying with backoff."""

    def __init__(
        self, max_attempts: int = 4, timeout: float = 5.0, workers: int = 2, backoff: float = 0.2
    ) -> None:
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.backoff = backoff
        self._workers = workers
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self.deliveries: list[Delivery] = []
        self._with_body: deque[Delivery] = deque()

    def start(self) -> None:
        for n in range(self._workers):
            thread = threading.Thread(target=self._run, name=f"sandbox-webhooks-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 1)
        self._threads.clear()

    def clear(self) -> None:
        with self._cond:
            self._heap.clear()
            self.deliveries.clear()
            self._with_body.clear()

    def publish(
        self,
        org: str,
        subscriptions: list[Subscription],
        events: list[Event],
        bulk: bool,
        drop: Callable[[], bool],
    ) -> None:
        """Queue the deliveries ``events`` make for the organisation's subscriptions."""
        if not events or not subscriptions:
            return
        with self._cond:
            for sub in subscriptions:
                if not sub.active:
                    continue
                wanted = [e for e in events if e.name in sub.events]
                for name in dict.fromkeys(e.name for e in wanted):
                    group = [e for e in wanted if e.name == name]
                    key = MODEL_KEYS[name]
                    payloads: list[tuple[dict[str, Any], list[list[Any]]]]
                    if bulk and len(group) > 1:
                        chunks = [
                            group[i : i + BULK_MAX_MODELS]
                            for i in range(0, len(group), BULK_MAX_MODELS)
                        ]
                        payloads = [
                            (
                                {"event": name, "models": [{key: e.model} for e in chunk]},
                                [_refs(e) for e in chunk],
                            )
                            for chunk in chunks
                        ]
                    else:
                        payloads = [({"event": name, key: e.model}, [_refs(e)]) for e in group]
                    for payload, refs in payloads:
                        self._enqueue(org, sub, name, payload, refs, drop())
            self._cond.notify_all()

    def _enqueue(
        self,
        org: str,
        sub: Subscription,
        name: str,
        payload: dict[str, Any],
        refs: list[list[Any]],
        dropped: bool,
    ) -> None:
        delivery = Delivery(
            id=next(self._ids),
            org=org,
            subscription_id=sub.id,
            url=sub.payload_url,
            event=name,
            refs=refs,
            secret=sub.secret,
            body=dumps(payload),
        )
        self.deliveries.append(delivery)
        self._with_body.append(delivery)
        if len(self._with_body) > KEEP_BODIES:
            old = self._with_body.popleft()
            old.keep_body = False
            if old.status != "pending":
                old.body = None
        if dropped:
            delivery.status = "dropped"
            return
        heapq.heappush(self._heap, (time.monotonic(), next(self._seq), delivery))

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while True:
                with self._cond:
                    delivery = self._next_due()
                    if delivery is None:
                        return
                self._attempt(client, delivery)

    def _next_due(self) -> Delivery | None:
        """Block until a delivery is due (or stopping: then None). Caller holds the lock."""
        while not self._stopping:
            if self._heap:
                due, _, delivery = self._heap[0]
                wait = due - time.monotonic()
                if wait <= 0:
                    heapq.heappop(self._heap)
                    return delivery
                self._cond.wait(wait)
            else:
                self._cond.wait()
        return None

    def _attempt(self, client: httpx.Client, delivery: Delivery) -> None:
        body = delivery.body or b""
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(delivery.secret, body),
            EVENT_HEADER: delivery.event,
            DELIVERY_HEADER: str(delivery.id),
            "User-Agent": "virtuous-sandbox-webhooks",
        }
        try:
            response = client.post(delivery.url, content=body, headers=headers)
            code: int | None = response.status_code
            error = None if 200 <= response.status_code < 300 else f"HTTP {code}"
        except httpx.HTTPError as exc:
            code, error = None, f"{type(exc).__name__}: {exc}"
        with self._cond:
            delivery.attempts += 1
            delivery.last_status_code = code
            delivery.last_error = error
            if error is None:
                delivery.status = "delivered"
            elif delivery.attempts >= self.max_attempts:
                delivery.status = "failed"
            else:
                delay = self.backoff * 2 ** (delivery.attempts - 1)
                heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), delivery))
                self._cond.notify_all()
            if delivery.status != "pending" and not delivery.keep_body:
                delivery.body = None

    def pending(self) -> int:
        with self._cond:
            return sum(1 for d in self.deliveries if d.status == "pending")

    def listing(self, org: str | None = None, with_body: bool = False) -> list[dict[str, Any]]:
        with self._cond:
            return [d.to_json(with_body) for d in self.deliveries if org in (None, d.org)]

    def counts(self, org: str) -> dict[str, int]:
        with self._cond:
            out = {"pending": 0, "delivered": 0, "failed": 0, "dropped": 0}
            for d in self.deliveries:
                if d.org == org:
                    out[d.status] += 1
            return out
