"""Webhooks: subscriptions through ``POST /api/Webhook``; GiftCreate (single and bulk),
ContactCreate and ContactUpdate delivered to a receiver on loopback, signed with Base64
HMAC-SHA256 of the raw body; retries; dropped deliveries for reconciliation tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest

from giftsync.waiting import wait_for
from sandbox import SIGNATURE_HEADER, RunningSandbox
from tests.sandbox_fixtures import WebhookReceiver, gift_transaction, seed_contacts

pytest_plugins = ["tests.sandbox_fixtures"]
pytestmark = pytest.mark.integration


def _subscribe(api: httpx.Client, receiver: WebhookReceiver, **flags: Any) -> dict[str, Any]:
    r = api.post("/api/Webhook", json={"payloadUrl": receiver.url, **flags})
    assert r.status_code == 200, r.text
    sub: dict[str, Any] = r.json()
    return sub


def _payloads(receiver: WebhookReceiver, count: int) -> list[dict[str, Any]]:
    wait_for(lambda: len(receiver.bodies()) >= count, what=f"{count} webhook deliveries")
    return [json.loads(b) for b in receiver.bodies()]


@pytest.fixture
def donor(admin: httpx.Client) -> int:
    return seed_contacts(
        admin,
        "alpha",
        {
            "firstName": "Ada",
            "lastName": "Lovelace",
            "referenceSource": "WeGive",
            "referenceId": "d1",
        },
    )[0]


def test_gift_create_carries_the_reference_pair_and_a_valid_signature(
    api: httpx.Client, admin: httpx.Client, receiver: WebhookReceiver, donor: int
) -> None:
    sub = _subscribe(api, receiver, secret="s3cret", giftCreate=True)
    assert (sub["giftCreate"], sub["contactCreate"], sub["secret"]) == (True, False, "s3cret")
    api.post(
        "/api/v2/Gift/Transaction", json=gift_transaction("t-77", contact={"referenceId": "d1"})
    )
    admin.post("/_admin/nightly")
    (payload,) = _payloads(receiver, 1)
    assert payload["event"] == "GiftCreate"
    gift = payload["gift"]
    assert (gift["transactionSource"], gift["transactionId"]) == ("WeGive", "t-77")
    assert gift["id"] == api.get("/api/Gift/WeGive/t-77").json()["id"]
    assert gift["contactId"] == donor
    received = receiver.received[0]
    expected = base64.b64encode(hmac.new(b"s3cret", received.body, hashlib.sha256).digest())
    assert received.headers[SIGNATURE_HEADER] == expected.decode()
    assert received.headers["X-Virtuous-Event"] == "GiftCreate"
    deliveries = admin.get("/_admin/webhooks").json()["deliveries"]
    assert wait_for(
        lambda: admin.get("/_admin/webhooks").json()["deliveries"][0]["status"] == "delivered",
        what="the first delivery marked delivered",
    )
    assert deliveries[0]["refs"] == [["WeGive", "t-77", gift["id"]]]


def test_a_generated_secret_is_returned_and_signs(
    api: httpx.Client, receiver: WebhookReceiver, donor: int
) -> None:
    sub = _subscribe(api, receiver)
    assert len(sub["secret"]) >= 16
    assert all(sub[flag] for flag in ("giftCreate", "contactCreate", "contactUpdate"))
    api.post(
        "/api/Gift",
        json={
            "contactId": donor,
            "giftDate": "2026-11-20",
            "amount": 3,
            "giftDesignations": [{"projectId": 101, "amount": 3}],
        },
    )
    (payload,) = _payloads(receiver, 1)
    assert payload["event"] == "GiftCreate"
    body = receiver.received[0].body
    digest = hmac.new(sub["secret"].encode(), body, hashlib.sha256).digest()
    assert receiver.received[0].headers[SIGNATURE_HEADER] == base64.b64encode(digest).decode()


def test_bulk_setting_delivers_one_payload_with_models(
    api: httpx.Client, admin: httpx.Client, receiver: WebhookReceiver, donor: int
) -> None:
    admin.post("/_admin/settings", json={"webhook_bulk": True})
    _subscribe(api, receiver, giftCreate=True, contactCreate=False, contactUpdate=False)
    api.post(
        "/api/v2/Gift/Transactions",
        json={
            "transactionSource": "WeGive",
            "createImport": True,
            "importName": "bulk",
            "transactions": [gift_transaction(f"b{i}", contact={"id": donor}) for i in range(3)],
        },
    )
    batch = admin.get("/_admin/imports").json()["alpha"][0]
    admin.post(f"/_admin/imports/{batch['id']}/import")
    (payload,) = _payloads(receiver, 1)
    assert payload["event"] == "GiftCreate"
    assert sorted(m["gift"]["transactionId"] for m in payload["models"]) == ["b0", "b1", "b2"]


def test_big_bulk_runs_are_split_into_deliveries_of_at_most_100(
    api: httpx.Client, admin: httpx.Client, receiver: WebhookReceiver, donor: int
) -> None:
    admin.post("/_admin/settings", json={"webhook_bulk": True})
    _subscribe(api, receiver, giftCreate=True)
    api.post(
        "/api/v2/Gift/Transactions",
        json={
            "transactions": [gift_transaction(f"b{i}", contact={"id": donor}) for i in range(150)]
        },
    )
    admin.post("/_admin/nightly")
    payloads = _payloads(receiver, 2)
    assert sorted(len(p["models"]) for p in payloads) == [50, 100]
    assert len({m["gift"]["transactionId"] for p in payloads for m in p["models"]}) == 150


def test_single_setting_delivers_one_payload_per_gift(
    api: httpx.Client, admin: httpx.Client, receiver: WebhookReceiver, donor: int
) -> None:
    _subscribe(api, receiver, giftCreate=True)
    for i in range(3):
        api.post("/api/v2/Gift/Transaction", json=gift_transaction(f"s{i}", contact={"id": donor}))
    admin.post("/_admin/nightly")
    payloads = _payloads(receiver, 3)
    assert sorted(p["gift"]["transactionId"] for p in payloads) == ["s0", "s1", "s2"]
    assert all("models" not in p for p in payloads)


def test_contact_create_and_update_fire(
    api: httpx.Client, admin: httpx.Client, receiver: WebhookReceiver, donor: int
) -> None:
    _subscribe(api, receiver, giftCreate=False, contactCreate=True, contactUpdate=True)
    api.post(
        "/api/Contact/Transaction",
        json={
            "referenceSource": "WeGive",
            "referenceId": "n1",
            "firstName": "New",
            "lastName": "Person",
        },
    )
    api.post(
        "/api/Contact/Transaction",
        json={"referenceSource": "WeGive", "referenceId": "d1", "email": "ada@new.org"},
    )
    admin.post("/_admin/nightly")
    payloads = _payloads(receiver, 2)
    by_event = {p["event"]: p["contact"] for p in payloads}
    assert by_event["ContactCreate"]["contactReferences"] == [{"source": "WeGive", "id": "n1"}]
    assert by_event["ContactUpdate"]["id"] == donor


def test_failed_deliveries_are_retried(
    api: httpx.Client, admin: httpx.Client, receiver: WebhookReceiver, donor: int
) -> None:
    receiver.fail_first = 2
    _subscribe(api, receiver, giftCreate=True)
    api.post(
        "/api/Gift",
        json={
            "contactId": donor,
            "giftDate": "2026-11-20",
            "amount": 3,
            "giftDesignations": [{"projectId": 101, "amount": 3}],
        },
    )
    _payloads(receiver, 3)

    def delivered() -> dict[str, Any] | None:
        deliveries = admin.get("/_admin/webhooks").json()["deliveries"]
        return next((d for d in deliveries if d["status"] == "delivered"), None)

    assert wait_for(delivered, what="a delivered status")["attempts"] == 3


def test_dropped_deliveries_are_recorded_and_never_sent(
    sandbox: RunningSandbox,
    api: httpx.Client,
    beta_api: httpx.Client,
    admin: httpx.Client,
    receiver: WebhookReceiver,
    donor: int,
) -> None:
    admin.post("/_admin/faults", json={"org": "alpha", "webhook_drop_rate": 1.0})
    _subscribe(api, receiver, giftCreate=True)
    _subscribe(beta_api, receiver, giftCreate=True)
    (beta_donor,) = seed_contacts(admin, "beta", {"lastName": "Beta"})
    api.post(
        "/api/Gift",
        json={
            "contactId": donor,
            "giftDate": "2026-11-20",
            "amount": 3,
            "giftDesignations": [{"projectId": 101, "amount": 3}],
        },
    )
    beta_api.post(
        "/api/Gift",
        json={
            "contactId": beta_donor,
            "giftDate": "2026-11-20",
            "amount": 4,
            "giftDesignations": [{"projectId": 101, "amount": 4}],
        },
    )
    # Beta's delivery went after alpha's was decided: it arriving alone shows alpha's dropped.
    (payload,) = _payloads(receiver, 1)
    assert payload["gift"]["contactId"] == beta_donor
    statuses = {d["org"]: d["status"] for d in admin.get("/_admin/webhooks").json()["deliveries"]}
    assert statuses["alpha"] == "dropped"
    assert admin.get("/_admin/stats").json()["orgs"]["alpha"]["webhook_deliveries"]["dropped"] == 1
    assert len(receiver.bodies()) == 1


def test_subscriptions_can_be_listed_and_removed(
    api: httpx.Client, receiver: WebhookReceiver, donor: int
) -> None:
    sub = _subscribe(api, receiver, giftCreate=True)
    assert [w["id"] for w in api.get("/api/Webhook").json()] == [sub["id"]]
    assert api.delete(f"/api/Webhook/{sub['id']}").status_code == 200
    assert api.get("/api/Webhook").json() == []
    assert api.delete(f"/api/Webhook/{sub['id']}").status_code == 404
    bad = api.post("/api/Webhook", json={"payloadUrl": "ftp://nowhere"})
    assert "payloadUrl" in bad.json()["modelState"]
