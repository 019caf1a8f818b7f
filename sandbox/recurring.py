"""RecurringGift records (seed 004): validation of a create or full-replacement PUT, and the JSON.

A RecurringGift needs an existing ``contactId``, a ``startDate``, a ``frequency`` and an
``amount``; its ``designations`` (if any) must sum to the amount, to known projects. It is
cancelled by a PUT whose ``status`` is "Cancelled" or that carries ``cancelDateTimeUtc``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sandbox.gifts import resolve_designations
from sandbox.matching import lower_keys
from sandbox.timefmt import parse_timestamp
from sandbox.validation import (
    Catalog,
    Problems,
    check_sum,
    parse_bool,
    parse_date,
    parse_designations,
    parse_int,
    parse_money,
)

NewId = Callable[[str], int]

FREQUENCIES = {
    "daily": "Daily",
    "weekly": "Weekly",
    "biweekly": "Biweekly",
    "monthly": "Monthly",
    "quarterly": "Quarterly",
    "semiannually": "SemiAnnually",
    "annually": "Annually",
    "yearly": "Annually",
}


def recurring_fields(
    body: Mapping[str, Any],
    problems: Problems,
    catalog: Catalog,
    existing: list[dict[str, Any]],
    now: str,
) -> dict[str, Any]:
    """Validated fields of a create or PUT body (the designations resolved against ``existing``)."""
    low = lower_keys(body)
    contact_id = parse_int(low.get("contactid"), "contactId", problems)
    if contact_id is None and "contactId" not in problems.state:
        problems.add("contactId", "The contactId field is required.")
    elif contact_id is not None and contact_id not in catalog.contact_ids:
        problems.add("contactId", f"Contact {contact_id} does not exist.")
    start = parse_date(low.get("startdate"), "startDate", problems)
    next_date = None
    if low.get("nextexpectedpaymentdate"):
        next_date = parse_date(
            low.get("nextexpectedpaymentdate"), "nextExpectedPaymentDate", problems
        )
    frequency = None
    raw_freq = low.get("frequency")
    if raw_freq in (None, ""):
        problems.add("frequency", "The frequency field is required.")
    else:
        frequency = FREQUENCIES.get(str(raw_freq).lower())
        if frequency is None:
            problems.add(
                "frequency",
                f"'{raw_freq}' is not a valid frequency. "
                f"Valid: {', '.join(sorted(set(FREQUENCIES.values())))}.",
            )
    amount = parse_money(low.get("amount"), "amount", problems)
    key = "giftDesignations" if "giftdesignations" in low else "designations"
    inputs = parse_designations(low.get(key.lower()), key, problems, catalog)
    designations = resolve_designations(existing, inputs, key, problems, catalog)
    if designations:
        check_sum(designations, amount, key, problems)
    segment_id = parse_int(low.get("segmentid"), "segmentId", problems)
    cancelled_at = None
    if low.get("canceldatetimeutc"):
        parsed = parse_timestamp(str(low["canceldatetimeutc"]))
        if parsed is None:
            problems.add("cancelDateTimeUtc", f"'{low['canceldatetimeutc']}' is not a valid date.")
        else:
            cancelled_at = parsed[0]
    status = str(low.get("status") or "Active").capitalize()
    if status not in ("Active", "Cancelled"):
        problems.add("status", f"'{low.get('status')}' is not Active or Cancelled.")
    if status == "Cancelled" and cancelled_at is None:
        cancelled_at = now
    return {
        "contactId": contact_id,
        "startDate": start,
        "nextExpectedPaymentDate": next_date,
        "frequency": frequency,
        "amount": amount,
        "isPrivate": parse_bool(low.get("isprivate"), "isPrivate", problems, False),
        "segmentId": segment_id,
        "segmentCode": catalog.segments.get(segment_id) if segment_id is not None else None,
        "description": None if low.get("description") is None else str(low["description"]),
        "transactionSource": None
        if low.get("transactionsource") is None
        else str(low["transactionsource"]),
        "transactionId": None if low.get("transactionid") is None else str(low["transactionid"]),
        "designations": designations,
        "status": "Cancelled" if cancelled_at else "Active",
        "cancelDateTimeUtc": cancelled_at,
    }


def _with_ids(items: list[dict[str, Any]], new_id: NewId) -> list[dict[str, Any]]:
    return [
        {**d, "id": d["id"] if d.get("id") is not None else new_id("designation")} for d in items
    ]


def build_recurring(
    recurring_id: int, fields: dict[str, Any], now: str, new_id: NewId
) -> dict[str, Any]:
    """A new RecurringGift; its next payment defaults to its start date."""
    record = {"id": recurring_id, **fields}
    record["nextExpectedPaymentDate"] = fields["nextExpectedPaymentDate"] or fields["startDate"]
    record["designations"] = _with_ids(fields["designations"], new_id)
    record["createDateTimeUtc"] = now
    record["modifiedDateTimeUtc"] = now
    return record


def replace_recurring(
    record: dict[str, Any], fields: dict[str, Any], now: str, new_id: NewId
) -> None:
    """Full replacement in place; a cancelled gift keeps its first cancellation time."""
    was_cancelled = record.get("cancelDateTimeUtc")
    record.update(fields)
    record["designations"] = _with_ids(fields["designations"], new_id)
    if was_cancelled and fields["status"] == "Cancelled":
        record["cancelDateTimeUtc"] = was_cancelled
    record["modifiedDateTimeUtc"] = now
