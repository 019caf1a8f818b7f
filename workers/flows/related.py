"""Related records pushed before the record that needs them: donor Contacts, campaign
Segments and fund Projects (seed 004: "first pushes any related records that lack a
virtuous_id").

Each Virtuous id learned is kept per tenant (:class:`workers.store.related.RelatedRecords`)
and published on the writeback stream, so a record is created once however many gifts need
it at the same moment: the first sender takes a short lock and creates; the others wait
(a throttle, not a failure) and then reuse the id. A donor is first looked up by its external
reference, so a Contact made earlier (by a Contact Transaction or a staff member) is reused.
"""

from __future__ import annotations

from typing import Any, Literal

import structlog

from mapping.contacts import contact_create_payload
from mapping.events import Campaign, Fund, Owner
from mapping.tenant import TenantSettings
from workers.errors import ContactPending, Throttled
from workers.flows.gate import call
from workers.queue import messages
from workers.runtime import Runtime

log = structlog.get_logger("giftsync.related")

DependencyType = Literal["donor", "campaign", "fund"]
# How soon a sender that found the lock taken looks again.
WAIT_SECONDS = 0.25


def known_id(rt: Runtime, tenant: str, kind: DependencyType, platform_id: object) -> int | None:
    """The Virtuous id already learned for a platform record, or None."""
    return rt.related.known_id(tenant, kind, platform_id)


def remember(
    rt: Runtime, tenant: str, kind: DependencyType, platform_id: object, virtuous_id: int
) -> None:
    """Keep a learned id, tell the platform (once), and release what waited for it."""
    rt.related.remember(tenant, kind, platform_id, virtuous_id)
    if kind == "donor":
        _release(rt, tenant, str(platform_id))


def _ensure(
    rt: Runtime,
    tenant: TenantSettings,
    kind: DependencyType,
    platform_id: object,
    create: Any,
    find: Any = None,
) -> int:
    existing = known_id(rt, tenant.name, kind, platform_id)
    if existing is not None:
        return existing
    lock = rt.related.create_lock(tenant.name, kind, platform_id)
    if not lock.acquire():
        raise Throttled(WAIT_SECONDS, "dependency_busy")
    try:
        # Another sender may have finished between our first look and taking the lock.
        existing = known_id(rt, tenant.name, kind, platform_id)
        if existing is not None:
            return existing
        found = call(rt, tenant, find, kind="lookup") if find is not None else None
        record = found if found else call(rt, tenant, create)
        virtuous_id = int(record["id"])
        remember(rt, tenant.name, kind, platform_id, virtuous_id)
        log.info("dependency_linked", dependency=kind, created=not found)
        return virtuous_id
    finally:
        lock.release()


def _release(rt: Runtime, tenant: str, donor_id: str) -> None:
    for member in rt.ledger.release_waiting(tenant, donor_id):
        messages.enqueue(messages.send_record(tenant, member))


def hold_for_donor(rt: Runtime, tenant: str, member: str, donor_id: str) -> None:
    """Hold ``member`` until the donor's Contact id is learned (webhook or donor sweep)."""
    reason = (
        f"waiting for donor {donor_id}'s Contact: its Contact Transaction is pending in "
        "Virtuous (released when the Contact id is known)"
    )
    rt.ledger.wait_for_donor(tenant, member, donor_id, reason)
    # The id may have been learned between the send's look and the hold: release again.
    if known_id(rt, tenant, "donor", donor_id) is not None:
        _release(rt, tenant, donor_id)


def ensure_contact(rt: Runtime, tenant: TenantSettings, owner: Owner) -> int:
    """The donor's Contact id: given, learned, found by reference, or created.

    A donor whose Contact Transaction is still pending is looked up once; if Virtuous has no
    Contact yet, :class:`ContactPending` is raised unless the tenant allows creating it
    directly, so no second Contact is made for one donor.
    """
    if owner.virtuous_contact_id is not None:
        return owner.virtuous_contact_id
    payload = contact_create_payload(owner, tenant)
    donor_id = str(owner.id)
    known = known_id(rt, tenant.name, "donor", donor_id)
    if known is not None:
        return known
    pending = rt.related.is_donor_pending(tenant.name, donor_id)
    if pending and not tenant.create_contacts_directly:
        found = call(
            rt,
            tenant,
            lambda client: client.find_contact(tenant.reference_source, donor_id),
            kind="lookup",
        )
        if found is None:
            raise ContactPending(donor_id)
        remember(rt, tenant.name, "donor", donor_id, int(found["id"]))
        return int(found["id"])
    return _ensure(
        rt,
        tenant,
        "donor",
        owner.id,
        create=lambda client: client.create_contact(payload),
        find=lambda client: client.find_contact(tenant.reference_source, str(owner.id)),
    )


def ensure_segment(rt: Runtime, tenant: TenantSettings, campaign: Campaign) -> int:
    """The campaign's Segment id: given, learned, or created."""
    if campaign.virtuous_segment_id is not None:
        return campaign.virtuous_segment_id
    # Virtuous requires a Segment code; a campaign without one gets a stable code of its id.
    code = campaign.segment_code or f"WG-CAMPAIGN-{campaign.id}"
    payload = {"name": campaign.name or f"Campaign {campaign.id}", "code": code}
    return _ensure(rt, tenant, "campaign", campaign.id, create=lambda c: c.create_segment(payload))


def ensure_project(rt: Runtime, tenant: TenantSettings, fund: Fund) -> int:
    """The fund's Project id: given, learned, or created."""
    if fund.virtuous_id is not None:
        return fund.virtuous_id
    # Virtuous requires a projectCode; a fund without one gets a stable code of its id.
    payload = {
        "name": fund.name or f"Fund {fund.id}",
        "projectCode": fund.code or f"WG-FUND-{fund.id}",
    }
    return _ensure(rt, tenant, "fund", fund.id, create=lambda c: c.create_project(payload))
