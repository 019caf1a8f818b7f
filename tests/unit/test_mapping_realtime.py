"""Seed 002 "Push -- real-time single path": create payload, GET+PUT update, designation diff."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mapping.decision import SendDecision
from mapping.errors import MappingError
from mapping.money import cents
from mapping.realtime import (
    OWNED_FIELDS,
    realtime_create,
    realtime_desired,
    realtime_update,
    zeroing_update,
)
from tests.unit.test_mapping_factories import (
    CAMPAIGN,
    GENERAL,
    SHELTER,
    allocation,
    owner_data,
    tenant,
    tx,
)

SEND = SendDecision(send=True, reason="success", zero_amount=False)
REAL_TIME = tenant(mode="real_time", timezone="America/Los_Angeles", transaction_source="WeGive")


def create(**overrides: Any) -> dict[str, Any]:
    return realtime_create(tx(**overrides), REAL_TIME, SEND)


# One row per line of seed 002's real-time table: (field, overrides, expected value).
REAL_TIME_TABLE = [
    ("contactId", {"owner": owner_data(virtuous_contact_id=502)}, 502),
    ("contactIndividualId", {"owner": owner_data(virtuous_contact_individual_id=602)}, 602),
    ("amount", {"amount": 15000}, "150.00"),
    ("giftDate", {"created_at": "2026-11-21T02:00:00Z"}, "2026-11-20"),
    ("description", {"description": "Gala ticket"}, "Gala ticket"),
    ("notes", {"supporter_inputted_notes": "See you there"}, "See you there"),
    ("isTaxDeductible", {"is_tax_deductible": False}, False),
    ("isPrivate", {"anonymous": True}, True),
    (
        "giftDesignations",
        {"amount": 15000, "allocations": [allocation(GENERAL, 10000), allocation(SHELTER, 5000)]},
        [{"projectId": 4012, "amount": "100.00"}, {"projectId": 4013, "amount": "50.00"}],
    ),
    ("giftDesignations", {"amount": 700}, [{"projectId": 4012, "amount": "7.00"}]),
    ("segmentId", {"campaign": CAMPAIGN}, 301),
    ("segment", {"campaign": CAMPAIGN}, "GD2026"),
    (
        "recurringGiftPayments",
        {"amount": 3000, "scheduled_donation": {"id": 5004, "virtuous_id": 8001}},
        [{"id": 8001, "amount": "30.00"}],
    ),
    ("customFields", {"id": 3001}, [{"name": "wg_id", "value": "3001"}]),
    ("giftType", {"source_type": "card"}, "Credit"),
    ("giftType", {"source_type": "bank"}, "EFT"),
    ("transactionSource", {}, "WeGive"),
    ("transactionId", {"id": 3001}, "3001"),
]


@pytest.mark.parametrize(("field", "overrides", "expected"), REAL_TIME_TABLE)
def test_real_time_table(field: str, overrides: dict[str, Any], expected: object) -> None:
    assert create(**overrides)[field] == expected


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("contactIndividualId", {}),
        ("segmentId", {"campaign": None}),
        ("segment", {"campaign": None}),
        # only when linked to a scheduled donation that Virtuous knows
        ("recurringGiftPayments", {"scheduled_donation": None}),
        ("recurringGiftPayments", {"scheduled_donation": {"id": 5004, "virtuous_id": None}}),
        ("giftType", {"source_type": "check"}),
        ("description", {"description": None}),
        # the batch-only shapes never appear on the real-time path
        ("designations", {}),
        ("contact", {}),
        ("segmentCode", {"campaign": CAMPAIGN}),
    ],
)
def test_real_time_omits(field: str, overrides: dict[str, Any]) -> None:
    assert field not in create(**overrides)


def test_a_direct_create_needs_an_existing_contact() -> None:
    with pytest.raises(MappingError) as caught:
        create(owner=owner_data(virtuous_contact_id=None))
    assert caught.value.path == "record.owner.virtuous_contact_id"
    # ... but the desired state of an update does not: the PUT never touches the contact
    desired = realtime_desired(tx(owner=owner_data(virtuous_contact_id=None)), REAL_TIME, SEND)
    assert "contactId" not in desired


def test_a_direct_create_needs_project_ids_not_codes() -> None:
    with pytest.raises(MappingError) as caught:
        create(fund={"id": 21, "name": "Food", "virtuous_id": None, "code": "FOOD"})
    assert caught.value.path == "record.fund.virtuous_id"


def test_a_decision_not_to_send_has_no_create() -> None:
    with pytest.raises(ValueError):
        realtime_create(tx(), REAL_TIME, SendDecision(False, "processing_ach_not_sent", False))


EXISTING_GIFT: dict[str, Any] = {
    "id": 95001,
    "contactId": 502,
    "contactIndividualId": 602,
    "giftType": "Credit",
    "giftDate": "2026-11-20T00:00:00",
    "amount": 80.0,
    "currencyCode": "USD",
    "description": "Old description",
    "notes": "Old notes",
    "isTaxDeductible": True,
    "isPrivate": False,
    "segmentId": 300,
    "segment": "OLD",
    "batch": "Nov online",
    "receiptDate": "2026-11-22T00:00:00",
    "transactionSource": "WeGive",
    "transactionId": "3003",
    "customFields": [
        {"name": "wg_id", "value": "3003", "displayName": "WeGive id"},
        {"name": "Staff Flag", "value": "VIP"},
    ],
    "giftDesignations": [
        {"id": 7001, "projectId": 6031, "project": "Arts Education", "amountDesignated": 50.0},
        {"id": 7002, "projectId": 6032, "project": "Gallery", "amountDesignated": 30.0},
    ],
}


def desired_for(**overrides: Any) -> dict[str, Any]:
    return realtime_desired(tx(**overrides), REAL_TIME, SEND)


def test_update_overwrites_only_the_wegive_owned_fields() -> None:
    existing = copy.deepcopy(EXISTING_GIFT)
    desired = desired_for(
        id=3003,
        amount=9000,
        description="Corporate match",
        supporter_inputted_notes=None,
        anonymous=True,
        campaign=CAMPAIGN,
        owner=owner_data(virtuous_contact_id=999),
        created_at="2027-01-05T12:00:00Z",
        source_type="bank",
    )
    body = realtime_update(existing, desired)
    assert existing == EXISTING_GIFT  # the input is not modified
    owned = {*OWNED_FIELDS, "customFields", "giftDesignations"}
    for field, value in EXISTING_GIFT.items():
        if field not in owned:
            assert body[field] == value, field  # contact, giftDate, giftType, batch... kept
    assert body["amount"] == "90.00"
    assert body["description"] == "Corporate match"
    assert body["notes"] is None  # WeGive has no notes: cleared, it owns the field
    assert body["isPrivate"] is True and body["isTaxDeductible"] is True
    assert (body["segmentId"], body["segment"]) == (301, "GD2026")


def test_update_replaces_only_the_wg_id_custom_field() -> None:
    body = realtime_update(EXISTING_GIFT, desired_for(id=4444))
    assert body["customFields"] == [
        {"name": "wg_id", "value": "4444", "displayName": "WeGive id"},
        {"name": "Staff Flag", "value": "VIP"},
    ]
    as_object = {**EXISTING_GIFT, "customFields": {"Staff Flag": "VIP"}}
    assert realtime_update(as_object, desired_for(id=4444))["customFields"] == {
        "Staff Flag": "VIP",
        "wg_id": "4444",
    }
    no_fields = {key: value for key, value in EXISTING_GIFT.items() if key != "customFields"}
    assert realtime_update(no_fields, desired_for(id=4444))["customFields"] == [
        {"name": "wg_id", "value": "4444"}
    ]


def test_designations_follow_the_diff_protocol() -> None:
    desired = desired_for(
        amount=8000, allocations=[allocation(GENERAL, 5000), allocation(SHELTER, 3000)]
    )
    body = realtime_update(EXISTING_GIFT, desired)
    assert body["giftDesignations"] == [
        {
            "id": 7001,
            "projectId": 6031,
            "project": "Arts Education",
            "amountDesignated": 50.0,
            "state": "Delete",
        },
        {
            "id": 7002,
            "projectId": 6032,
            "project": "Gallery",
            "amountDesignated": 30.0,
            "state": "Delete",
        },
        {"projectId": 4012, "amount": "50.00", "state": "Add"},
        {"projectId": 4013, "amount": "30.00", "state": "Add"},
    ]
    added = [row for row in body["giftDesignations"] if row["state"] == "Add"]
    assert sum(cents(row["amount"]) for row in added) == cents(body["amount"])


def test_zeroing_update_keeps_the_projects_at_zero() -> None:
    body = zeroing_update(EXISTING_GIFT)
    assert body["amount"] == "0.00"
    assert body["giftDesignations"] == [
        {**EXISTING_GIFT["giftDesignations"][0], "state": "Delete"},
        {**EXISTING_GIFT["giftDesignations"][1], "state": "Delete"},
        {"projectId": 6031, "amount": "0.00", "state": "Add"},
        {"projectId": 6032, "amount": "0.00", "state": "Add"},
    ]
    for field in ("contactId", "giftDate", "description", "customFields", "segmentId"):
        assert body[field] == EXISTING_GIFT[field]


def test_zeroing_merges_repeated_projects_and_tolerates_codes() -> None:
    existing = {
        "amount": 20.0,
        "giftDesignations": [
            {"id": 1, "projectId": 6031, "amountDesignated": 10.0},
            {"id": 2, "projectId": 6031, "amountDesignated": 5.0},
            {"id": 3, "projectCode": "FOOD", "amountDesignated": 5.0},
        ],
    }
    adds = [row for row in zeroing_update(existing)["giftDesignations"] if row["state"] == "Add"]
    assert adds == [
        {"projectId": 6031, "amount": "0.00", "state": "Add"},
        {"projectCode": "FOOD", "amount": "0.00", "state": "Add"},
    ]


def test_a_zeroed_desired_state_has_zero_amounts_everywhere() -> None:
    zero = SendDecision(True, "refund_of_real_gift", zero_amount=True)
    record = tx(
        status="refunded",
        virtuous_id=95002,
        amount=3000,
        scheduled_donation={"id": 5004, "virtuous_id": 8001},
    )
    desired = realtime_desired(record, REAL_TIME, zero)
    assert desired["amount"] == "0.00"
    assert desired["giftDesignations"] == [{"projectId": 4012, "amount": "0.00"}]
    assert desired["recurringGiftPayments"] == [{"id": 8001, "amount": "0.00"}]
