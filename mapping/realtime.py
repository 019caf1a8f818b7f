"""The real-time path: ``POST /api/Gift`` to create a gift, ``GET`` + ``PUT /api/Gift/{id}`` to
change one (seed 002, "Push -- real-time single path").

The shapes differ from the batch path on purpose: ``contactId`` instead of ``contact.id``,
``giftDesignations`` of ``{projectId, amount}``, ``customFields`` as a name/value array and
``recurringGiftPayments`` to tie an installment to its RecurringGift. ``transactionSource`` and
``transactionId`` go on every gift so a create whose response was lost can be looked up by
reference before it is retried.

A PUT replaces the whole Gift in Virtuous, so an update starts from the Gift as GET returned it
and overwrites only what WeGive owns: ``amount``, ``description``, ``segmentId``/``segment``,
``isTaxDeductible``, ``isPrivate``, ``notes``, the ``wg_id`` custom field and the designations.
Everything else staff or Virtuous set is sent back untouched. An owned field WeGive has no value
for is cleared (null): WeGive is the source of truth for it. Designations follow Virtuous's diff
protocol: every existing designation goes back marked ``"state": "Delete"`` (keeping its id),
then the desired set is appended marked ``"state": "Add"``, which replaces the set.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from mapping.batch_entry import WG_ID, compact, gift_type, transaction_id
from mapping.dates import gift_date
from mapping.decision import SendDecision
from mapping.designations import gift_designation_lines, realtime_designations
from mapping.errors import MappingError
from mapping.events import Transaction
from mapping.money import dollars
from mapping.tenant import TenantSettings

# The scalar Gift fields WeGive owns: an update overwrites exactly these (plus the wg_id
# custom field and the designations).
OWNED_FIELDS = (
    "amount",
    "description",
    "segmentId",
    "segment",
    "isTaxDeductible",
    "isPrivate",
    "notes",
)
DESIGNATIONS = "giftDesignations"
CUSTOM_FIELDS = "customFields"
ZERO = "0.00"


def realtime_desired(
    tx: Transaction, tenant: TenantSettings, decision: SendDecision
) -> dict[str, Any]:
    """The Gift as WeGive wants it, in the direct-API shape, without requiring a contact.

    This is the create body when the donor has a Contact id, and the ``desired`` side of
    :func:`realtime_update`. Raises MappingError for a fund with no Project id.
    """
    owner = tx.owner
    amount = 0 if decision.zero_amount else tx.amount
    lines = gift_designation_lines(tx, tenant, zero_amount=decision.zero_amount, allow_code=False)
    campaign = tx.campaign
    sd = tx.scheduled_donation
    payments = None
    if sd is not None and sd.virtuous_id is not None:
        payments = [{"id": sd.virtuous_id, "amount": dollars(amount)}]
    return compact(
        {
            "contactId": owner.virtuous_contact_id,
            "contactIndividualId": owner.virtuous_contact_individual_id,
            "amount": dollars(amount),
            "giftDate": gift_date(tx.created_at, tenant.zone),
            "description": tx.description,
            "notes": tx.supporter_inputted_notes,
            "isTaxDeductible": tx.is_tax_deductible,
            "isPrivate": tx.anonymous,
            DESIGNATIONS: realtime_designations(lines),
            "segmentId": campaign.virtuous_segment_id if campaign else None,
            "segment": campaign.segment_code if campaign else None,
            "recurringGiftPayments": payments,
            CUSTOM_FIELDS: [{"name": WG_ID, "value": transaction_id(tx)}],
            "giftType": gift_type(tx.source_type),
            "transactionSource": tenant.transaction_source,
            "transactionId": transaction_id(tx),
        }
    )


def realtime_create(
    tx: Transaction, tenant: TenantSettings, decision: SendDecision
) -> dict[str, Any]:
    """The ``POST /api/Gift`` body. Raises MappingError when the donor has no Contact id.

    Unlike a Gift Transaction, a direct create does no contact matching: the Contact must
    exist first.
    """
    if not decision.send:
        raise ValueError(f"transaction {tx.id!r} is not sent ({decision.reason})")
    if tx.owner.virtuous_contact_id is None:
        raise MappingError(
            "record.owner.virtuous_contact_id",
            "POST /api/Gift needs the donor's existing Virtuous Contact id; push the donor first",
        )
    return realtime_desired(tx, tenant, decision)


def _merge_custom_fields(existing: Any, desired: Any) -> Any:
    # Staff may keep their own custom fields on the gift: replace only the ones WeGive sends,
    # in whichever form (object or name/value array) the GET returned.
    wanted = {item["name"]: item["value"] for item in desired or []}
    if isinstance(existing, Mapping):
        return {**existing, **wanted}
    merged: list[Any] = []
    for item in existing or []:
        name = item.get("name") if isinstance(item, Mapping) else None
        if name in wanted:
            merged.append({**item, "value": wanted.pop(name)})
        else:
            merged.append(item)
    merged.extend({"name": name, "value": value} for name, value in wanted.items())
    return merged


def designation_diff(existing: Any, desired: Any) -> list[dict[str, Any]]:
    """Every existing designation marked Delete (ids kept), then the desired set marked Add."""
    deletes = [{**dict(item), "state": "Delete"} for item in existing or []]
    adds = [{**dict(item), "state": "Add"} for item in desired or []]
    return deletes + adds


def realtime_update(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The ``PUT /api/Gift/{id}`` body: ``existing`` with only WeGive's fields overwritten."""
    body = copy.deepcopy(dict(existing))
    for field in OWNED_FIELDS:
        body[field] = desired.get(field)
    body[CUSTOM_FIELDS] = _merge_custom_fields(
        existing.get(CUSTOM_FIELDS), desired.get(CUSTOM_FIELDS)
    )
    body[DESIGNATIONS] = designation_diff(existing.get(DESIGNATIONS), desired.get(DESIGNATIONS))
    return body


def _project_reference(designation: Mapping[str, Any]) -> dict[str, Any] | None:
    if designation.get("projectId") is not None:
        return {"projectId": designation["projectId"]}
    if designation.get("projectCode"):
        return {"projectCode": designation["projectCode"]}
    return None


def zeroing_update(existing: Mapping[str, Any]) -> dict[str, Any]:
    """The ``PUT /api/Gift/{id}`` body that zeroes a failed or refunded gift.

    The amount becomes 0.00; the existing designations are Deleted and their Projects
    re-Added at 0.00, so the gift keeps where it was designated and still balances.
    """
    body = copy.deepcopy(dict(existing))
    body["amount"] = ZERO
    existing_lines = existing.get(DESIGNATIONS) or []
    projects: list[dict[str, Any]] = []
    for designation in existing_lines:
        reference = _project_reference(designation)
        if reference is not None and reference not in projects:
            projects.append(reference)
    desired = [{**reference, "amount": ZERO} for reference in projects]
    body[DESIGNATIONS] = designation_diff(existing_lines, desired)
    return body
