"""Running a giftsync HTTP app: in the foreground for a role, or in a thread for tests.

Every HTTP role (ingest, webhooks, console, the worker's ``/metrics``) is served here, so
each gets the same defences against clients that hold resources without finishing a request:

* The whole request head must arrive within ``Limits.head_seconds`` of the connection
  opening (or of the previous response): a client that sends half a head and stalls is cut.
* The whole body must arrive within ``Limits.body_seconds`` and be no larger than
  ``Limits.max_body_bytes``. :class:`BodyGuard` reads it before the app sees the request: a
  declared ``Content-Length`` over the limit is refused at once (413), a streamed one as soon
  as it passes the limit, a slow one with 408, and the app gets the buffered body.
* At most ``max_connections`` connections are open, kept below the process's open-file
  limit. A new connection past the cap replaces the one that has waited longest for its
  request head, so stalled clients cannot lock out a health check; if every connection is
  busy with a request, the new one is closed.
* Running out of descriptors anyway is logged once per ``EMFILE_LOG_SECONDS`` with a count,
  not a traceback per failed ``accept``.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import structlog
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from giftsync.waiting import WaitTimeout, wait_for

__all__ = [
    "BodyGuard",
    "Limits",
    "metrics_endpoint",
    "serve_forever",
    "serve_in_thread",
]

log = structlog.get_logger("giftsync.serving")

# Descriptors kept free for what a role opens besides client connections (Redis, logs).
FD_RESERVE = 64
# Out-of-descriptor errors are logged at most this often.
EMFILE_LOG_SECONDS = 10.0


@dataclass(frozen=True)
class Limits:
    """What one client may hold of an HTTP role: time, bytes and connections."""

    # The request head (request line and headers) must arrive within this many seconds.
    head_seconds: float = 10.0
    # The body must arrive within this many seconds of the head.
    body_seconds: float = 30.0
    # An idle keep-alive connection is closed after this many seconds.
    idle_seconds: float = 5.0
    max_body_bytes: int = 64 * 1024
    max_head_bytes: int = 16 * 1024
    max_connections: int = 512

    def connection_cap(self) -> int:
        """``max_connections``, lowered to stay under the process's open-file limit."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return max(8, min(self.max_connections, soft - FD_RESERVE))

    def backlog(self) -> int:
        """The listen backlog, which is also how many connections one accept burst takes.

        A burst is accepted before any of it can be counted against the cap, so it must fit
        in the descriptors the cap leaves free.
        """
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return 2048
        return max(16, min(2048, (soft - self.connection_cap()) // 4))


class _Refuse(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class BodyGuard:
    """ASGI wrapper: read the whole body within the limits before the app runs."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            body = await asyncio.wait_for(self._read(scope, receive), self.limits.body_seconds)
        except _Refuse as refused:
            await _refuse(send, refused.status, refused.text)
            return
        except TimeoutError:
            log.warning("http_body_too_slow", path=scope.get("path"))
            await _refuse(send, 408, "request body too slow")
            return
        if body is None:
            return  # the client went away
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # only a disconnect can come now

        await self.app(scope, replay, send)

    async def _read(self, scope: Scope, receive: Receive) -> bytes | None:
        limit = self.limits.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            raise _Refuse(413, f"body over {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Refuse(413, f"body over {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def _refuse(send: Send, status: int, reason: str) -> None:
    # The shape of every giftsync error answer; Connection: close, so the rest of an unread
    # body is never waited for.
    body = json.dumps({"errors": [{"path": "$", "reason": reason}]}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _protocol(limits: Limits) -> type[H11Protocol]:
    cap = limits.connection_cap()

    class GuardedH11(H11Protocol):
        """uvicorn's h11 protocol with a deadline on the request head and a connection cap."""

        _head_timer: asyncio.TimerHandle | None = None
        # When this connection started waiting for a request head (None: a request runs).
        waiting_since: float | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._await_head()
            if len(self.connections) > cap:
                self._make_room()

        def _make_room(self) -> None:
            waiting = [
                c
                for c in self.connections
                if isinstance(c, GuardedH11) and c is not self and c.waiting_since is not None
            ]
            victim = min(waiting, key=lambda c: c.waiting_since or 0.0) if waiting else self
            victim.transport.close()
            # Counted out now, not when the loop reports it lost: the cap holds mid-burst.
            self.connections.discard(victim)

        def _await_head(self) -> None:
            self.waiting_since = time.monotonic()
            self._cancel_head_timer()
            self._head_timer = self.loop.call_later(limits.head_seconds, self._head_timed_out)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            if self.waiting_since is not None and not self.transport.is_closing():
                self.transport.close()

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:
                self.waiting_since = None
                self._cancel_head_timer()

        def on_response_complete(self) -> None:
            self._await_head()
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

    return GuardedH11


class _QuietOutOfFiles(logging.Filter):
    """Turn the accept loop's out-of-descriptor tracebacks into one counted line per period."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        out_of_files = isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE)
        message = record.getMessage()
        # asyncio schedules one accept retry per failure; once the listener is closed at
        # shutdown each of them fails with its own traceback.
        retry = "_start_serving" in message
        if not (out_of_files or retry or "out of system resource" in message):
            return True
        with self._lock:
            now = time.monotonic()
            if now - self._last < EMFILE_LOG_SECONDS:
                self._suppressed += 1
                return False
            self._last, suppressed, self._suppressed = now, self._suppressed, 0
        log.warning("http_out_of_descriptors", suppressed_since_last=suppressed)
        return False


_QUIET = _QuietOutOfFiles()


def _route_server_logs() -> None:
    for name in ("asyncio", "uvicorn.error"):
        logger = logging.getLogger(name)
        if _QUIET not in logger.filters:
            logger.addFilter(_QUIET)


def _config(app: ASGIApp, host: str, port: int, limits: Limits) -> uvicorn.Config:
    _route_server_logs()
    return uvicorn.Config(
        BodyGuard(app, limits),
        host=host,
        port=port,
        http=_protocol(limits),
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=max(1, round(limits.idle_seconds)),
        limit_concurrency=limits.connection_cap() + 1,
        h11_max_incomplete_event_size=limits.max_head_bytes,
        backlog=limits.backlog(),
    )


def serve_forever(app: ASGIApp, host: str, port: int, limits: Limits | None = None) -> None:
    """Serve ``app`` until interrupted (a deployment role's main loop)."""
    uvicorn.Server(_config(app, host, port, limits or Limits())).run()


@contextmanager
def serve_in_thread(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    name: str,
    limits: Limits | None = None,
) -> Iterator[str]:
    """Serve ``app`` from a background thread; yields its base URL and stops on exit.

    For tests, benchmarks and demos; ``port=0`` takes a free port.
    """
    server = uvicorn.Server(_config(app, host, port, limits or Limits()))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()

    def started() -> bool:
        if not server.started and not thread.is_alive():
            raise RuntimeError(f"{name} did not start")
        return bool(server.started)

    try:
        wait_for(started, timeout=10, interval=0.01, what=f"{name} to start")
    except (WaitTimeout, RuntimeError):
        server.should_exit = True
        raise RuntimeError(f"{name} did not start") from None
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class _TenantBlind(Collector):
    """The registry's metrics with the ``tenant`` label summed away.

    Counters and histograms are summed over tenants; per-tenant gauges and creation times
    have no meaningful sum and are left out. What is left names no tenant.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():
            merged: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
            for sample in family.samples:
                if "tenant" not in sample.labels:
                    key = (sample.name, tuple(sample.labels.items()))
                    merged[key] = sample.value
                    continue
                if family.type not in ("counter", "histogram", "summary"):
                    continue
                if sample.name.endswith("_created"):
                    continue
                labels = tuple((k, v) for k, v in sample.labels.items() if k != "tenant")
                merged[(sample.name, labels)] = merged.get((sample.name, labels), 0.0) + (
                    sample.value
                )
            out = Metric(family.name, family.documentation, family.type, family.unit)
            for (name, labels), value in merged.items():
                out.add_sample(name, dict(labels), value)
            yield out


_PUBLIC = CollectorRegistry(auto_describe=False)
_PUBLIC.register(_TenantBlind(REGISTRY))


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics`` of a public-facing role: this process's metrics, naming no tenant.

    The ingest and webhook ports face the internet; the list of tenants giftsync serves is
    not for outsiders. Per-tenant series are on the worker's ``/metrics``, which is private.
    """
    return Response(generate_latest(_PUBLIC), media_type=CONTENT_TYPE_LATEST)
