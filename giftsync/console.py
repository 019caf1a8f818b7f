"""``giftsync console``: a small read-mostly web page for operators.

Per tenant it shows the gifts by state, the Virtuous budget used in the current window, the
review backlog with its Import Tool batches, quarantined gifts with Virtuous's reason and
dead letters, each with a Replay button: the one thing the page changes.

Who may use it, and how a browser proves it, is :mod:`giftsync.console_access`.
"""

from __future__ import annotations

from urllib.parse import parse_qs, quote

import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from giftsync.console_access import (
    COOKIE,
    SESSION_SECONDS,
    Access,
    access_for,
    refused_post,
    same_origin,
)
from giftsync.console_page import Letter, Quarantined, ReviewBatch, TenantView, render_login
from giftsync.console_page import render_page as _render_page
from giftsync.logs import configure_logging
from giftsync.serving import Limits, serve_forever
from giftsync.settings import get_settings
from workers.observe.status import tenant_status
from workers.queue.broker import get_broker
from workers.queue.deadletters import list_dead_letters, replay
from workers.runtime import runtime

log = structlog.get_logger("giftsync.console")

# Newest quarantined gifts listed per tenant (the count shows how many more there are).
MAX_QUARANTINED = 50
# Form bodies are tiny; anything bigger is not ours.
MAX_FORM_BYTES = 4096
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def gather() -> list[TenantView]:
    """What the page shows, read from Redis now: one view per tenant."""

    rt = runtime()
    letters: dict[str, list[Letter]] = {}
    for dead in list_dead_letters():
        subject = str(dead.kwargs.get("batch_id") or dead.kwargs.get("member") or "")
        letter = Letter(
            dead.message_id, dead.actor, dead.attempts, dead.failed_ms, dead.reason, subject
        )
        key = dead.tenant if dead.tenant in rt.settings.tenants else ""
        letters.setdefault(key, []).append(letter)
    views = []
    for name, tenant in sorted(rt.settings.tenants.items()):
        report = tenant_status(rt, tenant)
        review = [
            ReviewBatch(
                found["import"], len(found["transaction_ids"]), tuple(found["transaction_ids"])
            )
            for found in report["review_imports"]
        ]
        quarantined = [
            Quarantined(member, reason, when_ms)
            for member, reason, when_ms in rt.ledger.newest_quarantined(name, MAX_QUARANTINED)
        ]
        views.append(
            TenantView(
                name=name,
                mode=tenant.mode,
                states=report["states"],
                calls_in_window=report["calls_in_window"],
                calls_cap=report["calls_cap"],
                window_seconds=report["window_seconds"],
                blocked_seconds=rt.limiter.blocked_for(name),
                paused=report["paused"],
                oldest_buffered_seconds=report["oldest_buffered_age_seconds"],
                oldest_unconfirmed=report["oldest_unconfirmed"],
                review=review,
                quarantined=quarantined,
                quarantined_total=rt.ledger.quarantined_count(name),
                letters=letters.get(name, []),
            )
        )
    if letters.get(""):
        views.append(TenantView(name="", letters=letters[""]))
    return views


def replay_one(message_id: str) -> bool:
    """Replay one dead letter by id; False when there is no such letter (any more)."""

    chosen = [d for d in list_dead_letters() if d.message_id == message_id]
    return bool(chosen) and replay(chosen, get_broker()) == 1


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=_HEADERS)


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=8)
    return {key: values[0] for key, values in fields.items()}


def _access(request: Request) -> Access:
    access: Access = request.app.state.access
    return access


async def _page(request: Request) -> Response:
    access = _access(request)
    if not access.host_ok(request):
        return PlainTextResponse("unknown host\n", status_code=421)
    if not (access.bearer_ok(request) or access.browser_ok(request)):
        if "authorization" in request.headers:
            return PlainTextResponse("unauthorized\n", status_code=401)
        return RedirectResponse("/login", status_code=303)

    views = await run_in_threadpool(gather)
    now_ms = await run_in_threadpool(lambda: runtime().batcher.server_ms())
    page = _render_page(
        views,
        csrf=access.csrf,
        notice=request.query_params.get("notice"),
        logout=access.token is not None,
        now_ms=now_ms,
    )
    return _html(page)


async def _replay(request: Request) -> Response:
    access = _access(request)
    form = await _form(request)
    refused = refused_post(request, access, form)
    if refused is not None:
        return refused
    message_id = form.get("message_id", "")
    done = await run_in_threadpool(replay_one, message_id) if message_id else False
    log.info("console_replay", message_id=message_id, replayed=done)
    notice = f"replayed dead letter {message_id}" if done else f"no dead letter {message_id}"
    return RedirectResponse(f"/?notice={quote(notice)}", status_code=303)


def _client(request: Request) -> str:
    # With a trusted proxy configured, uvicorn's proxy middleware has already put the
    # forwarded client address here; otherwise it is the peer.
    return request.client.host if request.client else "unknown"


async def _login(request: Request) -> Response:
    access = _access(request)
    if not access.host_ok(request):
        return PlainTextResponse("unknown host\n", status_code=421)
    if access.token is None:
        return RedirectResponse("/", status_code=303)
    if request.method == "GET":
        return _html(render_login(error=None))
    client = _client(request)
    wait = access.throttle.wait(client)
    if wait:
        log.warning("console_login_throttled", retry_after=wait)
        page = render_login(error=f"Too many failed attempts: try again in {wait} seconds.")
        throttled = _html(page, status=429)
        throttled.headers["Retry-After"] = str(wait)
        return throttled
    form = await _form(request)
    if not (same_origin(request) and access.token_ok(form.get("token", ""))):
        access.throttle.failed(client)
        log.warning("console_login_refused")
        return _html(render_login(error="That token was not accepted."), status=401)
    access.throttle.succeeded(client)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE,
        access.sessions.start(),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    log.info("console_login")
    return response


async def _logout(request: Request) -> Response:
    access = _access(request)
    refused = refused_post(request, access, await _form(request))
    if refused is not None:
        return refused
    access.sessions.end(request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


async def _healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


def create_app(access: Access) -> Starlette:
    """The console app under the given access rules."""
    # Forwarded headers are believed from the configured proxies only, never from anyone.
    middleware = [Middleware(ProxyHeadersMiddleware, trusted_hosts=list(access.trusted_proxies))]
    app = Starlette(
        routes=[
            Route("/", _page, methods=["GET"]),
            Route("/replay", _replay, methods=["POST"]),
            Route("/login", _login, methods=["GET", "POST"]),
            Route("/logout", _logout, methods=["POST"]),
            Route("/healthz", _healthz, methods=["GET"]),
        ],
        middleware=middleware if access.trusted_proxies else [],
    )
    app.state.access = access
    return app


def serve(host: str, port: int) -> None:
    """Run the console until interrupted (``giftsync console``)."""

    settings = get_settings()
    access = access_for(settings, host, port)
    configure_logging(settings.log_level)
    log.info("console_starting", host=host, port=port, token_required=access.token is not None)
    serve_forever(create_app(access), host, port, Limits(max_body_bytes=MAX_FORM_BYTES))
