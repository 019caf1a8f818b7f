"""RecurringGift records (seed 004): validation of a create or full-replacement PUT, and the JSON.

A RecurringGift needs an existing ``contactId``, a ``startDate``, a ``frequency`` and an
``amount``; its ``designations`` (if any) must sum to the amount, to known projects. Only
``PUT /api/RecurringGift/Cancel/{id}`` cancels it: a create or a full-replacement PUT ignores
``status`` and ``cancelDateTimeUtc`` and keeps what the record had (docs/virtuous-contract.md).
Staff records seeded through ``/_admin`` may carry any status Virtuous returns. The JSON carries
``customFields`` [{name, value, displayName}] (virtuous-ts recurring-gift.ts; taylorbrooks
recurring_gift.json) and ``anticipatedEndDate``.
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
    custom_fields,
    parse_bool,
    parse_date,
    parse_designations,
    parse_int,
    parse_money,
)

NewId = Callable[[str], int]

# Virtuous's RecurringGift frequencies (virtuous-ts gift-frequency.ts), read case-insensitively;
# "Biennually" is the spelling a production client sends (nucleus-engine VirtuousCrmService).
FREQUENCIES = {
    "weekly": "Weekly",
    "bimonthly": "Bimonthly",
    "monthly": "Monthly",
    "quarterly": "Quarterly",
    "semiannually": "Semiannually",
    "annually": "Annually",
    "biennially": "Biennially",
    "biennually": "Biennially",
}
# Statuses as Virtuous returns them: "UpToDate" (taylorbrooks recurring_gift.json), "Active",
# "Cancelled" (virtuous-ts recurring-gift.ts); the rest of the live set is not published.
STATUSES = {"active": "Active", "uptodate": "UpToDate", "behind": "Behind",
            "cancelled": "Cancelled", "canceled": "Cancelled"}  # fmt: skip


def recurring_fields(
    body: Mapping[str, Any],
    problems: Problems,
    catalog: Catalog,
    existing: list[dict[str, Any]],
    now: str,
    *,
    staff: bool = False,
) -> dict[str, Any]:
    """Validated fields of a create or PUT body (the designations resolved against ``existing``).

    Only ``staff`` records (seeded through ``/_admin``) take ``status``/``cancelDateTimeUtc``.
    """
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
    end_date = None
    if low.get("anticipatedenddate"):
        end_date = parse_date(low["anticipatedenddate"], "anticipatedEndDate", problems)
    fields = [
        {**f, "displayName": f["name"]}
        for f in custom_fields(low.get("customfields"), "customFields", problems)
    ]
    cancelled_at = None
    if staff and low.get("canceldatetimeutc"):
        parsed = parse_timestamp(str(low["canceldatetimeutc"]))
        if parsed is None:
            problems.add("cancelDateTimeUtc", f"'{low['canceldatetimeutc']}' is not a valid date.")
        else:
            cancelled_at = parsed[0]
    status = "Active"
    if staff:
        status = STATUSES.get(str(low.get("status") or "Active").lower(), "")
        if not status:
            problems.add("status", f"'{low.get('status')}' is not a RecurringGift status.")
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
        "anticipatedEndDate": end_date,
        "customFields": fields,
        "status": "Cancelled" if cancelled_at else status,
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
    """Full replacement in place; the status and cancellation stay what they were."""
    kept = {key: record.get(key) for key in ("status", "cancelDateTimeUtc")}
    record.update(fields)
    record.update(kept)
    record["designations"] = _with_ids(fields["designations"], new_id)
    record["modifiedDateTimeUtc"] = now


def cancel_recurring(record: dict[str, Any], now: str) -> None:
    """``PUT /api/RecurringGift/Cancel/{id}``: cancelled now; a second cancel keeps the first."""
    if not record.get("cancelDateTimeUtc"):
        record["cancelDateTimeUtc"] = now
        record["modifiedDateTimeUtc"] = now
    record["status"] = "Cancelled"
