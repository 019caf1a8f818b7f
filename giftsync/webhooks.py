"""``giftsync webhooks``: the receiver for Virtuous's webhook deliveries.

Subscriptions point at ``/v1/virtuous/{tenant}/{path_token}``. Each delivery is checked
twice: the path token (derived from the tenant's webhook secret, so it needs no extra
setting) must match, and the signature, HMAC-SHA256 of the raw body under the tenant's
webhook secret, must be in the signature header (Virtuous does not publish its name: it is
the setting ``GIFTSYNC_WEBHOOK_SIGNATURE_HEADER``, default ``X-Virtuous-Signature``), in
Base64 or hex. A delivery whose body was seen before (what the signature covers; the
``X-Virtuous-Delivery`` header is not signed) is answered 200 and changes nothing (Virtuous
retries any delivery not answered 2xx); the reconcile sweep looks up anything a lost delivery
would have told us. A signed body that is not a delivery (not a JSON object,
duplicate keys, fields of the wrong type, nested absurdly deep) is refused with 400.

Every delivery accepted or refused is logged (tenant when it is ours, event, reason, size),
never a secret, a signature or the body.

It answers fast and does the work on the ``confirm`` queue: Virtuous times out quickly.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from giftsync.logs import configure_logging
from giftsync.serving import Limits, metrics_endpoint, serve_forever
from giftsync.settings import Settings, SettingsError, get_settings, secret
from mapping.events import EventValidationError
from mapping.tenant import TenantSettings
from producers.publish import decode_json
from workers.flows.gate import call
from workers.observe import metrics
from workers.queue import messages
from workers.runtime import runtime

# Deliveries are at most this big (a bulk delivery of a nightly run included).
MAX_BODY_BYTES = 10 * 1024 * 1024
# A delivery's body digest is remembered this long, to refuse replays.
REPLAY_WINDOW_SECONDS = 7 * 24 * 3600
log = structlog.get_logger("giftsync.webhooks")
_EVENTS = {
    "giftcreate": "giftCreate",
    "giftupdate": "giftUpdate",
    "giftdelete": "giftDelete",
    "contactcreate": "contactCreate",
    "contactupdate": "contactUpdate",
}


def path_token(webhook_secret: str, tenant: str) -> str:
    """The per-tenant token in the subscription URL (derived from the webhook secret)."""
    digest = hmac.new(webhook_secret.encode(), f"path:{tenant}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def signature_matches(webhook_secret: str, body: bytes, presented: str) -> bool:
    """True when ``presented`` is the body's HMAC-SHA256 under the secret, Base64 or hex."""
    expected = hmac.new(webhook_secret.encode(), body, hashlib.sha256).digest()
    value = presented.strip().removeprefix("sha256=")
    candidates = []
    with contextlib.suppress(binascii.Error, ValueError):
        candidates.append(base64.b64decode(value, validate=True))
    with contextlib.suppress(ValueError):
        candidates.append(bytes.fromhex(value))
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def _tenant_secret(settings: Settings, tenant: TenantSettings) -> str | None:
    try:
        return secret(settings, tenant.webhook_secret_env, what=f"tenant {tenant.name!r} webhook")
    except SettingsError:
        return None


class _Refused(Exception):
    """A delivery refused: ``reason`` is for the log, ``answer`` for the caller."""

    def __init__(self, reason: str, answer: Response, tenant: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.answer = answer
        self.tenant = tenant


def _denied(reason: str, tenant: str | None = None) -> _Refused:
    # One plain answer for every authentication failure: nothing that helps a forger.
    return _Refused(reason, PlainTextResponse("unauthorized", status_code=401), tenant)


def _bad(tenant: str, path: str, reason: str) -> _Refused:
    answer = JSONResponse({"errors": [{"path": path, "reason": reason}]}, status_code=400)
    return _Refused("bad_delivery", answer, tenant)


def _event_name(payload: Any) -> str:
    raw = str(payload.get("event", "")) if isinstance(payload, dict) else ""
    return _EVENTS.get(raw.lower().replace("_", ""), "other")


def check_delivery(tenant: str, body: bytes) -> dict[str, Any]:
    """The signed body as a delivery, or _Refused (400) naming what is wrong with it.

    Checked before the answer, so a delivery the worker could not apply is refused now
    (Virtuous hears of it) rather than accepted and dead-lettered later.
    """
    try:
        payload = decode_json(body)
    except EventValidationError as exc:
        raise _bad(tenant, "$", exc.errors[0].reason) from None
    if not isinstance(payload, dict):
        raise _bad(tenant, "$", "must be a JSON object (a webhook delivery)")
    if "event" in payload and not isinstance(payload["event"], str):
        raise _bad(tenant, "event", "must be a string")
    for key in ("gift", "contact"):
        if payload.get(key) is not None and not isinstance(payload[key], dict):
            raise _bad(tenant, key, "must be an object")
    models = payload.get("models")
    if models is not None:
        if not isinstance(models, list):
            raise _bad(tenant, "models", "must be a list of objects")
        for index, model in enumerate(models):
            if not isinstance(model, dict):
                raise _bad(tenant, f"models[{index}]", "must be an object")
    return payload


def _verify(settings: Settings, request: Request, body: bytes) -> TenantSettings:
    """The tenant a delivery provably comes from, or _Refused (401)."""
    tenant = settings.tenants.get(request.path_params["tenant"])
    webhook_secret = _tenant_secret(settings, tenant) if tenant else None
    if tenant is None or webhook_secret is None:
        raise _denied("unknown_tenant")  # the name is the caller's: not logged
    token = request.path_params["token"].encode("utf-8", "replace")
    if not hmac.compare_digest(path_token(webhook_secret, tenant.name).encode(), token):
        raise _denied("bad_path_token", tenant.name)
    presented = request.headers.get(settings.webhook_signature_header, "")
    if not presented or not signature_matches(webhook_secret, body, presented):
        raise _denied("bad_signature", tenant.name)
    return tenant


def _accept(tenant: TenantSettings, body: bytes, payload: dict[str, Any], event: str) -> bool:
    """Queue the delivery unless its body was seen before; False for a replay.

    The replay key is a digest of the body, which is what the signature covers: a header
    such as ``X-Virtuous-Delivery`` is not signed, so a captured delivery sent again with a
    fresh one is still the same delivery.
    """
    rt = runtime()
    digest = hashlib.sha256(body).hexdigest()
    if not rt.marks.first_webhook(tenant.name, digest, REPLAY_WINDOW_SECONDS):
        return False
    try:
        messages.enqueue(messages.confirm_webhook(tenant.name, payload, event))
    except BaseException:
        # Not queued: forget it, so Virtuous's retry of this delivery gets in.
        rt.marks.forget_webhook(tenant.name, digest)
        raise
    return True


async def _receive(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    # The body is already read and bounded (giftsync.serving.BodyGuard), for every caller
    # alike: a known tenant's path costs what an unknown one does until the checks below.
    body = await request.body()
    try:
        tenant = _verify(settings, request, body)
        payload = check_delivery(tenant.name, body)
        event = _event_name(payload)
        if not await run_in_threadpool(_accept, tenant, body, payload, event):
            # Answered 2xx: Virtuous retries whatever is not, and a repeat must change nothing.
            answer = JSONResponse({"status": "already_received"}, status_code=200)
            raise _Refused("replayed", answer, tenant.name)
    except _Refused as refused:
        outcome = "replayed" if refused.reason == "replayed" else "rejected"
        if refused.tenant is not None:
            metrics.WEBHOOKS_RECEIVED.labels(refused.tenant, "unknown", outcome).inc()
        log.warning(
            "webhook_refused",
            reason=refused.reason,
            tenant=refused.tenant,
            status=refused.answer.status_code,
            bytes=len(body),
        )
        return refused.answer
    metrics.WEBHOOKS_RECEIVED.labels(tenant.name, event, "accepted").inc()
    log.info("webhook_accepted", tenant=tenant.name, webhook_event=event, bytes=len(body))
    return JSONResponse({"status": "accepted", "event": event}, status_code=202)


async def _healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def create_app(settings: Settings | None = None) -> Starlette:
    """The webhook receiver as an ASGI app."""
    app = Starlette(
        routes=[
            Route("/v1/virtuous/{tenant}/{token}", _receive, methods=["POST"]),
            Route("/healthz", _healthz),
            Route("/metrics", metrics_endpoint),
        ]
    )
    app.state.settings = settings or get_settings()
    for tenant in app.state.settings.tenants:
        for event in _EVENTS.values():
            for outcome in ("accepted", "replayed"):
                metrics.WEBHOOKS_RECEIVED.labels(tenant, event, outcome)
        metrics.WEBHOOKS_RECEIVED.labels(tenant, "unknown", "rejected")
    return app


# Deliveries are bounded in size and time like every request (giftsync.serving).
LIMITS = Limits(max_body_bytes=MAX_BODY_BYTES, body_seconds=60.0)


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the receiver until interrupted (``giftsync webhooks``), logging as JSON lines."""
    configure_logging(settings.log_level)
    log.info(
        "webhooks_starting",
        host=host,
        port=port,
        tenants=len(settings.tenants),
        signature_header=settings.webhook_signature_header,
    )
    serve_forever(create_app(settings), host, port, LIMITS)


def subscription_url(base_url: str, settings: Settings, tenant: TenantSettings) -> str:
    """The payload URL to register with Virtuous for ``tenant``."""
    webhook_secret = secret(
        settings, tenant.webhook_secret_env, what=f"tenant {tenant.name!r} webhook"
    )
    token = path_token(webhook_secret, tenant.name)
    return f"{base_url.rstrip('/')}/v1/virtuous/{tenant.name}/{token}"


def subscription_body(payload_url: str, webhook_secret: str) -> dict[str, Any]:
    """The ``POST /api/Webhook`` body: the events the receiver acts on, no others."""
    return {
        "payloadUrl": payload_url,
        "secret": webhook_secret,
        "giftCreate": True,
        # A gift deleted in Virtuous is reported to the platform on the writeback stream.
        "giftDelete": True,
        "contactCreate": True,
        "contactUpdate": True,
        "active": True,
        "name": "giftsync",
    }


def subscribe(settings: Settings, tenant: TenantSettings, base_url: str) -> dict[str, Any]:
    """Register the receiver with Virtuous (``POST /api/Webhook``) for the events it handles."""
    webhook_secret = secret(
        settings, tenant.webhook_secret_env, what=f"tenant {tenant.name!r} webhook"
    )
    payload = subscription_body(subscription_url(base_url, settings, tenant), webhook_secret)
    return call(runtime(), tenant, lambda c: c.create_webhook(payload))
