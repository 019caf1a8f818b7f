"""The nightly batch (seed 003): held Gift Transactions matched by contact id, external
reference, email, phone, or name + address become Gifts; the rest go to needs-update with a
reason; Contact Transactions merge or create Contacts; people resolve needs-update."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from giftsync.waiting import wait_for
from sandbox import RunningSandbox, SandboxConfig
from tests.sandbox_fixtures import client, gift_transaction, org_stats, seed_contacts, small_config

pytest_plugins = ["tests.sandbox_fixtures"]
pytestmark = pytest.mark.integration

ADA = {
    "firstName": "Ada",
    "lastName": "Lovelace",
    "email": "Ada@Example.org",
    "phone": "(555) 010-0001",
    "referenceSource": "WeGive",
    "referenceId": "d1",
    "address": {"address1": "1 Way", "city": "Austin", "state": "TX", "postal": "78701"},
}
GRACE = {
    "firstName": "Grace",
    "lastName": "Hopper",
    "email": "grace@example.org",
    "address": {"city": "Denver", "state": "CO", "postal": "80202-1234"},
}


@pytest.fixture
def donors(admin: httpx.Client) -> dict[str, int]:
    ids = seed_contacts(admin, "alpha", ADA, GRACE)
    return {"ada": ids[0], "grace": ids[1]}


def _gift_contacts(sandbox: RunningSandbox) -> dict[str, int]:
    with sandbox.state.lock:
        return {
            g["transactionId"]: g["contactId"] for g in sandbox.state.org("alpha").gifts.values()
        }


@pytest.mark.parametrize(
    "tid,contact,who",
    [
        ("by-id", {"id": "GRACE"}, "grace"),
        ("by-reference", {"referenceId": "d1", "firstName": "Someone", "lastName": "Else"}, "ada"),
        ("by-email", {"email": "ada@example.ORG"}, "ada"),
        ("by-phone", {"phone": "+1 555.010.0001"}, "ada"),
        (
            "by-name-postal",
            {"firstName": "grace", "lastName": "HOPPER", "address": {"postal": "80202"}},
            "grace",
        ),
        (
            "by-name-city",
            {"firstname": "Ada", "lastname": "Lovelace", "city": "austin", "state": "tx"},
            "ada",
        ),
    ],
)
def test_each_matching_signal_makes_a_gift_for_the_right_contact(
    api: httpx.Client,
    admin: httpx.Client,
    sandbox: RunningSandbox,
    donors: dict[str, int],
    tid: str,
    contact: dict[str, Any],
    who: str,
) -> None:
    if contact.get("id") == "GRACE":
        contact = {"id": donors["grace"]}
    assert (
        api.post(
            "/api/v2/Gift/Transaction", json=gift_transaction(tid, contact=contact)
        ).status_code
        == 200
    )
    assert _gift_contacts(sandbox) == {}
    summary = admin.post("/_admin/nightly", json={"org": "alpha"}).json()
    assert summary["alpha"]["gifts_created"] == 1
    assert _gift_contacts(sandbox) == {tid: donors[who]}


@pytest.mark.parametrize(
    "contact,reason",
    [
        (
            {"firstName": "Nobody", "lastName": "Known", "email": "nobody@example.org"},
            "no existing contact matches by email",
        ),
        (
            {"firstName": "Grace", "lastName": "Hopper"},
            "no reference, email, phone or name+address",
        ),
        ({"id": 999999}, "contact id 999999 does not exist"),
        (
            {"firstName": "Grace", "lastName": "Hopper", "address": {"postal": "99999"}},
            "no existing contact matches by name+address",
        ),
        (None, "no contact data"),
    ],
)
def test_unmatched_gift_transactions_go_to_needs_update_with_the_reason(
    api: httpx.Client,
    admin: httpx.Client,
    sandbox: RunningSandbox,
    donors: dict[str, int],
    contact: dict[str, Any] | None,
    reason: str,
) -> None:
    body = gift_transaction("lost")
    if contact is not None:
        body["contact"] = contact
    api.post("/api/v2/Gift/Transaction", json=body)
    admin.post("/_admin/nightly")
    needs = admin.get("/_admin/needs-update", params={"org": "alpha"}).json()["alpha"]
    assert [n["transactionId"] for n in needs] == ["lost"]
    assert needs[0]["reason"].startswith(reason), needs[0]["reason"]
    assert _gift_contacts(sandbox) == {}
    assert api.get("/api/Gift/WeGive/lost").status_code == 404


def test_an_email_shared_by_two_contacts_is_not_a_confident_match(
    api: httpx.Client, admin: httpx.Client, sandbox: RunningSandbox, donors: dict[str, int]
) -> None:
    seed_contacts(
        admin, "alpha", {"firstName": "Ada", "lastName": "Twin", "email": "ada@example.org"}
    )
    api.post(
        "/api/v2/Gift/Transaction", json=gift_transaction("t", contact={"email": "ada@example.org"})
    )
    admin.post("/_admin/nightly")
    needs = admin.get("/_admin/needs-update").json()["alpha"]
    assert "email matches several contacts" in needs[0]["reason"]


def test_people_resolve_needs_update_by_picking_creating_or_discarding(
    api: httpx.Client, admin: httpx.Client, sandbox: RunningSandbox, donors: dict[str, int]
) -> None:
    for tid in ("a", "b", "c"):
        api.post(
            "/api/v2/Gift/Transaction",
            json=gift_transaction(
                tid,
                contact={"firstName": "New", "lastName": f"Donor {tid}", "email": f"{tid}@new.org"},
            ),
        )
    admin.post("/_admin/nightly")
    needs = {n["transactionId"]: n["id"] for n in admin.get("/_admin/needs-update").json()["alpha"]}
    picked = admin.post(
        f"/_admin/needs-update/{needs['a']}/resolve", json={"contactId": donors["grace"]}
    ).json()
    assert picked["gift"]["contactId"] == donors["grace"]
    made = admin.post(
        f"/_admin/needs-update/{needs['b']}/resolve", json={"createContact": True}
    ).json()
    assert api.get(f"/api/Contact/{made['gift']['contactId']}").json()["name"] == "New Donor b"
    assert admin.post(
        f"/_admin/needs-update/{needs['c']}/resolve", json={"discard": True}
    ).json() == {"discarded": needs["c"]}
    assert admin.get("/_admin/needs-update").json()["alpha"] == []
    assert sorted(_gift_contacts(sandbox)) == ["a", "b"]
    # A discarded transaction may be sent again; it is new, not a repeat.
    api.post("/api/v2/Gift/Transaction", json=gift_transaction("c", contact={"id": donors["ada"]}))
    admin.post("/_admin/nightly")
    assert sorted(_gift_contacts(sandbox)) == ["a", "b", "c"]


def test_contact_transactions_create_or_merge_and_lookup_by_reference(
    api: httpx.Client, admin: httpx.Client, donors: dict[str, int]
) -> None:
    new = {
        "referenceSource": "WeGive",
        "referenceId": "d50",
        "firstName": "Mary",
        "lastName": "Jackson",
        "email": "mary@example.org",
        "address1": "5 Launch Rd",
        "city": "Hampton",
        "state": "VA",
        "postal": "23666",
    }
    assert api.post("/api/Contact/Transaction", json=new).status_code == 200
    # Held, not yet a Contact.
    assert api.get("/api/Contact/WeGive/d50").status_code == 404
    # A changed email for Ada, matched by her reference; a phone match for Grace... by email.
    api.post(
        "/api/Contact/Transaction",
        json={"referenceSource": "WeGive", "referenceId": "d1", "email": "ada@newmail.org"},
    )
    api.post(
        "/api/Contact/Transaction",
        json={
            "email": "grace@example.org",
            "referenceSource": "WeGive",
            "referenceId": "d2",
            "lastName": "Hopper",
        },
    )
    summary = admin.post("/_admin/nightly").json()["alpha"]
    assert (summary["contacts_created"], summary["contacts_updated"]) == (1, 2)
    mary = api.get("/api/Contact/WeGive/d50").json()
    assert mary["name"] == "Mary Jackson"
    assert mary["address"]["city"] == "Hampton"
    ada = api.get("/api/Contact/WeGive/d1").json()
    assert ada["id"] == donors["ada"]
    emails = [
        (m["value"], m["isPrimary"])
        for m in ada["contactIndividuals"][0]["contactMethods"]
        if "Email" in m["type"]
    ]
    assert emails == [("Ada@Example.org", False), ("ada@newmail.org", True)]
    # Grace gained the reference she was sent with.
    assert api.get("/api/Contact/WeGive/d2").json()["id"] == donors["grace"]
    # Sending the same donor again never makes a second Contact.
    api.post("/api/Contact/Transaction", json=new)
    admin.post("/_admin/nightly")
    stats = org_stats(admin)
    assert stats["contacts"] == 3
    assert stats["duplicate_contacts_created"] == 0


def test_a_matched_gift_records_the_donor_reference_on_the_contact(
    api: httpx.Client, admin: httpx.Client, donors: dict[str, int]
) -> None:
    api.post(
        "/api/v2/Gift/Transaction",
        json=gift_transaction("g", contact={"referenceId": "wg-77", "email": "grace@example.org"}),
    )
    admin.post("/_admin/nightly")
    assert api.get("/api/Contact/WeGive/wg-77").json()["id"] == donors["grace"]


def test_a_setting_creates_contacts_for_unmatched_gifts(
    make_sandbox: Callable[[SandboxConfig], RunningSandbox],
) -> None:
    sb = make_sandbox(small_config(create_contact_for_unmatched_gifts=True))
    with client(sb) as api, client(sb, None) as admin:
        api.post(
            "/api/v2/Gift/Transaction",
            json=gift_transaction(
                "n", contact={"referenceId": "d60", "firstName": "Katherine", "lastName": "Johnson"}
            ),
        )
        summary = admin.post("/_admin/nightly").json()["alpha"]
        assert (summary["contacts_created"], summary["gifts_created"]) == (1, 1)
        contact = api.get("/api/Contact/WeGive/d60").json()
        assert api.get("/api/Gift/WeGive/n").json()["contactId"] == contact["id"]


def test_installment_gifts_link_to_their_recurring_gift(
    api: httpx.Client, admin: httpx.Client, donors: dict[str, int]
) -> None:
    recurring = api.post(
        "/api/RecurringGift",
        json={
            "contactId": donors["ada"],
            "startDate": "2026-01-01",
            "frequency": "Monthly",
            "amount": "10.00",
            "designations": [{"projectId": 101, "amountDesignated": "10.00"}],
        },
    ).json()
    api.post(
        "/api/v2/Gift/Transaction",
        json=gift_transaction(
            "i1", contact={"id": donors["ada"]}, recurringGiftTransactionId=str(recurring["id"])
        ),
    )
    admin.post("/_admin/nightly")
    gift = api.get("/api/Gift/WeGive/i1").json()
    assert gift["recurringGiftPayments"] == [{"id": recurring["id"], "amount": 10.0}]


def test_the_nightly_batch_can_run_on_a_timer(
    make_sandbox: Callable[[SandboxConfig], RunningSandbox],
) -> None:
    sb = make_sandbox(small_config(nightly_every_seconds=0.1))
    with client(sb) as api:
        api.post(
            "/api/Contact/Transaction",
            json={"referenceSource": "WeGive", "referenceId": "t1", "lastName": "Timer"},
        )
        wait_for(
            lambda: api.get("/api/Contact/WeGive/t1").status_code == 200,
            timeout=5,
            what="the timed nightly batch",
        )
