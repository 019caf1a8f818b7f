"""What ``giftsync preview`` prints for one change event: the requests it would cause.

One JSON-ready dict per input line::

    {"tenant", "kind", "id",
     "decision": "send" | "skip" | "invalid",
     "reason":   the decision's reason ("success", "processing_ach_not_sent", ...),
     "path":     "batch" | "real_time" | null,
     "requests": [{"method", "path", "body"}],
     "errors":   [{"path", "reason"}]            # only when decision is "invalid"}

``path`` names the route a change takes through giftsync: ``"batch"`` is the tenant's batch
buffer and ``POST /api/v2/Gift/Transactions`` (the body shown is this event's single entry of
that array); ``"real_time"`` is a direct call on one Virtuous record (Gift or RecurringGift).
A change to a gift Virtuous already holds under a real Gift id goes the direct way in both
modes, because a Gift Transaction with a known transactionId is a no-op: an update is
``GET`` + ``PUT /api/Gift/{id}``, a failed or refunded gift is zeroed the same way. In
real-time mode a gift still under a ``btch_`` id is skipped until its real id is known, since a
direct create would duplicate it.

A PUT's body depends on the record the GET returns, which a dry run cannot know; the preview
shows the update applied to an empty record: exactly the fields the PUT overwrites, with the
new designations as ``"state": "Add"`` rows (at run time every existing designation is also
sent back as ``"state": "Delete"``, and all other fields are copied from the GET). For a zeroing
that is ``{"amount": "0.00", "giftDesignations": []}``, the Projects being the existing ones.

Related records without a Virtuous id are pushed first by the worker, so their requests come
first: a donor's Contact (looked up by reference, created when not found) before a direct
``POST /api/Gift`` or a RecurringGift, a campaign's Segment and each fund's Project before a
RecurringGift. The ids those steps yield appear in the later bodies as placeholders
(``"<Contact id ...>"`` or ``0``). A ``"donor"`` event previews as its Contact Transaction.

An event that breaks the contract, or that cannot be mapped (a fund with neither a Project id
nor a code on the batch path, one with no Project id on the direct path), is ``"invalid"``
with every error listed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mapping.batch_entry import batch_entry, contact_payload
from mapping.contacts import contact_create_payload
from mapping.decision import SendDecision
from mapping.errors import MappingError
from mapping.events import (
    EventValidationError,
    Fund,
    Owner,
    ScheduledDonation,
    Transaction,
    parse_event_json,
    real_gift_id,
)
from mapping.realtime import realtime_create, realtime_desired, realtime_update, zeroing_update
from mapping.recurring import (
    CAMPAIGN_SEGMENT,
    DONOR_CONTACT,
    missing_dependencies,
    recurring_create,
    recurring_decision,
    recurring_update,
)
from mapping.routing import route_transaction
from mapping.tenant import TenantSettings

BATCH = "batch"
REAL_TIME = "real_time"
TRANSACTIONS_PATH = "/api/v2/Gift/Transactions"
GIFT_PATH = "/api/Gift"
RECURRING_PATH = "/api/RecurringGift"
CONTACT_PATH = "/api/Contact"
CONTACT_TRANSACTION_PATH = "/api/Contact/Transaction"
SEGMENT_PATH = "/api/Segment"
PROJECT_PATH = "/api/Project"
DONOR = "donor"
# Stand-ins for ids a dry run cannot know: the Contact, Segment or Project the worker pushes
# first. A placeholder id is never a real Virtuous id (they are positive); each new fund's
# Project gets its own negative one.
CONTACT_PLACEHOLDER = "<Contact id from the lookup or create above>"
PLACEHOLDER_ID = 0

Plan = tuple[SendDecision, str | None, list[dict[str, Any]]]


def _request(method: str, path: str, body: Any = None) -> dict[str, Any]:
    return {"method": method, "path": path, "body": body}


def _get_put(path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    return [_request("GET", path), _request("PUT", path, body)]


def _transaction_plan(tx: Transaction, tenant: TenantSettings) -> Plan:
    routing = route_transaction(tx, tenant)
    decision = routing.decision
    if routing.route in ("skip", "hold"):
        return decision, None, []
    if routing.route == "batch":
        entry = batch_entry(tx, tenant, decision)
        return decision, BATCH, [_request("POST", TRANSACTIONS_PATH, entry)]
    gift_id = real_gift_id(tx.virtuous_id)
    if gift_id is not None:
        path = f"{GIFT_PATH}/{gift_id}"
        if decision.zero_amount:
            return decision, REAL_TIME, _get_put(path, zeroing_update({}))
        desired = realtime_desired(tx, tenant, decision)
        return decision, REAL_TIME, _get_put(path, realtime_update({}, desired))
    if tx.owner.virtuous_contact_id is None:
        # POST /api/Gift needs an existing Contact: the worker finds the donor's by reference
        # or creates it first, so the gift names the Contact id that step yields.
        body = {**realtime_desired(tx, tenant, decision), "contactId": CONTACT_PLACEHOLDER}
        requests = [*_contact_requests(tx.owner, tenant), _request("POST", GIFT_PATH, body)]
        return decision, REAL_TIME, requests
    body = realtime_create(tx, tenant, decision)
    return decision, REAL_TIME, [_request("POST", GIFT_PATH, body)]


def _contact_requests(owner: Owner, tenant: TenantSettings) -> list[dict[str, Any]]:
    ref = f"{CONTACT_PATH}/{tenant.reference_source}/{owner.id}"
    create = _request("POST", CONTACT_PATH, contact_create_payload(owner, tenant))
    return [_request("GET", ref), create]


def _dependency_requests(sd: ScheduledDonation, tenant: TenantSettings) -> list[dict[str, Any]]:
    """The related records the worker pushes first, each with the id it stands in for."""
    requests: list[dict[str, Any]] = []
    missing = missing_dependencies(sd)
    if DONOR_CONTACT in missing:
        requests += _contact_requests(sd.source, tenant)
    if CAMPAIGN_SEGMENT in missing and sd.campaign is not None:
        code = sd.campaign.segment_code or f"WG-CAMPAIGN-{sd.campaign.id}"
        requests.append(_request("POST", SEGMENT_PATH, {"name": sd.campaign.name, "code": code}))
    funds = {sd.fund.id: sd.fund, **{a.fund.id: a.fund for a in sd.allocations}}
    for fund in funds.values():
        if fund.virtuous_id is None:
            code = fund.code or f"WG-FUND-{fund.id}"
            requests.append(
                _request("POST", PROJECT_PATH, {"name": fund.name, "projectCode": code})
            )
    return requests


def _with_placeholders(sd: ScheduledDonation) -> ScheduledDonation:
    """``sd`` with a stand-in id for each related record the worker will push first."""
    update: dict[str, Any] = {}
    if sd.source.virtuous_contact_id is None:
        update["source"] = sd.source.model_copy(update={"virtuous_contact_id": PLACEHOLDER_ID})
    if sd.campaign is not None and sd.campaign.virtuous_segment_id is None:
        update["campaign"] = sd.campaign.model_copy(update={"virtuous_segment_id": PLACEHOLDER_ID})

    # Each new fund gets a placeholder of its own (-1, -2, ...: never a real id), so the
    # designations of two funds without a Project yet are not merged as one.
    placeholders: dict[object, int] = {}

    def fund(f: Fund) -> Fund:
        if f.virtuous_id is not None:
            return f
        placeholder = placeholders.setdefault(f.id, -(len(placeholders) + 1))
        return f.model_copy(update={"virtuous_id": placeholder})

    update["fund"] = fund(sd.fund)
    update["allocations"] = [a.model_copy(update={"fund": fund(a.fund)}) for a in sd.allocations]
    return sd.model_copy(update=update)


def _recurring_plan(sd: ScheduledDonation, tenant: TenantSettings, version: datetime) -> Plan:
    decision = recurring_decision(sd)
    if not decision.send:
        return decision, None, []
    if sd.virtuous_id is None:
        first = _dependency_requests(sd, tenant)
        body = recurring_create(_with_placeholders(sd), tenant)
        return decision, REAL_TIME, [*first, _request("POST", RECURRING_PATH, body)]
    if sd.status == "cancelled":
        # Cancelling has its own route; the GET first skips a RecurringGift already cancelled.
        cancel = _request("PUT", f"{RECURRING_PATH}/Cancel/{sd.virtuous_id}", {})
        return decision, REAL_TIME, [_request("GET", f"{RECURRING_PATH}/{sd.virtuous_id}"), cancel]
    first = _dependency_requests(sd, tenant)
    body = recurring_update({}, _with_placeholders(sd), tenant, cancelled_at=version)
    return decision, REAL_TIME, [*first, *_get_put(f"{RECURRING_PATH}/{sd.virtuous_id}", body)]


def _header(raw: str) -> dict[str, Any]:
    # Best effort for an invalid line: say whatever of tenant/kind/id can be read.
    try:
        decoded: Any = json.loads(raw)
    except ValueError:
        decoded = None
    data: dict[str, Any] = decoded if isinstance(decoded, dict) else {}
    record: Any = data.get("record")
    record_id = record.get("id") if isinstance(record, dict) else None
    return {
        "tenant": data.get("tenant") if isinstance(data.get("tenant"), str) else None,
        "kind": data.get("kind") if isinstance(data.get("kind"), str) else None,
        "id": record_id if isinstance(record_id, int | str) and record_id is not True else None,
    }


def _invalid(header: dict[str, Any], reason: str, errors: list[dict[str, str]]) -> dict[str, Any]:
    return {
        **header,
        "decision": "invalid",
        "reason": reason,
        "path": None,
        "requests": [],
        "errors": errors,
    }


def preview_event(raw: str, tenants: Mapping[str, TenantSettings]) -> dict[str, Any]:
    """Preview one JSON line: the decision and the Virtuous requests it would cause."""
    raw = raw.rstrip("\r\n")  # a line as read from a file; errors then point into it
    try:
        event = parse_event_json(raw, tenants=tenants.keys())
    except EventValidationError as exc:
        errors = [{"path": error.path, "reason": error.reason} for error in exc.errors]
        return _invalid(_header(raw), "invalid_event", errors)
    header = {"tenant": event.tenant, "kind": event.kind, "id": event.record.id}
    tenant = tenants[event.tenant]
    try:
        if isinstance(event.record, Transaction):
            decision, path, requests = _transaction_plan(event.record, tenant)
        elif isinstance(event.record, Owner):
            body = contact_payload(event.record, tenant)
            decision = SendDecision(True, DONOR, zero_amount=False)
            path, requests = REAL_TIME, [_request("POST", CONTACT_TRANSACTION_PATH, body)]
        else:
            decision, path, requests = _recurring_plan(event.record, tenant, event.version)
    except MappingError as exc:
        return _invalid(header, "unmappable", [{"path": exc.path, "reason": exc.reason}])
    return {
        **header,
        "decision": "send" if decision.send else "skip",
        "reason": decision.reason,
        "path": path,
        "requests": requests,
    }
