"""The batch path: one WeGive transaction as one entry of ``POST /api/v2/Gift/Transactions``.

Every field of seed 002's batch table, plus what the Virtuous docs (001, 003) recommend and
WeGive's own batch path lacks:

* ``transactionSource`` + ``transactionId`` on every entry: the idempotency key, so a retried
  batch never duplicates a gift, and the handle confirmation looks the gift up by;
* when the donor has no Virtuous Contact id yet, the embedded contact data (see
  :func:`contact_payload`) so Virtuous's nightly matching can find or create the Contact.

A field whose source is null (or an empty string) is omitted rather than sent as null; the two
flags ``isTaxDeductible`` and ``isPrivate`` are always sent. Invariant: the entry's designations
sum exactly to its ``amount``.
"""

from __future__ import annotations

from typing import Any

from mapping.dates import gift_date
from mapping.decision import SendDecision
from mapping.designations import batch_designations, gift_designation_lines
from mapping.events import Campaign, Owner, Transaction
from mapping.money import dollars
from mapping.tenant import TenantSettings

# WeGive source_type -> Virtuous giftType; any other payment type goes without one.
GIFT_TYPES = {"card": "Credit", "bank": "EFT"}
# The custom field that links a Virtuous gift back to its WeGive transaction.
WG_ID = "wg_id"
# Virtuous contact types for the two kinds of WeGive donor.
CONTACT_TYPES = {"individual": "Household", "company": "Organization"}


def gift_type(source_type: str | None) -> str | None:
    """Virtuous giftType for a WeGive payment type: card -> Credit, bank -> EFT, else None."""
    return GIFT_TYPES.get(source_type) if source_type is not None else None


def compact(fields: dict[str, Any]) -> dict[str, Any]:
    """Drop the fields whose value is None or an empty string (omitted, not sent as null).

    False and 0 are values and stay.
    """
    return {key: value for key, value in fields.items() if value is not None and value != ""}


def transaction_id(tx: Transaction) -> str:
    """The Gift's transactionId: the WeGive transaction id as a string."""
    return str(tx.id)


def segment_fields(campaign: Campaign | None) -> dict[str, Any]:
    """segmentId / segment / segmentCode from the campaign's Virtuous Segment and its code."""
    if campaign is None:
        return {}
    return compact(
        {
            "segmentId": campaign.virtuous_segment_id,
            "segment": campaign.segment_code,
            "segmentCode": campaign.segment_code,
        }
    )


def contact_payload(owner: Owner, tenant: TenantSettings) -> dict[str, Any]:
    """The donor as Virtuous contact data, for matching by reference, email, phone or address.

    Keys: ``referenceSource`` (tenant.reference_source), ``referenceId`` (str(owner.id)),
    ``contactType`` ("Household" | "Organization"), ``name`` (the company name, else
    "First Last"), ``firstName``, ``lastName``, ``email``, ``phone``, ``address1``, ``city``,
    ``state``, ``postal``, ``country``. The same shape serves the Gift Transaction's embedded
    ``contact`` and a Contact Transaction. Missing values are omitted.
    """
    full_name = " ".join(part for part in (owner.first_name, owner.last_name) if part)
    name = owner.company_name if owner.type == "company" and owner.company_name else full_name
    address = owner.address
    return compact(
        {
            "referenceSource": tenant.reference_source,
            "referenceId": str(owner.id),
            "contactType": CONTACT_TYPES[owner.type],
            "name": name,
            "firstName": owner.first_name,
            "lastName": owner.last_name,
            "email": owner.email,
            "phone": owner.phone,
            "address1": address.line1 if address else None,
            "city": address.city if address else None,
            "state": address.state if address else None,
            "postal": address.postal if address else None,
            "country": address.country if address else None,
        }
    )


def batch_entry(tx: Transaction, tenant: TenantSettings, decision: SendDecision) -> dict[str, Any]:
    """The single Gift Transaction entry for ``tx`` (amount 0.00 when the decision zeroes it).

    Raises ValueError for a decision that does not send, and MappingError when a fund has
    neither a Project id nor a code.
    """
    if not decision.send:
        raise ValueError(f"transaction {tx.id!r} is not sent ({decision.reason})")
    owner = tx.owner
    amount = 0 if decision.zero_amount else tx.amount
    lines = gift_designation_lines(tx, tenant, zero_amount=decision.zero_amount)
    if owner.virtuous_contact_id is not None:
        contact: dict[str, Any] = {"id": owner.virtuous_contact_id}
    else:
        contact = contact_payload(owner, tenant)
    sd = tx.scheduled_donation
    entry = {
        "contact": contact,
        "contactIndividualId": owner.virtuous_contact_individual_id,
        "amount": dollars(amount),
        "giftDate": gift_date(tx.created_at, tenant.zone),
        "description": tx.description,
        "notes": tx.supporter_inputted_notes,
        "isTaxDeductible": tx.is_tax_deductible,
        "isPrivate": tx.anonymous,
        "designations": batch_designations(lines),
        **segment_fields(tx.campaign),
        "recurringGiftTransactionId": sd.virtuous_id if sd is not None else None,
        "customFields": {WG_ID: transaction_id(tx)},
        "giftType": gift_type(tx.source_type),
        "transactionSource": tenant.transaction_source,
        "transactionId": transaction_id(tx),
    }
    return compact(entry)
