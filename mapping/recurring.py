"""Scheduled donations as Virtuous RecurringGifts (seed 004, "Push").

The pushed amount is the ``charge_amount``: the base amount plus the fee the donor covers.
Its designations are built so they sum exactly to it:

* fee splitting on, or no fee fund configured: the fee is spread over the allocation lines in
  proportion to their amounts, the rounding absorbed by the last line;
* otherwise the fee is its own line for the fee fund's Project, merged into that Project's
  line when the gift already designates it.

Before a create, the related records must exist in Virtuous (donor Contact, campaign Segment,
fund Projects); :func:`missing_dependencies` names the ones that do not yet, so the worker can
push them first. An update GETs the RecurringGift and overwrites only what WeGive owns
(``nextExpectedPaymentDate``, ``amount``, ``isPrivate``, ``segmentId``, and ``designations``,
replaced entirely). A cancelled scheduled donation is cancelled in Virtuous by its own route,
``PUT /api/RecurringGift/Cancel/{id}`` with the body :func:`recurring_cancel` gives: a PUT of
the RecurringGift with a status changes nothing on the live API (docs/virtuous-contract.md).
A RecurringGift Virtuous already holds as cancelled is not cancelled again.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mapping.dates import ymd
from mapping.decision import SendDecision
from mapping.designations import DesignationLine, designation_lines, recurring_shape
from mapping.errors import MappingError
from mapping.events import ScheduledDonation
from mapping.money import dollars, split_proportionally
from mapping.tenant import TenantSettings

# WeGive frequency -> Virtuous frequency, and back.
FREQUENCY_TO_VIRTUOUS = {
    "weekly": "Weekly",
    "monthly": "Monthly",
    "quarterly": "Quarterly",
    "yearly": "Annually",
}
FREQUENCY_FROM_VIRTUOUS = {virtuous: wegive for wegive, virtuous in FREQUENCY_TO_VIRTUOUS.items()}
# Virtuous frequencies WeGive has no word for (docs/virtuous-contract.md, RecurringGift).
FREQUENCIES_WITHOUT_WEGIVE = ("Bimonthly", "Semiannually", "Biennially")

CANCELLED = "Cancelled"
CREATE = "recurring_create"
UPDATE = "recurring_update"
CANCEL = "recurring_cancel"
CANCELLED_NEVER_PUSHED = "cancelled_never_pushed"

DONOR_CONTACT = "record.source.virtuous_contact_id"
CAMPAIGN_SEGMENT = "record.campaign.virtuous_segment_id"


def charge_amount(sd: ScheduledDonation) -> int:
    """What the donor is charged each time, in cents: the base amount plus the fee."""
    return sd.amount + sd.fee_amount


def recurring_decision(sd: ScheduledDonation) -> SendDecision:
    """Create, update or cancel in Virtuous; a cancelled donation never pushed is skipped."""
    if sd.status == "cancelled":
        if sd.virtuous_id is None:
            return SendDecision(False, CANCELLED_NEVER_PUSHED, zero_amount=False)
        return SendDecision(True, CANCEL, zero_amount=False)
    return SendDecision(True, CREATE if sd.virtuous_id is None else UPDATE, zero_amount=False)


def missing_dependencies(sd: ScheduledDonation) -> list[str]:
    """Paths of the related records with no Virtuous id yet, in push order.

    Donor Contact (``record.source.virtuous_contact_id``), campaign Segment
    (``record.campaign.virtuous_segment_id``), then every fund's Project
    (``record.fund.virtuous_id``, ``record.allocations.N.fund.virtuous_id``).
    """
    missing: list[str] = []
    if sd.source.virtuous_contact_id is None:
        missing.append(DONOR_CONTACT)
    if sd.campaign is not None and sd.campaign.virtuous_segment_id is None:
        missing.append(CAMPAIGN_SEGMENT)
    if sd.fund.virtuous_id is None:
        missing.append("record.fund.virtuous_id")
    for index, allocation in enumerate(sd.allocations):
        if allocation.fund.virtuous_id is None:
            missing.append(f"record.allocations.{index}.fund.virtuous_id")
    return missing


def _label(path: str) -> str:
    if path == DONOR_CONTACT:
        return "donor contact"
    if path == CAMPAIGN_SEGMENT:
        return "campaign segment"
    return "fund project"


def _require(missing: list[str]) -> None:
    if missing:
        listed = ", ".join(f"{_label(path)} ({path})" for path in missing)
        raise MappingError(missing[0], f"push these to Virtuous first: {listed}")


def recurring_lines(sd: ScheduledDonation, tenant: TenantSettings) -> list[DesignationLine]:
    """The designation lines of the charge amount, fee included (see the module docstring)."""
    lines = designation_lines(
        sd.fund,
        sd.allocations,
        sd.amount,
        use_allocations=tenant.fund_allocations,
        allow_code=False,
    )
    fee = sd.fee_amount
    fee_fund = tenant.fee_fund_virtuous_id
    if fee == 0:
        return lines
    if tenant.fee_splitting or fee_fund is None:
        shares = split_proportionally(fee, [line.cents for line in lines])
        pairs = zip(lines, shares, strict=True)
        return [line._replace(cents=line.cents + share) for line, share in pairs]
    for index, line in enumerate(lines):
        if line.project_id == fee_fund:
            lines[index] = line._replace(cents=line.cents + fee)
            return lines
    return [*lines, DesignationLine(fee_fund, None, fee)]


def recurring_designations(sd: ScheduledDonation, tenant: TenantSettings) -> list[dict[str, Any]]:
    """``[{"projectId", "amountDesignated"}]`` summing exactly to :func:`charge_amount`."""
    return recurring_shape(recurring_lines(sd, tenant))


def recurring_create(sd: ScheduledDonation, tenant: TenantSettings) -> dict[str, Any]:
    """The ``POST /api/RecurringGift`` body (seed 004, "Creating a recurring gift").

    Raises MappingError listing every dependency that has no Virtuous id yet.
    """
    _require(missing_dependencies(sd))
    body: dict[str, Any] = {
        "startDate": ymd(sd.start_date),
        "nextExpectedPaymentDate": ymd(sd.start_date),
        "frequency": FREQUENCY_TO_VIRTUOUS[sd.frequency],
        "amount": dollars(charge_amount(sd)),
        "isPrivate": sd.anonymous,
    }
    if sd.campaign is not None:
        body["segmentId"] = sd.campaign.virtuous_segment_id
    body["designations"] = recurring_designations(sd, tenant)
    body["contactId"] = sd.source.virtuous_contact_id
    return body


def wegive_frequency(value: object) -> str:
    """WeGive's word for a Virtuous frequency, read case-insensitively.

    Raises MappingError on ``frequency`` naming the reason: a Virtuous frequency WeGive lacks
    (Bimonthly, Semiannually, Biennially) or one Virtuous does not have.
    """
    text = str(value).strip().lower() if isinstance(value, str) else None
    for virtuous, wegive in FREQUENCY_FROM_VIRTUOUS.items():
        if text == virtuous.lower():
            return wegive
    for virtuous in FREQUENCIES_WITHOUT_WEGIVE:
        if text == virtuous.lower():
            raise MappingError(
                "frequency",
                f"Virtuous frequency {virtuous!r} has no WeGive equivalent "
                f"(WeGive schedules are {', '.join(FREQUENCY_TO_VIRTUOUS)}): not imported",
            )
    raise MappingError("frequency", f"unknown Virtuous frequency {value!r}")


def is_cancelled(existing: Mapping[str, Any]) -> bool:
    """Whether Virtuous already holds this RecurringGift as cancelled."""
    status = existing.get("status")
    cancelled_status = isinstance(status, str) and status.strip().lower() in (
        "cancelled",
        "canceled",
    )
    return cancelled_status or bool(existing.get("cancelDateTimeUtc"))


def recurring_cancel(existing: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``PUT /api/RecurringGift/Cancel/{id}`` body, or None when already cancelled.

    An empty object, as the production clients send it (docs/virtuous-contract.md).
    """
    return None if is_cancelled(existing) else {}


def recurring_update(
    existing: Mapping[str, Any],
    sd: ScheduledDonation,
    tenant: TenantSettings,
    *,
    cancelled_at: datetime | None = None,
) -> dict[str, Any]:
    """The ``PUT /api/RecurringGift/{id}`` body: ``existing`` with WeGive's fields overwritten.

    It never cancels (the live API ignores a status here): a cancelled ``sd`` is cancelled by
    :func:`recurring_cancel`'s route. ``cancelled_at`` is accepted for callers that pass the
    event's version and is not sent. Raises MappingError for a missing Segment or Project id.
    """
    _require([path for path in missing_dependencies(sd) if path != DONOR_CONTACT])
    body = copy.deepcopy(dict(existing))
    body["nextExpectedPaymentDate"] = ymd(sd.start_date)
    body["amount"] = dollars(charge_amount(sd))
    body["isPrivate"] = sd.anonymous
    body["segmentId"] = sd.campaign.virtuous_segment_id if sd.campaign is not None else None
    body["designations"] = recurring_designations(sd, tenant)
    return body
