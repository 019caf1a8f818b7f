"""The pull path: Virtuous Gifts and RecurringGifts back into WeGive records (002/004 "Pull").

Pure functions over the Virtuous JSON (a ``Gift/Query/FullGift`` row, a ``RecurringGift/Query``
row) and what the platform already knows, passed in as arguments. They return the
platform-facing record to write, in WeGive's snake_case field names:

=============================  ==========================================================
key                            meaning
=============================  ==========================================================
virtuous_id                    the Gift / RecurringGift id (int)
amount, fee_amount             cents (int); only when the table allows (see each function)
description                    transaction only; "Virtuous Import" when Virtuous has none
created_at, deleted_at         platform timestamps, UTC ``"Y-m-d H:M:S"`` (mapping.dates)
start_date                     scheduled donation only, ``"Y-m-d"``
status                         transaction only; the existing status, else "success"
frequency                      scheduled donation only, WeGive's word
is_tax_deductible, anonymous,  from isTaxDeductible, isPrivate, notes; a key absent from the
supporter_inputted_notes       Virtuous JSON is left out, so the platform keeps its value
owner_lookup                   ordered donor lookups; resolve with :func:`resolve_owner`
fund_virtuous_id               Project id of the first designation (the owning fund)
campaign_virtuous_segment_id   segmentId
allocations                    ``[{"fund_virtuous_id", "amount"}]`` when the tenant syncs fund
                               allocations (scheduled donations: first import only)
=============================  ==========================================================

Recurring-gift linkage is not restored on pull. Malformed Virtuous JSON raises MappingError
naming the Virtuous field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Literal

from mapping.dates import calendar_date, pulled_created_at, utc_timestamp
from mapping.errors import MappingError
from mapping.events import real_gift_id
from mapping.money import cents
from mapping.recurring import wegive_frequency
from mapping.tenant import TenantSettings

DEFAULT_DESCRIPTION = "Virtuous Import"
DEFAULT_STATUS = "success"
WG_ID = "wg_id"


@dataclass(frozen=True)
class PullMatch:
    """Which WeGive transaction a pulled gift is: ``by`` says how it was found."""

    by: Literal["virtuous_id", "wg_id", "new"]
    transaction_id: str | None


def _id(value: Any) -> int | None:
    # Virtuous ids are positive ints, now and then serialised as digit strings: the same
    # reading as a Gift id's.
    return real_gift_id(value)


def _virtuous_id(record: Mapping[str, Any]) -> int:
    found = _id(record.get("id"))
    if found is None:
        raise MappingError("id", f"must be a positive Virtuous id, got {record.get('id')!r}")
    return found


def wg_id_of(gift: Mapping[str, Any]) -> str | None:
    """The ``wg_id`` custom field, whether customFields is an object or a name/value array."""
    fields = gift.get("customFields")
    value: Any = None
    if isinstance(fields, Mapping):
        value = fields.get(WG_ID)
    elif isinstance(fields, list):
        for item in fields:
            if isinstance(item, Mapping) and item.get("name") == WG_ID:
                value = item.get("value")
                break
    if value is None or value == "":
        return None
    return str(value)


def match_pulled_gift(
    gift: Mapping[str, Any],
    *,
    known_by_virtuous_id: Mapping[int, str],
    known_by_wg_id: AbstractSet[str],
) -> PullMatch:
    """Match first by the Gift id, then by the wg_id custom field, else it is new."""
    gift_id = _virtuous_id(gift)
    if gift_id in known_by_virtuous_id:
        return PullMatch("virtuous_id", known_by_virtuous_id[gift_id])
    wg_id = wg_id_of(gift)
    if wg_id is not None and wg_id in known_by_wg_id:
        return PullMatch("wg_id", wg_id)
    return PullMatch("new", None)


def owner_lookup(contact_id: Any, individual_id: Any) -> list[dict[str, Any]]:
    """The donor lookups to try, in order (seed 002/004 "Owner/Source resolution").

    A company donor by Contact id first; then the individual by contactIndividualId (gifts);
    then the Contact's primary individual.
    """
    contact = _id(contact_id)
    individual = _id(individual_id)
    steps: list[dict[str, Any]] = []
    if contact is not None:
        steps.append({"by": "company", "virtuous_contact_id": contact})
    if individual is not None:
        steps.append({"by": "individual", "virtuous_contact_individual_id": individual})
    if contact is not None:
        steps.append({"by": "primary_individual", "virtuous_contact_id": contact})
    return steps


def resolve_owner(
    lookups: Sequence[Mapping[str, Any]],
    *,
    companies: Mapping[int, str],
    individuals: Mapping[int, str],
    primary_individuals: Mapping[int, str],
) -> dict[str, str] | None:
    """The first lookup that finds a WeGive donor: ``{"type", "id"}``, or None.

    ``companies`` maps a company's virtuous_contact_id to its id; ``individuals`` maps a
    virtuous_contact_individual_id to the person's id; ``primary_individuals`` maps a Contact
    id to the id of that Contact's primary individual.
    """
    tables = {
        "company": ("virtuous_contact_id", companies, "company"),
        "individual": ("virtuous_contact_individual_id", individuals, "individual"),
        "primary_individual": ("virtuous_contact_id", primary_individuals, "individual"),
    }
    for step in lookups:
        key, known, owner_type = tables[step["by"]]
        if step[key] in known:
            return {"type": owner_type, "id": known[step[key]]}
    return None


def _money(record: Mapping[str, Any], key: str, path: str) -> int:
    try:
        return cents(record[key])
    except (KeyError, TypeError, ValueError):
        raise MappingError(path, f"must be a dollar amount, got {record.get(key)!r}") from None


def _designation_fields(designations: Any, key: str, with_allocations: bool) -> dict[str, Any]:
    rows = designations if isinstance(designations, list) else []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise MappingError(f"{key}.{index}", "must be a designation object")
    fields: dict[str, Any] = {"fund_virtuous_id": _id(rows[0].get("projectId")) if rows else None}
    if with_allocations:
        merged: dict[int, int] = {}
        for index, row in enumerate(rows):
            project = _id(row.get("projectId"))
            if project is None:
                raise MappingError(f"{key}.{index}.projectId", "must be a Virtuous Project id")
            amount = _money(row, "amountDesignated", f"{key}.{index}.amountDesignated")
            merged[project] = merged.get(project, 0) + amount
        fields["allocations"] = [
            {"fund_virtuous_id": project, "amount": amount} for project, amount in merged.items()
        ]
    return fields


def _copy_present(source: Mapping[str, Any], pairs: dict[str, str]) -> dict[str, Any]:
    return {ours: source[theirs] for theirs, ours in pairs.items() if theirs in source}


def pulled_transaction(
    gift: Mapping[str, Any], *, existing: Mapping[str, Any] | None, tenant: TenantSettings
) -> dict[str, Any]:
    """The WeGive transaction fields for a pulled FullGift; ``existing`` is the matched record.

    ``amount`` is set only when the existing record has none; ``status`` keeps the existing
    one; allocations are reconciled on every pull when the tenant syncs fund allocations.
    """
    record: dict[str, Any] = {"virtuous_id": _virtuous_id(gift)}
    if existing is None or existing.get("amount") is None:
        record["amount"] = _money(gift, "amount", "amount")
    record["description"] = gift.get("description") or DEFAULT_DESCRIPTION
    gift_date = gift.get("giftDate")
    if not isinstance(gift_date, str):
        raise MappingError("giftDate", f"must be a date string, got {gift_date!r}")
    try:
        record["created_at"] = pulled_created_at(gift_date, tenant.zone)
    except ValueError as exc:
        raise MappingError("giftDate", str(exc)) from None
    status = existing.get("status") if existing is not None else None
    record["status"] = status or DEFAULT_STATUS
    record.update(
        _copy_present(
            gift,
            {
                "isTaxDeductible": "is_tax_deductible",
                "isPrivate": "anonymous",
                "notes": "supporter_inputted_notes",
            },
        )
    )
    record["owner_lookup"] = owner_lookup(gift.get("contactId"), gift.get("contactIndividualId"))
    designations = gift.get("giftDesignations")
    record.update(_designation_fields(designations, "giftDesignations", tenant.fund_allocations))
    record["campaign_virtuous_segment_id"] = _id(gift.get("segmentId"))
    return record


# Keys a pulled transaction may leave out when Virtuous's JSON lacks them: absent is None.
_OPTIONAL_CONTENT = ("is_tax_deductible", "anonymous", "supporter_inputted_notes")


def _content(
    gift: Mapping[str, Any], tenant: TenantSettings, *, designations: bool
) -> dict[str, Any]:
    """What a gift holds of the fields giftsync sends, in the pull's vocabulary."""
    record = pulled_transaction(gift, existing=None, tenant=tenant)
    for key in ("virtuous_id", "status", "owner_lookup", "fund_virtuous_id", "allocations"):
        record.pop(key, None)
    for key in _OPTIONAL_CONTENT:
        record.setdefault(key, None)
    if designations:
        rows = _designation_fields(gift.get("giftDesignations"), "giftDesignations", True)
        record["allocations"] = sorted(
            (row["fund_virtuous_id"], row["amount"]) for row in rows["allocations"]
        )
    return record


def holds_what_was_sent(
    gift: Mapping[str, Any], sent: Mapping[str, Any], tenant: TenantSettings
) -> bool:
    """Whether a pulled FullGift holds what giftsync last sent for it (an echo, not an edit).

    ``sent`` is the Gift in the direct-API shape (:func:`mapping.realtime.realtime_desired`),
    whichever path carried it. Compared: amount, description, gift day, notes, the tax and
    private flags, segment and, unless the gift was zeroed, the designations (a zeroing keeps
    Virtuous's own Projects at 0.00, so there are none of giftsync's to compare).
    """
    zeroed = cents(sent.get("amount", 0)) == 0
    as_pulled = {
        **sent,
        "id": gift.get("id"),
        "giftDesignations": [
            {"projectId": row.get("projectId"), "amountDesignated": row.get("amount")}
            for row in sent.get("giftDesignations") or []
        ],
    }
    ours = _content(as_pulled, tenant, designations=not zeroed)
    return bool(_content(gift, tenant, designations=not zeroed) == ours)


def _timestamp(record: Mapping[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None or value == "":
        return None
    try:
        return utc_timestamp(value)
    except ValueError as exc:
        raise MappingError(key, str(exc)) from None


def pulled_scheduled_donation(
    rg: Mapping[str, Any], *, existing: Mapping[str, Any] | None, tenant: TenantSettings
) -> dict[str, Any]:
    """The WeGive scheduled-donation fields for a pulled RecurringGift (matched on virtuous_id).

    ``amount`` and ``fee_amount`` (0) only for a new record: Virtuous holds the fee-inflated
    charge amount, and pulling it back would grow the fee on every round trip. Allocations
    likewise only on first import.
    """
    record: dict[str, Any] = {"virtuous_id": _virtuous_id(rg)}
    next_payment = rg.get("nextExpectedPaymentDate")
    if next_payment:
        try:
            record["start_date"] = calendar_date(next_payment)
        except ValueError as exc:
            raise MappingError("nextExpectedPaymentDate", str(exc)) from None
    created = _timestamp(rg, "createDateTimeUtc")
    if created is not None:
        record["created_at"] = created
    cancelled = _timestamp(rg, "cancelDateTimeUtc")
    if cancelled is not None:
        record["deleted_at"] = cancelled
    record["frequency"] = wegive_frequency(rg.get("frequency"))
    record.update(_copy_present(rg, {"isPrivate": "anonymous"}))
    first_import = existing is None
    if first_import:
        record["amount"] = _money(rg, "amount", "amount")
        record["fee_amount"] = 0
    record["owner_lookup"] = owner_lookup(rg.get("contactId"), None)
    record.update(
        _designation_fields(
            rg.get("designations"), "designations", tenant.fund_allocations and first_import
        )
    )
    record["campaign_virtuous_segment_id"] = _id(rg.get("segmentId"))
    return record
