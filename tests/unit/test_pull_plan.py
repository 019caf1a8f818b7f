"""What one pulled page writes back: echoes, matches, the told index and the settle wait."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import structlog

from giftsync.examples import transaction
from mapping.decision import decide
from mapping.events import Transaction, parse_event
from mapping.realtime import realtime_desired
from tests.unit.test_mapping_factories import tenant
from workers.flows.pull_paging import Cursor
from workers.flows.pull_plan import (
    KINDS,
    PageFacts,
    PagePlan,
    Sent,
    Told,
    fingerprint,
    plan_page,
)

TENANT = tenant(fund_allocations=True, transaction_source="WeGive")
NOW = datetime(2026, 11, 22, 12, 0, 0)
GIFTS, RECURRING = KINDS["gifts"], KINDS["recurring"]


def gift(gift_id: int = 9001, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": gift_id,
        "transactionSource": None,
        "transactionId": None,
        "contactId": 7,
        "contactIndividualId": 17,
        "giftDate": "2026-11-20T00:00:00",
        "amount": 40.5,
        "description": "Check",
        "notes": None,
        "isTaxDeductible": True,
        "isPrivate": False,
        "segmentId": 201,
        "customFields": [],
        "giftDesignations": [
            {"id": 1, "projectId": 101, "amountDesignated": 30},
            {"id": 2, "projectId": 102, "amountDesignated": 10.5},
        ],
        "modifiedDateTimeUtc": f"2026-11-21T10:00:00.{gift_id:06d}",
    }
    return data | overrides


def recurring(rg_id: int = 501, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": rg_id,
        "contactId": 7,
        "startDate": "2026-01-01",
        "nextExpectedPaymentDate": "2026-12-01",
        "frequency": "Monthly",
        "amount": 25,
        "isPrivate": False,
        "segmentId": None,
        "designations": [{"id": 3, "projectId": 101, "amountDesignated": 25}],
        "status": "Active",
        "cancelDateTimeUtc": None,
        "createDateTimeUtc": "2026-01-01T08:00:00.000000",
        "modifiedDateTimeUtc": f"2026-11-21T10:00:00.{rg_id:06d}",
    }
    return data | overrides


def plan(kind: Any, records: list[dict[str, Any]], facts: PageFacts | None = None) -> PagePlan:
    return plan_page(
        kind, TENANT, records, facts or PageFacts({}), date_field="modifiedDateTimeUtc", now=NOW
    )


def entry(p: PagePlan, index: int = 0) -> dict[str, Any]:
    fields = p.entries[index]
    data: dict[str, Any] = dict(zip(fields[::2], fields[1::2], strict=True))
    data["record"] = json.loads(data["record"])
    return data


def test_a_staff_gift_is_a_create_with_amount_and_success() -> None:
    p = plan(GIFTS, [gift()])
    assert p.counts == {"created": 1}
    e = entry(p)
    assert e["type"] == "transaction.pulled_create"
    assert (e["id"], e["virtuous_id"], e["match"]) == ("", "9001", "new")
    assert e["key"] == "transaction:9001:2026-11-21T10:00:00.009001"
    assert e["record"]["amount"] == 4050
    assert e["record"]["status"] == "success"
    assert e["record"]["created_at"] == "2026-11-20 17:00:00"  # a midnight date
    assert e["record"]["allocations"] == [
        {"fund_virtuous_id": 101, "amount": 3000},
        {"fund_virtuous_id": 102, "amount": 1050},
    ]
    told = Told.loads(p.told[9001])
    assert told is not None and told.status == "success"
    assert p.last == Cursor("2026-11-21T10:00:00.009001", 9001)


def test_the_same_gift_again_is_unchanged_and_writes_nothing() -> None:
    first = plan(GIFTS, [gift()])
    told = Told.loads(first.told[9001])
    assert told is not None
    again = plan(GIFTS, [gift(amount=99)], PageFacts({}, told={9001: told}))
    # The amount is set on first import only, so a changed amount alone is no change.
    assert again.entries == [] and again.counts == {"skipped": 1}
    assert again.last == Cursor("2026-11-21T10:00:00.009001", 9001)


def test_a_changed_gift_is_an_update_without_amount_keeping_the_status() -> None:
    told = {9001: Told("old", "", "refunded")}
    p = plan(GIFTS, [gift(description="Corrected")], PageFacts({}, told=told))
    e = entry(p)
    assert e["type"] == "transaction.pulled_update" and e["match"] == "virtuous_id"
    assert "amount" not in e["record"]
    assert e["record"]["status"] == "refunded"
    assert e["record"]["description"] == "Corrected"


def test_gifts_giftsync_pushed_are_echoes() -> None:
    wg = gift(9002, customFields=[{"name": "wg_id", "value": "55"}])
    ref = gift(9003, transactionSource="WeGive", transactionId="56")
    by_id = gift(9004)
    facts = PageFacts({9004: "transaction:57"}, ledger_ids=frozenset({"55", "56"}))
    p = plan(GIFTS, [wg, ref, by_id], facts)
    assert p.entries == [] and p.told == {}
    assert p.counts == {"echo": 3}
    assert p.last == Cursor(by_id["modifiedDateTimeUtc"], 9004)


def pushed_gift(event: dict[str, Any], gift_id: int = 9005) -> dict[str, Any]:
    """The gift giftsync sent for ``event`` as a FullGift query row gives it back."""
    tx = parse_event(event).record
    assert isinstance(tx, Transaction)
    body = realtime_desired(tx, TENANT, decide(tx, TENANT))
    rows = [
        {"id": 70 + i, "projectId": row["projectId"], "amountDesignated": row["amount"]}
        for i, row in enumerate(body.pop("giftDesignations"))
    ]
    giftday = body.pop("giftDate")
    held = {"segmentId": None, "giftDate": f"{giftday}T00:00:00", "giftDesignations": rows}
    return gift(gift_id) | body | held


SPLIT = [{"fund": {"id": 1, "name": "A", "virtuous_id": 101}, "amount": 1500},
         {"fund": {"id": 2, "name": "B", "virtuous_id": 102}, "amount": 1000}]  # fmt: skip


def _pushed_facts(event: dict[str, Any], gift_id: int = 9005) -> PageFacts:
    return PageFacts(
        {gift_id: "transaction:58"},
        sent={gift_id: Sent("58", json.dumps(event))},
    )


def test_a_pushed_gift_holding_what_giftsync_sent_is_an_echo_whatever_its_form() -> None:
    event = transaction("test-tenant", 58, amount=2500, allocations=SPLIT, contact_id=7)
    held = pushed_gift(event)
    # Virtuous lists designations in its own order, with numbers where giftsync sent strings.
    held["giftDesignations"].reverse()
    held["amount"] = 25
    p = plan(GIFTS, [held], _pushed_facts(event))
    assert p.entries == [] and p.counts == {"echo": 1}


def test_a_staff_edit_of_a_pushed_gift_is_an_update_of_its_transaction() -> None:
    event = transaction("test-tenant", 58, amount=2500, allocations=SPLIT, contact_id=7)
    edits: list[dict[str, Any]] = [
        {"description": "Corrected by staff"},
        {"giftDate": "2026-11-18T00:00:00"},
        {"isTaxDeductible": False},
        {"notes": "Staff note"},
        {"giftDesignations": [{"id": 70, "projectId": 103, "amountDesignated": "25.00"}]},
    ]
    for edit in edits:
        p = plan(GIFTS, [pushed_gift(event) | edit], _pushed_facts(event))
        assert p.counts == {"updated": 1}, edit
        e = entry(p)
        assert e["type"] == "transaction.pulled_update", edit
        assert (e["id"], e["match"]) == ("58", "virtuous_id")
        # The platform's amount and status stand (seed 002 "Pull").
        assert "amount" not in e["record"] and e["record"]["status"] == "success"
        told = Told.loads(p.told[9005])
        assert told is not None and (told.id, told.status) == ("58", "success")
        # Told once: the same edited gift on the next pull is unchanged.
        again = plan(GIFTS, [pushed_gift(event) | edit],
                     PageFacts({9005: "transaction:58"}, sent=_pushed_facts(event).sent,
                               told={9005: told}))  # fmt: skip
        assert again.counts == {"skipped": 1} and again.entries == []


def test_a_pushed_gift_with_a_newer_version_on_its_way_is_an_echo() -> None:
    event = transaction("test-tenant", 58, amount=2500, contact_id=7)
    edited = pushed_gift(event) | {"description": "Corrected by staff"}
    # No Sent fact: the record is not at rest with its newest version applied.
    p = plan(GIFTS, [edited], PageFacts({9005: "transaction:58"}))
    assert p.counts == {"echo": 1} and p.entries == []


def test_a_zeroed_gift_is_compared_without_designations() -> None:
    event = transaction("test-tenant", 58, amount=2500, status="refunded", contact_id=7,
                        virtuous_id=9005)  # fmt: skip
    zeroed = pushed_gift(event)
    assert zeroed["amount"] == "0.00"
    # Zeroing keeps Virtuous's own Projects at 0.00, whatever giftsync would have designated.
    zeroed["giftDesignations"] = [{"id": 1, "projectId": 555, "amountDesignated": "0.00"}]
    assert plan(GIFTS, [zeroed], _pushed_facts(event)).counts == {"echo": 1}
    restored = zeroed | {"amount": "25.00"}
    assert plan(GIFTS, [restored], _pushed_facts(event)).counts == {"updated": 1}


def test_a_wg_id_giftsync_never_pushed_updates_that_transaction_keeping_its_state() -> None:
    p = plan(GIFTS, [gift(customFields=[{"name": "wg_id", "value": "77"}])])
    e = entry(p)
    assert e["type"] == "transaction.pulled_update"
    assert (e["id"], e["match"]) == ("77", "wg_id")
    assert "amount" not in e["record"] and "status" not in e["record"]


def test_an_unmappable_gift_is_skipped_and_passed() -> None:
    p = plan(GIFTS, [gift(giftDate=None), gift(9005)])
    assert p.counts == {"skipped": 1, "created": 1}
    assert p.last is not None and p.last.id == 9005


def test_a_staff_recurring_gift_is_created_with_amount_fee_and_allocations() -> None:
    p = plan(RECURRING, [recurring(cancelDateTimeUtc="2026-11-01T00:00:00")])
    e = entry(p)
    assert e["type"] == "scheduled_donation.pulled_create"
    assert e["record"]["amount"] == 2500 and e["record"]["fee_amount"] == 0
    assert e["record"]["deleted_at"] == "2026-11-01 00:00:00"
    assert e["record"]["allocations"] == [{"fund_virtuous_id": 101, "amount": 2500}]
    steady = {k: v for k, v in e["record"].items() if k not in ("amount", "fee_amount")}
    steady.pop("allocations")
    told = Told.loads(p.told[501])
    assert told is not None and told.fp == fingerprint(steady)


def test_recurring_gifts_giftsync_pushed_are_echoes_unless_staff_cancelled_them() -> None:
    pushed = {
        501: "scheduled_donation:41",
        502: "scheduled_donation:42",
        503: "scheduled_donation:43",
    }
    records = [
        recurring(501),
        recurring(502, cancelDateTimeUtc="2026-11-21T09:00:00"),
        recurring(503, cancelDateTimeUtc="2026-11-21T09:00:00"),
    ]
    facts = PageFacts(pushed, platform_cancelled=frozenset({"scheduled_donation:43"}))
    p = plan(RECURRING, records, facts)
    assert p.counts == {"echo": 2, "updated": 1}
    e = entry(p)
    assert e["type"] == "scheduled_donation.pulled_update"
    assert (e["id"], e["virtuous_id"], e["match"]) == ("42", "502", "virtuous_id")
    assert e["record"]["deleted_at"] == "2026-11-21 09:00:00"
    assert not {"amount", "fee_amount", "allocations"} & set(e["record"])


def test_a_young_unrecognised_recurring_gift_waits_to_settle() -> None:
    young = recurring(502, createDateTimeUtc="2026-11-22T11:59:50.000000")
    p = plan(RECURRING, [recurring(501), young, recurring(503)])
    assert p.counts == {"created": 1}
    assert p.last is not None and p.last.id == 501
    assert 19 < p.defer_seconds <= 20


def test_a_frequency_wegive_lacks_is_skipped_with_its_reason_and_the_page_goes_on() -> None:
    records = [
        recurring(501, frequency="Bimonthly"),
        recurring(502, frequency="semiannually"),
        recurring(503, frequency="BIENNIALLY"),
        recurring(504),
    ]
    with structlog.testing.capture_logs() as logs:
        p = plan(RECURRING, records)
    assert p.counts == {"skipped": 3, "created": 1}
    assert entry(p)["virtuous_id"] == "504"
    assert p.last is not None and p.last.id == 504
    skipped = [line for line in logs if line["event"] == "pull_record_unmappable"]
    assert [line["virtuous_id"] for line in skipped] == [501, 502, 503]
    assert all("no WeGive equivalent" in line["reason"] for line in skipped)
