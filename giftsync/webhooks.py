"""``giftsync webhooks``: the receiver for Virtuous's webhook deliveries.

Subscriptions point at ``/v1/virtuous/{tenant}/{path_token}``. Each delivery is checked
twice: the path token (derived from the tenant's webhook secret, so it needs no extra
setting) must match, and the signature, HMAC-SHA256 of the raw body under the tenant's
webhook secret, must be in the signature header (Virtuous does not publish its name: it is
the setting ``GIFTSYNC_WEBHOOK_SIGNATURE_HEADER``, default ``X-Virtuous-Signature``), in
Base64 or hex. A delivery seen before (same ``X-Virtuous-Delivery`` id, or the same body) is
refused with 409 and changes nothing: Virtuous retries only what we failed to answer, and
the reconcile sweep looks up anything a lost delivery would have told us.

It answers fast and does the work on the ``confirm`` queue: Virtuous times out quickly.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from giftsync.serving import metrics_endpoint
from giftsync.settings import Settings, SettingsError, get_settings, secret
from mapping.tenant import TenantSettings
from workers.flows.gate import call
from workers.observe import metrics
from workers.queue import messages
from workers.runtime import runtime

# Deliveries are at most this big (a bulk delivery of a nightly run included).
MAX_BODY_BYTES = 10 * 1024 * 1024
# A delivery id or body hash is remembered this long, to refuse replays.
REPLAY_WINDOW_SECONDS = 7 * 24 * 3600
_EVENTS = {
    "giftcreate": "giftCreate",
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


def _denied() -> Response:
    # One plain answer for every authentication failure: nothing that helps a forger.
    return PlainTextResponse("unauthorized", status_code=401)


def _event_name(payload: Any) -> str:
    raw = str(payload.get("event", "")) if isinstance(payload, dict) else ""
    return _EVENTS.get(raw.lower().replace("_", ""), "other")


async def _receive(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    tenant = settings.tenants.get(request.path_params["tenant"])
    webhook_secret = _tenant_secret(settings, tenant) if tenant else None
    if tenant is None or webhook_secret is None:
        return _denied()
    if not hmac.compare_digest(
        path_token(webhook_secret, tenant.name), request.path_params["token"]
    ):
        metrics.WEBHOOKS_RECEIVED.labels(tenant.name, "unknown", "rejected").inc()
        return _denied()
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return PlainTextResponse("too large", status_code=413)
    presented = request.headers.get(settings.webhook_signature_header, "")
    if not presented or not signature_matches(webhook_secret, body, presented):
        metrics.WEBHOOKS_RECEIVED.labels(tenant.name, "unknown", "rejected").inc()
        return _denied()
    try:
        payload = json.loads(body)
    except ValueError:
        return JSONResponse({"error": "the body is not JSON"}, status_code=400)
    event = _event_name(payload)
    delivery = request.headers.get("X-Virtuous-Delivery") or hashlib.sha256(body).hexdigest()
    rt = runtime()
    seen_key = rt.keys.webhook_seen(tenant.name, delivery)
    if rt.redis.exists(seen_key):
        metrics.WEBHOOKS_RECEIVED.labels(tenant.name, event, "replayed").inc()
        return JSONResponse({"error": "this delivery was already received"}, status_code=409)
    messages.enqueue(messages.confirm_webhook(tenant.name, payload))
    # Remembered only once the work is queued, so a crash in between lets Virtuous's retry in.
    rt.redis.set(seen_key, "1", ex=REPLAY_WINDOW_SECONDS)
    metrics.WEBHOOKS_RECEIVED.labels(tenant.name, event, "accepted").inc()
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


def subscription_url(base_url: str, settings: Settings, tenant: TenantSettings) -> str:
    """The payload URL to register with Virtuous for ``tenant``."""
    webhook_secret = secret(
        settings, tenant.webhook_secret_env, what=f"tenant {tenant.name!r} webhook"
    )
    token = path_token(webhook_secret, tenant.name)
    return f"{base_url.rstrip('/')}/v1/virtuous/{tenant.name}/{token}"


def subscribe(settings: Settings, tenant: TenantSettings, base_url: str) -> dict[str, Any]:
    """Register the receiver with Virtuous (``POST /api/Webhook``) for the events it handles."""
    webhook_secret = secret(
        settings, tenant.webhook_secret_env, what=f"tenant {tenant.name!r} webhook"
    )
    payload = {
        "payloadUrl": subscription_url(base_url, settings, tenant),
        "secret": webhook_secret,
        "giftCreate": True,
        "contactCreate": True,
        "contactUpdate": True,
        "active": True,
        "name": "giftsync",
    }
    return call(runtime(), tenant, lambda c: c.create_webhook(payload))
