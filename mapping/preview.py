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

An event that breaks the contract, or that cannot be mapped (a fund with no Project id, a
donor with no Contact for a direct create), is ``"invalid"`` with every error listed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mapping.batch_entry import batch_entry
from mapping.decision import SendDecision, decide
from mapping.errors import MappingError
from mapping.events import (
    EventValidationError,
    ScheduledDonation,
    Transaction,
    is_batch_id,
    parse_event_json,
    real_gift_id,
)
from mapping.realtime import realtime_create, realtime_desired, realtime_update, zeroing_update
from mapping.recurring import recurring_create, recurring_decision, recurring_update
from mapping.tenant import TenantSettings

BATCH = "batch"
REAL_TIME = "real_time"
TRANSACTIONS_PATH = "/api/v2/Gift/Transactions"
GIFT_PATH = "/api/Gift"
RECURRING_PATH = "/api/RecurringGift"
BATCH_GIFT_WAITS = "batch_gift_waits_for_real_id"

Plan = tuple[SendDecision, str | None, list[dict[str, Any]]]


def _request(method: str, path: str, body: Any = None) -> dict[str, Any]:
    return {"method": method, "path": path, "body": body}


def _get_put(path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    return [_request("GET", path), _request("PUT", path, body)]


def _transaction_plan(tx: Transaction, tenant: TenantSettings) -> Plan:
    decision = decide(tx, tenant)
    if not decision.send:
        return decision, None, []
    gift_id = real_gift_id(tx.virtuous_id)
    if gift_id is not None:
        path = f"{GIFT_PATH}/{gift_id}"
        if decision.zero_amount:
            return decision, REAL_TIME, _get_put(path, zeroing_update({}))
        desired = realtime_desired(tx, tenant, decision)
        return decision, REAL_TIME, _get_put(path, realtime_update({}, desired))
    if tenant.mode == BATCH:
        entry = batch_entry(tx, tenant, decision)
        return decision, BATCH, [_request("POST", TRANSACTIONS_PATH, entry)]
    if is_batch_id(tx.virtuous_id):
        return SendDecision(False, BATCH_GIFT_WAITS, zero_amount=False), None, []
    body = realtime_create(tx, tenant, decision)
    return decision, REAL_TIME, [_request("POST", GIFT_PATH, body)]


def _recurring_plan(sd: ScheduledDonation, tenant: TenantSettings, version: datetime) -> Plan:
    decision = recurring_decision(sd)
    if not decision.send:
        return decision, None, []
    if sd.virtuous_id is None:
        body = recurring_create(sd, tenant)
        return decision, REAL_TIME, [_request("POST", RECURRING_PATH, body)]
    # The event's version is the record's updated_at: for a cancellation, when it happened.
    body = recurring_update({}, sd, tenant, cancelled_at=version)
    return decision, REAL_TIME, _get_put(f"{RECURRING_PATH}/{sd.virtuous_id}", body)


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
