"""Recurring gifts (seed 004): dependencies first, then ``POST /api/RecurringGift``, or
``GET`` + ``PUT /api/RecurringGift/{id}`` for a schedule Virtuous already has, ``GET`` +
``PUT /api/RecurringGift/Cancel/{id}`` for one cancelled in WeGive.

The donor's Contact, the campaign's Segment and each fund's Project are pushed first when
they have no Virtuous id (see :mod:`workers.flows.related`); the ids learned are put into the
record before it is mapped, so the mapping stays pure. Ordering and ambiguous creates follow
the same rules as :mod:`workers.flows.gifts`. Known gap: Virtuous offers no lookup of a
RecurringGift by an external reference, so a create whose answer was lost is retried as a
create (see the README's known limitations).
"""

from __future__ import annotations

import structlog

from mapping.events import Allocation, ScheduledDonation, parse_event_json, real_gift_id
from mapping.recurring import (
    recurring_cancel,
    recurring_create,
    recurring_decision,
    recurring_update,
)
from mapping.tenant import TenantSettings
from workers.flows import direct_send
from workers.flows.gate import call
from workers.flows.related import ensure_contact, ensure_project, ensure_segment
from workers.observe import metrics
from workers.runtime import Runtime
from workers.virtuous.client import VirtuousClient

log = structlog.get_logger("giftsync.recurring")


def with_dependencies(
    rt: Runtime, tenant: TenantSettings, sd: ScheduledDonation, *, donor: bool = True
) -> ScheduledDonation:
    """``sd`` with every related record it needs filled in with its Virtuous id, pushing those
    that lack one: the donor's Contact (unless ``donor`` is False), the campaign's Segment, the
    fund's Project, and the allocation funds' Projects when the tenant splits by allocation."""
    update: dict[str, object] = {
        "fund": sd.fund.model_copy(update={"virtuous_id": ensure_project(rt, tenant, sd.fund)}),
    }
    if donor:
        contact_id = ensure_contact(rt, tenant, sd.source)
        update["source"] = sd.source.model_copy(update={"virtuous_contact_id": contact_id})
    if sd.campaign is not None:
        segment_id = ensure_segment(rt, tenant, sd.campaign)
        update["campaign"] = sd.campaign.model_copy(update={"virtuous_segment_id": segment_id})
    allocations: list[Allocation] = []
    for allocation in sd.allocations if tenant.fund_allocations else ():
        project_id = ensure_project(rt, tenant, allocation.fund)
        fund = allocation.fund.model_copy(update={"virtuous_id": project_id})
        allocations.append(allocation.model_copy(update={"fund": fund}))
    if tenant.fund_allocations:
        update["allocations"] = allocations
    return sd.model_copy(update=update)


def send_recurring(rt: Runtime, tenant: TenantSettings, member: str) -> None:
    """Apply the newest stored version of one scheduled donation to Virtuous."""
    direct_send.run(
        rt, tenant, member, lambda record: _send(rt, tenant, member, record), kind="recurring"
    )


def _send(rt: Runtime, tenant: TenantSettings, member: str, record: dict[str, str]) -> int:
    event = parse_event_json(record["payload"])
    sd = event.record
    assert isinstance(sd, ScheduledDonation)
    known = real_gift_id(record.get("virtuous_id"))
    if known is not None and sd.virtuous_id is None:
        sd = sd.model_copy(update={"virtuous_id": known})
    decision = recurring_decision(sd)
    if not decision.send:
        return direct_send.applied(
            rt,
            tenant.name,
            member,
            record["version"],
            state="skipped",
            virtuous_id="",
            writeback_type="recurring.skipped",
            reason=decision.reason,
        )
    if sd.virtuous_id is not None and sd.status == "cancelled":
        # The Cancel route alone cancels; nothing else of a cancelled schedule is worth a call.
        recurring_id = int(sd.virtuous_id)

        def get_and_cancel(client: VirtuousClient) -> None:
            cancel = recurring_cancel(client.get_recurring_gift(recurring_id))
            if cancel is not None:
                client.cancel_recurring_gift(recurring_id, cancel)

        # One grant for both calls, so a throttled second call never spends the first again.
        call(rt, tenant, get_and_cancel, cost=2)
        outcome = "cancelled"
    elif sd.virtuous_id is not None:
        recurring_id = int(sd.virtuous_id)
        # The schedule's donor is Virtuous's already: an update needs only its designations'
        # Projects and its Segment.
        sd = with_dependencies(rt, tenant, sd, donor=False)
        updated = sd

        def get_and_put(client: VirtuousClient) -> None:
            existing = client.get_recurring_gift(recurring_id)
            body = recurring_update(existing, updated, tenant, cancelled_at=event.version)
            client.update_recurring_gift(recurring_id, body)

        call(rt, tenant, get_and_put, cost=2)
        outcome = "updated"
    else:
        sd = with_dependencies(rt, tenant, sd)
        payload = recurring_create(sd, tenant)
        if record.get("create_attempted"):
            # No lookup by external reference exists: the create goes again (a known gap).
            log.warning("ambiguous_recurring_create", member=member)
        created = call(
            rt,
            tenant,
            lambda c: c.create_recurring_gift(payload),
            before=lambda: rt.ledger.update(
                tenant.name, member, {"create_attempted": "1"}, durable=True
            ),
        )
        recurring_id = int(created["id"])
        outcome = "created"
    newest = direct_send.applied(
        rt,
        tenant.name,
        member,
        record["version"],
        state="sent",
        virtuous_id=str(recurring_id),
        writeback_type=f"recurring.{outcome}",
        reason=decision.reason,
    )
    metrics.GIFTS_SUBMITTED.labels(tenant.name, "recurring").inc()
    log.info("recurring_sent", outcome=outcome, member=member)
    return newest
