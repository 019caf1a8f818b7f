"""Who may use the operator console, and how a browser proves it.

* Bound to loopback (the default), the page is open to whoever can reach that port on this
  machine. Requests must name the loopback address in ``Host``, so a web page that rebinds
  its own DNS name to 127.0.0.1 cannot read the console through the operator's browser.
* Bound anywhere else, ``GIFTSYNC_CONSOLE_TOKEN`` (16 characters or more) is required: the
  console refuses to start without it. A client presents it as ``Authorization: Bearer``; a
  browser posts it once to ``/login`` and gets a session cookie (HttpOnly, SameSite=Strict,
  Secure over HTTPS) holding a random session id, never the token nor anything derived from
  it. Sessions live in this process (:class:`Sessions`): logging out ends one at once, a
  restart ends all, each ends after ``SESSION_SECONDS``.
* Failed logins are throttled per client address (:class:`LoginThrottle`). Behind a proxy
  that ends TLS, ``GIFTSYNC_CONSOLE_TRUSTED_PROXIES`` names it: only then are its
  ``X-Forwarded-For`` (the client address) and ``X-Forwarded-Proto`` (https: the cookie is
  Secure) believed.
* Replay is a POST, accepted from a browser only with the page's CSRF token (an HMAC under
  a random per-process key; unknown to other sites, who cannot read the page) and an
  ``Origin`` (or ``Referer``) of the console itself. A bearer-token client needs neither: it
  carries no ambient credential a forged request could borrow.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
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


# A browser session lasts a working day.
SESSION_SECONDS = 12 * 3600
# Sessions held at once; past this the oldest is ended (bounds what logins can make us hold).
MAX_SESSIONS = 1000
# Failed logins allowed per client address in LOGIN_WINDOW_SECONDS; then 429 until it passes.
MAX_FAILED_LOGINS = 5
LOGIN_WINDOW_SECONDS = 300
# Client addresses whose failures are remembered at once (the oldest is forgotten first).
MAX_THROTTLED_CLIENTS = 10_000


def _digest(session_id: str) -> bytes:
    # Stored hashed: the table in memory never holds a usable cookie value.
    return hashlib.sha256(session_id.encode("utf-8", "replace")).digest()


class Sessions:
    """Browser sessions of this process: random ids, ended by logout, expiry or restart."""

    def __init__(self, lifetime: float = SESSION_SECONDS, limit: int = MAX_SESSIONS) -> None:
        self._lifetime = lifetime
        self._limit = limit
        self._expiry: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    def start(self) -> str:
        """A new session's id (the cookie value)."""
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            self._expiry[_digest(session_id)] = time.monotonic() + self._lifetime
            while len(self._expiry) > self._limit:
                self._expiry.popitem(last=False)
        return session_id

    def valid(self, session_id: str) -> bool:
        """``session_id`` is a live session."""
        if not session_id:
            return False
        key = _digest(session_id)
        with self._lock:
            expiry = self._expiry.get(key)
            if expiry is None:
                return False
            if expiry < time.monotonic():
                del self._expiry[key]
                return False
            return True

    def end(self, session_id: str) -> None:
        """End the session (logout); unknown ids are ignored."""
        with self._lock:
            self._expiry.pop(_digest(session_id), None)


class LoginThrottle:
    """Failed logins per client address in a sliding window."""

    def __init__(
        self, limit: int = MAX_FAILED_LOGINS, window: float = LOGIN_WINDOW_SECONDS
    ) -> None:
        self._limit = limit
        self._window = window
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, client: str) -> int:
        """Seconds ``client`` must wait before trying again (0: it may try now)."""
        now = time.monotonic()
        with self._lock:
            failures = self._failures.get(client)
            if failures is None:
                return 0
            while failures and failures[0] <= now - self._window:
                failures.popleft()
            if len(failures) < self._limit:
                return 0
            return max(1, math.ceil(failures[0] + self._window - now))

    def failed(self, client: str) -> None:
        """Count one failed login by ``client``."""
        with self._lock:
            failures = self._failures.pop(client, None) or deque(maxlen=self._limit)
            failures.append(time.monotonic())
            self._failures[client] = failures
            while len(self._failures) > MAX_THROTTLED_CLIENTS:
                self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        """Forget ``client``'s failures."""
        with self._lock:
            self._failures.pop(client, None)


@dataclass(frozen=True)
class Access:
    """Who may use the console, its sessions, and the key its CSRF tokens are derived under."""

    token: str | None
    key: bytes
    # Loopback binds: the only Host headers answered (None: any, the token guards).
    hosts: frozenset[str] | None
    sessions: Sessions = field(default_factory=Sessions)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    # Proxies whose X-Forwarded-For and X-Forwarded-Proto are believed.
    trusted_proxies: tuple[str, ...] = ()

    @property
    def csrf(self) -> str:
        return hmac.new(self.key, b"csrf", hashlib.sha256).hexdigest()

    def token_ok(self, given: str) -> bool:
        """``given`` is the console token (compared in constant time)."""
        if self.token is None:
            return False
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.token.encode())

    def bearer_ok(self, request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.token_ok(value)

    def browser_ok(self, request: Request) -> bool:
        """Open on loopback without a token; else a live session cookie."""
        if self.token is None:
            return True
        return self.sessions.valid(request.cookies.get(COOKIE, ""))

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
    hosts = None
    if loopback:
        hosts = frozenset(f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]"))
    return Access(
        token=token,
        key=secrets.token_bytes(32),
        hosts=hosts,
        trusted_proxies=settings.console_trusted_proxies,
    )


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
