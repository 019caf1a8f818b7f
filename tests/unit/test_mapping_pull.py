"""Seeds 002 and 004 "Pull": Virtuous Gifts and RecurringGifts back into WeGive records."""

from __future__ import annotations

from typing import Any

import pytest

from mapping.errors import MappingError
from mapping.pull import (
    PullMatch,
    match_pulled_gift,
    owner_lookup,
    pulled_scheduled_donation,
    pulled_transaction,
    resolve_owner,
    wg_id_of,
)
from tests.unit.test_mapping_factories import tenant

ALLOCATING = tenant(fund_allocations=True, timezone="America/Chicago")
NOT_ALLOCATING = tenant(fund_allocations=False, timezone="America/Chicago")

FULL_GIFT: dict[str, Any] = {
    "id": 95010,
    "contactId": 502,
    "contactIndividualId": 602,
    "giftDate": "2026-11-20T00:00:00",
    "amount": 125.5,
    "description": "Check at the gala",
    "notes": "Pledge payment",
    "isTaxDeductible": True,
    "isPrivate": False,
    "segmentId": 302,
    "customFields": [{"name": "wg_id", "value": "3001"}],
    "giftDesignations": [
        {"id": 1, "projectId": 6031, "amountDesignated": 100.25},
        {"id": 2, "projectId": 6032, "amountDesignated": "25.25"},
    ],
}


def gift(**overrides: Any) -> dict[str, Any]:
    return {**FULL_GIFT, **overrides}


def pull(
    existing: dict[str, Any] | None = None, settings_: Any = ALLOCATING, **overrides: Any
) -> dict[str, Any]:
    return pulled_transaction(gift(**overrides), existing=existing, tenant=settings_)


# Seed 002's pull table, one row per line: (WeGive field, gift overrides, existing, expected).
GIFT_PULL_TABLE = [
    ("virtuous_id", {"id": 95010}, None, 95010),
    ("amount", {"amount": 125.5}, None, 12550),
    ("amount", {"amount": "19.99"}, {"status": "success", "amount": None}, 1999),
    ("description", {"description": "Check at the gala"}, None, "Check at the gala"),
    ("description", {"description": None}, None, "Virtuous Import"),
    ("description", {"description": ""}, None, "Virtuous Import"),
    ("created_at", {"giftDate": "2026-11-20T00:00:00"}, None, "2026-11-20 17:00:00"),
    ("created_at", {"giftDate": "2026-11-20"}, None, "2026-11-20 17:00:00"),
    ("created_at", {"giftDate": "2026-11-20T10:15:00"}, None, "2026-11-20 16:15:00"),
    ("status", {}, {"status": "refunded", "amount": 5000}, "refunded"),
    ("status", {}, None, "success"),
    ("status", {}, {"amount": 5000}, "success"),
    ("is_tax_deductible", {"isTaxDeductible": False}, None, False),
    ("anonymous", {"isPrivate": True}, None, True),
    ("supporter_inputted_notes", {"notes": "Pledge payment"}, None, "Pledge payment"),
    ("fund_virtuous_id", {}, None, 6031),
    ("campaign_virtuous_segment_id", {"segmentId": 302}, None, 302),
    ("campaign_virtuous_segment_id", {"segmentId": None}, None, None),
]


@pytest.mark.parametrize(("field", "overrides", "existing", "expected"), GIFT_PULL_TABLE)
def test_gift_pull_table(
    field: str, overrides: dict[str, Any], existing: dict[str, Any] | None, expected: object
) -> None:
    assert pull(existing, **overrides)[field] == expected


def test_amount_is_only_set_when_not_already_present() -> None:
    assert "amount" not in pull({"status": "success", "amount": 12000}, amount=999.0)


def test_a_source_key_virtuous_did_not_send_is_left_out() -> None:
    sparse = {key: value for key, value in FULL_GIFT.items() if key not in ("notes", "isPrivate")}
    record = pulled_transaction(sparse, existing=None, tenant=ALLOCATING)
    assert "supporter_inputted_notes" not in record and "anonymous" not in record


def test_allocations_are_reconciled_when_fund_allocations_are_on() -> None:
    assert pull()["allocations"] == [
        {"fund_virtuous_id": 6031, "amount": 10025},
        {"fund_virtuous_id": 6032, "amount": 2525},
    ]
    # on every pull, existing record or not
    assert pull({"status": "success", "amount": 12550})["allocations"][0]["amount"] == 10025
    assert "allocations" not in pull(settings_=NOT_ALLOCATING)


def test_allocations_merge_repeated_projects() -> None:
    rows = [
        {"projectId": 6031, "amountDesignated": 10},
        {"projectId": 6031, "amountDesignated": 5.5},
    ]
    assert pull(giftDesignations=rows)["allocations"] == [
        {"fund_virtuous_id": 6031, "amount": 1550}
    ]


def test_no_designations_means_no_fund() -> None:
    record = pull(giftDesignations=[])
    assert record["fund_virtuous_id"] is None and record["allocations"] == []


def test_recurring_linkage_is_not_restored() -> None:
    record = pull(recurringGiftPayments=[{"id": 8001, "amount": 125.5}])
    assert not any("recurring" in key or "scheduled" in key for key in record)


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"id": None}, "id"),
        ({"id": "btch_x"}, "id"),
        ({"giftDate": None}, "giftDate"),
        ({"giftDate": "Nov 20"}, "giftDate"),
        ({"amount": "lots"}, "amount"),
        ({"giftDesignations": [{"amountDesignated": 1}]}, "giftDesignations.0.projectId"),
        ({"giftDesignations": [6031]}, "giftDesignations.0"),
        (
            {"giftDesignations": [{"projectId": 1, "amountDesignated": None}]},
            "giftDesignations.0.amountDesignated",
        ),
    ],
)
def test_malformed_virtuous_json_names_the_field(overrides: dict[str, Any], path: str) -> None:
    with pytest.raises(MappingError) as caught:
        pull(**overrides)
    assert caught.value.path == path


KNOWN_IDS = {95010: "3001", 95011: "3002"}
KNOWN_WG = {"3001", "3002", "3003"}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # first by virtuous_id, even when the wg_id names another transaction
        (
            {"id": 95011, "customFields": [{"name": "wg_id", "value": "3003"}]},
            PullMatch("virtuous_id", "3002"),
        ),
        # then by the wg_id custom field: array form ...
        (
            {
                "id": 99999,
                "customFields": [
                    {"name": "other", "value": "x"},
                    {"name": "wg_id", "value": "3003"},
                ],
            },
            PullMatch("wg_id", "3003"),
        ),
        # ... or object form, the value an int or a string
        ({"id": 99999, "customFields": {"wg_id": 3003}}, PullMatch("wg_id", "3003")),
        ({"id": 99999, "customFields": {"wg_id": "3001"}}, PullMatch("wg_id", "3001")),
        # otherwise new
        ({"id": 99999, "customFields": {"wg_id": "4040"}}, PullMatch("new", None)),
        ({"id": 99999, "customFields": []}, PullMatch("new", None)),
        ({"id": 99999, "customFields": None}, PullMatch("new", None)),
    ],
)
def test_matching_order(overrides: dict[str, Any], expected: PullMatch) -> None:
    assert (
        match_pulled_gift(
            gift(**overrides), known_by_virtuous_id=KNOWN_IDS, known_by_wg_id=KNOWN_WG
        )
        == expected
    )


def test_wg_id_of_reads_both_forms() -> None:
    assert wg_id_of({"customFields": {"wg_id": "7"}}) == "7"
    assert wg_id_of({"customFields": [{"name": "wg_id", "value": 7}]}) == "7"
    assert wg_id_of({"customFields": [{"name": "wg_id", "value": ""}]}) is None
    assert wg_id_of({}) is None


def test_owner_lookup_order() -> None:
    assert pull()["owner_lookup"] == [
        {"by": "company", "virtuous_contact_id": 502},
        {"by": "individual", "virtuous_contact_individual_id": 602},
        {"by": "primary_individual", "virtuous_contact_id": 502},
    ]
    assert pull(contactIndividualId=None)["owner_lookup"] == [
        {"by": "company", "virtuous_contact_id": 502},
        {"by": "primary_individual", "virtuous_contact_id": 502},
    ]
    assert owner_lookup(None, None) == []


@pytest.mark.parametrize(
    ("companies", "individuals", "primaries", "expected"),
    [
        # a company donor by contact id is tried first
        ({502: "c-1"}, {602: "p-2"}, {502: "p-3"}, {"type": "company", "id": "c-1"}),
        # otherwise the individual by contactIndividualId
        ({}, {602: "p-2"}, {502: "p-3"}, {"type": "individual", "id": "p-2"}),
        # falling back to the Contact's primary individual
        ({}, {}, {502: "p-3"}, {"type": "individual", "id": "p-3"}),
        ({}, {}, {}, None),
    ],
)
def test_owner_resolution_order(
    companies: dict[int, str],
    individuals: dict[int, str],
    primaries: dict[int, str],
    expected: dict[str, str] | None,
) -> None:
    lookups = owner_lookup(502, 602)
    assert (
        resolve_owner(
            lookups, companies=companies, individuals=individuals, primary_individuals=primaries
        )
        == expected
    )


RECURRING_GIFT: dict[str, Any] = {
    "id": 8001,
    "contactId": 502,
    "startDate": "2026-06-01T00:00:00",
    "nextExpectedPaymentDate": "2026-12-01T00:00:00",
    "createDateTimeUtc": "2026-06-01T14:03:00.123",
    "cancelDateTimeUtc": None,
    "frequency": "Monthly",
    "amount": 31.2,
    "isPrivate": True,
    "segmentId": 302,
    "designations": [
        {"projectId": 6031, "amountDesignated": 20.8},
        {"projectId": 6032, "amountDesignated": 10.4},
    ],
}


def pull_rg(
    existing: dict[str, Any] | None = None, settings_: Any = ALLOCATING, **overrides: Any
) -> dict[str, Any]:
    return pulled_scheduled_donation(
        {**RECURRING_GIFT, **overrides}, existing=existing, tenant=settings_
    )


EXISTING_SD = {"id": 5004, "amount": 3000, "fee_amount": 120}

# Seed 004's pull table, one row per line.
RECURRING_PULL_TABLE = [
    ("virtuous_id", {"id": 8001}, None, 8001),
    ("start_date", {"nextExpectedPaymentDate": "2026-12-01T00:00:00"}, None, "2026-12-01"),
    ("created_at", {"createDateTimeUtc": "2026-06-01T14:03:00.123"}, None, "2026-06-01 14:03:00"),
    ("deleted_at", {"cancelDateTimeUtc": "2026-11-22T16:45:00"}, None, "2026-11-22 16:45:00"),
    ("frequency", {"frequency": "Weekly"}, None, "weekly"),
    ("frequency", {"frequency": "Monthly"}, None, "monthly"),
    ("frequency", {"frequency": "Quarterly"}, None, "quarterly"),
    ("frequency", {"frequency": "Annually"}, None, "yearly"),
    ("anonymous", {"isPrivate": True}, None, True),
    ("anonymous", {"isPrivate": False}, EXISTING_SD, False),
    ("amount", {"amount": 31.2}, None, 3120),
    ("fee_amount", {}, None, 0),
    ("fund_virtuous_id", {}, None, 6031),
    ("campaign_virtuous_segment_id", {"segmentId": 302}, None, 302),
]


@pytest.mark.parametrize(("field", "overrides", "existing", "expected"), RECURRING_PULL_TABLE)
def test_recurring_pull_table(
    field: str, overrides: dict[str, Any], existing: dict[str, Any] | None, expected: object
) -> None:
    assert pull_rg(existing, **overrides)[field] == expected


def test_amount_and_fee_only_on_first_import() -> None:
    # Virtuous holds the fee-inflated charge amount: pulling it back would grow the fee.
    record = pull_rg(EXISTING_SD, amount=32.4)
    assert "amount" not in record and "fee_amount" not in record


def test_deleted_at_only_when_cancelled() -> None:
    assert "deleted_at" not in pull_rg()
    assert "deleted_at" not in pull_rg(cancelDateTimeUtc="")


def test_recurring_allocations_on_first_import_only() -> None:
    assert pull_rg()["allocations"] == [
        {"fund_virtuous_id": 6031, "amount": 2080},
        {"fund_virtuous_id": 6032, "amount": 1040},
    ]
    assert "allocations" not in pull_rg(EXISTING_SD)
    assert "allocations" not in pull_rg(settings_=NOT_ALLOCATING)


def test_recurring_source_resolution_is_company_then_primary_individual() -> None:
    assert pull_rg(contactIndividualId=602)["owner_lookup"] == [
        {"by": "company", "virtuous_contact_id": 502},
        {"by": "primary_individual", "virtuous_contact_id": 502},
    ]


def test_an_unknown_frequency_is_a_mapping_error() -> None:
    with pytest.raises(MappingError) as caught:
        pull_rg(frequency="Biweekly")
    assert caught.value.path == "frequency"
    with pytest.raises(MappingError) as caught:
        pull_rg(frequency="Semiannually")
    assert "no WeGive equivalent" in caught.value.reason
