"""The ingest service over real HTTP on loopback, with a real Redis.

Each test gets its own key prefix and its own server (``giftsync.ingest.start_ingest`` on a
free port). What a request enqueued is read straight from dramatiq's queue in Redis, so the
tests see exactly what a worker would receive.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import structlog
from prometheus_client import REGISTRY

from giftsync.examples import transaction
from giftsync.ingest import MAX_ERRORS_PER_EVENT, MAX_EVENTS, start_ingest
from giftsync.settings import Settings, load_settings
from producers import signing
from workers.queue.queues import BULK_CHANGES_QUEUE, CHANGES_QUEUE

pytestmark = pytest.mark.integration

SECRETS = {"alpha": "alpha-secret-7f3a9c", "beta": "beta-secret-21d0e4"}
MAX_BYTES = 400_000

TENANTS = """
[tenants.alpha]
virtuous_base_url = "http://127.0.0.1:1"
virtuous_token_env = "VIRTUOUS_TOKEN_ALPHA"
timezone = "America/Chicago"
ingest_secret_env = "GS_TEST_INGEST_ALPHA"

[tenants.beta]
virtuous_base_url = "http://127.0.0.1:1"
virtuous_token_env = "VIRTUOUS_TOKEN_BETA"
timezone = "America/New_York"
ingest_secret_env = "GS_TEST_INGEST_BETA"

[tenants.gamma]
virtuous_base_url = "http://127.0.0.1:1"
virtuous_token_env = "VIRTUOUS_TOKEN_GAMMA"
timezone = "UTC"
ingest_secret_env = "GS_TEST_INGEST_GAMMA_UNSET"

[tenants.delta]
virtuous_base_url = "http://127.0.0.1:1"
virtuous_token_env = "VIRTUOUS_TOKEN_DELTA"
timezone = "UTC"
"""


def make_settings(tmp_path: Path, redis_url: str, **env: str) -> Settings:
    config = tmp_path / "tenants.toml"
    config.write_text(TENANTS, encoding="utf-8")
    return load_settings(
        {
            "GIFTSYNC_CONFIG": str(config),
            "REDIS_URL": redis_url,
            "GIFTSYNC_PREFIX": f"gs-ingest-{uuid.uuid4().hex[:8]}",
            "GIFTSYNC_INGEST_MAX_BYTES": str(MAX_BYTES),
            "GS_TEST_INGEST_ALPHA": SECRETS["alpha"],
            "GS_TEST_INGEST_BETA": SECRETS["beta"],
            **env,
        }
    )


class Ingest:
    """A running ingest service and what it enqueued."""

    def __init__(self, url: str, settings: Settings, client: redis.Redis) -> None:
        self.url = url
        self.settings = settings
        self.redis = client
        self.http = httpx.Client(base_url=url, timeout=10)

    def post(
        self,
        payload: Any = None,
        *,
        body: bytes | None = None,
        tenant: str = "alpha",
        secret: str | None = None,
        now: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST /v1/changes, signed for ``tenant`` unless ``headers`` say otherwise."""
        if body is None:
            body = json.dumps(payload).encode()
        key = (secret or SECRETS.get(tenant, "no-secret")).encode()
        signed = signing.signed_headers(tenant, key, body, now=now)
        return self.http.post("/v1/changes", content=body, headers={**signed, **(headers or {})})

    def queued(self) -> list[list[dict[str, Any]]]:
        """The events of every message on the changes queues, one list per message."""
        messages = []
        for queue, actor in (
            (CHANGES_QUEUE, "map_changes"),
            (BULK_CHANGES_QUEUE, "map_bulk_changes"),
        ):
            key = f"{self.settings.key_prefix}:dramatiq:{queue}.msgs"
            found = [json.loads(raw) for raw in self.redis.hvals(key)]
            assert all(m["actor_name"] == actor for m in found)
            messages += found
        return [m["kwargs"]["events"] for m in messages]

    def queued_events(self) -> list[dict[str, Any]]:
        return [event for events in self.queued() for event in events]


@pytest.fixture
def ingest(tmp_path: Path, redis_url: str) -> Iterator[Ingest]:
    settings = make_settings(tmp_path, redis_url)
    client = redis.Redis.from_url(redis_url)
    with start_ingest(settings) as url:
        service = Ingest(url, settings, client)
        yield service
        service.http.close()
    for key in client.scan_iter(f"{settings.key_prefix}:*", count=1000):
        client.delete(key)
    client.close()


def event(tx_id: int = 1, tenant: str = "alpha", **overrides: Any) -> dict[str, Any]:
    return transaction(tenant, tx_id, **overrides)


def test_one_event_is_accepted_and_lands_on_the_changes_queue(ingest: Ingest) -> None:
    sent = event(1)
    response = ingest.post(sent)
    assert response.status_code == 202
    assert response.json() == {
        "results": [{"index": 0, "status": "accepted"}],
        "accepted": 1,
        "invalid": 0,
    }
    assert ingest.queued() == [[sent]]


def test_a_list_is_enqueued_in_chunks_of_100(ingest: Ingest) -> None:
    sent = [event(i) for i in range(1, 251)]
    response = ingest.post(sent)
    assert response.status_code == 202
    assert response.json()["accepted"] == 250
    assert sorted(len(chunk) for chunk in ingest.queued()) == [50, 100, 100]
    assert sorted(e["record"]["id"] for e in ingest.queued_events()) == list(range(1, 251))


def test_a_mixed_request_reports_both_kinds_and_still_enqueues_the_good(ingest: Ingest) -> None:
    bad = event(2, amount=-5)
    response = ingest.post([event(1), bad, event(3)])
    assert response.status_code == 400
    body = response.json()
    assert body["accepted"] == 2 and body["invalid"] == 1
    assert body["results"][0] == {"index": 0, "status": "accepted"}
    assert body["results"][2] == {"index": 2, "status": "accepted"}
    assert body["results"][1]["status"] == "invalid"
    assert [e["path"] for e in body["results"][1]["errors"]] == ["record.amount"]
    assert sorted(e["record"]["id"] for e in ingest.queued_events()) == [1, 3]


def test_an_event_for_another_tenant_is_invalid_at_tenant(ingest: Ingest) -> None:
    response = ingest.post([event(1, tenant="beta"), event(2, tenant="nobody-here")])
    assert response.status_code == 400
    for result in response.json()["results"]:
        assert result["status"] == "invalid"
        assert result["errors"][0]["path"] == "tenant"
        assert "alpha" in result["errors"][0]["reason"]
        # Nothing tells alpha whether beta or nobody-here exist.
        assert "unknown" not in result["errors"][0]["reason"]
    assert ingest.queued() == []


def test_each_tenant_signs_with_its_own_secret(ingest: Ingest) -> None:
    assert ingest.post(event(1, tenant="beta"), tenant="beta").status_code == 202
    forged = ingest.post(event(2, tenant="beta"), tenant="beta", secret=SECRETS["alpha"])
    assert forged.status_code == 401
    assert [e["record"]["id"] for e in ingest.queued_events()] == [1]


UNAUTHORIZED = {
    "no headers": {"drop": True},
    "no signature": {"headers": {signing.SIGNATURE_HEADER: ""}},
    "no timestamp": {"drop_timestamp": True},
    "unknown tenant": {"tenant": "nobody"},
    "tenant with unset secret": {"tenant": "gamma", "secret": "guess"},
    "tenant without secret setting": {"tenant": "delta", "secret": "guess"},
    "wrong secret": {"secret": "not-the-secret"},
    "stale": {"skew": -302},
    "future": {"skew": 302},
    "non-canonical timestamp": {"headers": {signing.TIMESTAMP_HEADER: "0" + str(int(time.time()))}},
    "signature of other body": {"headers": {signing.SIGNATURE_HEADER: "sha256=" + "0" * 64}},
}


@pytest.mark.parametrize("case", UNAUTHORIZED.values(), ids=UNAUTHORIZED.keys())
def test_unsigned_forged_and_stale_requests_get_a_bare_401(
    ingest: Ingest, case: dict[str, Any]
) -> None:
    body = json.dumps(event(1, tenant=case.get("tenant", "alpha"))).encode()
    if case.get("drop"):
        response = ingest.http.post("/v1/changes", content=body)
    elif case.get("drop_timestamp"):
        headers = signing.signed_headers("alpha", SECRETS["alpha"].encode(), body)
        del headers[signing.TIMESTAMP_HEADER]
        response = ingest.http.post("/v1/changes", content=body, headers=headers)
    else:
        args = {k: v for k, v in case.items() if k in ("tenant", "secret", "headers")}
        now = time.time() + case.get("skew", 0)
        response = ingest.post(body=body, now=now, **args)
    assert response.status_code == 401
    assert response.text == "unauthorized\n"
    assert ingest.queued() == []


def test_a_tampered_body_is_rejected(ingest: Ingest) -> None:
    body = json.dumps(event(1)).encode()
    headers = signing.signed_headers("alpha", SECRETS["alpha"].encode(), body)
    tampered = body.replace(b'"amount": 2500', b'"amount": 9500')
    assert tampered != body
    response = ingest.http.post("/v1/changes", content=tampered, headers=headers)
    assert response.status_code == 401
    assert ingest.queued() == []


def test_a_replayed_request_is_rejected_and_enqueues_nothing_more(ingest: Ingest) -> None:
    body = json.dumps(event(1)).encode()
    headers = signing.signed_headers("alpha", SECRETS["alpha"].encode(), body)
    first = ingest.http.post("/v1/changes", content=body, headers=headers)
    again = ingest.http.post("/v1/changes", content=body, headers=headers)
    assert (first.status_code, again.status_code) == (202, 401)
    assert len(ingest.queued()) == 1
    # The same body re-signed a second later is a new request, not a replay.
    assert ingest.post(body=body, now=time.time() + 1).status_code == 202


def test_a_body_over_the_limit_gets_413_declared_or_streamed(ingest: Ingest) -> None:
    big = json.dumps([event(i) for i in range(1, 1000)]).encode()
    assert len(big) > MAX_BYTES
    assert ingest.post(body=big).status_code == 413
    headers = signing.signed_headers("alpha", SECRETS["alpha"].encode(), big)
    chunks = (big[i : i + 4096] for i in range(0, len(big), 4096))  # no Content-Length
    response = ingest.http.post("/v1/changes", content=chunks, headers=headers)
    assert response.status_code == 413
    assert response.json()["errors"][0]["path"] == "$"
    assert ingest.queued() == []


def test_a_body_of_exactly_the_limit_is_read(ingest: Ingest) -> None:
    body = json.dumps(event(1)).encode()
    body += b" " * (MAX_BYTES - len(body))
    assert ingest.post(body=body).status_code == 202


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "invalid JSON"),
        (b'{"tenant": "alpha",', "invalid JSON"),
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        (b'{"amount": NaN}', "NaN is not a JSON number"),
        # The signature covers the bytes; which of two values counts is for no reader to pick.
        (json.dumps(event(1)).encode()[:-1] + b', "tenant": "beta"}', "duplicate key 'tenant'"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"", "invalid JSON"),
        (b"[]", "non-empty list"),
        (json.dumps([{}] * (MAX_EVENTS + 1)).encode(), f"at most {MAX_EVENTS}"),
    ],
    ids=[
        "text",
        "truncated",
        "deep",
        "nan",
        "duplicate-key",
        "utf16",
        "empty",
        "empty-list",
        "too-many",
    ],
)
def test_a_body_that_is_not_events_gets_400_at_the_root(
    ingest: Ingest, body: bytes, reason: str
) -> None:
    response = ingest.post(body=body)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors[0]["path"] == "$" and reason in errors[0]["reason"]
    assert ingest.post(event(1)).status_code == 202  # and the service is still up


def test_healthz_and_readyz(ingest: Ingest) -> None:
    assert ingest.http.get("/healthz").status_code == 200
    assert ingest.http.get("/readyz").status_code == 200


def test_readyz_is_503_without_redis_and_changes_are_not_lost_silently(tmp_path: Path) -> None:
    # A request rides through a failover this long before it gives up with a 503.
    settings = make_settings(tmp_path, "redis://127.0.0.1:1/0", GIFTSYNC_REDIS_FAILOVER_SECONDS="1")
    with start_ingest(settings) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code == 503
        body = json.dumps(event(1)).encode()
        headers = signing.signed_headers("alpha", SECRETS["alpha"].encode(), body)
        assert http.post("/v1/changes", content=body, headers=headers).status_code == 503


def test_no_secret_or_signature_reaches_a_log_line_or_answer(ingest: Ingest) -> None:
    body = json.dumps(event(1)).encode()
    good = signing.signed_headers("alpha", SECRETS["alpha"].encode(), body)
    before = REGISTRY.get_sample_value("giftsync_ingest_requests_total", {"status": "401"}) or 0
    with structlog.testing.capture_logs() as logs:
        answers = [
            ingest.http.post("/v1/changes", content=body, headers=good),
            ingest.http.post("/v1/changes", content=body, headers=good),  # replay
            ingest.post(body=body, secret="wrong"),
            ingest.post(body=body, tenant="gamma", secret="guess"),
            ingest.post([event(2, amount=-1)]),
        ]
    assert [a.status_code for a in answers] == [202, 401, 401, 401, 400]
    text = json.dumps(logs) + "".join(a.text for a in answers)
    for value in (*SECRETS.values(), good[signing.SIGNATURE_HEADER].removeprefix("sha256=")):
        assert value not in text
    reasons = [entry.get("reason") for entry in logs if entry["event"] == "ingest_unauthorized"]
    assert reasons == ["replay", "bad_signature", "no_secret"]
    after = REGISTRY.get_sample_value("giftsync_ingest_requests_total", {"status": "401"})
    assert after == before + 3


def test_an_event_with_hundreds_of_problems_gets_a_bounded_list(ingest: Ingest) -> None:
    bad = event(1)
    bad["record"]["allocations"] = [{"amount": -1}] * 300
    response = ingest.post([bad])
    assert response.status_code == 400
    errors = response.json()["results"][0]["errors"]
    assert len(errors) == MAX_ERRORS_PER_EVENT + 1
    assert errors[-1]["path"] == "$" and "more problems not listed" in errors[-1]["reason"]


def test_a_record_id_ending_in_a_newline_is_rejected(ingest: Ingest) -> None:
    bad = event(1)
    bad["record"]["id"] = "abc\n"
    assert ingest.post(bad).status_code == 400
