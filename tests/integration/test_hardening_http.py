"""Slow and greedy clients against every HTTP role, over real sockets on loopback.

Each attack is made as an attacker would make it (raw sockets that send half a request and
stall, bodies that trickle or never end, more connections than the process has descriptors)
and each test shows it refused while the role's health route still answers.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from benchmarks.deployment import REPO
from giftsync import ingest, webhooks
from giftsync.console import create_app as console_app
from giftsync.console_access import access_for
from giftsync.serving import Limits, serve_in_thread
from giftsync.settings import Settings, load_settings
from giftsync.waiting import wait_for
from tests.deploy.processes import free_port
from workers.observe import metrics_server

pytestmark = pytest.mark.integration

TENANTS = """
[tenants.alpha]
virtuous_base_url = "http://127.0.0.1:1"
virtuous_token_env = "VIRTUOUS_TOKEN_ALPHA"
timezone = "UTC"
ingest_secret_env = "GS_HARDEN_INGEST"
webhook_secret_env = "GS_HARDEN_WEBHOOK"
"""
TOKEN = "console-token-for-hardening-tests"
LIMITS = Limits(head_seconds=1, body_seconds=1, idle_seconds=1, max_connections=20)


def settings_for(tmp_path: Path, redis_url: str) -> Settings:
    config = tmp_path / "tenants.toml"
    config.write_text(TENANTS, encoding="utf-8")
    return load_settings(
        {
            "GIFTSYNC_CONFIG": str(config),
            "REDIS_URL": redis_url,
            "GIFTSYNC_PREFIX": "gs-harden",
            "GS_HARDEN_INGEST": "ingest-secret-0123456789",
            "GS_HARDEN_WEBHOOK": "webhook-secret-0123456789",
            "GIFTSYNC_CONSOLE_TOKEN": TOKEN,
        }
    )


# role -> (app factory, a route that answers 200 when the role is healthy, a POST route)
Factory = Callable[[Settings], ASGIApp]
ROLES: dict[str, tuple[Factory, str, str]] = {
    "ingest": (ingest.create_app, "/healthz", "/v1/changes"),
    "webhooks": (webhooks.create_app, "/healthz", "/v1/virtuous/alpha/x"),
    "console": (
        lambda s: console_app(access_for(replace(s, console_token=TOKEN), "0.0.0.0", 1)),
        "/healthz",
        "/login",
    ),
    "metrics": (lambda s: metrics_server.create_app(CollectorRegistry()), "/metrics", "/metrics"),
}


@pytest.fixture(params=sorted(ROLES))
def served(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str) -> Iterator[Role]:
    factory, health, post = ROLES[request.param]
    app = factory(settings_for(tmp_path, redis_url))
    with serve_in_thread(app, name=request.param, limits=LIMITS) as url:
        yield Role(url, health, post)


class Role:
    def __init__(self, url: str, health: str, post: str) -> None:
        parts = urlsplit(url)
        self.url, self.health, self.post = url, health, post
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)

    def healthy(self) -> bool:
        return httpx.get(self.url + self.health, timeout=3).status_code == 200

    def connect(self, first: bytes = b"") -> socket.socket:
        sock = socket.create_connection(self.address, timeout=5)
        if first:
            sock.sendall(first)
        return sock


def closed_by_server(sock: socket.socket, within: float) -> bytes | None:
    """What the server sent before closing ``sock``, or None if it stayed open ``within``."""
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return received


HALF_HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def test_stalled_request_heads_are_cut_and_the_role_answers_meanwhile(served: Role) -> None:
    with ExitStack() as stack:
        stalled = [stack.enter_context(served.connect(HALF_HEAD)) for _ in range(60)]
        # Three times the connection cap is stalled, and the health route still answers at once.
        started = time.monotonic()
        assert served.healthy()
        assert time.monotonic() - started < 1
        for sock in stalled[-5:]:
            assert closed_by_server(sock, within=LIMITS.head_seconds + 2) is not None


def test_a_head_sent_a_byte_at_a_time_is_cut_at_the_head_deadline(served: Role) -> None:
    with served.connect(b"GET / HTTP/1.1\r\n") as sock:
        started = time.monotonic()
        with suppress(OSError):
            while time.monotonic() - started < LIMITS.head_seconds + 3:
                sock.sendall(b"X")  # each byte well inside any idle timeout
                time.sleep(0.1)
        assert time.monotonic() - started < LIMITS.head_seconds + 3
        assert served.healthy()


def test_a_trickling_body_gets_408_and_the_connection_is_closed(served: Role) -> None:
    head = f"POST {served.post} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n"
    with served.connect(head.encode() + b"{") as sock:
        answer = closed_by_server(sock, within=LIMITS.body_seconds + 2)
    assert answer is not None and answer.startswith(b"HTTP/1.1 408"), answer
    assert served.healthy()


def test_a_declared_huge_body_is_refused_before_a_byte_of_it_is_sent(served: Role) -> None:
    size = 300 * 1024 * 1024
    head = f"POST {served.post} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {size}\r\n\r\n"
    with served.connect(head.encode()) as sock:
        answer = closed_by_server(sock, within=2)
    assert answer is not None and answer.startswith(b"HTTP/1.1 413"), answer
    assert served.healthy()


def test_an_endless_chunked_body_stops_being_read_at_the_limit(served: Role) -> None:
    head = f"POST {served.post} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    sent = 0
    with served.connect(head.encode()) as sock:
        with suppress(OSError):
            while sent < 64 * 1024 * 1024:  # far past every role's limit
                sock.sendall(chunk)
                sent += len(chunk)
        answer = closed_by_server(sock, within=3)
    assert sent < 64 * 1024 * 1024, "the server read on past its limit"
    assert answer is None or answer == b"" or answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert served.healthy()


def test_a_body_of_any_size_under_the_limit_still_goes_through(tmp_path: Path) -> None:
    from giftsync.serving import BodyGuard

    seen: list[bytes] = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        message = await receive()
        seen.append(message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limits = replace(LIMITS, max_body_bytes=1000)
    guarded: ASGIApp = BodyGuard(app, limits)
    with serve_in_thread(guarded, name="guard", limits=limits) as url:
        body = b"y" * 1000
        chunks = (body[i : i + 7] for i in range(0, len(body), 7))
        assert httpx.post(url, content=chunks, timeout=5).status_code == 200
        assert httpx.post(url, content=body + b"!", timeout=5).status_code == 413
    assert seen == [body]


# A role in a process of its own with few descriptors, for the out-of-files tests. argv:
# port, then "capped" (the cap follows the descriptor limit, as deployed) or "uncapped" (as
# if it did not, to reach the out-of-descriptors path).
_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from giftsync.logs import configure_logging
    from giftsync.serving import Limits, serve_forever

    async def healthz(request):
        return PlainTextResponse("ok")

    if sys.argv[2] == "uncapped":
        Limits.connection_cap = lambda self: self.max_connections
        Limits.backlog = lambda self: 2048
    configure_logging("INFO")
    app = Starlette(routes=[Route("/healthz", healthz)])
    limits = Limits(head_seconds=2, max_connections=10_000)
    serve_forever(app, "127.0.0.1", int(sys.argv[1]), limits)
    """
)


def _answers(role: Role) -> bool:
    try:
        return role.healthy()
    except httpx.HTTPError:
        return False


@contextmanager
def small_process(tmp_path: Path, mode: str) -> Iterator[tuple[Role, Path]]:
    port = free_port()
    log = tmp_path / f"{mode}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, str(port), mode],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    role = Role(f"http://127.0.0.1:{port}", "/healthz", "/healthz")

    def up() -> bool:
        assert proc.poll() is None, log.read_text()
        return _answers(role)

    try:
        wait_for(up, timeout=20, interval=0.1, what="the small role to start")
        yield role, log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _open_many(role: Role, stack: ExitStack, count: int) -> None:
    for _ in range(count):
        with suppress(OSError):
            stack.enter_context(role.connect(HALF_HEAD))


def test_connections_past_the_descriptor_limit_evict_stalled_ones(tmp_path: Path) -> None:
    with small_process(tmp_path, "capped") as (role, log), ExitStack() as stack:
        _open_many(role, stack, 300)
        # The cap stays under the 128 descriptors: health answers at once, nothing ran out.
        started = time.monotonic()
        assert role.healthy()
        assert time.monotonic() - started < 2
    assert "out_of_descriptors" not in log.read_text()


def test_running_out_of_descriptors_is_logged_quietly_and_the_role_recovers(
    tmp_path: Path,
) -> None:
    with small_process(tmp_path, "uncapped") as (role, log), ExitStack() as stack:
        _open_many(role, stack, 300)
        wait_for(
            lambda: "out_of_descriptors" in log.read_text(),
            timeout=10,
            what="the out-of-descriptors line",
        )
        # Stalled heads are cut after 2 s, freeing descriptors: health answers again.
        wait_for(lambda: _answers(role), timeout=15, what="health to answer again")
        # Keep the pressure on for a while: the log must stay small.
        _open_many(role, stack, 200)
        wait_for(lambda: _answers(role), timeout=15, what="health to answer again")
    text = log.read_text()
    assert len(text) < 20_000, f"{len(text)} characters of log"
    assert "Traceback" not in text
