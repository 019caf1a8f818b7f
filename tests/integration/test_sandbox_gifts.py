"""Gifts over HTTP: direct create and GET, PUT as full replacement, the designation diff
protocol, lookups by reference (404 while held, 200 once created), reversing transactions."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.sandbox_fixtures import gift_transaction, seed_contacts

pytest_plugins = ["tests.sandbox_fixtures"]
pytestmark = pytest.mark.integration


@pytest.fixture
def donor(admin: httpx.Client) -> int:
    return seed_contacts(admin, "alpha", {"firstName": "Ada", "lastName": "Lovelace"})[0]


@pytest.fixture
def gift(api: httpx.Client, donor: int) -> dict[str, Any]:
    r = api.post(
        "/api/Gift",
        json={
            "contactId": donor,
            "transactionSource": "WeGive",
            "transactionId": "rt-1",
            "giftDate": "2026-11-20T15:30:00-06:00",
            "giftType": "credit",
            "amount": "30.00",
            "description": "Giving day",
            "notes": "In memory of Bob",
            "isPrivate": True,
            "segmentId": 201,
            "customFields": [{"name": "wg_id", "value": "9001"}],
            "giftDesignations": [
                {"projectId": 101, "amount": "20.00"},
                {"projectCode": "FOOD", "amount": "10.00"},
            ],
        },
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_direct_create_returns_the_gift_with_its_id(
    api: httpx.Client, gift: dict[str, Any], donor: int
) -> None:
    assert isinstance(gift["id"], int)
    assert api.get(f"/api/Gift/{gift['id']}").json() == gift
    assert (gift["contactId"], gift["giftType"], gift["amount"]) == (donor, "Credit", 30.0)
    # The wall time of the gift date is kept; the offset is not a Virtuous notion.
    assert gift["giftDate"] == "2026-11-20T15:30:00"
    assert (gift["segmentId"], gift["segmentCode"]) == (201, "GIVINGDAY")
    assert [
        (d["projectId"], d["projectCode"], d["amountDesignated"]) for d in gift["giftDesignations"]
    ] == [(101, "GEN", 20.0), (102, "FOOD", 10.0)]
    assert all(isinstance(d["id"], int) for d in gift["giftDesignations"])
    assert gift["customFields"] == [{"name": "wg_id", "value": "9001"}]
    assert gift["createDateTimeUtc"] == gift["modifiedDateTimeUtc"]
    assert api.get("/api/Gift/123456").status_code == 404


def test_put_is_full_replacement(api: httpx.Client, gift: dict[str, Any], donor: int) -> None:
    body = {
        "contactId": donor,
        "giftDate": "2026-11-21",
        "amount": "5.00",
        "giftDesignations": [{"projectId": 103, "amountDesignated": "5.00"}],
    }
    r = api.put(f"/api/Gift/{gift['id']}", json=body)
    assert r.status_code == 200, r.text
    put = r.json()
    # Fields left out are cleared...
    assert (put["description"], put["notes"], put["segmentId"], put["customFields"]) == (
        None,
        None,
        None,
        [],
    )
    assert put["isPrivate"] is False
    # ...system fields stay.
    assert (put["id"], put["transactionSource"], put["transactionId"]) == (
        gift["id"],
        "WeGive",
        "rt-1",
    )
    assert put["createDateTimeUtc"] == gift["createDateTimeUtc"]
    assert put["modifiedDateTimeUtc"] > gift["modifiedDateTimeUtc"]
    assert [(d["projectId"], d["amountDesignated"]) for d in put["giftDesignations"]] == [
        (103, 5.0)
    ]
    assert api.get("/api/Gift/WeGive/rt-1").json() == put


def test_put_by_the_diff_protocol_leaves_exactly_the_desired_designations(
    api: httpx.Client, gift: dict[str, Any]
) -> None:
    # What giftsync's real-time update sends: GET, overwrite owned fields, every existing
    # designation marked Delete, the desired set appended as Add.
    body = dict(gift)
    body["amount"] = "0.00"
    body["giftDesignations"] = [{**d, "state": "Delete"} for d in gift["giftDesignations"]] + [
        {"projectId": 101, "amountDesignated": "0.00", "state": "Add"}
    ]
    put = api.put(f"/api/Gift/{gift['id']}", json=body).json()
    assert put["amount"] == 0.0
    assert [(d["projectId"], d["amountDesignated"]) for d in put["giftDesignations"]] == [
        (101, 0.0)
    ]
    assert put["giftDesignations"][0]["id"] not in {d["id"] for d in gift["giftDesignations"]}
    # Kept fields came back in the body, so they stay.
    assert (put["notes"], put["segmentId"]) == ("In memory of Bob", 201)


def test_the_diff_protocol_can_keep_some_and_refuses_unknown_ids(
    api: httpx.Client, gift: dict[str, Any]
) -> None:
    keep, drop = gift["giftDesignations"]
    body = {
        **gift,
        "amount": "25.00",
        "giftDesignations": [
            {"id": drop["id"], "state": "Delete"},
            {"projectId": 103, "amountDesignated": "5.00", "state": "Add"},
        ],
    }
    put = api.put(f"/api/Gift/{gift['id']}", json=body).json()
    assert [(d["id"], d["projectId"]) for d in put["giftDesignations"]] == [
        (keep["id"], 101),
        (put["giftDesignations"][1]["id"], 103),
    ]
    bad = api.put(
        f"/api/Gift/{gift['id']}",
        json={**body, "giftDesignations": [{"id": 987654, "state": "Delete"}]},
    )
    assert bad.status_code == 400
    assert "is not on this gift" in bad.json()["modelState"]["giftDesignations[0].id"][0]


@pytest.mark.parametrize(
    "change,field",
    [
        ({"amount": "31.00"}, "giftDesignations"),
        # Left out, the donor stays (virtuous-ts's PUT omits it); an unknown one is refused.
        ({"contactId": 987654}, "contactId"),
        ({"giftDate": None}, "giftDate"),
        (
            {"giftDesignations": [{"projectId": 555, "amountDesignated": "30.00"}]},
            "giftDesignations[0].projectId",
        ),
    ],
)
def test_invalid_puts_are_refused_and_change_nothing(
    api: httpx.Client, gift: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in {**gift, **change}.items() if v is not None}
    r = api.put(f"/api/Gift/{gift['id']}", json=body)
    assert r.status_code == 400
    assert field in r.json()["modelState"]
    assert api.get(f"/api/Gift/{gift['id']}").json() == gift
    assert api.put("/api/Gift/999999", json=gift).status_code == 404


def test_lookup_by_reference_is_404_while_held_and_the_gift_once_created(
    api: httpx.Client, admin: httpx.Client, donor: int
) -> None:
    api.post("/api/v2/Gift/Transaction", json=gift_transaction("held-1", contact={"id": donor}))
    held = api.get("/api/Gift/WeGive/held-1")
    assert (held.status_code, held.content) == (404, b"")
    admin.post("/_admin/nightly")
    found = api.get("/api/Gift/WeGive/held-1")
    assert found.status_code == 200
    assert found.json()["transactionId"] == "held-1"
    assert api.get("/api/Gift/OtherSource/held-1").status_code == 404


def test_a_reversing_transaction_negates_the_gift(api: httpx.Client, gift: dict[str, Any]) -> None:
    r = api.post(
        "/api/Gift/ReversingTransaction",
        json={
            "reversedGiftId": gift["id"],
            "giftDate": "2026-12-01",
            "notes": "Refunded",
            "transactionSource": "WeGive",
            "transactionId": "rt-1-refund",
        },
    )
    assert r.status_code == 200, r.text
    reversal = r.json()
    assert reversal["id"] != gift["id"]
    assert (reversal["amount"], reversal["reversedGiftId"], reversal["contactId"]) == (
        -30.0,
        gift["id"],
        gift["contactId"],
    )
    assert [(d["projectId"], d["amountDesignated"]) for d in reversal["giftDesignations"]] == [
        (101, -20.0),
        (102, -10.0),
    ]
    assert (reversal["giftDate"], reversal["notes"]) == ("2026-12-01T00:00:00", "Refunded")
    assert api.get("/api/Gift/WeGive/rt-1-refund").json()["id"] == reversal["id"]
    original = api.get(f"/api/Gift/{gift['id']}").json()
    assert (original["amount"], original["reversingGiftId"]) == (30.0, reversal["id"])
    again = api.post("/api/Gift/ReversingTransaction", json={"reversedGiftId": gift["id"]})
    assert "already been reversed" in again.json()["message"]
    of_reversal = api.post("/api/Gift/ReversingTransaction", json={"giftId": reversal["id"]})
    assert "cannot be reversed" in of_reversal.json()["message"]
    for body in ({}, {"reversedGiftId": 987654}):
        assert api.post("/api/Gift/ReversingTransaction", json=body).status_code == 400
