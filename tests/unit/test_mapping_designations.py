"""Designation lines: from the fund or the allocations, merged per Project, always balanced."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapping.designations import (
    DesignationLine,
    batch_designations,
    gift_designation_lines,
    lines_total,
    realtime_designations,
    recurring_shape,
)
from mapping.errors import MappingError
from mapping.events import Transaction
from mapping.fields import MAX_CENTS
from mapping.money import cents
from tests.unit.test_mapping_factories import GENERAL, SHELTER, allocation, tenant, tx, tx_data

ALLOCATING = tenant(fund_allocations=True)
NOT_ALLOCATING = tenant(fund_allocations=False)
CODE_ONLY = {"id": 21, "name": "Food", "virtuous_id": None, "code": "FOOD"}
NOTHING = {"id": 22, "name": "New Fund", "virtuous_id": None, "code": None}


def lines(settings_: Any = ALLOCATING, **overrides: Any) -> list[DesignationLine]:
    return gift_designation_lines(tx(**overrides), settings_)


def test_no_allocations_means_the_fund_takes_the_full_amount() -> None:
    assert lines(amount=5000) == [DesignationLine(4012, None, 5000)]


def test_allocations_are_used_when_the_tenant_syncs_them() -> None:
    split = [allocation(GENERAL, 3000), allocation(SHELTER, 2000)]
    assert lines(amount=5000, allocations=split) == [
        DesignationLine(4012, None, 3000),
        DesignationLine(4013, None, 2000),
    ]
    # fund_allocations off: the fund alone, with the full amount
    assert lines(NOT_ALLOCATING, amount=5000, allocations=split) == [
        DesignationLine(4012, None, 5000)
    ]


def test_allocations_to_the_same_fund_are_merged() -> None:
    split = [allocation(GENERAL, 1000), allocation(SHELTER, 2500), allocation(GENERAL, 1500)]
    assert lines(amount=5000, allocations=split) == [
        DesignationLine(4012, None, 2500),
        DesignationLine(4013, None, 2500),
    ]


def test_zero_cent_allocations_are_dropped_unless_everything_is_zero() -> None:
    split = [allocation(GENERAL, 5000), allocation(NOTHING, 0)]
    assert lines(amount=5000, allocations=split) == [DesignationLine(4012, None, 5000)]
    zeros = [allocation(GENERAL, 0), allocation(SHELTER, 0)]
    assert lines(amount=0, allocations=zeros) == [
        DesignationLine(4012, None, 0),
        DesignationLine(4013, None, 0),
    ]


def test_zeroing_keeps_the_projects_at_zero() -> None:
    record = tx(amount=5000, allocations=[allocation(GENERAL, 3000), allocation(SHELTER, 2000)])
    zeroed = gift_designation_lines(record, ALLOCATING, zero_amount=True)
    assert [(line.project_id, line.cents) for line in zeroed] == [(4012, 0), (4013, 0)]


def test_a_code_is_used_where_there_is_no_project_id_and_allowed() -> None:
    assert lines(fund=CODE_ONLY) == [DesignationLine(None, "FOOD", 5000)]
    with pytest.raises(MappingError) as caught:
        gift_designation_lines(tx(fund=CODE_ONLY), ALLOCATING, allow_code=False)
    assert caught.value.path == "record.fund.virtuous_id"
    assert "no Virtuous Project id" in caught.value.reason


def test_the_error_names_the_allocation_whose_fund_has_no_project() -> None:
    split = [allocation(GENERAL, 1000), allocation(NOTHING, 4000)]
    with pytest.raises(MappingError) as caught:
        lines(amount=5000, allocations=split)
    assert caught.value.path == "record.allocations.1.fund.virtuous_id"


def test_the_three_wire_shapes() -> None:
    rows = [DesignationLine(4012, None, 2550), DesignationLine(None, "FOOD", 5)]
    assert batch_designations(rows) == [
        {"id": 4012, "amountDesignated": "25.50"},
        {"projectCode": "FOOD", "amountDesignated": "0.05"},
    ]
    assert realtime_designations(rows) == [
        {"projectId": 4012, "amount": "25.50"},
        {"projectCode": "FOOD", "amount": "0.05"},
    ]
    assert recurring_shape(rows[:1]) == [{"projectId": 4012, "amountDesignated": "25.50"}]


FUNDS = [
    {"id": n, "name": f"Fund {n}", "virtuous_id": 4000 + n % 5, "code": None} for n in range(1, 9)
]


@st.composite
def transactions(draw: st.DrawFn) -> Transaction:
    shares = draw(st.lists(st.integers(min_value=0, max_value=MAX_CENTS // 20), max_size=8))
    funds = draw(st.lists(st.sampled_from(FUNDS), min_size=len(shares), max_size=len(shares)))
    amount = sum(shares) if shares else draw(st.integers(min_value=0, max_value=MAX_CENTS - 1))
    data = tx_data(
        amount=amount,
        allocations=[allocation(fund, share) for fund, share in zip(funds, shares, strict=True)],
    )
    return Transaction.model_validate(data)


@settings(max_examples=200)
@given(transactions(), st.booleans(), st.booleans())
def test_gift_designations_always_sum_to_the_amount_sent(
    record: Transaction, fund_allocations: bool, zero: bool
) -> None:
    settings_ = ALLOCATING if fund_allocations else NOT_ALLOCATING
    result = gift_designation_lines(record, settings_, zero_amount=zero)
    expected = 0 if zero else record.amount
    assert lines_total(result) == expected
    assert all(line.cents >= 0 for line in result)
    projects = [line.project_id for line in result]
    assert len(projects) == len(set(projects))  # merged per Project
    wire = batch_designations(result)
    assert sum(cents(row["amountDesignated"]) for row in wire) == expected
