"""Contacts, Segments, Projects and RecurringGifts: what giftsync's dependency-first push of a
recurring gift (seed 004) and its contact sync need."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.sandbox_fixtures import gift_transaction, org_stats

pytest_plugins = ["tests.sandbox_fixtures"]
pytestmark = pytest.mark.integration


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_contacts_are_created_directly_and_found_by_id_and_reference(
    api: httpx.Client, admin: httpx.Client, beta_api: httpx.Client
) -> None:
    contact = _ok(
        api.post(
            "/api/Contact",
            json={
                "contactType": "Household",
                "referenceSource": "WeGive",
                "referenceId": "d1",
                "firstName": "Ada",
                "lastName": "Lovelace",
                "email": "ada@example.org",
                "phone": "555-010-0001",
                "address": {
                    "address1": "1 Way",
                    "city": "Austin",
                    "state": "TX",
                    "postal": "78701",
                },
            },
        )
    )
    assert contact["name"] == "Ada Lovelace"
    assert contact["contactReferences"] == [{"source": "WeGive", "id": "d1"}]
    assert api.get(f"/api/Contact/{contact['id']}").json() == contact
    assert api.get("/api/Contact/WeGive/d1").json()["id"] == contact["id"]
    assert api.get("/api/Contact/WeGive/nope").status_code == 404
    assert api.get("/api/Contact/987654").status_code == 404
    # Organisations are separate databases.
    assert beta_api.get(f"/api/Contact/{contact['id']}").status_code == 404
    company = _ok(
        api.post("/api/Contact", json={"contactType": "Organization", "name": "Acme Foundation"})
    )
    assert (company["contactType"], company["name"]) == ("Organization", "Acme Foundation")
    # A direct create does no matching: a second Contact with the same reference is made,
    # and counted.
    _ok(
        api.post(
            "/api/Contact",
            json={"referenceSource": "WeGive", "referenceId": "d1", "lastName": "Again"},
        )
    )
    assert org_stats(admin)["duplicate_contacts_created"] == 1
    bad = api.post("/api/Contact", json={"city": "Austin"})
    assert bad.status_code == 400
    # Find by reference, by email, or both (which must agree).
    find = "/api/Contact/Find"
    assert (
        api.get(find, params={"referenceSource": "WeGive", "referenceId": "d1"}).json()["id"]
        == contact["id"]
    )
    assert api.get(find, params={"email": "ADA@example.org"}).json()["id"] == contact["id"]
    assert (
        api.get(
            find,
            params={"email": "ada@example.org", "referenceSource": "WeGive", "referenceId": "zzz"},
        ).status_code
        == 404
    )
    assert api.get(find).status_code == 404


def test_segments_and_projects_are_created_and_usable(api: httpx.Client) -> None:
    segment = _ok(api.post("/api/Segment", json={"name": "Spring Appeal", "code": "SPRING26"}))
    assert api.get(f"/api/Segment/{segment['id']}").json()["code"] == "SPRING26"
    assert api.get("/api/Segment/Code/spring26").json()["id"] == segment["id"]
    assert api.post("/api/Segment", json={"code": "SPRING26"}).status_code == 400
    assert api.post("/api/Segment", json={"name": ""}).status_code == 400
    project = _ok(api.post("/api/Project", json={"name": "New Roof", "projectCode": "ROOF"}))
    assert project["id"] not in (101, 102, 103, 88)
    assert api.get(f"/api/Project/{project['id']}").json()["projectCode"] == "ROOF"
    assert api.post("/api/Project", json={"projectCode": "GEN"}).status_code == 400
    # Designations to the new project are now accepted, by id or code.
    body = gift_transaction(
        "p1",
        designations=[
            {"id": project["id"], "amountDesignated": "4.00"},
            {"projectCode": "ROOF", "amountDesignated": "6.00"},
        ],
        segment="SPRING26",
    )
    assert api.post("/api/v2/Gift/Transaction", json=body).status_code == 200


def test_recurring_gifts_are_created_read_replaced_and_cancelled(api: httpx.Client) -> None:
    contact = _ok(api.post("/api/Contact", json={"lastName": "Hopper", "firstName": "Grace"}))
    created = _ok(
        api.post(
            "/api/RecurringGift",
            json={
                "contactId": contact["id"],
                "startDate": "2026-12-01",
                "nextExpectedPaymentDate": "2026-12-01",
                "frequency": "Monthly",
                "amount": "10.30",
                "isPrivate": False,
                "segmentId": 201,
                "designations": [
                    {"projectId": 101, "amountDesignated": "7.21"},
                    {"projectId": 88, "amountDesignated": "3.09"},
                ],
            },
        )
    )
    assert (created["status"], created["frequency"], created["amount"]) == (
        "Active",
        "Monthly",
        10.3,
    )
    assert created["segmentCode"] == "GIVINGDAY"
    assert api.get(f"/api/RecurringGift/{created['id']}").json() == created
    replaced = _ok(
        api.put(
            f"/api/RecurringGift/{created['id']}",
            json={
                **created,
                "amount": "20.00",
                "nextExpectedPaymentDate": "2027-01-01",
                "designations": [{"projectId": 102, "amountDesignated": "20.00"}],
            },
        )
    )
    assert [(d["projectId"], d["amountDesignated"]) for d in replaced["designations"]] == [
        (102, 20.0)
    ]
    assert replaced["nextExpectedPaymentDate"] == "2027-01-01T00:00:00"
    assert replaced["createDateTimeUtc"] == created["createDateTimeUtc"]
    # Contract: a PUT with a status does not cancel; only the Cancel route does, once.
    still = _ok(
        api.put(f"/api/RecurringGift/{created['id']}", json={**replaced, "status": "Cancelled"})
    )
    assert still["status"] == "Active" and still["cancelDateTimeUtc"] is None
    cancelled = _ok(api.put(f"/api/recurringgift/cancel/{created['id']}/", json={}))
    assert cancelled["status"] == "Cancelled"
    assert cancelled["cancelDateTimeUtc"] is not None
    again = _ok(api.put(f"/api/RecurringGift/Cancel/{created['id']}"))
    assert again["cancelDateTimeUtc"] == cancelled["cancelDateTimeUtc"]
    assert api.put("/api/RecurringGift/Cancel/987654", json={}).status_code == 404
    assert api.get("/api/RecurringGift/987654").status_code == 404
    assert api.put("/api/RecurringGift/987654", json=created).status_code == 404


@pytest.mark.parametrize(
    "change,field",
    [
        ({"contactId": 987654}, "contactId"),
        ({"contactId": None}, "contactId"),
        ({"frequency": "Fortnightly"}, "frequency"),
        ({"startDate": None}, "startDate"),
        ({"amount": "9.00"}, "designations"),
        (
            {"designations": [{"projectId": 555, "amountDesignated": "10.00"}]},
            "designations[0].projectId",
        ),
    ],
)
def test_invalid_recurring_gifts_are_refused(
    api: httpx.Client, change: dict[str, Any], field: str
) -> None:
    contact = _ok(api.post("/api/Contact", json={"lastName": "Hopper"}))
    body = {
        "contactId": contact["id"],
        "startDate": "2026-12-01",
        "frequency": "Monthly",
        "amount": "10.00",
        "designations": [{"projectId": 101, "amountDesignated": "10.00"}],
    }
    body = {k: v for k, v in {**body, **change}.items() if v is not None}
    r = api.post("/api/RecurringGift", json=body)
    assert r.status_code == 400
    assert field in r.json()["modelState"]


def test_recurring_statuses_are_answered_as_virtuous_returns_them(
    api: httpx.Client, admin: httpx.Client
) -> None:
    contact = _ok(api.post("/api/Contact", json={"lastName": "Hopper", "firstName": "Grace"}))
    base = {
        "contactId": contact["id"],
        "startDate": "2026-01-01",
        "frequency": "semiannually",
        "amount": "10.00",
        "designations": [{"projectId": 101, "amountDesignated": "10.00"}],
    }
    items = [{**base, "status": s} for s in ("uptodate", "Behind", "canceled", "ACTIVE")]
    made = _ok(
        admin.post("/_admin/recurring-gifts", json={"org": "alpha", "recurringGifts": items})
    )
    rows = [_ok(api.get(f"/api/RecurringGift/{r['id']}")) for r in made["recurringGifts"]]
    assert [r["status"] for r in rows] == ["UpToDate", "Behind", "Cancelled", "Active"]
    assert {r["frequency"] for r in rows} == {"Semiannually"}
    assert rows[2]["cancelDateTimeUtc"] is not None
    # A full-replacement PUT keeps the status Virtuous reports.
    kept = _ok(api.put(f"/api/RecurringGift/{rows[0]['id']}", json={**rows[0], "status": "Active"}))
    assert kept["status"] == "UpToDate"
    bad = admin.post(
        "/_admin/recurring-gifts",
        json={"org": "alpha", "recurringGifts": [{**base, "status": "Paused"}]},
    )
    assert bad.status_code == 400 and "status" in bad.text
