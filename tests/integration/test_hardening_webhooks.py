"""The webhook receiver and the ingest port against what an outsider would try.

Replays with a fresh delivery header, signed bodies that are not deliveries, bodies too big
to read, timing that would tell a known tenant from an unknown one, tenant names on the
public ``/metrics``; and the receiver's own log (JSON, every delivery, never a secret). Real
Redis, real HTTP on loopback; what was enqueued is read from dramatiq's queue in Redis.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from benchmarks.deployment import Deployment, deployment, tenant_table
from giftsync import ingest, webhooks
from giftsync.serving import Limits, serve_in_thread
from giftsync.settings import Settings, get_settings
from giftsync.waiting import wait_for
from producers.signing import signed_headers
from tests.deploy.processes import free_port, role

pytestmark = pytest.mark.integration

SECRET = "whsec-hardening-hope"
INGEST_SECRET = "ingest-hardening-hope"
TENANT = "hope-shelter"
ENV = {"WEBHOOK_SECRET_HOPE": SECRET, "INGEST_SECRET_HOPE": INGEST_SECRET}
LIMITS = Limits(head_seconds=2, body_seconds=1, max_body_bytes=webhooks.MAX_BODY_BYTES)


def tenants(url: str) -> str:
    return tenant_table(
        TENANT,
        url,
        "VIRTUOUS_TOKEN_HOPE",
        webhook_secret_env="WEBHOOK_SECRET_HOPE",
        ingest_secret_env="INGEST_SECRET_HOPE",
    )


def sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


@dataclass
class Receiver:
    dep: Deployment
    settings: Settings
    url: str  # the tenant's subscription URL

    def deliver(self, body: bytes, **headers: str) -> httpx.Response:
        signed = {self.settings.webhook_signature_header: sign(body), **headers}
        return httpx.post(self.url, content=body, headers=signed, timeout=10)

    def queued(self) -> list[dict[str, Any]]:
        raw = self.dep.redis.hvals(self.dep.key("dramatiq", "confirm.msgs"))
        return [json.loads(message)["kwargs"] for message in raw]

    def healthy(self) -> bool:
        base = self.url.split("/v1/", 1)[0]
        return httpx.get(f"{base}/healthz", timeout=5).status_code == 200


@pytest.fixture
def receiver(tmp_path: Path, redis_url: str) -> Iterator[Receiver]:
    with deployment(tmp_path, redis_url, tenants=tenants, env=ENV) as dep:
        settings = get_settings()
        app = webhooks.create_app(settings)
        with serve_in_thread(app, name="webhooks", limits=LIMITS) as base:
            url = webhooks.subscription_url(base, settings, settings.tenant(TENANT))
            yield Receiver(dep, settings, url)


DELIVERY: dict[str, Any] = {
    "event": "GiftCreate",
    "gift": {"id": 424242, "transactionSource": "WeGive", "transactionId": "1"},
}


def test_a_captured_delivery_with_a_fresh_delivery_header_is_a_replay(receiver: Receiver) -> None:
    body = json.dumps(DELIVERY).encode()
    first = receiver.deliver(body, **{"X-Virtuous-Delivery": "d-1"})
    again = receiver.deliver(body, **{"X-Virtuous-Delivery": "d-2-forged"})
    bare = receiver.deliver(body)
    assert (first.status_code, again.status_code, bare.status_code) == (202, 200, 200)
    assert len(receiver.queued()) == 1
    # Another delivery (other bytes) is not a replay, whatever its header says.
    other = json.dumps({**DELIVERY, "gift": {**DELIVERY["gift"], "id": 7}}).encode()
    assert receiver.deliver(other, **{"X-Virtuous-Delivery": "d-1"}).status_code == 202
    assert len(receiver.queued()) == 2
    assert receiver.healthy()


def test_unknown_events_and_any_spelling_of_known_ones_are_answered_2xx(
    receiver: Receiver,
) -> None:
    # Virtuous retries whatever is not 2xx: an event giftsync does not act on is still taken.
    answers = {
        event: receiver.deliver(json.dumps({**DELIVERY, "event": event}).encode())
        for event in ("SomethingNew", "GIFTCREATE", "gift_delete", "contactUpdate")
    }
    assert {event: a.status_code for event, a in answers.items()} == dict.fromkeys(answers, 202)
    assert [a.json()["event"] for a in answers.values()] == [
        "other",
        "giftCreate",
        "giftDelete",
        "contactUpdate",
    ]
    assert len(receiver.queued()) == len(answers)


@pytest.mark.parametrize(
    ("body", "path", "reason"),
    [
        (b"[1, 2, 3]", "$", "must be a JSON object"),
        (b"null", "$", "must be a JSON object"),
        (b'"GiftCreate"', "$", "must be a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "$", "nested"),
        (b'{"a":' * 600 + b"1" + b"}" * 600, "$", "nested more than"),
        (b'{"event": "GiftCreate", "event": "ContactUpdate"}', "$", "duplicate key 'event'"),
        (b'{"event": 5}', "event", "must be a string"),
        (b'{"gift": [1]}', "gift", "must be an object"),
        (b'{"models": {"gift": {}}}', "models", "must be a list"),
        (b'{"models": [{"gift": {}}, 3]}', "models[1]", "must be an object"),
        (b"\xff\xfe{}", "$", "not UTF-8"),
        (b'{"event": NaN}', "$", "invalid JSON"),
    ],
    ids=[
        "list",
        "null",
        "string",
        "nested-100000",
        "nested-600",
        "duplicate-key",
        "event-type",
        "gift-type",
        "models-type",
        "model-type",
        "not-utf8",
        "nan",
    ],
)
def test_a_signed_body_that_is_not_a_delivery_gets_400_naming_the_field(
    receiver: Receiver, body: bytes, path: str, reason: str
) -> None:
    answer = receiver.deliver(body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["errors"][0]
    assert error["path"] == path and reason in error["reason"], error
    assert receiver.queued() == []
    assert receiver.healthy()


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(receiver: Receiver) -> None:
    parts = urlsplit(receiver.url)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Length: {300 * 1024 * 1024}\r\n\r\n"
    )
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(head.encode())
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert receiver.healthy()


def _half_sent(url: str, headers: dict[str, str]) -> tuple[bytes, float]:
    """POST 10 bytes of a declared 100 and stall: the answer and how long it took."""
    parts = urlsplit(url)
    lines = [f"POST {parts.path} HTTP/1.1", "Host: 127.0.0.1", "Content-Length: 100"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    started = time.monotonic()
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + b'{"event":1')
        answer = sock.recv(4096)
    return answer.split(b"\r\n", 1)[0], time.monotonic() - started


def test_known_and_unknown_tenants_are_answered_alike(receiver: Receiver) -> None:
    known = receiver.url
    unknown = known.replace(f"/{TENANT}/", "/no-such-tenant/")
    # Both wait for the body they declared, and are cut at the same deadline.
    (known_line, known_took), (unknown_line, unknown_took) = (
        _half_sent(known, {}),
        _half_sent(unknown, {}),
    )
    assert known_line == unknown_line == b"HTTP/1.1 408 Request Timeout"
    assert abs(known_took - unknown_took) < 0.5
    # Complete but unsigned: the same bare 401.
    body = b"{}"
    answers = [httpx.post(url, content=body, timeout=5) for url in (known, unknown)]
    assert [(a.status_code, a.text) for a in answers] == [(401, "unauthorized")] * 2


def test_ingest_known_and_unknown_tenants_are_answered_alike(
    tmp_path: Path, redis_url: str
) -> None:
    with deployment(tmp_path, redis_url, tenants=tenants, env=ENV) as dep:
        del dep
        settings = get_settings()
        app = ingest.create_app(settings)
        with serve_in_thread(app, name="ingest", limits=LIMITS) as base:
            url = f"{base}/v1/changes"
            results = []
            for tenant in (TENANT, "no-such-tenant"):
                headers = signed_headers(tenant, b"a guess", b"{}")
                results.append(_half_sent(url, headers))
            assert results[0][0] == results[1][0] == b"HTTP/1.1 408 Request Timeout"
            assert abs(results[0][1] - results[1][1]) < 0.5
            answers = [
                httpx.post(url, content=b"{}", headers=signed_headers(t, b"a guess", b"{}"))
                for t in (TENANT, "no-such-tenant")
            ]
            assert [(a.status_code, a.text) for a in answers] == [(401, "unauthorized\n")] * 2


def test_public_metrics_name_no_tenant(receiver: Receiver) -> None:
    body = json.dumps(DELIVERY).encode()
    assert receiver.deliver(body).status_code == 202
    assert receiver.deliver(b"[]").status_code == 400
    base = receiver.url.split("/v1/", 1)[0]
    hooks = httpx.get(f"{base}/metrics", timeout=5).text
    with serve_in_thread(ingest.create_app(receiver.settings), name="ingest") as ingest_url:
        changes = httpx.get(f"{ingest_url}/metrics", timeout=5).text
    for text in (hooks, changes):
        assert TENANT not in text and "tenant=" not in text
    # The counts are still there, summed over tenants.
    assert 'giftsync_webhooks_received_total{event="giftCreate",outcome="accepted"}' in hooks
    assert "giftsync_ingest_requests_total" in changes


def test_the_receiver_logs_its_start_and_every_delivery_as_json_without_secrets(
    tmp_path: Path, redis_url: str
) -> None:
    with deployment(tmp_path, redis_url, tenants=tenants, env=ENV) as dep:
        assert dep.log_dir is not None
        port = free_port()
        log = dep.log_dir / "webhooks.log"
        argv = ["webhooks", "--host", "127.0.0.1", "--port", str(port)]
        with role(argv, dep.env, log) as proc:
            base = f"http://127.0.0.1:{port}"

            def up() -> bool:
                assert proc.poll() is None, log.read_text()
                try:
                    return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(up, timeout=30, interval=0.1, what="the receiver to start")
            settings = get_settings()
            url = webhooks.subscription_url(base, settings, settings.tenant(TENANT))
            header = settings.webhook_signature_header
            body = json.dumps(DELIVERY).encode()
            sent = [
                httpx.post(url, content=body, headers={header: sign(body)}),
                httpx.post(url, content=body, headers={header: sign(body)}),
                httpx.post(url, content=body, headers={header: sign(b"other")}),
                httpx.post(url.rsplit("/", 1)[0] + "/wrong", content=body),
                httpx.post(url.replace(TENANT, "nobody"), content=body),
                httpx.post(url, content=b"[]", headers={header: sign(b"[]")}),
            ]
            assert [a.status_code for a in sent] == [202, 200, 401, 401, 401, 400]

            def lines() -> list[dict[str, Any]]:
                # Every line is JSON; the receiver's own events are the ones checked here
                # (uvicorn's lines, also JSON, come from its own loggers).
                every = [json.loads(line) for line in log.read_text().splitlines() if line]
                return [e for e in every if str(e.get("logger", "")).startswith("giftsync")]

            wait_for(lambda: len(lines()) >= 7, timeout=10, what="the log lines")
        text = log.read_text()
    events = lines()
    assert events[0]["event"] == "webhooks_starting" and events[0]["port"] == port
    decided = [(e["event"], e.get("reason")) for e in events[1:]]
    assert decided == [
        ("webhook_accepted", None),
        ("webhook_refused", "replayed"),
        ("webhook_refused", "bad_signature"),
        ("webhook_refused", "bad_path_token"),
        ("webhook_refused", "unknown_tenant"),
        ("webhook_refused", "bad_delivery"),
    ]
    assert all(e.get("tenant") in (TENANT, None) for e in events[1:])
    token = url.rsplit("/", 1)[1]
    for value in (SECRET, sign(body), token, "nobody"):
        assert value not in text
