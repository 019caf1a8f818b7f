"""Related records pushed before the record that needs them: donor Contacts, campaign
Segments and fund Projects (seed 004: "first pushes any related records that lack a
virtuous_id").

Each Virtuous id learned is kept per tenant (``{prefix}:dep:{tenant}:{type}:{platform id}``)
and published on the writeback stream, so a record is created once however many gifts need
it at the same moment: the first sender takes a short lock and creates; the others wait
(a throttle, not a failure) and then reuse the id. A donor is first looked up by its external
reference, so a Contact made earlier (by a Contact Transaction or a staff member) is reused.
"""

from __future__ import annotations

from typing import Any, Literal

import structlog

from mapping.batch_entry import contact_payload
from mapping.events import Campaign, Fund, Owner
from mapping.tenant import TenantSettings
from workers.flows.gate import call
from workers.queue.retries import Throttled
from workers.runtime import Runtime
from workers.store.scripts import decode, load_script

log = structlog.get_logger("giftsync.dependencies")

DependencyType = Literal["donor", "campaign", "fund"]
# How long one sender may hold the right to create a dependency.
LOCK_MS = 60_000
# How soon a sender that found the lock taken looks again.
WAIT_SECONDS = 0.25


def _key(rt: Runtime, tenant: str, kind: DependencyType, platform_id: object) -> str:
    return f"{rt.keys.prefix}:dep:{tenant}:{kind}:{platform_id}"


def known_id(rt: Runtime, tenant: str, kind: DependencyType, platform_id: object) -> int | None:
    """The Virtuous id already learned for a platform record, or None."""
    value = rt.redis.get(_key(rt, tenant, kind, platform_id))
    return int(value) if value is not None else None


class ContactPending(Exception):
    """The donor's Contact Transaction is still in Virtuous's holding state: no id yet."""

    def __init__(self, donor_id: str) -> None:
        super().__init__(f"donor {donor_id}: Contact Transaction still pending in Virtuous")
        self.donor_id = donor_id


def remember(
    rt: Runtime, tenant: str, kind: DependencyType, platform_id: object, virtuous_id: int
) -> None:
    """Keep a learned id, tell the platform (once), and release what waited for it."""
    first = rt.redis.set(_key(rt, tenant, kind, platform_id), virtuous_id, nx=True)
    if kind == "donor":
        rt.redis.zrem(rt.keys.donors_pending(tenant), str(platform_id))
        _release(rt, tenant, str(platform_id))
    if first:
        rt.redis.xadd(
            rt.keys.writeback,
            {
                "type": f"{kind}.linked",
                "tenant": tenant,
                "kind": kind,
                "id": str(platform_id),
                "virtuous_id": str(virtuous_id),
            },
        )


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
    lock = _key(rt, tenant.name, kind, platform_id) + ":lock"
    if not rt.redis.set(lock, "1", nx=True, px=LOCK_MS):
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
        rt.redis.delete(lock)


def _release(rt: Runtime, tenant: str, donor_id: str) -> None:
    from workers.queue.actors import send_gift, send_recurring

    script = load_script(rt.redis, "ledger_release.lua")
    released = script(
        keys=[rt.keys.state_counts(tenant), rt.keys.waiting_on_donor(tenant, donor_id)],
        args=[rt.keys.prefix, tenant],
    )
    for member in decode(released):
        actor = send_recurring if member.startswith("scheduled_donation:") else send_gift
        actor.send(tenant=tenant, member=member)


def hold_for_donor(rt: Runtime, tenant: str, member: str, donor_id: str) -> None:
    """Hold ``member`` until the donor's Contact id is learned (webhook or donor sweep)."""
    script = load_script(rt.redis, "ledger_wait.lua")
    reason = (
        f"waiting for donor {donor_id}'s Contact: its Contact Transaction is pending in "
        "Virtuous (released when the Contact id is known)"
    )
    script(
        keys=[
            rt.keys.record(tenant, member),
            rt.keys.state_counts(tenant),
            rt.keys.waiting_on_donor(tenant, donor_id),
        ],
        args=[member, reason],
    )
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
    payload = contact_payload(owner, tenant)
    donor_id = str(owner.id)
    known = known_id(rt, tenant.name, "donor", donor_id)
    if known is not None:
        return known
    pending = rt.redis.zscore(rt.keys.donors_pending(tenant.name), donor_id) is not None
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
