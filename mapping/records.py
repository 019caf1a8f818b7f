"""The record shapes inside a change event: WeGive transactions and scheduled donations.

Field names are WeGive's (snake_case); amounts are integer cents; every model is frozen and
rejects unknown fields. Validation is strict (see :mod:`mapping.fields`), and a record's
allocations, when it has any, must sum exactly to its amount: the designations built from them
must balance, and Virtuous rejects a gift whose designations do not.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, StrictBool, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from mapping.fields import (
    Cents,
    Day,
    Description,
    LongText,
    Moment,
    RecordId,
    Text,
    VirtuousId,
    VirtuousRef,
    Word,
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Address(_Model):
    """A postal address; every part optional."""

    line1: Text | None = None
    city: Text | None = None
    state: Text | None = None
    postal: Text | None = None
    country: Text | None = None


class Owner(_Model):
    """A donor: a person or a company, with its Virtuous Contact ids once known."""

    type: Literal["individual", "company"]
    id: RecordId
    virtuous_contact_id: VirtuousId | None = None
    virtuous_contact_individual_id: VirtuousId | None = None
    first_name: Text | None = None
    last_name: Text | None = None
    company_name: Text | None = None
    email: Text | None = None
    phone: Text | None = None
    address: Address | None = None


class Fund(_Model):
    """A WeGive fund; ``virtuous_id`` is its Virtuous Project id, ``code`` its projectCode."""

    id: RecordId
    name: Text
    virtuous_id: VirtuousId | None = None
    code: Word | None = None


class Allocation(_Model):
    """A share of a gift given to one fund, in cents."""

    fund: Fund
    amount: Cents


class Campaign(_Model):
    """A WeGive campaign; it becomes the gift's Virtuous Segment."""

    id: RecordId
    name: Text
    virtuous_segment_id: VirtuousId | None = None
    segment_code: Word | None = None


class ScheduledDonationRef(_Model):
    """The scheduled donation a transaction is an installment of."""

    id: RecordId
    virtuous_id: VirtuousId | None = None


def _balanced(allocations: list[Allocation], info: ValidationInfo) -> list[Allocation]:
    amount = info.data.get("amount")
    if allocations and isinstance(amount, int):
        total = sum(allocation.amount for allocation in allocations)
        if total != amount:
            raise PydanticCustomError(
                "allocations_sum",
                "allocations sum to {total} cents but the record's amount is {amount} cents",
                {"total": total, "amount": amount},
            )
    return allocations


class Transaction(_Model):
    """A WeGive transaction (one gift). Amounts are integer cents."""

    id: RecordId
    status: Word
    amount: Cents
    created_at: Moment
    description: Description | None = None
    supporter_inputted_notes: LongText | None = None
    is_tax_deductible: StrictBool = True
    anonymous: StrictBool = False
    source_type: Word | None = None
    owner: Owner
    fund: Fund
    allocations: list[Allocation] = []
    campaign: Campaign | None = None
    scheduled_donation: ScheduledDonationRef | None = None
    virtuous_id: VirtuousRef = None

    _check_allocations = field_validator("allocations")(_balanced)


class ScheduledDonation(_Model):
    """A WeGive scheduled (recurring) donation. Amounts are integer cents."""

    id: RecordId
    status: Literal["active", "cancelled"]
    start_date: Day
    frequency: Literal["weekly", "monthly", "quarterly", "yearly"]
    amount: Cents
    fee_amount: Cents = 0
    anonymous: StrictBool = False
    source: Owner
    campaign: Campaign | None = None
    fund: Fund
    allocations: list[Allocation] = []
    virtuous_id: VirtuousId | None = None

    _check_allocations = field_validator("allocations")(_balanced)
