"""Gift records: the JSON a Gift is, how a create or a full-replacement PUT builds it, the
designation diff protocol, and reversing transactions.

Stored Gifts are exactly what ``GET /api/Gift/{id}`` returns (amounts as Decimal until
serialised). A PUT replaces every field it can set: a field left out is cleared. Only the
system fields survive a PUT: ``id``, ``createDateTimeUtc``, the reference pair (unless the body
gives a new one), the import ``batch`` and the reversal links. The display fields clients read
(``giftDateFormatted``, ``amountFormatted``, ``giftTypeFormatted``, ``giftUrl``: taylorbrooks
gift.json, m-henke/Virtuous-Webhook, nucleus-engine) follow the fields they show.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sandbox.validation import Catalog, DesignationInput, Problems

NewId = Callable[[str], int]

# Fields a PUT body may set (everything else a Gift holds is system-owned).
SETTABLE = (
    "contactIndividualId",
    "giftType",
    "giftDate",
    "amount",
    "currencyCode",
    "description",
    "notes",
    "isTaxDeductible",
    "isPrivate",
    "segmentId",
    "segment",
    "segmentCode",
    "recurringGiftPayments",
    "recurringGiftTransactionId",
    "pledgeTransactionId",
    "customFields",
)


def money_formatted(amount: Decimal | None) -> str | None:
    """``$1,234.50`` (``-$10.00`` for a reversal), as Virtuous shows amounts."""
    if amount is None:
        return None
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"


def date_formatted(value: str | None) -> str | None:
    """``11/20/2026`` (month/day/year, no leading zeros) from a stored ``2026-11-20T00:00:00``."""
    if not value:
        return None
    day = datetime.fromisoformat(value[:19])
    return f"{day.month}/{day.day}/{day.year}"


def with_display_fields(gift: dict[str, Any]) -> dict[str, Any]:
    """Refresh the Gift's display fields from the fields they show; returns the Gift."""
    gift["giftDateFormatted"] = date_formatted(gift.get("giftDate"))
    gift["amountFormatted"] = money_formatted(gift.get("amount"))
    gift["giftTypeFormatted"] = gift.get("giftType")
    gift["giftUrl"] = f"/api/Gift/{gift['id']}"
    gift["contactUrl"] = f"/api/Contact/{gift['contactId']}"
    return gift


def _designations(items: list[dict[str, Any]], new_id: NewId) -> list[dict[str, Any]]:
    return [
        {
            "id": d["id"] if d.get("id") is not None else new_id("designation"),
            "projectId": d["projectId"],
            "projectCode": d["projectCode"],
            "amountDesignated": d["amountDesignated"],
        }
        for d in items
    ]


def build_gift(
    gift_id: int,
    contact_id: int,
    fields: dict[str, Any],
    ref: tuple[str, str] | None,
    now: str,
    new_id: NewId,
    batch: str | None = None,
) -> dict[str, Any]:
    """A new Gift from validated fields."""
    gift: dict[str, Any] = {
        "id": gift_id,
        "transactionSource": ref[0] if ref else None,
        "transactionId": ref[1] if ref else None,
        "contactId": contact_id,
    }
    for key in SETTABLE:
        gift[key] = fields.get(key)
    gift["batch"] = batch if batch is not None else fields.get("batch")
    gift["giftDesignations"] = _designations(fields["giftDesignations"], new_id)
    gift["reversedGiftId"] = None
    gift["reversingGiftId"] = None
    gift["createDateTimeUtc"] = now
    gift["modifiedDateTimeUtc"] = now
    return with_display_fields(gift)


def resolve_designations(
    existing: list[dict[str, Any]],
    inputs: list[DesignationInput],
    path: str,
    problems: Problems,
    catalog: Catalog,
) -> list[dict[str, Any]]:
    """The designations after a PUT.

    With no ``state`` marker anywhere the list replaces the old one. With markers (the diff
    protocol): start from the existing designations, remove each ``Delete`` (by id), change each
    ``Update`` (or unmarked entry naming an existing id; an ``Update`` without an id names the
    designation by its project), append each ``Add``.
    """

    def stored(d: DesignationInput, keep_id: int | None) -> dict[str, Any]:
        return {
            "id": keep_id,
            "projectId": d.project_id,
            "projectCode": catalog.projects.get(d.project_id or -1),
            "amountDesignated": d.amount,
        }

    known = {d["id"]: d for d in existing}
    if not any(d.state for d in inputs):
        return [stored(d, d.designation_id if d.designation_id in known else None) for d in inputs]
    result = {d["id"]: dict(d) for d in existing}
    added: list[dict[str, Any]] = []
    by_project = {d["projectId"]: d["id"] for d in existing}
    for i, d in enumerate(inputs):
        if d.state == "Update" and d.designation_id is None and d.project_id in by_project:
            # virtuous-ts marks every designation Updated by its projectId alone.
            d = DesignationInput(d.state, by_project[d.project_id], d.project_id, d.amount)
        if d.state == "Delete":
            if d.designation_id not in result:
                problems.add(
                    f"{path}[{i}].id", f"Designation {d.designation_id} is not on this gift."
                )
            else:
                del result[d.designation_id]
        elif d.state == "Update" or (d.state is None and d.designation_id in result):
            if d.designation_id not in result:
                problems.add(
                    f"{path}[{i}].id", f"Designation {d.designation_id} is not on this gift."
                )
            else:
                result[d.designation_id] = stored(d, d.designation_id)
        else:
            added.append(stored(d, None))
    return list(result.values()) + added


def replace_gift(
    gift: dict[str, Any],
    contact_id: int,
    fields: dict[str, Any],
    designations: list[dict[str, Any]],
    ref: tuple[str, str] | None,
    now: str,
    new_id: NewId,
) -> None:
    """Apply a full-replacement PUT in place."""
    gift["contactId"] = contact_id
    for key in SETTABLE:
        gift[key] = fields.get(key)
    if ref is not None:
        gift["transactionSource"], gift["transactionId"] = ref
    gift["giftDesignations"] = _designations(designations, new_id)
    gift["modifiedDateTimeUtc"] = now
    with_display_fields(gift)


def reversing_gift(
    original: dict[str, Any],
    gift_id: int,
    now: str,
    new_id: NewId,
    gift_date: str | None,
    notes: str | None,
    ref: tuple[str, str] | None,
) -> dict[str, Any]:
    """The negating Gift of a reversal: same donor, type and projects, every amount negated."""
    reversal: dict[str, Any] = {
        "id": gift_id,
        "transactionSource": ref[0] if ref else None,
        "transactionId": ref[1] if ref else None,
        "contactId": original["contactId"],
    }
    for key in SETTABLE:
        reversal[key] = original.get(key)
    reversal["amount"] = -original["amount"]
    reversal["giftDate"] = gift_date or original["giftDate"]
    reversal["notes"] = notes if notes is not None else f"Reversal of gift {original['id']}"
    reversal["recurringGiftPayments"] = []
    reversal["batch"] = original.get("batch")
    reversal["giftDesignations"] = [
        {
            "id": new_id("designation"),
            "projectId": d["projectId"],
            "projectCode": d["projectCode"],
            "amountDesignated": -d["amountDesignated"],
        }
        for d in original["giftDesignations"]
    ]
    reversal["reversedGiftId"] = original["id"]
    reversal["reversingGiftId"] = None
    reversal["createDateTimeUtc"] = now
    reversal["modifiedDateTimeUtc"] = now
    return with_display_fields(reversal)
