"""Seed 004 "Push": frequency map, create body, fee distribution, dependencies, update, cancel."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapping.decision import SendDecision
from mapping.errors import MappingError
from mapping.events import ScheduledDonation
from mapping.fields import MAX_CENTS
from mapping.money import cents
from mapping.recurring import (
    FREQUENCY_FROM_VIRTUOUS,
    FREQUENCY_TO_VIRTUOUS,
    charge_amount,
    missing_dependencies,
    recurring_cancel,
    recurring_create,
    recurring_decision,
    recurring_designations,
    recurring_update,
    wegive_frequency,
)
from mapping.tenant import TenantSettings
from tests.unit.test_mapping_factories import (
    CAMPAIGN,
    FEES,
    GENERAL,
    SHELTER,
    allocation,
    owner_data,
    sd,
    sd_data,
    tenant,
)

SPLITTING = tenant(fee_splitting=True)
SPLITTING_DESPITE_FEE_FUND = tenant(fee_splitting=True, fee_fund_virtuous_id=88)
FEE_FUND = tenant(fee_splitting=False, fee_fund_virtuous_id=88)
NO_FEE_FUND = tenant(fee_splitting=False)  # splitting off but nowhere else to put the fee
TWO_FUNDS = [allocation(GENERAL, 1500), allocation(SHELTER, 1000)]


@pytest.mark.parametrize(
    ("wegive", "virtuous"),
    [
        ("weekly", "Weekly"),
        ("monthly", "Monthly"),
        ("quarterly", "Quarterly"),
        ("yearly", "Annually"),
    ],
)
def test_frequency_map_both_ways(wegive: str, virtuous: str) -> None:
    assert FREQUENCY_TO_VIRTUOUS[wegive] == virtuous
    assert FREQUENCY_FROM_VIRTUOUS[virtuous] == wegive
    assert recurring_create(sd(frequency=wegive), SPLITTING)["frequency"] == virtuous


def test_frequency_maps_are_complete_inverses() -> None:
    assert len(FREQUENCY_TO_VIRTUOUS) == len(FREQUENCY_FROM_VIRTUOUS) == 4
    for wegive, virtuous in FREQUENCY_TO_VIRTUOUS.items():
        assert FREQUENCY_FROM_VIRTUOUS[virtuous] == wegive


def test_charge_amount_is_amount_plus_fee() -> None:
    assert charge_amount(sd(amount=2500, fee_amount=105)) == 2605
    assert charge_amount(sd(amount=2500)) == 2500


def test_the_create_body_is_exactly_the_seed_shape() -> None:
    record = sd(
        start_date="2026-12-01",
        frequency="monthly",
        amount=2500,
        fee_amount=105,
        anonymous=True,
        campaign=CAMPAIGN,
        source=owner_data(virtuous_contact_id=501),
        allocations=TWO_FUNDS,
    )
    assert recurring_create(record, FEE_FUND) == {
        "startDate": "2026-12-01",
        "nextExpectedPaymentDate": "2026-12-01",
        "frequency": "Monthly",
        "amount": "26.05",
        "isPrivate": True,
        "segmentId": 301,
        "designations": [
            {"projectId": 4012, "amountDesignated": "15.00"},
            {"projectId": 4013, "amountDesignated": "10.00"},
            {"projectId": 88, "amountDesignated": "1.05"},
        ],
        "contactId": 501,
    }


def test_no_campaign_means_no_segment() -> None:
    assert "segmentId" not in recurring_create(sd(campaign=None), SPLITTING)


@pytest.mark.parametrize(
    ("settings_", "allocations", "fee", "expected"),
    [
        # fee splitting on: proportional, rounding absorbed by the last row
        (SPLITTING, TWO_FUNDS, 105, [(4012, "15.63"), (4013, "10.42")]),
        (SPLITTING_DESPITE_FEE_FUND, TWO_FUNDS, 105, [(4012, "15.63"), (4013, "10.42")]),
        # no fee fund configured: split even though fee splitting is off
        (NO_FEE_FUND, TWO_FUNDS, 105, [(4012, "15.63"), (4013, "10.42")]),
        # a dedicated fee fund: a separate designation ...
        (FEE_FUND, TWO_FUNDS, 105, [(4012, "15.00"), (4013, "10.00"), (88, "1.05")]),
        # ... merged into an existing line of that fund
        (
            FEE_FUND,
            [allocation(GENERAL, 2000), allocation(FEES, 500)],
            105,
            [(4012, "20.00"), (88, "6.05")],
        ),
        # no fee: the allocations as they are
        (FEE_FUND, TWO_FUNDS, 0, [(4012, "15.00"), (4013, "10.00")]),
        (SPLITTING, TWO_FUNDS, 0, [(4012, "15.00"), (4013, "10.00")]),
        # no allocations: the fund carries amount and split fee
        (SPLITTING, [], 105, [(4012, "26.05")]),
        (FEE_FUND, [], 105, [(4012, "25.00"), (88, "1.05")]),
    ],
)
def test_fee_distribution(
    settings_: TenantSettings,
    allocations: list[dict[str, Any]],
    fee: int,
    expected: list[tuple[int, str]],
) -> None:
    record = sd(amount=2500, fee_amount=fee, allocations=allocations)
    rows = recurring_designations(record, settings_)
    assert [(row["projectId"], row["amountDesignated"]) for row in rows] == expected
    assert sum(cents(row["amountDesignated"]) for row in rows) == charge_amount(record)


def test_three_way_split_puts_the_rounding_on_the_last_row() -> None:
    thirds = [
        allocation({"id": 31, "name": "A", "virtuous_id": 6031}, 3333),
        allocation({"id": 32, "name": "B", "virtuous_id": 6032}, 3333),
        allocation({"id": 33, "name": "C", "virtuous_id": 6033}, 3334),
    ]
    rows = recurring_designations(sd(amount=10000, fee_amount=333, allocations=thirds), SPLITTING)
    assert [row["amountDesignated"] for row in rows] == ["34.43", "34.43", "34.47"]


def test_missing_dependencies_are_listed_in_push_order() -> None:
    record = sd(
        source=owner_data(virtuous_contact_id=None),
        campaign={**CAMPAIGN, "virtuous_segment_id": None},
        fund={"id": 21, "name": "Food", "virtuous_id": None, "code": "FOOD"},
        allocations=[
            allocation(GENERAL, 2000),
            allocation({"id": 22, "name": "New", "virtuous_id": None}, 500),
        ],
    )
    assert missing_dependencies(record) == [
        "record.source.virtuous_contact_id",
        "record.campaign.virtuous_segment_id",
        "record.fund.virtuous_id",
        "record.allocations.1.fund.virtuous_id",
    ]
    with pytest.raises(MappingError) as caught:
        recurring_create(record, SPLITTING)
    assert caught.value.path == "record.source.virtuous_contact_id"
    for label in ("donor contact", "campaign segment", "fund project"):
        assert label in caught.value.reason
    assert missing_dependencies(sd(campaign=CAMPAIGN)) == []


EXISTING_RG: dict[str, Any] = {
    "id": 8001,
    "contactId": 502,
    "startDate": "2026-06-01T00:00:00",
    "nextExpectedPaymentDate": "2026-12-01T00:00:00",
    "frequency": "Monthly",
    "amount": 31.2,
    "isPrivate": False,
    "segmentId": 300,
    "status": "Active",
    "createDateTimeUtc": "2026-06-01T14:00:00",
    "designations": [{"id": 1, "projectId": 6031, "amountDesignated": 31.2}],
    "trackIndividualPayments": True,
}


def test_update_overwrites_only_the_wegive_owned_fields() -> None:
    record = sd(
        start_date="2027-01-01",
        amount=3000,
        fee_amount=120,
        anonymous=True,
        campaign=CAMPAIGN,
        frequency="yearly",  # not WeGive-owned on update: Virtuous keeps its own
        virtuous_id=8001,
    )
    body = recurring_update(EXISTING_RG, record, SPLITTING)
    assert body == {
        **EXISTING_RG,
        "nextExpectedPaymentDate": "2027-01-01",
        "amount": "31.20",
        "isPrivate": True,
        "segmentId": 301,
        "designations": [{"projectId": 4012, "amountDesignated": "31.20"}],  # replaced entirely
    }
    assert EXISTING_RG["designations"] == [{"id": 1, "projectId": 6031, "amountDesignated": 31.2}]


def test_update_does_not_need_the_donor_but_needs_projects_and_segment() -> None:
    record = sd(virtuous_id=8001, source=owner_data(virtuous_contact_id=None))
    assert recurring_update(EXISTING_RG, record, SPLITTING)["contactId"] == 502
    missing_segment = sd(virtuous_id=8001, campaign={**CAMPAIGN, "virtuous_segment_id": None})
    with pytest.raises(MappingError) as caught:
        recurring_update(EXISTING_RG, missing_segment, SPLITTING)
    assert caught.value.path == "record.campaign.virtuous_segment_id"


def test_cancelling_goes_by_the_cancel_route_once_and_a_put_never_cancels() -> None:
    # Contract (docs/virtuous-contract.md): only PUT /api/RecurringGift/Cancel/{id} cancels.
    cancelled = sd(status="cancelled", virtuous_id=8001)
    at = datetime(2026, 11, 22, 16, 45, tzinfo=UTC)
    body = recurring_update(EXISTING_RG, cancelled, SPLITTING, cancelled_at=at)
    assert body["status"] == EXISTING_RG["status"] and "cancelDateTimeUtc" not in body
    assert recurring_cancel(EXISTING_RG) == {}
    assert recurring_cancel({**EXISTING_RG, "status": "Cancelled"}) is None
    assert recurring_cancel({**EXISTING_RG, "cancelDateTimeUtc": "2026-11-01T00:00:00"}) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Monthly", "monthly"), ("ANNUALLY", "yearly"), ("weekly", "weekly"),
     ("Quarterly", "quarterly")],
)  # fmt: skip
def test_virtuous_frequencies_read_case_insensitively(value: str, expected: str) -> None:
    assert wegive_frequency(value) == expected


@pytest.mark.parametrize("value", ["Bimonthly", "Semiannually", "Biennially"])
def test_frequencies_wegive_lacks_are_refused_with_the_reason(value: str) -> None:
    with pytest.raises(MappingError) as caught:
        wegive_frequency(value)
    assert caught.value.path == "frequency"
    assert "no WeGive equivalent" in caught.value.reason and value in caught.value.reason


@pytest.mark.parametrize(
    ("status", "virtuous_id", "expected"),
    [
        ("active", None, SendDecision(True, "recurring_create", False)),
        ("active", 8001, SendDecision(True, "recurring_update", False)),
        ("cancelled", 8001, SendDecision(True, "recurring_cancel", False)),
        ("cancelled", None, SendDecision(False, "cancelled_never_pushed", False)),
    ],
)
def test_recurring_decision(status: str, virtuous_id: int | None, expected: SendDecision) -> None:
    assert recurring_decision(sd(status=status, virtuous_id=virtuous_id)) == expected


FUNDS = [{"id": n, "name": f"F{n}", "virtuous_id": 80 + n % 6} for n in range(1, 10)]


@st.composite
def scheduled_donations(draw: st.DrawFn) -> ScheduledDonation:
    shares = draw(st.lists(st.integers(min_value=0, max_value=MAX_CENTS // 20), max_size=6))
    funds = draw(st.lists(st.sampled_from(FUNDS), min_size=len(shares), max_size=len(shares)))
    amount = sum(shares) if shares else draw(st.integers(min_value=0, max_value=MAX_CENTS - 1))
    data = sd_data(
        amount=amount,
        fee_amount=draw(st.integers(min_value=0, max_value=MAX_CENTS - 1)),
        fund=draw(st.sampled_from(FUNDS)),
        allocations=[allocation(f, share) for f, share in zip(funds, shares, strict=True)],
    )
    return ScheduledDonation.model_validate(data)


@settings(max_examples=300)
@given(
    scheduled_donations(),
    st.booleans(),
    st.booleans(),
    st.one_of(st.none(), st.sampled_from([80, 81, 85, 88])),
)
def test_recurring_designations_always_sum_to_the_charge_amount(
    record: ScheduledDonation, fund_allocations: bool, fee_splitting: bool, fee_fund: int | None
) -> None:
    settings_ = tenant(
        fund_allocations=fund_allocations,
        fee_splitting=fee_splitting,
        **({"fee_fund_virtuous_id": fee_fund} if fee_fund else {}),
    )
    rows = recurring_designations(record, settings_)
    amounts = [cents(row["amountDesignated"]) for row in rows]
    assert sum(amounts) == charge_amount(record)
    assert all(amount >= 0 for amount in amounts)
    projects = [row["projectId"] for row in rows]
    assert len(projects) == len(set(projects))
    if fee_fund is not None and not fee_splitting and record.fee_amount:
        assert fee_fund in projects
