"""The one routing rule: which way a valid transaction change goes through giftsync.

The worker's intake and ``giftsync preview`` both call :func:`route_transaction`, so what the
preview shows is what the worker does; the doors (``publish()``, the ingest service, the
backfill) and the worker's intake check each change with :func:`check_change`, so an event the
door takes is one the worker can send.

- ``batch``: a new gift of a batch-mode tenant becomes a Gift Transaction entry in the
  tenant's buffer (the Import Tool makes the Gift).
- ``realtime``: a direct call on one Virtuous Gift: any change to a gift Virtuous already holds
  under a real Gift id (the Import Tool cannot update or zero one), and every new gift of a
  real-time tenant.
- ``hold``: the change needs the real Gift id of a gift sent in a batch, which confirmation
  learns later (a refund or failure, or an edit once the tenant switched to real time).
- ``skip``: the send decision said no; the reason is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mapping.batch_entry import batch_entry
from mapping.decision import SendDecision, decide
from mapping.errors import EventValidationError, FieldError, MappingError
from mapping.events import ChangeEvent, Transaction, is_batch_id, parse_event, real_gift_id
from mapping.realtime import realtime_desired
from mapping.tenant import TenantSettings

Route = Literal["batch", "realtime", "hold", "skip"]

# A gift sent in a batch before its tenant switched to real time: a direct create would make
# a second Gift, so the change waits for the real id like a refund does.
BATCH_GIFT_WAITS = "batch_gift_waits_for_real_id"


@dataclass(frozen=True)
class Routing:
    """Where one transaction change goes, why, and the ledger state it enters."""

    route: Route
    decision: SendDecision
    reason: str
    # The record's ledger state while it takes this route.
    state: str


def route_transaction(tx: Transaction, tenant: TenantSettings) -> Routing:
    """The route of one valid transaction change for ``tenant``."""
    decision = decide(tx, tenant)
    if not decision.send:
        if decision.waits_for_real_id:
            return Routing("hold", decision, decision.reason, "held")
        return Routing("skip", decision, decision.reason, "skipped")
    if decision.zero_amount or real_gift_id(tx.virtuous_id) is not None:
        return Routing("realtime", decision, decision.reason, "queued")
    if tenant.mode == "real_time":
        if is_batch_id(tx.virtuous_id):
            waits = SendDecision(False, BATCH_GIFT_WAITS, zero_amount=False)
            return Routing("hold", waits, BATCH_GIFT_WAITS, "update_held")
        return Routing("realtime", decision, decision.reason, "queued")
    return Routing("batch", decision, decision.reason, "buffered")


def check_change(data: object, tenants: Mapping[str, TenantSettings]) -> ChangeEvent:
    """The change event ``data`` holds, if giftsync can take it; else EventValidationError
    naming every problem: the contract (a known tenant included) and, for a transaction, the
    payload its route needs (a real-time gift's fund needs a Virtuous Project id)."""
    event = parse_event(data, tenants=tenants.keys())
    if isinstance(event.record, Transaction):
        tenant = tenants[event.tenant]
        try:
            check_mappable(event.record, tenant)
        except MappingError as exc:
            raise EventValidationError([FieldError(exc.path, exc.reason)]) from None
    return event


def check_mappable(tx: Transaction, tenant: TenantSettings) -> Routing:
    """Route ``tx`` and build what its route sends; raises MappingError when it cannot be."""
    return map_transaction(tx, tenant)[0]


def map_transaction(
    tx: Transaction, tenant: TenantSettings
) -> tuple[Routing, dict[str, Any] | None]:
    """Route ``tx`` and build what its route sends: the batch entry on the batch route (None
    on the others); raises MappingError when it cannot be."""
    routing = route_transaction(tx, tenant)
    if routing.route == "batch":
        return routing, batch_entry(tx, tenant, routing.decision)
    if routing.route == "realtime" and not routing.decision.zero_amount:
        realtime_desired(tx, tenant, routing.decision)
    return routing, None
