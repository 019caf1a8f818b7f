"""The console's sessions against what an attacker would try, over real HTTP on loopback.

A cookie no browser would send, guessing the token, reusing a cookie after logout, a cookie
sent in the clear behind a TLS proxy, forwarded headers from someone who is not the proxy,
and a body too big for any form: each refused, and the console still answers.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from benchmarks.deployment import Deployment, deployment, tenant_table
from giftsync.console import MAX_FORM_BYTES, create_app
from giftsync.console_access import COOKIE, MAX_FAILED_LOGINS, Access, access_for
from giftsync.serving import Limits, serve_in_thread
from giftsync.settings import get_settings
from tests.deploy.processes import free_port

pytestmark = pytest.mark.integration

TOKEN = "console-token-hardening-0123456789"


def tenants(url: str) -> str:
    return tenant_table("hope-shelter", url, "VIRTUOUS_TOKEN_HOPE")


@pytest.fixture
def wired(tmp_path: Path, redis_url: str) -> Iterator[Deployment]:
    with deployment(tmp_path, redis_url, tenants=tenants) as dep:
        yield dep


@contextmanager
def console(proxies: tuple[str, ...] = ()) -> Iterator[tuple[httpx.Client, Access]]:
    """A token console (bound as if on 0.0.0.0) with the role's own limits, and a client."""
    port = free_port()
    settings = replace(get_settings(), console_token=TOKEN, console_trusted_proxies=proxies)
    access = access_for(settings, "0.0.0.0", port)
    limits = Limits(max_body_bytes=MAX_FORM_BYTES)
    with (
        serve_in_thread(create_app(access), port=port, name="console", limits=limits) as url,
        httpx.Client(base_url=url, follow_redirects=False, timeout=10) as web,
    ):
        yield web, access


def origin(web: httpx.Client) -> dict[str, str]:
    return {"Origin": str(web.base_url).rstrip("/")}


def login(web: httpx.Client, token: str = TOKEN, **headers: str) -> httpx.Response:
    return web.post("/login", data={"token": token}, headers={**origin(web), **headers})


def test_a_cookie_no_browser_would_send_is_refused_not_a_crash(wired: Deployment) -> None:
    with console() as (web, _):
        for value in ("é".encode(), b"\xff\xfe", "☃".encode() * 100):
            answer = web.get("/", headers=[(b"cookie", COOKIE.encode() + b"=" + value)])
            assert answer.status_code == 303 and answer.headers["location"] == "/login"
        assert web.get("/healthz").status_code == 200


def test_failed_logins_are_throttled_even_for_the_right_token(wired: Deployment) -> None:
    with console() as (web, _):
        for _ in range(MAX_FAILED_LOGINS):
            assert login(web, "wrong-guess-0123456789").status_code == 401
        throttled = login(web)  # the right token, but too late
        assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
        assert COOKIE not in throttled.cookies
        # Forwarded headers from a client that is not a configured proxy change nothing.
        spoofed = login(web, **{"X-Forwarded-For": "203.0.113.9"})
        assert spoofed.status_code == 429
        assert web.get("/healthz").status_code == 200
        assert web.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_behind_a_trusted_proxy_each_client_is_throttled_alone(wired: Deployment) -> None:
    with console(proxies=("127.0.0.1",)) as (web, _):
        attacker = {"X-Forwarded-For": "203.0.113.9"}
        for _ in range(MAX_FAILED_LOGINS):
            assert login(web, "wrong-guess-0123456789", **attacker).status_code == 401
        assert login(web, **attacker).status_code == 429
        assert login(web, **{"X-Forwarded-For": "198.51.100.7"}).status_code == 303


def test_a_session_is_random_and_ends_at_logout(wired: Deployment) -> None:
    with console() as (web, access):
        first = login(web).cookies[COOKIE]
        web.cookies.clear()
        second = login(web).cookies[COOKIE]
        assert first != second and TOKEN not in first + second
        assert web.get("/").status_code == 200
        out = web.post("/logout", data={"csrf": access.csrf}, headers=origin(web))
        assert out.status_code == 303
        # The cookie as an attacker would have captured it: dead, though the other lives.
        for cookie, alive in ((second, False), (first, True)):
            web.cookies.clear()
            web.cookies.set(COOKIE, cookie)
            assert (web.get("/").status_code == 200) is alive


def test_the_cookie_is_secure_behind_a_trusted_tls_proxy_only(wired: Deployment) -> None:
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
    with console(proxies=("127.0.0.1",)) as (web, _):
        assert "secure" in login(web, **https).headers["set-cookie"].lower()
        web.cookies.clear()
        assert "secure" not in login(web).headers["set-cookie"].lower()
    with console() as (web, _):  # no proxy configured: the header is anyone's to send
        assert "secure" not in login(web, **https).headers["set-cookie"].lower()


@pytest.mark.parametrize("path", ["/login", "/replay", "/logout", "/"])
def test_a_big_body_is_refused_before_host_or_auth_are_looked_at(
    wired: Deployment, path: str
) -> None:
    with console() as (web, _):
        address = (web.base_url.host, web.base_url.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: attacker.example\r\n"
            f"Content-Length: {300 * 1024 * 1024}\r\n\r\n"
        )
        with socket.create_connection(address, timeout=5) as sock:
            sock.sendall(head.encode())
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 413"), answer
        too_big = web.post(path, content=b"token=" + b"x" * MAX_FORM_BYTES)
        assert too_big.status_code == 413
        assert web.get("/healthz").status_code == 200
