"""The batch path: one WeGive transaction as one entry of ``POST /api/v2/Gift/Transactions``.

Every field of seed 002's batch table, plus what the Virtuous docs (001, 003) recommend and
WeGive's own batch path lacks:

* ``transactionSource`` + ``transactionId`` on every entry: the idempotency key, so a retried
  batch never duplicates a gift, and the handle confirmation looks the gift up by;
* the embedded ``contact`` in the shape Virtuous's own samples use (see :func:`gift_contact`),
  always with the donor's external reference, so Virtuous's nightly matching finds or creates
  the Contact and the Contact keeps the reference giftsync looks donors up by.

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


def _display_name(owner: Owner) -> str:
    full_name = " ".join(part for part in (owner.first_name, owner.last_name) if part)
    return owner.company_name if owner.type == "company" and owner.company_name else full_name


def contact_payload(owner: Owner, tenant: TenantSettings) -> dict[str, Any]:
    """The donor as a Contact Transaction (``POST /api/Contact/Transaction``): the flat shape.

    Keys: ``referenceSource`` (tenant.reference_source), ``referenceId`` (str(owner.id)),
    ``contactType`` ("Household" | "Organization"), ``name`` (the company name, else
    "First Last"), ``firstName``, ``lastName``, ``email``, ``phone``, ``address1``, ``city``,
    ``state``, ``postal``, ``country``. Missing values are omitted.
    """
    address = owner.address
    return compact(
        {
            "referenceSource": tenant.reference_source,
            "referenceId": str(owner.id),
            "contactType": CONTACT_TYPES[owner.type],
            "name": _display_name(owner),
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


def gift_contact(owner: Owner, tenant: TenantSettings) -> dict[str, Any]:
    """The ``contact`` embedded in a Gift Transaction, in the shape Virtuous's samples use.

    Always ``referenceSource`` + ``referenceId`` (the strongest match signal, and the reference
    the Contact then keeps). With the Contact id known: those and ``id``, which decides the
    match. Without it: ``type``, ``name``, ``firstname``, ``lastname``, ``email``, ``phone`` and a
    nested ``address`` {address1, city, state, postal, country}. Missing values are omitted.
    """
    reference = {"referenceSource": tenant.reference_source, "referenceId": str(owner.id)}
    if owner.virtuous_contact_id is not None:
        return {"id": owner.virtuous_contact_id, **reference}
    address = owner.address
    nested = (
        compact(
            {
                "address1": address.line1,
                "city": address.city,
                "state": address.state,
                "postal": address.postal,
                "country": address.country,
            }
        )
        if address is not None
        else {}
    )
    return compact(
        {
            **reference,
            "type": CONTACT_TYPES[owner.type],
            "name": _display_name(owner),
            "firstname": owner.first_name,
            "lastname": owner.last_name,
            "email": owner.email,
            "phone": owner.phone,
            "address": nested or None,
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
    sd = tx.scheduled_donation
    entry = {
        "contact": gift_contact(owner, tenant),
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
