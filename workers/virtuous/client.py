"""The Virtuous CRM+ API client: a thin httpx wrapper that turns answers into values or errors.

It takes a transport, so unit tests hand it an ``httpx.MockTransport`` and integration tests
the sandbox over loopback. It never retries and never waits: the workers decide that from the
error's class (see :mod:`workers.errors`). Two hooks see every attempt: ``on_rate_limit`` gets
the rate-limit headers of every answer, whatever its status, so the limiter can observe them;
``on_call`` gets ``(endpoint label, status or None, seconds)`` for the calls metric, where the
label is a bounded template such as ``"GET /api/Gift/{id}"``, never a real id.

Paths, bodies and their evidence are in docs/virtuous-contract.md. Bodies are compact JSON;
``post_gift_transactions`` takes already-encoded bytes so a retried batch is byte for byte the
one first sent.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
import structlog

from workers.errors import (
    AmbiguousOutcomeError,
    NotFoundError,
    TransientError,
    describe,
)
from workers.virtuous.ratelimit import RateLimitInfo, parse_rate_limit
from workers.virtuous.responses import error_for

__all__ = ["RateLimitInfo", "VirtuousClient", "encode", "parse_rate_limit"]

log = structlog.get_logger("giftsync.virtuous")

# Connecting (and waiting for a pooled connection) should be quick; reading may be slow.
CONNECT_TIMEOUT_SECONDS = 10.0

# Failures before the request left the machine: nothing reached Virtuous.
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
    httpx.ProxyError,
)

RateLimitHook = Callable[[RateLimitInfo], None]
CallHook = Callable[[str, int | None, float], None]


def _seg(value: object) -> str:
    """One URL path segment, with '/' and everything else unsafe escaped."""
    return quote(str(value), safe="")


def _default(value: object) -> Any:
    # Money as a string keeps its exact digits (seed 001: the spec types amounts as strings).
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as every request body is sent."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=_default)
    return text.encode("utf-8")


def _json(response: httpx.Response) -> dict[str, Any]:
    """A 2xx body as a dict: {} when empty, {"value": x} for a bare JSON value."""
    if not response.content.strip():
        return {}
    try:
        data = response.json()
    except ValueError:
        return {"text": response.text}
    return data if isinstance(data, dict) else {"value": data}


class VirtuousClient:
    """One tenant's connection to Virtuous (bearer token, base URL, pooled connections)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        on_rate_limit: RateLimitHook | None = None,
        on_call: CallHook | None = None,
    ) -> None:
        connect = min(timeout, CONNECT_TIMEOUT_SECONDS)
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            # httpx masks Authorization in its reprs; the token is kept nowhere else.
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=connect, pool=connect),
            follow_redirects=False,
        )
        self._on_rate_limit = on_rate_limit
        self._on_call = on_call

    def __repr__(self) -> str:
        return f"<VirtuousClient {self._http.base_url}>"

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def __enter__(self) -> VirtuousClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _hook(self, name: str) -> Iterator[None]:
        # A metrics or limiter hook that fails must not turn a delivered call into a failure.
        try:
            yield
        except Exception as exc:
            log.warning("virtuous.hook_failed", hook=name, error=type(exc).__name__)

    def _send(
        self,
        method: str,
        label: str,
        path: str,
        *,
        body: bytes | None = None,
        params: Mapping[str, int] | None = None,
    ) -> httpx.Response:
        """One attempt; the answer on 2xx, else the error its status or failure means."""
        label = f"{method} {label}"
        headers = {"Content-Type": "application/json"} if body is not None else None
        started = time.perf_counter()
        try:
            response = self._http.request(
                method, path, content=body, params=params, headers=headers
            )
        except httpx.TransportError as exc:
            self._report(label, None, time.perf_counter() - started)
            cls = TransientError if isinstance(exc, _NOT_SENT) else AmbiguousOutcomeError
            reason = f"{type(exc).__name__}: {exc}"
            raise cls(describe(label, None, reason), endpoint=label) from exc
        self._report(label, response.status_code, time.perf_counter() - started)
        limits = parse_rate_limit(response.headers)
        if response.status_code == 429:
            # A refusal's Remaining says only that the window was full when it was sent (a
            # burst limit may say 0 with a reset a second away): Retry-After governs it, and the
            # next answer says what the other integrations spend.
            limits = replace(limits, remaining=None)
        if self._on_rate_limit is not None:
            with self._hook("on_rate_limit"):
                self._on_rate_limit(limits)
        if response.is_success:
            return response
        raise error_for(label, response)

    def _report(self, label: str, status: int | None, seconds: float) -> None:
        if self._on_call is not None:
            with self._hook("on_call"):
                self._on_call(label, status, seconds)

    # Gift Transactions (the Import Tool's holding state; no Gift id comes back)

    def post_gift_transactions(self, body: bytes) -> None:
        """POST a pre-encoded batch to /api/v2/Gift/Transactions."""
        self._send("POST", "/api/v2/Gift/Transactions", "/api/v2/Gift/Transactions", body=body)

    def post_gift_transaction(self, payload: Mapping[str, Any]) -> None:
        """POST one Gift Transaction to /api/v2/Gift/Transaction."""
        path = "/api/v2/Gift/Transaction"
        self._send("POST", path, path, body=encode(payload))

    # Gifts

    def create_gift(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/Gift: create a Gift now; the answer is the Gift with its ``id``."""
        return _json(self._send("POST", "/api/Gift", "/api/Gift", body=encode(payload)))

    def get_gift(self, gift_id: int) -> dict[str, Any]:
        """GET /api/Gift/{id}."""
        return _json(self._send("GET", "/api/Gift/{id}", f"/api/Gift/{_seg(gift_id)}"))

    def update_gift(self, gift_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT /api/Gift/{id} with the whole Gift."""
        path = f"/api/Gift/{_seg(gift_id)}"
        return _json(self._send("PUT", "/api/Gift/{id}", path, body=encode(body)))

    def find_gift(self, transaction_source: str, transaction_id: str) -> dict[str, Any] | None:
        """GET /api/Gift/{transactionSource}/{transactionId}; None while there is none (404)."""
        label = "/api/Gift/{transactionSource}/{transactionId}"
        path = f"/api/Gift/{_seg(transaction_source)}/{_seg(transaction_id)}"
        try:
            return _json(self._send("GET", label, path))
        except NotFoundError:
            return None

    def reversing_transaction(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/Gift/ReversingTransaction (refund by reversing a real Gift)."""
        path = "/api/Gift/ReversingTransaction"
        return _json(self._send("POST", path, path, body=encode(payload)))

    # Recurring gifts

    def create_recurring_gift(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/RecurringGift; the answer has the new ``id``."""
        path = "/api/RecurringGift"
        return _json(self._send("POST", path, path, body=encode(payload)))

    def get_recurring_gift(self, recurring_gift_id: int) -> dict[str, Any]:
        """GET /api/RecurringGift/{id}."""
        path = f"/api/RecurringGift/{_seg(recurring_gift_id)}"
        return _json(self._send("GET", "/api/RecurringGift/{id}", path))

    def update_recurring_gift(
        self, recurring_gift_id: int, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """PUT /api/RecurringGift/{id} with the whole RecurringGift."""
        path = f"/api/RecurringGift/{_seg(recurring_gift_id)}"
        return _json(self._send("PUT", "/api/RecurringGift/{id}", path, body=encode(body)))

    def cancel_recurring_gift(
        self, recurring_gift_id: int, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """PUT /api/RecurringGift/Cancel/{id}: the only call that cancels a RecurringGift."""
        path = f"/api/RecurringGift/Cancel/{_seg(recurring_gift_id)}"
        return _json(self._send("PUT", "/api/RecurringGift/Cancel/{id}", path, body=encode(body)))

    # Queries (the pull path: 1000 a page)

    def query_gifts(
        self, body: Mapping[str, Any], *, skip: int = 0, take: int = 1000
    ) -> dict[str, Any]:
        """POST /api/Gift/Query/FullGift?skip=&take= (one page)."""
        path = "/api/Gift/Query/FullGift"
        params = {"skip": skip, "take": take}
        return _json(self._send("POST", path, path, body=encode(body), params=params))

    def query_recurring_gifts(
        self, body: Mapping[str, Any], *, skip: int = 0, take: int = 1000
    ) -> dict[str, Any]:
        """POST /api/RecurringGift/Query?skip=&take= (one page)."""
        path = "/api/RecurringGift/Query"
        params = {"skip": skip, "take": take}
        return _json(self._send("POST", path, path, body=encode(body), params=params))

    # Contacts

    def create_contact(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/Contact."""
        return _json(self._send("POST", "/api/Contact", "/api/Contact", body=encode(payload)))

    def get_contact(self, contact_id: int) -> dict[str, Any]:
        """GET /api/Contact/{id}."""
        path = f"/api/Contact/{_seg(contact_id)}"
        return _json(self._send("GET", "/api/Contact/{id}", path))

    def find_contact(self, reference_source: str, reference_id: str) -> dict[str, Any] | None:
        """GET /api/Contact/{referenceSource}/{referenceId}; None when there is none (404)."""
        label = "/api/Contact/{referenceSource}/{referenceId}"
        path = f"/api/Contact/{_seg(reference_source)}/{_seg(reference_id)}"
        try:
            return _json(self._send("GET", label, path))
        except NotFoundError:
            return None

    def contact_transaction(self, payload: Mapping[str, Any]) -> None:
        """POST /api/Contact/Transaction (no version segment, seed 003)."""
        path = "/api/Contact/Transaction"
        self._send("POST", path, path, body=encode(payload))

    # Dependencies and subscriptions

    def create_segment(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/Segment (a campaign)."""
        return _json(self._send("POST", "/api/Segment", "/api/Segment", body=encode(payload)))

    def create_project(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/Project (a fund)."""
        return _json(self._send("POST", "/api/Project", "/api/Project", body=encode(payload)))

    def create_webhook(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/Webhook (subscribe to giftCreate and friends)."""
        return _json(self._send("POST", "/api/Webhook", "/api/Webhook", body=encode(payload)))
