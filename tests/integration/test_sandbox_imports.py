"""The Import Tool (seed 000): a ``createImport`` batch sorted into Ready for Import, Update
Needed and Match Needed; the import action committing the resolvable gifts; Match Needed
resolved by a person; the page showing it all."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox import RunningSandbox
from tests.sandbox_fixtures import gift_transaction, org_stats, seed_contacts

pytest_plugins = ["tests.sandbox_fixtures"]
pytestmark = pytest.mark.integration


@pytest.fixture
def donors(admin: httpx.Client) -> dict[str, int]:
    ids = seed_contacts(
        admin,
        "alpha",
        {
            "firstName": "Ada",
            "lastName": "Lovelace",
            "email": "ada@example.org",
            "phone": "555-010-0001",
            "referenceSource": "WeGive",
            "referenceId": "d1",
            "address": {"address1": "1 Way", "city": "Austin", "state": "TX", "postal": "78701"},
        },
        {"firstName": "Grace", "lastName": "Hopper", "email": "grace@example.org"},
        {"firstName": "Alan", "lastName": "Turing", "email": "alan@example.org"},
    )
    return dict(zip(("ada", "grace", "alan"), ids, strict=True))


def _send(api: httpx.Client, name: str, *entries: dict[str, Any]) -> dict[str, Any]:
    r = api.post(
        "/api/v2/Gift/Transactions",
        json={
            "transactionSource": "WeGive",
            "transactions": list(entries),
            "createImport": True,
            "importName": name,
        },
    )
    assert (r.status_code, r.content) == (200, b"")
    return _batch(api, name)


def _batch(client: httpx.Client, name: str) -> dict[str, Any]:
    imports = client.get("/_admin/imports", params={"org": "alpha"}).json()
    return next(b for b in imports["alpha"] if b["name"] == name)


def _tabs(batch: dict[str, Any]) -> dict[str, str]:
    return {e["transactionId"]: e["tab"] for e in batch["entries"]}


def test_a_batch_is_sorted_into_the_three_tabs(api: httpx.Client, donors: dict[str, int]) -> None:
    batch = _send(
        api,
        "Giving Day",
        gift_transaction(
            "ready",
            contact={
                "referenceId": "d1",
                "firstName": "Ada",
                "lastName": "Lovelace",
                "email": "ada@example.org",
            },
        ),
        gift_transaction("by-id", contact={"id": donors["grace"]}),
        gift_transaction("update", contact={"email": "grace@example.org", "phone": "555-777-0000"}),
        gift_transaction(
            "moved",
            contact={
                "referenceId": "d1",
                "address": {
                    "address1": "9 New St",
                    "city": "Boston",
                    "state": "MA",
                    "postal": "02101",
                },
            },
        ),
        gift_transaction(
            "new", contact={"firstName": "New", "lastName": "Donor", "email": "new@example.org"}
        ),
        gift_transaction("conflict", contact={"referenceId": "d1", "email": "alan@example.org"}),
    )
    assert batch["status"] == "Processed"
    assert batch["counts"] == {"ready": 2, "update": 2, "match": 2, "imported": 0}
    assert _tabs(batch) == {
        "ready": "ready",
        "by-id": "ready",
        "update": "update",
        "moved": "update",
        "new": "match",
        "conflict": "match",
    }
    entries = {e["transactionId"]: e for e in batch["entries"]}
    assert entries["ready"]["contact_id"] == donors["ada"]
    assert entries["ready"]["reason"] == "matched by reference"
    assert entries["update"]["differences"] == ["new phone 555-777-0000"]
    assert entries["moved"]["differences"] == ["new address 9 New St, Boston, MA, 02101"]
    assert entries["new"]["contact_id"] is None
    assert "no existing contact matches" in entries["new"]["reason"]
    assert "belongs to another contact" in entries["conflict"]["reason"]


def test_import_commits_ready_and_update_needed_and_leaves_match_needed(
    api: httpx.Client, admin: httpx.Client, sandbox: RunningSandbox, donors: dict[str, int]
) -> None:
    batch = _send(
        api,
        "Batch A",
        gift_transaction(
            "r1", amount="7.00", contact={"referenceId": "d1"}, customFields={"wg_id": 501}
        ),
        gift_transaction("u1", contact={"email": "grace@example.org", "phone": "555-777-0000"}),
        gift_transaction("m1", contact={"firstName": "New", "lastName": "Donor"}),
    )
    # Nothing is a Gift before the import: lookups by reference say 404, empty body.
    missing = api.get("/api/Gift/WeGive/r1")
    assert (missing.status_code, missing.content) == (404, b"")
    result = admin.post(f"/_admin/imports/{batch['id']}/import").json()
    assert result["imported"] == 2
    assert result["remaining"] == {"match": 1}
    assert result["batch"]["status"] == "Partially Imported"
    gift = api.get("/api/Gift/WeGive/r1").json()
    assert (gift["contactId"], gift["amount"], gift["batch"]) == (donors["ada"], 7.0, "Batch A")
    # The batch path's object-form custom fields come back in array form.
    assert gift["customFields"] == [{"name": "wg_id", "value": 501}]
    assert gift["giftDesignations"][0]["projectCode"] == "GEN"
    # Update Needed was imported with its update accepted.
    grace = api.get(f"/api/Contact/{donors['grace']}").json()
    phones = [
        m["value"]
        for i in grace["contactIndividuals"]
        for m in i["contactMethods"]
        if "Phone" in m["type"]
    ]
    assert phones == ["555-777-0000"]
    assert api.get("/api/Gift/WeGive/m1").status_code == 404
    # Importing again commits nothing new.
    assert admin.post(f"/_admin/imports/{batch['id']}/import").json()["imported"] == 0
    with sandbox.state.lock:
        assert len(sandbox.state.org("alpha").gifts) == 2


def test_a_person_resolves_match_needed_by_picking_or_creating_a_contact(
    api: httpx.Client, admin: httpx.Client, donors: dict[str, int]
) -> None:
    batch = _send(
        api,
        "Batch M",
        gift_transaction(
            "m1", contact={"firstName": "New", "lastName": "Donor", "email": "new@example.org"}
        ),
        gift_transaction("m2", contact={"firstName": "Alan", "lastName": "Turing"}),
    )
    assert batch["counts"]["match"] == 2
    bid = batch["id"]
    created = admin.post(
        f"/_admin/imports/{bid}/entries/0/resolve", json={"createContact": True}
    ).json()
    assert created["tab"] == "ready"
    picked = admin.post(
        f"/_admin/imports/{bid}/entries/1/resolve", json={"contactId": donors["alan"]}
    ).json()
    assert (picked["tab"], picked["contact_id"]) == ("ready", donors["alan"])
    unknown = admin.post(f"/_admin/imports/{bid}/entries/1/resolve", json={"contactId": 999999})
    assert unknown.status_code == 400
    assert admin.post(f"/_admin/imports/{bid}/import").json()["imported"] == 2
    new_contact = api.get(f"/api/Contact/{created['contact_id']}").json()
    assert new_contact["name"] == "New Donor"
    assert api.get("/api/Gift/WeGive/m2").json()["contactId"] == donors["alan"]
    assert _batch(api, "Batch M")["status"] == "Imported"


def test_entries_are_resorted_when_contacts_arrive(api: httpx.Client, admin: httpx.Client) -> None:
    batch = _send(
        api,
        "Later",
        gift_transaction(
            "x",
            contact={
                "referenceId": "d9",
                "firstName": "Late",
                "lastName": "Comer",
                "email": "l@example.org",
            },
        ),
    )
    assert batch["counts"]["match"] == 1
    api.post(
        "/api/Contact/Transaction",
        json={
            "referenceSource": "WeGive",
            "referenceId": "d9",
            "firstName": "Late",
            "lastName": "Comer",
            "email": "l@example.org",
        },
    )
    admin.post("/_admin/nightly")
    assert _batch(api, "Later")["counts"]["ready"] == 1


def test_the_page_shows_tabs_with_counts_and_the_import_button_works_as_a_form(
    api: httpx.Client, admin: httpx.Client, donors: dict[str, int]
) -> None:
    batch = _send(
        api,
        "Shown <Batch>",
        gift_transaction("r1", contact={"referenceId": "d1"}),
        gift_transaction("m1", contact={"firstName": "No", "lastName": "Match"}),
    )
    bid = batch["id"]
    page = admin.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "Shown &lt;Batch&gt;" in html
    assert f"id='count-{bid}-ready'>1<" in html
    assert f"id='count-{bid}-update'>0<" in html
    assert f"id='count-{bid}-match'>1<" in html
    assert "Ready for Import" in html and "Update Needed" in html and "Match Needed" in html
    assert f"action='/_admin/imports/{bid}/import'" in html
    assert "<script src" not in html and "<link" not in html
    # What the browser sends for the button's form: an empty url-encoded body.
    posted = admin.post(
        f"/_admin/imports/{bid}/import",
        content=b"",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert posted.status_code == 303
    assert posted.headers["location"] == f"/#batch-{bid}"
    assert f"id='count-{bid}-imported'>1<" in admin.get("/").text
    assert org_stats(admin)["gifts"] == 1
