"""Donors in step: Contact Transactions out, Contact ids back.

A ``"donor"`` change event becomes ``POST /api/Contact/Transaction`` with the tenant's
``referenceSource`` and the donor id as ``referenceId``, so Virtuous's matching (external
reference, then email, phone, name + address) finds the existing Contact or makes one. Like a
Gift Transaction it lands in the holding state, so the Contact id is learned later: from the
contactCreate / contactUpdate webhooks (:mod:`workers.flows.confirm`) or from :func:`sweep`, which
looks pending donors up by ``GET /api/Contact/{referenceSource}/{referenceId}``. Donors first
seen embedded in a batch gift entry are pending the same way. Every id learned goes to the
writeback stream as ``donor.linked`` (the donor's ``virtuous_contact_id``) and releases the
gifts and schedules held for it.
"""

from __future__ import annotations

import functools
from typing import Any

import structlog

from mapping.batch_entry import contact_payload
from mapping.events import Owner, parse_event_json
from mapping.tenant import TenantSettings
from workers.errors import Throttled
from workers.flows import direct_send
from workers.flows.gate import call
from workers.flows.related import remember
from workers.runtime import Runtime
from workers.virtuous.client import VirtuousClient

log = structlog.get_logger("giftsync.donors")

# Lookups one donor sweep makes at most.
SWEEP_MAX_LOOKUPS = 200


def send_contact(rt: Runtime, tenant: TenantSettings, member: str) -> None:
    """Send the newest stored version of one donor as a Contact Transaction."""
    direct_send.run(
        rt, tenant, member, lambda record: _send(rt, tenant, member, record), kind="donor"
    )


def _send(rt: Runtime, tenant: TenantSettings, member: str, record: dict[str, str]) -> int:
    donor = parse_event_json(record["payload"]).record
    assert isinstance(donor, Owner)
    payload = contact_payload(donor, tenant)
    call(rt, tenant, lambda c: c.contact_transaction(payload))
    if donor.virtuous_contact_id is None:
        rt.related.donor_pending(tenant.name, str(donor.id), rt.ledger.server_ms())
    newest = direct_send.applied(
        rt,
        tenant.name,
        member,
        record["version"],
        state="submitted",
        virtuous_id=str(donor.virtuous_contact_id or ""),
        writeback_type="donor.submitted",
        reason="contact_transaction",
    )
    log.info("contact_transaction_sent", member=member)
    return newest


def _find(source: str, donor_id: str, client: VirtuousClient) -> dict[str, Any] | None:
    return client.find_contact(source, donor_id)


def sweep(rt: Runtime, tenant: TenantSettings, max_lookups: int = SWEEP_MAX_LOOKUPS) -> int:
    """Look pending donors up by reference; returns how many Contact ids were learned."""
    now = rt.ledger.server_ms()
    due = rt.related.pending_donors(
        tenant.name, now - tenant.reconcile_after_seconds * 1000, max_lookups
    )
    learned = 0
    for donor_id in due:
        lookup = functools.partial(_find, tenant.reference_source, donor_id)
        try:
            found = call(rt, tenant, lookup, kind="lookup")
        except Throttled:
            break
        if found is not None and isinstance(found.get("id"), int):
            remember(rt, tenant.name, "donor", donor_id, found["id"])
            learned += 1
        else:
            # Not there yet: look again after another window, not on every sweep.
            rt.related.look_again_later(tenant.name, donor_id, now)
    if learned:
        log.info("donor_sweep", tenant=tenant.name, learned=learned)
    return learned
