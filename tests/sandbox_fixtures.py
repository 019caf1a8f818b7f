"""Fixtures and helpers for tests that run against the Virtuous sandbox over loopback.

Use from a test module with ``pytest_plugins = ["tests.sandbox_fixtures"]``. ``sandbox`` is one
server per test module, reset before each test, so tests never see each other's records.

- ``sandbox``: a running sandbox with two small organisations (``alpha`` with two tokens,
  ``beta`` with one); ``make_sandbox(config)``: one with any config.
- ``api`` / ``beta_api``: httpx clients carrying alpha's / beta's token; ``admin``: no token.
- ``receiver``: a tiny HTTP server on loopback that records webhook deliveries.

Test modules also import the helpers below, before pytest loads this module as a plugin, so
it opts out of assertion rewriting (PYTEST_DONT_REWRITE) instead of warning about it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from sandbox import OrgConfig, RunningSandbox, SandboxConfig, start_sandbox

TOKEN_A = "token-alpha-1"
TOKEN_A2 = "token-alpha-2"
TOKEN_B = "token-beta-1"
PROJECTS = {101: "GEN", 102: "FOOD", 103: "SHELTER", 88: "FEES"}
SEGMENTS = {201: "GIVINGDAY", 202: "YEAREND"}


def small_config(alpha: dict[str, Any] | None = None, **settings: Any) -> SandboxConfig:
    """Two organisations; ``alpha`` overrides alpha's ``OrgConfig`` fields."""
    orgs = [
        OrgConfig(
            name="alpha",
            tokens=[TOKEN_A, TOKEN_A2],
            projects=dict(PROJECTS),
            segments=dict(SEGMENTS),
            **(alpha or {}),
        ),
        OrgConfig(name="beta", tokens=[TOKEN_B], projects=dict(PROJECTS), segments=dict(SEGMENTS)),
    ]
    return SandboxConfig(orgs=orgs, **settings)


def gift_transaction(tid: str, amount: str = "10.00", **fields: Any) -> dict[str, Any]:
    """A valid Gift Transaction (batch-path shape) for alpha, overridable field by field."""
    body: dict[str, Any] = {
        "transactionSource": "WeGive",
        "transactionId": tid,
        "giftDate": "2026-11-20",
        "giftType": "Credit",
        "amount": amount,
        "designations": [{"id": 101, "amountDesignated": amount}],
    }
    body.update(fields)
    return body


def seed_contacts(admin: httpx.Client, org: str, *contacts: dict[str, Any]) -> list[int]:
    """Create existing Contacts through the admin API; their ids in order."""
    response = admin.post("/_admin/contacts", json={"org": org, "contacts": list(contacts)})
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["contacts"]]


def org_stats(admin: httpx.Client, org: str = "alpha") -> dict[str, Any]:
    stats: dict[str, Any] = admin.get("/_admin/stats").json()["orgs"][org]
    return stats


@pytest.fixture
def make_sandbox() -> Iterator[Callable[[SandboxConfig], RunningSandbox]]:
    """A factory: start sandboxes with any config; all are stopped after the test."""
    running: list[RunningSandbox] = []

    def start(config: SandboxConfig) -> RunningSandbox:
        sb = start_sandbox(config)
        running.append(sb)
        return sb

    yield start
    for sb in running:
        sb.stop()


@pytest.fixture(scope="module")
def shared_sandbox() -> Iterator[RunningSandbox]:
    """One server per test module (starting and stopping one costs ~0.2 s)."""
    sb = start_sandbox(small_config())
    yield sb
    sb.stop()


@pytest.fixture
def sandbox(shared_sandbox: RunningSandbox) -> RunningSandbox:
    """The module's server, reset to its start: no records, counts, faults or webhooks."""
    shared_sandbox.state.reset()
    return shared_sandbox


def client(sb: RunningSandbox, token: str | None = TOKEN_A, timeout: float = 10.0) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=sb.url, headers=headers, timeout=timeout)


@pytest.fixture
def api(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    with client(sandbox) as c:
        yield c


@pytest.fixture
def beta_api(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    with client(sandbox, TOKEN_B) as c:
        yield c


@pytest.fixture
def admin(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    with client(sandbox, None) as c:
        yield c


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """Records every POST; answers ``fail_first`` of them with 500 first."""

    url: str
    received: list[Received] = field(default_factory=list)
    fail_first: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [r.body for r in self.received]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A webhook receiver on a free loopback port."""
    state: dict[str, WebhookReceiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            rec = state["receiver"]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with rec.lock:
                rec.received.append(Received(self.path, dict(self.headers.items()), body))
                failing = rec.fail_first > 0
                if failing:
                    rec.fail_first -= 1
            self.send_response(500 if failing else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["receiver"] = WebhookReceiver(f"http://127.0.0.1:{server.server_address[1]}/hook")
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    yield state["receiver"]
    server.shutdown()
    server.server_close()
