"""Synthetic change events for the demo, the benchmarks and the integration tests.

Deterministic for a given seed, valid against the contract, and spread over every rule a
platform exercises: statuses (success, processing by card and bank, failed, refunded,
pending), payment types, single funds and split allocations, campaigns, donors with and
without a Virtuous Contact id, companies and individuals. The funds and segments use the
sandbox demo's Project and Segment ids.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

# Project ids and codes the sandbox's demo organisations know.
FUNDS = [
    {"id": 1, "name": "General Fund", "virtuous_id": 101, "code": "GEN"},
    {"id": 2, "name": "Food Pantry", "virtuous_id": 102, "code": "FOOD"},
    {"id": 3, "name": "Shelter Beds", "virtuous_id": 103, "code": "SHELTER"},
    {"id": 4, "name": "Youth Programs", "virtuous_id": 104, "code": "YOUTH"},
]
CAMPAIGNS = [
    {"id": 1, "name": "Giving Day", "virtuous_segment_id": 201, "segment_code": "GIVINGDAY"},
    {"id": 2, "name": "Year End", "virtuous_segment_id": 202, "segment_code": "YEAREND"},
]
BASE_TIME = datetime(2026, 11, 20, 15, 0, 0, tzinfo=UTC)


def version_at(seconds: float) -> str:
    """An ISO 8601 version ``seconds`` after the base time, with millisecond precision."""
    moment = BASE_TIME + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def donor(donor_id: int, *, contact_id: int | None = None, company: bool = False) -> dict[str, Any]:
    """A donor ("owner"/"source") record."""
    if company:
        return {
            "type": "company",
            "id": donor_id,
            "virtuous_contact_id": contact_id,
            "virtuous_contact_individual_id": None,
            "first_name": None,
            "last_name": None,
            "company_name": f"Company {donor_id} LLC",
            "email": f"giving{donor_id}@corp.example.org",
            "phone": None,
            "address": None,
        }
    return {
        "type": "individual",
        "id": donor_id,
        "virtuous_contact_id": contact_id,
        "virtuous_contact_individual_id": None,
        "first_name": f"Donor{donor_id}",
        "last_name": "Example",
        "company_name": None,
        "email": f"donor{donor_id}@example.org",
        "phone": f"555-{donor_id % 1000:03d}-{donor_id % 10000:04d}",
        "address": {
            "line1": f"{donor_id} Main St",
            "city": "Springfield",
            "state": "IL",
            "postal": "62701",
            "country": "US",
        },
    }


def transaction(
    tenant: str,
    tx_id: int,
    *,
    amount: int = 2500,
    status: str = "success",
    source_type: str | None = "card",
    version: str | None = None,
    contact_id: int | None = 5000,
    fund: dict[str, Any] | None = None,
    allocations: list[dict[str, Any]] | None = None,
    campaign: dict[str, Any] | None = None,
    virtuous_id: int | str | None = None,
    description: str | None = None,
    company: bool = False,
) -> dict[str, Any]:
    """One transaction change event."""
    return {
        "tenant": tenant,
        "kind": "transaction",
        "version": version or version_at(tx_id % 100_000),
        "record": {
            "id": tx_id,
            "status": status,
            "amount": amount,
            "created_at": "2026-11-20T23:30:00-06:00",
            "description": description or f"Gift {tx_id}",
            "supporter_inputted_notes": None,
            "is_tax_deductible": True,
            "anonymous": False,
            "source_type": source_type,
            "owner": donor(10_000 + tx_id % 5000, contact_id=contact_id, company=company),
            "fund": fund or FUNDS[0],
            "allocations": allocations or [],
            "campaign": campaign,
            "scheduled_donation": None,
            "virtuous_id": virtuous_id,
        },
    }


def demo_events(
    count: int,
    tenants: list[str],
    *,
    seed: int = 7,
    contact_ids: Mapping[str, list[int]] | None = None,
) -> Iterator[dict[str, Any]]:
    """``count`` varied events spread over ``tenants`` (ids unique per tenant).

    ``contact_ids`` names Contacts that exist in each tenant's Virtuous; donors are either one
    of them or new (no Contact id yet).
    """
    rng = random.Random(seed)
    statuses = ["success"] * 14 + ["processing", "failed", "refunded", "pending"]
    for index in range(count):
        tenant = tenants[index % len(tenants)]
        tx_id = 100_000 + index
        amount = rng.choice([500, 1000, 2500, 5000, 10000, 12345, 100000])
        status = rng.choice(statuses)
        source = rng.choice(["card", "card", "bank", "paypal", None])
        fund = rng.choice(FUNDS)
        allocations = None
        if rng.random() < 0.2:
            first = amount // 3
            allocations = [
                {"fund": FUNDS[0], "amount": first},
                {"fund": FUNDS[1], "amount": amount - first},
            ]
        known = list((contact_ids or {}).get(tenant, []))
        contact_id = rng.choice([None, *known]) if known else None
        virtuous_id: int | str | None = None
        if status in ("failed", "refunded") and rng.random() < 0.5:
            virtuous_id = f"btch_{tenant}_1"
        yield transaction(
            tenant,
            tx_id,
            amount=amount,
            status=status,
            source_type=source,
            version=version_at(index),
            contact_id=contact_id,
            fund=fund,
            allocations=allocations,
            campaign=rng.choice([None, *CAMPAIGNS]),
            virtuous_id=virtuous_id,
            company=rng.random() < 0.1,
        )


def scheduled_donation(
    tenant: str,
    sd_id: int,
    *,
    amount: int = 5000,
    fee_amount: int = 0,
    frequency: str = "monthly",
    status: str = "active",
    version: str | None = None,
    source: dict[str, Any] | None = None,
    fund: dict[str, Any] | None = None,
    allocations: list[dict[str, Any]] | None = None,
    campaign: dict[str, Any] | None = None,
    virtuous_id: int | None = None,
) -> dict[str, Any]:
    """One scheduled-donation change event."""
    return {
        "tenant": tenant,
        "kind": "scheduled_donation",
        "version": version or version_at(sd_id % 100_000),
        "record": {
            "id": sd_id,
            "status": status,
            "start_date": "2026-12-01",
            "frequency": frequency,
            "amount": amount,
            "fee_amount": fee_amount,
            "anonymous": False,
            "source": source or donor(20_000 + sd_id, contact_id=5001),
            "campaign": campaign,
            "fund": fund or FUNDS[0],
            "allocations": allocations or [],
            "virtuous_id": virtuous_id,
        },
    }
