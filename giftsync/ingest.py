"""``giftsync ingest``: the signed HTTP API through which the platform sends changes.

Routes:

* ``POST /v1/changes``: one change event, or a list of them, signed as
  :mod:`producers.signing` describes. 202 when every event was enqueued; 400 when any was
  invalid (the valid ones are still enqueued and say so); 401 for anything not provably from
  the tenant; 413 for a body over ``GIFTSYNC_INGEST_MAX_BYTES``; 503 when Redis is down.
* ``GET /healthz`` (the process answers), ``GET /readyz`` (Redis answers), ``GET /metrics``.

The body is read (within the size and time limits of :mod:`giftsync.serving`) before any
check, so every caller waits for its body alike. Then: the headers (timestamp fresh), the
signature (an unknown tenant, or one without a secret, is checked against a decoy key and
refused at the same point as a bad signature, so no answer or delay says which tenants
exist), then replay (the signature is remembered in Redis with SET NX for as long as its
timestamp would pass), then the events. A 401 says only "unauthorized": which check failed
goes to the log, never to the caller, and neither the secret nor the signature goes
anywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

import dramatiq
import redis
import structlog
from prometheus_client import Counter
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from giftsync.logs import configure_logging
from giftsync.serving import Limits, metrics_endpoint, serve_forever, serve_in_thread
from giftsync.settings import Settings, SettingsError, get_settings, secret
from mapping.errors import EventValidationError, FieldError
from mapping.routing import check_change
from mapping.tenant import TenantSettings
from producers import signing
from producers.publish import decode_json, enqueue_valid
from workers.observe.metrics import EVENTS_INVALID
from workers.queue.broker import build_broker, get_broker
from workers.store.connection import connect
from workers.store.keys import Keys
from workers.store.marks import Marks

__all__ = [
    "INGEST_REQUESTS",
    "MAX_ERRORS_PER_EVENT",
    "MAX_EVENTS",
    "check_event",
    "create_app",
    "limits",
    "serve",
    "start_ingest",
]

INGEST_REQUESTS = Counter(
    "giftsync_ingest_requests_total", "Requests to POST /v1/changes by answer.", ["status"]
)
# Events in one request: bounds the answer's size as the body limit bounds the question's.
MAX_EVENTS = 1000
# Problems listed per event: enough to fix it, never an answer larger than the request.
MAX_ERRORS_PER_EVENT = 50
# Keep a seen signature until its timestamp could no longer pass, whichever side it was on.
REPLAY_TTL_SECONDS = 2 * signing.TOLERANCE_SECONDS + 1

log = structlog.get_logger("giftsync.ingest")


class _TooLarge(Exception):
    """The body passed the size limit."""


def _errors(errors: list[FieldError]) -> list[dict[str, str]]:
    shown = [{"path": e.path, "reason": e.reason} for e in errors[:MAX_ERRORS_PER_EVENT]]
    if len(errors) > MAX_ERRORS_PER_EVENT:
        hidden = len(errors) - MAX_ERRORS_PER_EVENT
        shown.append({"path": "$", "reason": f"{hidden} more problems not listed"})
    return shown


def _request_error(reason: str) -> tuple[int, dict[str, Any]]:
    return 400, {"errors": [{"path": "$", "reason": reason}], "accepted": 0}


def check_event(
    event: object, signer: str, tenants: Mapping[str, TenantSettings]
) -> list[FieldError]:
    """Every problem of ``event`` sent by ``signer``: the rules the worker applies
    (:func:`mapping.routing.check_change`), and the tenant must match."""
    tenant = event.get("tenant") if isinstance(event, dict) else None
    # A tenant may send only its own changes. Saying only "not yours" (rather than whether
    # the other tenant exists) tells a caller nothing about who else giftsync serves.
    mismatch = isinstance(tenant, str) and tenant != signer
    try:
        check_change(event, {signer: tenants[signer]})
        errors: list[FieldError] = []
    except EventValidationError as exc:
        errors = [e for e in exc.errors if not (mismatch and e.path == "tenant")]
    if mismatch:
        errors.insert(0, FieldError("tenant", f"must be {signer!r}, the tenant that signed"))
    return errors


def _digest(caller: signing.SignedRequest) -> str:
    return caller.signature.removeprefix(signing.SIGNATURE_PREFIX)


class IngestService:
    """The checks and the work behind the routes, over one settings object and broker."""

    def __init__(self, settings: Settings, broker: dramatiq.Broker, client: redis.Redis) -> None:
        self.settings = settings
        self.broker = broker
        self.redis = client
        self.marks = Marks(client, Keys(settings.key_prefix))

    def secret_of(self, name: str) -> bytes | None:
        """The tenant's ingest secret, or None when it has none (or does not exist).

        Either way the request is then refused exactly as a bad signature is, after the
        same work: how a request is refused never says whether its tenant exists.
        """
        tenant = self.settings.tenants.get(name)
        if tenant is None:
            return None
        try:
            value = secret(self.settings, tenant.ingest_secret_env, what=f"tenant {name} ingest")
        except SettingsError as exc:
            log.warning("ingest_secret_missing", tenant=name, problem=str(exc))
            return None
        return value.encode("utf-8")

    def first_use(self, caller: signing.SignedRequest) -> bool:
        """Remember the signature; False when it was seen before (a replay)."""
        return self.marks.first_ingest(caller.tenant, _digest(caller), REPLAY_TTL_SECONDS)

    def forget(self, caller: signing.SignedRequest) -> None:
        """Let an exact retry through after Redis failed mid-request.

        Events enqueued before the failure may then arrive twice; workers drop a change not
        newer than the one they applied, so that is harmless.
        """
        self.marks.forget_ingest(caller.tenant, _digest(caller))

    def accept(self, signer: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Decode, validate and enqueue the events of a verified body: (status, answer)."""
        try:
            payload = decode_json(body)
        except EventValidationError as exc:
            return _request_error(exc.errors[0].reason)
        events = payload if isinstance(payload, list) else [payload]
        if not events:
            return _request_error("must be an event object or a non-empty list of events")
        if len(events) > MAX_EVENTS:
            return _request_error(f"holds {len(events)} events; at most {MAX_EVENTS} per request")
        results: list[dict[str, Any]] = []
        valid: list[dict[str, Any]] = []
        for index, event in enumerate(events):
            problems = check_event(event, signer, self.settings.tenants)
            if problems:
                results.append({"index": index, "status": "invalid", "errors": _errors(problems)})
            else:
                results.append({"index": index, "status": "accepted"})
                valid.append(event)
        if valid:
            enqueue_valid(valid, broker=self.broker, tenants=self.settings.tenants)
        invalid = len(events) - len(valid)
        if invalid:
            EVENTS_INVALID.labels(tenant=signer).inc(invalid)
        answer = {"results": results, "accepted": len(valid), "invalid": invalid}
        return (400 if invalid else 202), answer


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, or _TooLarge as soon as it passes ``limit``: never more is held."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(status: int, body: dict[str, Any] | None = None) -> Response:
    INGEST_REQUESTS.labels(status=str(status)).inc()
    if status == 401:
        return PlainTextResponse("unauthorized\n", status_code=401)
    return JSONResponse(body, status_code=status)


async def _changes(request: Request) -> Response:
    service: IngestService = request.app.state.service
    limit = service.settings.ingest_max_bytes
    try:
        caller = signing.check_headers(request.headers, service.secret_of)
        body = await _read_body(request, limit)
        caller.check_body(body)
        if not await run_in_threadpool(service.first_use, caller):
            raise signing.Unauthorized("replay", caller.tenant)
    except signing.Unauthorized as exc:
        reason, tenant = exc.reason, exc.tenant
        claimed = request.headers.get(signing.TENANT_HEADER, "")
        if reason == "unknown_tenant" and claimed in service.settings.tenants:
            reason, tenant = "no_secret", claimed  # ours, so the operator may hear of it
        log.warning("ingest_unauthorized", reason=reason, tenant=tenant)
        return _answer(401)
    except _TooLarge:
        log.warning("ingest_too_large", limit=limit)
        return _answer(413, {"errors": [{"path": "$", "reason": f"body over {limit} bytes"}]})
    except redis.RedisError as exc:
        log.error("ingest_redis_error", error=type(exc).__name__)
        return _answer(503, {"errors": [{"path": "$", "reason": "unavailable, retry later"}]})
    try:
        status, answer = await run_in_threadpool(service.accept, caller.tenant, body)
    except redis.RedisError as exc:
        log.error("ingest_redis_error", tenant=caller.tenant, error=type(exc).__name__)
        await run_in_threadpool(_forget_quietly, service, caller)
        return _answer(503, {"errors": [{"path": "$", "reason": "unavailable, retry later"}]})
    log.info(
        "ingest_request",
        tenant=caller.tenant,
        status=status,
        accepted=answer.get("accepted", 0),
        invalid=answer.get("invalid", 0),
    )
    return _answer(status, answer)


def _forget_quietly(service: IngestService, caller: signing.SignedRequest) -> None:
    # If even this fails, the caller re-signs with a fresh timestamp, as after any 401.
    with suppress(redis.RedisError):
        service.forget(caller)


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _readyz(request: Request) -> Response:
    try:
        await run_in_threadpool(request.app.state.probe.ping)
    except redis.RedisError:
        return JSONResponse({"status": "redis unreachable"}, status_code=503)
    return JSONResponse({"status": "ready"})


def create_app(settings: Settings | None = None) -> Starlette:
    """The ingest app: with no settings, the process's own settings and broker.

    Given settings (tests, embedding), it builds a broker and Redis client of its own and
    closes them when the app shuts down.
    """
    owned = settings is not None
    settings = settings or get_settings()
    broker = build_broker(settings) if owned else get_broker()
    client = connect(settings, socket_timeout=5, connect_timeout=2, health_check_interval=30)
    # Readiness answers at once; requests ride through a failover on the retrying client.
    probe = connect(settings, socket_timeout=2, connect_timeout=2, retry=False)
    service = IngestService(settings, broker, client)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        client.close()
        probe.close()
        if owned:
            broker.close()

    app = Starlette(
        routes=[
            Route("/v1/changes", _changes, methods=["POST"]),
            Route("/healthz", _healthz, methods=["GET"]),
            Route("/readyz", _readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.probe = probe
    return app


def limits(settings: Settings) -> Limits:
    """The HTTP limits of the ingest role: bodies up to ``GIFTSYNC_INGEST_MAX_BYTES``."""
    return Limits(max_body_bytes=settings.ingest_max_bytes)


def serve(host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the ingest service until interrupted (``giftsync ingest``)."""
    settings = get_settings()
    configure_logging(settings.log_level)
    log.info("ingest_starting", host=host, port=port, tenants=len(settings.tenants))
    serve_forever(create_app(), host, port, limits(settings))


@contextmanager
def start_ingest(
    settings: Settings | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[str]:
    """Serve the ingest app from a background thread; yields its base URL, stops on exit.

    For tests, benchmarks and demos. ``port=0`` takes a free port.
    """
    app = create_app(settings)
    chosen = limits(settings or get_settings())
    with serve_in_thread(app, host=host, port=port, name="giftsync-ingest", limits=chosen) as url:
        yield url
