"""Who may use the operator console, and how a browser proves it.

* Bound to loopback (the default), the page is open to whoever can reach that port on this
  machine. Requests must name the loopback address in ``Host``, so a web page that rebinds
  its own DNS name to 127.0.0.1 cannot read the console through the operator's browser.
* Bound anywhere else, ``GIFTSYNC_CONSOLE_TOKEN`` (16 characters or more) is required: the
  console refuses to start without it. A client presents it as ``Authorization: Bearer``; a
  browser posts it once to ``/login`` and gets a session cookie (HttpOnly, SameSite=Strict)
  holding an HMAC derived from the token, never the token itself.
* Replay is a POST, accepted from a browser only with the page's CSRF token (an HMAC under
  the same key; unknown to other sites, who cannot read the page) and an ``Origin`` (or
  ``Referer``) of the console itself. A bearer-token client needs neither: it carries no
  ambient credential a forged request could borrow.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

import structlog
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from giftsync.settings import Settings, SettingsError

log = structlog.get_logger("giftsync.console")

COOKIE = "giftsync_console"
# Shorter tokens are refused: the token is all that stands between the network and Replay.
MIN_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Access:
    """Who may use the console, and the key its cookie and CSRF tokens are derived under."""

    token: str | None
    key: bytes
    # Loopback binds: the only Host headers answered (None: any, the token guards).
    hosts: frozenset[str] | None

    def _mac(self, purpose: str) -> str:
        return hmac.new(self.key, purpose.encode(), hashlib.sha256).hexdigest()

    @property
    def session(self) -> str:
        return self._mac("session")

    @property
    def csrf(self) -> str:
        return self._mac("csrf")

    def token_ok(self, given: str) -> bool:
        """``given`` is the console token (compared in constant time)."""
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def bearer_ok(self, request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.token_ok(value)

    def browser_ok(self, request: Request) -> bool:
        """Open on loopback without a token; else the session cookie."""
        if self.token is None:
            return True
        return hmac.compare_digest(request.cookies.get(COOKIE, ""), self.session)

    def host_ok(self, request: Request) -> bool:
        return self.hosts is None or request.headers.get("host", "") in self.hosts


def access_for(settings: Settings, host: str, port: int) -> Access:
    """The access rules for a console bound to ``host:port``, or why it may not start."""
    token = settings.console_token
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise SettingsError([f"GIFTSYNC_CONSOLE_TOKEN must be {MIN_TOKEN_CHARS}+ characters"])
    loopback = is_loopback(host)
    if not loopback and token is None:
        raise SettingsError(
            [
                f"giftsync console: binding to {host} needs GIFTSYNC_CONSOLE_TOKEN (or bind to "
                "127.0.0.1 and reach it through an SSH tunnel)"
            ]
        )
    # With a token the key survives restarts (sessions stay valid); without one it is new
    # per process, and only CSRF tokens depend on it.
    key = (
        hashlib.sha256(b"giftsync-console:" + token.encode()).digest()
        if token
        else secrets.token_bytes(32)
    )
    hosts = None
    if loopback:
        hosts = frozenset(f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]"))
    return Access(token=token, key=key, hosts=hosts)


def same_origin(request: Request) -> bool:
    """The POST came from a page of this console (Origin, or Referer when Origin is absent).

    Hosts are compared, not schemes: behind a proxy that ends TLS the browser's origin is
    https while this process sees http, and the host is what tells sites apart.
    """
    own = request.headers.get("host", "")
    origin = request.headers.get("origin") or request.headers.get("referer", "")
    return bool(own) and urlsplit(origin).netloc == own


def refused_post(request: Request, access: Access, form: dict[str, str]) -> Response | None:
    """Why a state-changing POST is refused, or None when it may go ahead."""
    if not access.host_ok(request):
        return PlainTextResponse("unknown host\n", status_code=421)
    if access.bearer_ok(request):
        return None
    if not access.browser_ok(request):
        return PlainTextResponse("unauthorized\n", status_code=401)
    csrf_ok = hmac.compare_digest(form.get("csrf", "").encode(), access.csrf.encode())
    if not (csrf_ok and same_origin(request)):
        log.warning("console_csrf_refused", path=request.url.path)
        return PlainTextResponse("forbidden: not a request from this console\n", 403)
    return None
