"""Seed 002 "Push -- batch path": every field of the batch table, plus idempotency and contact."""

from __future__ import annotations

from typing import Any

import pytest

from mapping.batch_entry import batch_entry, contact_payload, gift_contact, gift_type
from mapping.decision import SendDecision, decide
from mapping.errors import MappingError
from mapping.events import Owner
from mapping.money import cents
from mapping.records import Address
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
ZERO = SendDecision(send=True, reason="refund_of_real_gift", zero_amount=True)
BATCH = tenant(transaction_source="WeGive", reference_source="WeGive-Donor")


def entry(decision: SendDecision = SEND, settings: Any = BATCH, **overrides: Any) -> dict[str, Any]:
    return batch_entry(tx(**overrides), settings, decision)


# One row per line of seed 002's batch table: (field, overrides, expected value).
BATCH_TABLE = [
    (
        "contact",
        {"owner": owner_data(virtuous_contact_id=501, id=701)},
        {"id": 501, "referenceSource": "WeGive-Donor", "referenceId": "701"},
    ),
    ("contactIndividualId", {"owner": owner_data(virtuous_contact_individual_id=601)}, 601),
    ("amount", {"amount": 1234}, "12.34"),
    ("giftDate", {"created_at": "2026-11-21T03:30:00Z"}, "2026-11-20"),
    ("description", {"description": "Year-end gift"}, "Year-end gift"),
    ("notes", {"supporter_inputted_notes": "For the kids\nwith love"}, "For the kids\nwith love"),
    ("isTaxDeductible", {"is_tax_deductible": False}, False),
    ("isTaxDeductible", {"is_tax_deductible": True}, True),
    ("isPrivate", {"anonymous": True}, True),
    ("isPrivate", {"anonymous": False}, False),
    ("designations", {"amount": 5000}, [{"id": 4012, "amountDesignated": "50.00"}]),
    ("segmentId", {"campaign": CAMPAIGN}, 301),
    ("segment", {"campaign": CAMPAIGN}, "GD2026"),
    ("segmentCode", {"campaign": CAMPAIGN}, "GD2026"),
    ("recurringGiftTransactionId", {"scheduled_donation": {"id": 5001, "virtuous_id": 7001}}, 7001),
    ("customFields", {"id": 1001}, {"wg_id": "1001"}),
    ("giftType", {"source_type": "card"}, "Credit"),
    ("transactionSource", {}, "WeGive"),
    ("transactionId", {"id": 1001}, "1001"),
    ("transactionId", {"id": "tx-9"}, "tx-9"),
]


@pytest.mark.parametrize(("field", "overrides", "expected"), BATCH_TABLE)
def test_batch_table(field: str, overrides: dict[str, Any], expected: object) -> None:
    assert entry(**overrides)[field] == expected


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("contactIndividualId", {"owner": owner_data(virtuous_contact_individual_id=None)}),
        ("description", {"description": None}),
        ("notes", {"supporter_inputted_notes": None}),
        ("notes", {"supporter_inputted_notes": ""}),
        ("segmentId", {"campaign": None}),
        ("segment", {"campaign": None}),
        ("segmentId", {"campaign": {**CAMPAIGN, "virtuous_segment_id": None}}),
        ("segmentCode", {"campaign": {**CAMPAIGN, "segment_code": None}}),
        ("recurringGiftTransactionId", {"scheduled_donation": None}),
        ("recurringGiftTransactionId", {"scheduled_donation": {"id": 5001, "virtuous_id": None}}),
        ("giftType", {"source_type": "paypal"}),
        ("giftType", {"source_type": None}),
    ],
)
def test_fields_with_no_source_are_omitted_not_null(field: str, overrides: dict[str, Any]) -> None:
    assert field not in entry(**overrides)


@pytest.mark.parametrize(
    ("source_type", "expected"),
    [("card", "Credit"), ("bank", "EFT"), ("check", None), ("apple_pay", None), (None, None)],
)
def test_gift_type_table(source_type: str | None, expected: str | None) -> None:
    assert gift_type(source_type) == expected


def test_failed_or_refunded_gifts_go_as_zero() -> None:
    body = entry(
        ZERO,
        status="refunded",
        virtuous_id=90001,
        amount=5000,
        allocations=[allocation(GENERAL, 3000), allocation(SHELTER, 2000)],
    )
    assert body["amount"] == "0.00"
    assert body["designations"] == [
        {"id": 4012, "amountDesignated": "0.00"},
        {"id": 4013, "amountDesignated": "0.00"},
    ]


def test_allocations_give_one_designation_each_and_balance() -> None:
    body = entry(amount=5001, allocations=[allocation(GENERAL, 2501), allocation(SHELTER, 2500)])
    assert body["designations"] == [
        {"id": 4012, "amountDesignated": "25.01"},
        {"id": 4013, "amountDesignated": "25.00"},
    ]
    assert sum(cents(d["amountDesignated"]) for d in body["designations"]) == cents(body["amount"])


def test_a_fund_known_only_by_code_goes_as_project_code() -> None:
    body = entry(fund={"id": 21, "name": "Food", "virtuous_id": None, "code": "FOOD"})
    assert body["designations"] == [{"projectCode": "FOOD", "amountDesignated": "50.00"}]


def test_a_fund_with_no_project_reference_cannot_be_mapped() -> None:
    with pytest.raises(MappingError) as caught:
        entry(fund={"id": 21, "name": "Food", "virtuous_id": None, "code": None})
    assert caught.value.path == "record.fund.virtuous_id"
    assert "push the fund first" in caught.value.reason


def test_a_decision_not_to_send_has_no_entry() -> None:
    record = tx(status="pending")
    with pytest.raises(ValueError, match="status_not_sent:pending"):
        batch_entry(record, BATCH, decide(record, BATCH))


def test_a_donor_without_a_contact_id_is_embedded_for_matching() -> None:
    donor = owner_data(
        virtuous_contact_id=None,
        virtuous_contact_individual_id=None,
        id=703,
        first_name="Ben",
        last_name="Okafor",
        email="ben@example.net",
        phone="312-555-0142",
        address={
            "line1": "9 Elm Ave",
            "city": "Evanston",
            "state": "IL",
            "postal": "60201",
            "country": "US",
        },
    )
    body = entry(owner=donor)
    # The official Gift Transaction contact: type, lower-case name keys, a nested address.
    assert body["contact"] == {
        "referenceSource": "WeGive-Donor",
        "referenceId": "703",
        "type": "Household",
        "name": "Ben Okafor",
        "firstname": "Ben",
        "lastname": "Okafor",
        "email": "ben@example.net",
        "phone": "312-555-0142",
        "address": {
            "address1": "9 Elm Ave",
            "city": "Evanston",
            "state": "IL",
            "postal": "60201",
            "country": "US",
        },
    }
    assert "contactIndividualId" not in body


def test_a_company_contact_is_an_organization_named_for_the_company() -> None:
    company = Owner(type="company", id=702, company_name="Acme Builders LLC")
    assert contact_payload(company, BATCH) == {
        "referenceSource": "WeGive-Donor",
        "referenceId": "702",
        "contactType": "Organization",
        "name": "Acme Builders LLC",
    }


def test_contact_payload_omits_what_the_donor_lacks() -> None:
    sparse = Owner(type="individual", id="u-1", email="x@example.org", first_name="")
    assert contact_payload(sparse, BATCH) == {
        "referenceSource": "WeGive-Donor",
        "referenceId": "u-1",
        "contactType": "Household",
        "email": "x@example.org",
    }


def test_every_entry_carries_the_idempotency_key_and_no_nulls() -> None:
    body = entry(owner=owner_data(virtuous_contact_id=None), description=None)
    assert body["transactionSource"] == "WeGive" and body["transactionId"] == "1001"
    assert None not in body.values()


def test_the_embedded_contact_of_a_company_is_an_organization_without_an_address() -> None:
    company = Owner(type="company", id=702, company_name="Acme Builders LLC")
    assert gift_contact(company, BATCH) == {
        "referenceSource": "WeGive-Donor",
        "referenceId": "702",
        "type": "Organization",
        "name": "Acme Builders LLC",
    }


def test_the_embedded_contact_omits_what_the_donor_lacks() -> None:
    sparse = Owner(
        type="individual", id="u-1", email="x@example.org", first_name="", address=Address(city="")
    )
    assert gift_contact(sparse, BATCH) == {
        "referenceSource": "WeGive-Donor",
        "referenceId": "u-1",
        "type": "Household",
        "email": "x@example.org",
    }


def test_a_known_contact_id_still_sends_the_reference_and_nothing_to_compare() -> None:
    donor = owner_data(virtuous_contact_id=501, id=9, email="changed@example.org")
    assert entry(owner=donor)["contact"] == {
        "id": 501,
        "referenceSource": "WeGive-Donor",
        "referenceId": "9",
    }
