"""Builders for mapping tests: valid records by default, any field overridable.

Each builder returns the JSON-shaped dict a producer would send (``*_data``) or the parsed
model, so tests state only the fields their rule is about.
"""

from __future__ import annotations

from typing import Any

from mapping.events import ChangeEvent, ScheduledDonation, Transaction, parse_event
from mapping.tenant import TenantSettings, parse_tenant

GENERAL = {"id": 12, "name": "General Fund", "virtuous_id": 4012, "code": "GEN"}
SHELTER = {"id": 13, "name": "Shelter Beds", "virtuous_id": 4013, "code": "BEDS"}
FEES = {"id": 88, "name": "Processing Fees", "virtuous_id": 88, "code": None}
CAMPAIGN = {"id": 9, "name": "Giving Day", "virtuous_segment_id": 301, "segment_code": "GD2026"}


def tenant(**overrides: Any) -> TenantSettings:
    """A tenant in America/Chicago, batch mode, with the given settings changed."""
    table: dict[str, Any] = {
        "virtuous_base_url": "https://api.virtuoussoftware.com",
        "virtuous_token_env": "VIRTUOUS_TOKEN_TEST",
        "timezone": "America/Chicago",
    }
    table.update(overrides)
    return parse_tenant("test-tenant", table)


def owner_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "individual",
        "id": 701,
        "virtuous_contact_id": 501,
        "virtuous_contact_individual_id": None,
        "first_name": "Anna",
        "last_name": "Reyes",
        "email": "anna@example.org",
    }
    data.update(overrides)
    return data


def allocation(fund: dict[str, Any], amount: object) -> dict[str, Any]:
    return {"fund": fund, "amount": amount}


def tx_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": 1001,
        "status": "success",
        "amount": 5000,
        "created_at": "2026-11-20T15:04:05Z",
        "description": "Online donation",
        "supporter_inputted_notes": "Thank you",
        "is_tax_deductible": True,
        "anonymous": False,
        "source_type": "card",
        "owner": owner_data(),
        "fund": dict(GENERAL),
        "allocations": [],
        "campaign": None,
        "scheduled_donation": None,
        "virtuous_id": None,
    }
    data.update(overrides)
    return data


def sd_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": 5001,
        "status": "active",
        "start_date": "2026-12-01",
        "frequency": "monthly",
        "amount": 2500,
        "fee_amount": 0,
        "anonymous": False,
        "source": owner_data(),
        "campaign": None,
        "fund": dict(GENERAL),
        "allocations": [],
        "virtuous_id": None,
    }
    data.update(overrides)
    return data


def event_data(
    record: dict[str, Any], kind: str = "transaction", **overrides: Any
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "tenant": "test-tenant",
        "kind": kind,
        "version": "2026-11-20T15:04:06.123Z",
        "record": record,
    }
    data.update(overrides)
    return data


def tx(**overrides: Any) -> Transaction:
    """A parsed transaction (through the full contract check)."""
    record = parse_event(event_data(tx_data(**overrides))).record
    assert isinstance(record, Transaction)
    return record


def sd(**overrides: Any) -> ScheduledDonation:
    """A parsed scheduled donation (through the full contract check)."""
    record = parse_event(event_data(sd_data(**overrides), "scheduled_donation")).record
    assert isinstance(record, ScheduledDonation)
    return record


def test_default_builders_are_valid_events() -> None:
    assert isinstance(parse_event(event_data(tx_data())), ChangeEvent)
    assert isinstance(parse_event(event_data(sd_data(), "scheduled_donation")), ChangeEvent)
    assert tenant().mode == "batch"
