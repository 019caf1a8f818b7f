"""Every request giftsync's own client makes, checked against the contract table.

giftsync's bodies come from its own code (the mapping, the pull plan, the related-record
payloads) and go out through :class:`VirtuousClient` to the sandbox over loopback; a recording
transport keeps each request as it left. Each must name a contract endpoint, carry only the
fields the contract lists, and get the contract's answer. Every public client method must be
exercised, so a new one cannot slip past the contract. The preview's request plans (what the
workers send for an event, dependencies first) are checked against the same table.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import httpx
import pytest

from giftsync.webhooks import subscription_body
from mapping import preview
from mapping.batch_entry import batch_entry, contact_payload
from mapping.contacts import contact_create_payload
from mapping.decision import SendDecision
from mapping.realtime import realtime_create, realtime_update, zeroing_update
from mapping.recurring import recurring_cancel, recurring_create, recurring_update
from sandbox import RunningSandbox
from tests.contract.table import violations
from tests.sandbox_fixtures import TOKEN_A
from tests.unit.test_mapping_factories import (
    allocation,
    event_data,
    owner_data,
    sd,
    sd_data,
    tenant,
    tx,
    tx_data,
)
from workers.flows.pull_paging import Cursor, page_query
from workers.virtuous.client import VirtuousClient, encode

pytest_plugins = ["tests.sandbox_fixtures"]
pytestmark = pytest.mark.integration

SEND = SendDecision(send=True, reason="success", zero_amount=False)
SETTINGS = tenant(transaction_source="WeGive", reference_source="WeGive-Donor")
FUNDS = {"id": 21, "name": "General", "virtuous_id": 101, "code": "GEN"}


class Recorder(httpx.HTTPTransport):
    """Keeps (method, path, JSON body) of every request, then sends it for real."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raw = request.read()
        body = json.loads(raw) if raw else None
        self.seen.append((request.method, request.url.path, body))
        return super().handle_request(request)


def _drive(client: VirtuousClient) -> set[str]:
    """Call every client method with giftsync's own bodies; the names called."""
    donor = owner_data(
        virtuous_contact_id=None,
        id=703,
        first_name="Ben",
        last_name="Okafor",
        email="ben@example.net",
        phone="312-555-0142",
        address={"line1": "9 Elm Ave", "city": "Evanston", "state": "IL", "postal": "60201"},
    )
    new = tx(owner=donor, fund=FUNDS, id="b-1")
    owner = new.owner
    called: set[str] = set()

    def note(name: str) -> VirtuousClient:
        called.add(name)
        return client

    note("contact_transaction").contact_transaction(contact_payload(owner, SETTINGS))
    contact = note("create_contact").create_contact(contact_create_payload(owner, SETTINGS))
    assert contact is not None
    assert contact["contactIndividuals"][0]["contactMethods"], "email and phone arrive"
    assert contact["address"]["postal"] == "60201", "the address arrives"
    assert note("get_contact").get_contact(contact["id"])["id"] == contact["id"]
    found = note("find_contact").find_contact("WeGive-Donor", "703")
    assert found is not None and found["id"] == contact["id"]
    known = owner_data(virtuous_contact_id=contact["id"], id=703)
    entry = batch_entry(tx(owner=known, fund=FUNDS, id="b-2"), SETTINGS, SEND)
    note("post_gift_transaction").post_gift_transaction(entry)
    embedded = batch_entry(new, SETTINGS, SEND)
    note("post_gift_transactions").post_gift_transactions(
        encode({"transactionSource": "WeGive", "transactions": [embedded], "createImport": True})
    )
    direct = tx(owner=known, id="r-1", allocations=[allocation(FUNDS, 5000)])
    gift = note("create_gift").create_gift(realtime_create(direct, SETTINGS, SEND))
    existing = note("get_gift").get_gift(gift["id"])
    desired = realtime_create(tx(owner=known, id="r-1", amount=6000, fund=FUNDS), SETTINGS, SEND)
    note("update_gift").update_gift(gift["id"], realtime_update(existing, desired))
    client.update_gift(gift["id"], zeroing_update(client.get_gift(gift["id"])))
    assert note("find_gift").find_gift("WeGive", "r-1") is not None
    assert client.find_gift("WeGive", "no-such") is None
    note("reversing_transaction").reversing_transaction(
        {"reversedGiftId": gift["id"], "giftDate": "2026-12-01", "notes": "refund"}
    )
    schedule = sd(source=known, fund=FUNDS, campaign=None)
    created = note("create_recurring_gift").create_recurring_gift(
        recurring_create(schedule, SETTINGS)
    )
    current = note("get_recurring_gift").get_recurring_gift(created["id"])
    note("update_recurring_gift").update_recurring_gift(
        created["id"], recurring_update(current, schedule, SETTINGS, cancelled_at=None)
    )
    note("cancel_recurring_gift").cancel_recurring_gift(
        created["id"], recurring_cancel(current) or {}
    )
    for cursor in (None, Cursor("2026-11-20T15:00:00", 0)):
        body = page_query("Last Modified DateTime UTC", "Gift Id", cursor)
        assert note("query_gifts").query_gifts(body)["total"] >= 1
    body = page_query("Last Modified DateTime UTC", "Recurring Gift Id", None)
    assert note("query_recurring_gifts").query_recurring_gifts(body)["total"] == 1
    note("create_segment").create_segment({"name": "Giving Day", "code": "WG-CAMPAIGN-9"})
    note("create_project").create_project({"name": "Food", "projectCode": "WG-FUND-9"})
    subscription = note("create_webhook").create_webhook(
        subscription_body("http://127.0.0.1:9/hook", "s")
    )
    # Only the events giftsync acts on: not the "send me everything" default.
    assert subscription["giftCreate"] and subscription["giftDelete"]
    assert not subscription["giftUpdate"]
    return called


def test_every_request_giftsyncs_client_makes_conforms(sandbox: RunningSandbox) -> None:
    recorder = Recorder()
    with VirtuousClient(sandbox.url, TOKEN_A, transport=recorder) as client:
        called = _drive(client)
    public = {
        name
        for name, member in inspect.getmembers(VirtuousClient, inspect.isfunction)
        if not name.startswith("_") and name != "close"
    }
    assert public - called == set(), "a client method no contract test exercises"
    problems = [v for method, path, body in recorder.seen for v in violations(method, path, body)]
    assert problems == []
    assert len(recorder.seen) >= len(public)


def test_the_embedded_contact_always_carries_its_reference() -> None:
    known = owner_data(virtuous_contact_id=501, id=9)
    entry = batch_entry(tx(owner=known, fund=FUNDS), SETTINGS, SEND)
    assert entry["contact"]["referenceId"] == "9"
    assert entry["contact"]["referenceSource"] == "WeGive-Donor"


def test_the_preview_plans_conform() -> None:
    tenants = {"t": tenant(transaction_source="WeGive", reference_source="WeGive-Donor")}
    events: list[dict[str, Any]] = [
        {"kind": "transaction", "record": {"owner": owner_data(virtuous_contact_id=None)}},
        {"kind": "transaction", "record": {}},
        {"kind": "scheduled_donation", "record": {"source": owner_data(virtuous_contact_id=None)}},
        {"kind": "scheduled_donation", "record": {"virtuous_id": 77, "status": "cancelled"}},
        {"kind": "scheduled_donation", "record": {"virtuous_id": 77}},
    ]
    checked = 0
    for event in events:
        build = tx_data if event["kind"] == "transaction" else sd_data
        data = event_data(build(**event["record"]), event["kind"], tenant="t")
        plan = preview.preview_event(json.dumps(data), tenants)
        assert plan["decision"] == "send", plan
        for request in plan["requests"]:
            path = str(request["path"]).replace(str(preview.CONTACT_PLACEHOLDER), "1")
            body = request["body"]
            if path == preview.TRANSACTIONS_PATH:
                # The preview shows the one entry; the batch sends it inside ``transactions``.
                body = {"transactionSource": "WeGive", "transactions": [body]}
            assert violations(request["method"], path, body) == []
            checked += 1
    assert checked >= len(events)
