"""``preview_event`` over the bundled examples, and its own rules.

The expectations below are written from the seeds' rules (decision table, routing by mode and
correlation id), not copied from the implementation's output; the body checks recompute each
request's key values from the example record itself.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from giftsync.examples import scheduled_donation
from mapping.dates import gift_date
from mapping.events import ScheduledDonation, Transaction, parse_event_json
from mapping.money import cents, dollars
from mapping.preview import CONTACT_PLACEHOLDER, PLACEHOLDER_ID, preview_event
from mapping.recurring import FREQUENCY_TO_VIRTUOUS
from mapping.tenant import TenantSettings, parse_tenants
from tests.unit.test_mapping_factories import event_data, owner_data, sd_data, tenant, tx_data

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "events.jsonl"
TENANTS: dict[str, TenantSettings] = parse_tenants(
    tomllib.loads((ROOT / "examples" / "tenants.toml").read_text(encoding="utf-8"))
)

BATCH_POST = [("POST", "/api/v2/Gift/Transactions")]
GIFT_POST = [("POST", "/api/Gift")]
RG_POST = [("POST", "/api/RecurringGift")]
# A donor without a Contact: looked up by reference, created when not found.
CONTACT_FIRST = [("GET", "/api/Contact/WeGive/706"), ("POST", "/api/Contact")]
# 5008: the donor's Contact, the campaign's Segment and the fund's Project come first.
DEPENDENCIES_FIRST = [
    ("GET", "/api/Contact/WeGive/703"),
    ("POST", "/api/Contact"),
    ("POST", "/api/Segment"),
    ("POST", "/api/Project"),
]


def gift_put(gift_id: int) -> list[tuple[str, str]]:
    return [("GET", f"/api/Gift/{gift_id}"), ("PUT", f"/api/Gift/{gift_id}")]


def rg_put(rg_id: int) -> list[tuple[str, str]]:
    return [("GET", f"/api/RecurringGift/{rg_id}"), ("PUT", f"/api/RecurringGift/{rg_id}")]


# id -> (decision, reason, path, requests). hope-shelter and north-food-bank are batch tenants
# with processing ACH off; river-arts is real-time with processing ACH sent.
EXPECT: dict[Any, tuple[str, str, str | None, list[tuple[str, str]]]] = {
    1001: ("send", "success", "batch", BATCH_POST),
    1002: ("send", "success", "batch", BATCH_POST),
    1003: ("send", "processing", "batch", BATCH_POST),
    1004: ("skip", "processing_ach_not_sent", None, []),
    1005: ("skip", "processing_unknown_payment_type", None, []),
    1006: ("send", "processing", "batch", BATCH_POST),
    1007: ("send", "refund_of_real_gift", "real_time", gift_put(90001)),
    1008: ("skip", "refund_of_batch_gift_waits_for_real_id", None, []),
    1009: ("skip", "failed_without_real_gift_id", None, []),
    1010: ("send", "failed_with_real_gift_id", "real_time", gift_put(90002)),
    1011: ("skip", "status_not_sent:pending", None, []),
    1012: ("send", "success", "batch", BATCH_POST),
    1013: ("send", "success", "batch", BATCH_POST),
    1014: ("send", "success", "batch", BATCH_POST),
    1015: ("send", "success", "real_time", gift_put(90003)),
    1016: ("skip", "failed_batch_gift_waits_for_real_id", None, []),
    2001: ("send", "success", "batch", BATCH_POST),
    2002: ("skip", "processing_ach_not_sent", None, []),
    2003: ("skip", "refunded_without_real_gift_id", None, []),
    3001: ("send", "success", "real_time", GIFT_POST),
    3002: ("send", "processing_ach_as_success", "real_time", GIFT_POST),
    3003: ("send", "success", "real_time", gift_put(95001)),
    3004: ("send", "refund_of_real_gift", "real_time", gift_put(95002)),
    3005: ("send", "success", "real_time", GIFT_POST),
    3006: ("send", "success", "real_time", CONTACT_FIRST + GIFT_POST),
    3007: ("skip", "batch_gift_waits_for_real_id", None, []),
    3008: ("send", "success", "real_time", GIFT_POST),
    5001: ("send", "recurring_create", "real_time", RG_POST),
    5002: ("send", "recurring_create", "real_time", RG_POST),
    5003: ("send", "recurring_create", "real_time", RG_POST),
    5004: ("send", "recurring_update", "real_time", rg_put(8001)),
    # Contract: cancelling is its own route (docs/virtuous-contract.md, RecurringGift Cancel).
    5005: (
        "send",
        "recurring_cancel",
        "real_time",
        [("GET", "/api/RecurringGift/8002"), ("PUT", "/api/RecurringGift/Cancel/8002")],
    ),
    5006: ("skip", "cancelled_never_pushed", None, []),
    5007: ("send", "recurring_create", "real_time", RG_POST),
    5008: ("send", "recurring_create", "real_time", DEPENDENCIES_FIRST + RG_POST),
    703: ("send", "donor", "real_time", [("POST", "/api/Contact/Transaction")]),
    9001: ("invalid", "invalid_event", None, []),
    None: ("invalid", "invalid_event", None, []),  # the line that is not JSON
    9003: ("invalid", "invalid_event", None, []),
}

# Error paths the invalid examples must name.
EXPECT_ERRORS = {
    9001: ["tenant", "record.amount"],
    None: ["$"],
    9003: ["record.created_at", "record.owner.type", "record.allocations"],
}


def example_lines() -> list[str]:
    return [
        line
        for line in EXAMPLES.read_text(encoding="utf-8").splitlines(keepends=True)
        if line.strip()
    ]


def previews() -> list[tuple[str, dict[str, Any]]]:
    return [(line, preview_event(line, TENANTS)) for line in example_lines()]


def test_every_example_has_an_expectation_and_back() -> None:
    ids = [result["id"] for _, result in previews()]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(EXPECT)
    assert 25 <= len(ids) <= 40


@pytest.mark.parametrize(("line", "result"), previews(), ids=lambda v: str(v)[:40])
def test_each_example_previews_as_expected(line: str, result: dict[str, Any]) -> None:
    decision, reason, path, requests = EXPECT[result["id"]]
    assert (result["decision"], result["reason"], result["path"]) == (decision, reason, path)
    assert [(r["method"], r["path"]) for r in result["requests"]] == requests
    assert json.loads(json.dumps(result)) == result  # printable as one JSON line
    if decision == "invalid":
        assert [e["path"] for e in result["errors"]] == EXPECT_ERRORS[result["id"]]
        return
    assert "errors" not in result
    event = parse_event_json(line)
    settings = TENANTS[event.tenant]
    assert (result["tenant"], result["kind"], result["id"]) == (
        event.tenant,
        event.kind,
        event.record.id,
    )
    for request in result["requests"]:
        if request["method"] == "GET":
            assert request["body"] is None
        elif request["path"] == "/api/Contact/Transaction":
            assert request["body"]["referenceId"] == str(event.record.id)
            assert request["body"]["email"] == event.record.email  # type: ignore[union-attr]
        elif request["path"] in ("/api/Contact", "/api/Segment", "/api/Project"):
            check_dependency_body(request, event.record)
        elif isinstance(event.record, Transaction):
            check_gift_body(request, event.record, settings, result["reason"])
        elif "/Cancel/" in request["path"]:
            assert request["body"] == {}
        else:
            assert isinstance(event.record, ScheduledDonation)
            check_recurring_body(request, event.record, settings)


def _sum(rows: list[dict[str, Any]], key: str) -> int:
    return sum(cents(row[key]) for row in rows)


def check_gift_body(
    request: dict[str, Any], tx: Transaction, settings: TenantSettings, reason: str
) -> None:
    body = request["body"]
    zeroing = tx.status in ("failed", "refunded")
    amount = dollars(0 if zeroing else tx.amount)
    assert body["amount"] == amount
    if request["path"] == "/api/v2/Gift/Transactions":
        assert body["transactionSource"] == settings.transaction_source
        assert body["transactionId"] == str(tx.id)
        assert body["customFields"] == {"wg_id": str(tx.id)}
        assert body["giftDate"] == gift_date(tx.created_at, settings.zone)
        assert _sum(body["designations"], "amountDesignated") == cents(amount)
        # The reference always travels, also when the Contact id decides the match.
        assert body["contact"]["referenceId"] == str(tx.owner.id)
        if tx.owner.virtuous_contact_id is not None:
            assert body["contact"]["id"] == tx.owner.virtuous_contact_id
        if not settings.fund_allocations or not tx.allocations:
            assert len(body["designations"]) == 1
        return
    adds = [row for row in body["giftDesignations"] if row.get("state", "Add") == "Add"]
    if request["method"] == "POST":
        # A donor without a Contact gets the one the lookup or create before it yields.
        expected = tx.owner.virtuous_contact_id or CONTACT_PLACEHOLDER
        assert body["contactId"] == expected
        assert body["giftDate"] == gift_date(tx.created_at, settings.zone)
        assert body["transactionId"] == str(tx.id)
    if zeroing:
        assert adds == []  # the projects come from the existing gift at run time
    else:
        assert _sum(adds, "amount") == cents(amount)
        assert body["customFields"] == [{"name": "wg_id", "value": str(tx.id)}]


def check_dependency_body(request: dict[str, Any], record: Any) -> None:
    body = request["body"]
    if request["path"] == "/api/Contact":
        owner = record.owner if isinstance(record, Transaction) else record.source
        assert body["referenceId"] == str(owner.id)
    elif request["path"] == "/api/Segment":
        assert body["code"] and body["name"] == record.campaign.name
    else:
        assert body["projectCode"]


def check_recurring_body(
    request: dict[str, Any], sd: ScheduledDonation, settings: TenantSettings
) -> None:
    body = request["body"]
    charge = sd.amount + sd.fee_amount
    assert body["amount"] == dollars(charge)
    assert _sum(body["designations"], "amountDesignated") == charge
    assert body["nextExpectedPaymentDate"] == sd.start_date.isoformat()
    assert body["isPrivate"] is sd.anonymous
    if request["method"] == "POST":
        assert body["frequency"] == FREQUENCY_TO_VIRTUOUS[sd.frequency]
        # 0 stands in for the id of a Contact pushed first.
        assert body["contactId"] == (sd.source.virtuous_contact_id or PLACEHOLDER_ID)
    if sd.fee_amount and settings.fee_fund_virtuous_id and not settings.fee_splitting:
        assert settings.fee_fund_virtuous_id in [row["projectId"] for row in body["designations"]]


def test_the_examples_cover_every_rule() -> None:
    results = previews()
    reasons = {result["reason"] for _, result in results}
    assert {
        "success",
        "processing",
        "processing_ach_as_success",
        "processing_unknown_payment_type",
        "processing_ach_not_sent",
        "refund_of_real_gift",
        "failed_with_real_gift_id",
        "refund_of_batch_gift_waits_for_real_id",
        "failed_batch_gift_waits_for_real_id",
        "refunded_without_real_gift_id",
        "failed_without_real_gift_id",
        "recurring_create",
        "recurring_update",
        "recurring_cancel",
        "cancelled_never_pushed",
    } <= reasons
    assert any(reason.startswith("status_not_sent:") for reason in reasons)
    events = [parse_event_json(line) for line, r in results if r["reason"] != "invalid_event"]
    txs = [e.record for e in events if isinstance(e.record, Transaction)]
    sds = [e.record for e in events if isinstance(e.record, ScheduledDonation)]
    assert {"card", "bank", None} <= {t.source_type for t in txs}
    assert {t.source_type for t in txs} - {"card", "bank", None}  # some other payment type
    assert {t.owner.type for t in txs} == {"individual", "company"}
    assert {t.owner.virtuous_contact_id is None for t in txs} == {True, False}
    assert {t.campaign is None for t in txs} == {True, False}
    assert {bool(t.allocations) for t in txs} == {True, False}
    assert any(t.scheduled_donation and t.scheduled_donation.virtuous_id for t in txs)
    assert {s.frequency for s in sds} == set(FREQUENCY_TO_VIRTUOUS)
    assert {TENANTS[e.tenant].mode for e in events} == {"batch", "real_time"}
    assert any(not TENANTS[e.tenant].fund_allocations for e in events)


def one(
    record: dict[str, Any], settings: TenantSettings, kind: str = "transaction"
) -> dict[str, Any]:
    return preview_event(json.dumps(event_data(record, kind)), {"test-tenant": settings})


def test_a_batch_preview_body_is_the_single_entry() -> None:
    result = one(tx_data(), tenant())
    [request] = result["requests"]
    assert request["method"] == "POST" and request["path"] == "/api/v2/Gift/Transactions"
    assert request["body"]["transactionId"] == "1001"
    assert isinstance(request["body"], dict)  # the entry, not the array


def test_a_real_time_update_preview_shows_the_overwritten_fields() -> None:
    result = one(tx_data(virtuous_id="95001", amount=8000), tenant(mode="real_time"))
    get, put = result["requests"]
    assert get == {"method": "GET", "path": "/api/Gift/95001", "body": None}
    assert put["body"]["amount"] == "80.00"
    assert put["body"]["giftDesignations"] == [
        {"projectId": 4012, "amount": "80.00", "state": "Add"}
    ]
    assert "giftDate" not in put["body"] and "contactId" not in put["body"]


def test_a_refund_preview_zeroes_in_both_modes() -> None:
    for mode in ("batch", "real_time"):
        result = one(tx_data(status="refunded", virtuous_id=90001), tenant(mode=mode))
        assert result["path"] == "real_time"
        assert result["requests"][1]["body"] == {"amount": "0.00", "giftDesignations": []}


def test_a_recurring_cancel_preview_uses_the_cancel_route_with_an_empty_body() -> None:
    record = sd_data(status="cancelled", virtuous_id=8002)
    result = one(record, tenant(), "scheduled_donation")
    assert result["requests"][1] == {
        "method": "PUT",
        "path": "/api/RecurringGift/Cancel/8002",
        "body": {},
    }


def test_an_invalid_line_says_what_it_can_and_every_error() -> None:
    bad = event_data(tx_data(amount=-5, owner=owner_data(type="x")), tenant="nope")
    result = preview_event(json.dumps(bad) + "\n", {"test-tenant": tenant()})
    assert result["decision"] == "invalid" and result["path"] is None and result["requests"] == []
    assert (result["tenant"], result["kind"], result["id"]) == ("nope", "transaction", 1001)
    assert [e["path"] for e in result["errors"]] == ["tenant", "record.amount", "record.owner.type"]
    garbage = preview_event("not json\n", {"test-tenant": tenant()})
    assert garbage["errors"][0]["reason"].endswith("(line 1, column 1)")
    assert (garbage["tenant"], garbage["kind"], garbage["id"]) == (None, None, None)


def test_new_funds_keep_their_own_designations_in_a_recurring_preview() -> None:
    new_a = {"id": 901, "name": "New A", "virtuous_id": None, "code": "NA"}
    new_b = {"id": 902, "name": "New B", "virtuous_id": None, "code": "NB"}
    event = scheduled_donation(
        "hope-shelter",
        77,
        amount=3000,
        fund=new_a,
        allocations=[{"fund": new_a, "amount": 1000}, {"fund": new_b, "amount": 2000}],
    )
    out = preview_event(json.dumps(event), TENANTS)
    [create] = [r for r in out["requests"] if r["path"] == "/api/RecurringGift"]
    designations = create["body"]["designations"]
    assert [d["amountDesignated"] for d in designations] == ["10.00", "20.00"]
    assert len({d["projectId"] for d in designations}) == 2
    assert all(d["projectId"] < 0 for d in designations)
