"""The gate every ``/api/`` call passes: token, budget, faults, counting, rate-limit headers.

Order, as Virtuous does it: an unknown token is a plain-text 401 and costs nothing; a 429 (the
budget is spent, or an injected burst) costs nothing; every other call is counted against the
organisation's rolling window, whatever its answer (400s and 404s included). Every answer
past the token check carries ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and (unless the
organisation's ``rate_limit_headers`` says otherwise) ``X-RateLimit-Reset``; a 429 also
carries ``Retry-After`` (sandbox/ratelimit.py).

Faults are applied here so handlers stay plain: a 500 is answered before the handler runs; a
slow answer sleeps first; a timeout-after-apply runs the handler, then holds the answer for
``stall_seconds``; a dropped connection sends the response head and then raises
``DropConnection``, which makes uvicorn close the socket mid-response (the client sees a
transport error, never a status) either before or after the handler ran.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.jsonio import dumps
from sandbox.ratelimit import Verdict, rate_headers
from sandbox.state import SandboxState, token_fingerprint

# Scope key the gate sets to the calling organisation's name for the handlers.
ORG_KEY = "sandbox.org"
# Status recorded in stats for a connection dropped before any answer.
DROPPED = 0


class DropConnection(Exception):
    """Raised after the response head to make the server cut the connection."""


class _QuietDrops(logging.Filter):
    """uvicorn logs an exception it could not answer; an injected drop is not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DropConnection))


def install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() or None if scheme.lower() == "bearer" else None
    return None


async def _answer(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Gate:
    """ASGI middleware in front of the routes (see the module docstring)."""

    def __init__(self, app: ASGIApp, state: SandboxState, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.state = state
        self.routes = [r for r in routes if isinstance(r, Route)]

    def endpoint_label(self, scope: Scope) -> str:
        """The route template a request hit ("PUT /api/Gift/{id:int}"), for bounded stats."""
        method = scope["method"]
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return f"{method} {route.path}"
        return f"{method} (no route)"

    def canonical_path(self, path: str) -> str:
        """``path`` spelled as a route spells it: the live API's routes are case-insensitive and
        take a trailing slash (VirtuousCRM/HMAC-Auth Program.cs posts to
        ``/api/v2/gift/transaction/``). Parameter segments keep their own spelling."""
        parts = path.rstrip("/").split("/")
        best, best_literals = path, -1
        for route in self.routes:
            template = route.path.split("/")
            if len(template) != len(parts):
                continue
            out, literals = [], 0
            for want, have in zip(template, parts, strict=True):
                if want.startswith("{"):
                    out.append(have)
                elif want.lower() == have.lower():
                    out.append(want)
                    literals += 1
                else:
                    break
            else:
                # The most literal template wins: /api/Gift/Query/FullGift over {source}/{id}.
                if literals > best_literals:
                    best, best_literals = "/".join(out), literals
        return best

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].lower().startswith("/api/"):
            scope = {**scope, "path": self.canonical_path(scope["path"])}
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        state = self.state
        label = self.endpoint_label(scope)
        token = bearer_token(scope)
        fingerprint = token_fingerprint(token)
        store = state.org_for_token(token)
        if store is None:
            with state.lock:
                state.requests.record(label, fingerprint, None, 401)
            await _answer(
                send,
                401,
                b"Authorization has been denied for this request.",
                b"text/plain; charset=utf-8",
            )
            return
        decision = state.faults.decide(store.name)
        with state.lock:
            if decision.kind == "burst_429":
                limiter = store.limiter
                verdict = Verdict(
                    False,
                    limiter.limit,
                    0,
                    None if limiter.headers == "no-reset" else time.time() + decision.retry_after,
                    float(decision.retry_after),
                )
            else:
                verdict = store.limiter.admit()
            if not verdict.allowed:
                store.counters.rate_limited += 1
                state.requests.record(label, fingerprint, store.name, 429)
        headers = rate_headers(verdict, store.limiter.window)
        if not verdict.allowed:
            retry = decision.retry_after if decision.kind == "burst_429" else verdict.retry_after
            message = (
                f"API calls quota exceeded: at most {verdict.limit} calls per hour. "
                f"Retry after {retry} seconds."
            )
            await _answer(
                send,
                429,
                dumps({"message": message}),
                b"application/json",
                [*headers, (b"retry-after", str(retry).encode())],
            )
            return
        scope[ORG_KEY] = store.name
        if decision.kind == "fail":
            self._record(label, fingerprint, store.name, 500)
            await _answer(
                send,
                500,
                dumps({"message": "An error has occurred."}),
                b"application/json",
                headers,
            )
            return
        if decision.kind == "slow":
            await asyncio.sleep(decision.seconds)
        if decision.kind == "drop" and not decision.after_apply:
            self._record(label, fingerprint, store.name, DROPPED)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", b"64"),
                        *headers,
                    ],
                }
            )
            raise DropConnection
        await self._forward(
            scope,
            receive,
            send,
            headers,
            label,
            fingerprint,
            store.name,
            decision.kind,
            decision.seconds,
        )

    def _record(self, label: str, fingerprint: str, org: str, status: int) -> None:
        with self.state.lock:
            self.state.requests.record(label, fingerprint, org, status)

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        label: str,
        fingerprint: str,
        org: str,
        fault: str,
        seconds: float,
    ) -> None:
        """Run the handler, adding the headers; hold or cut its answer for the two faults that
        apply the request first."""
        hold = fault in ("drop", "stall")
        held: list[Message] = []
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), *headers]}
            if hold:
                held.append(message)
            else:
                await send(message)

        await self.app(scope, receive, send_with_headers)
        self._record(label, fingerprint, org, status)
        if fault == "drop":
            await send(held[0])
            raise DropConnection
        if fault == "stall":
            try:
                await asyncio.sleep(seconds)
            except asyncio.CancelledError:
                # The server is stopping mid-stall: the client just sees the connection go.
                raise DropConnection from None
            for message in held:
                await send(message)
