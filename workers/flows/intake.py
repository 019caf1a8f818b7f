"""Intake: turn a chunk of change events into ledger entries, buffered entries and sends.

This is ``map_change``'s body, kept out of the actor so it can be tested without dramatiq.
For each event: validate, decide, map, and route by the tenant's mode, then apply all of
them to the ledger in one pipelined round trip. The ledger's accept script drops a change
whose version is not newer than the last applied one, atomically with applying it, so a
redelivered chunk (a worker died before acknowledging it) changes nothing twice.

Routes:
- ``batch``: the mapped Gift Transaction entry goes into the tenant's buffer.
- ``realtime``: the event is stored on the record and a send actor applies the newest stored
  version (real-time tenants, scheduled donations, and any gift that already has a real
  Virtuous Gift id: the Import Tool cannot update or zero an existing gift).
- ``hold``: a refund or failure of a gift known only by its ``btch_`` id waits for the real id.
- ``skip``: the send decision said no; the reason is kept.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from mapping.errors import MappingError
from mapping.events import (
    ChangeEvent,
    EventValidationError,
    Transaction,
    is_batch_id,
    parse_event,
    real_gift_id,
)
from mapping.routing import map_transaction
from mapping.tenant import TenantSettings
from workers.flows.batch_send import cut_and_enqueue
from workers.observe import metrics
from workers.queue import messages
from workers.runtime import Runtime
from workers.store.keys import member
from workers.store.ledger import (
    Accepted,
    Ledger,
    Route,
    parse_accepted_many,
    version_number,
)
from workers.store.related import RelatedRecords

log = structlog.get_logger("giftsync.intake")

# One encoder for every event and entry: json.dumps with options builds a new one per call.
_compact_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True)
class _Planned:
    tenant: TenantSettings
    member: str
    kind: str
    record_id: str
    version: int
    route: Route
    payload: str
    reason: str
    state: str
    event: str = ""
    new_donor: str = ""


@dataclass
class IntakeResult:
    """What one chunk did: counts by outcome, and the follow-up work for the actor."""

    outcomes: dict[str, int] = field(default_factory=dict)
    invalid: list[tuple[int, str]] = field(default_factory=list)
    # (tenant, member, kind) whose newest stored version a send actor must apply.
    sends: list[tuple[str, str, str]] = field(default_factory=list)
    # Tenants whose buffer reached a full batch.
    full_buffers: set[str] = field(default_factory=set)


def _with_known_id(tx: Transaction, known: str | None) -> Transaction:
    # The ledger may know more than the event: the platform may not yet have read the btch_
    # id giftsync gave it, or confirmation may have learned the real Gift id since.
    if known is None or real_gift_id(tx.virtuous_id) is not None:
        return tx
    if real_gift_id(known) is not None or (tx.virtuous_id is None and is_batch_id(known)):
        return tx.model_copy(update={"virtuous_id": known})
    return tx


def _plan_transaction(
    tx: Transaction, tenant: TenantSettings, raw: str
) -> tuple[Route, str, str, str]:
    routing, entry = map_transaction(tx, tenant)
    payload = raw if entry is None else _compact_json(entry)
    return routing.route, payload, routing.reason, routing.state


def _raw_json(data: Any, known: str | None, tx: Transaction | None) -> str:
    # The event as the producer sent it (already validated), with the ledger's better
    # correlation id when it has one: re-parsing this later yields the same event.
    if (
        tx is not None
        and isinstance(data, dict)
        and tx.virtuous_id != data["record"].get("virtuous_id")
    ):
        data = {**data, "record": {**data["record"], "virtuous_id": known}}
    return _compact_json(data)


def plan(
    events: Iterable[Any], tenants: Mapping[str, TenantSettings], ledger: Ledger
) -> tuple[list[_Planned], list[tuple[int, str]]]:
    """Validate and map a chunk; returns the planned ledger changes and the invalid events.

    Each event stands alone: one that breaks a rule, or that no rule foresaw, is reported
    invalid and the others go on.
    """
    valid: list[tuple[int, Any, ChangeEvent]] = []
    invalid: list[tuple[int, str]] = []
    for index, data in enumerate(events):
        try:
            valid.append((index, data, parse_event(data, tenants=tenants.keys())))
        except Exception as exc:
            _invalid(index, data, tenants, exc, invalid)
    known = ledger.known_ids([(e.tenant, member(e.kind, e.record.id)) for _, _, e in valid])
    planned: list[_Planned] = []
    received: Counter[tuple[str, str]] = Counter()
    for (index, data, event), known_id in zip(valid, known, strict=True):
        received[(event.tenant, event.kind)] += 1
        try:
            planned.append(_plan_one(data, event, known_id, tenants[event.tenant]))
        except Exception as exc:
            _invalid(index, data, tenants, exc, invalid)
    # Counted once per chunk: each inc of a worker's shared counters costs a file write.
    for (tenant_name, kind), count in received.items():
        metrics.EVENTS_RECEIVED.labels(tenant_name, kind).inc(count)
    return planned, invalid


def _invalid(
    index: int,
    data: Any,
    tenants: Mapping[str, TenantSettings],
    exc: Exception,
    invalid: list[tuple[int, str]],
) -> None:
    tenant = data.get("tenant") if isinstance(data, dict) else None
    label = tenant if isinstance(tenant, str) and tenant in tenants else "unknown"
    metrics.EVENTS_INVALID.labels(label).inc()
    if isinstance(exc, EventValidationError):
        log.warning(
            "event_invalid", index=index, errors=[f"{e.path}: {e.reason}" for e in exc.errors]
        )
    else:
        # Not foreseen by any rule: the event is set aside, the rest of the chunk goes on.
        log.error("event_unplannable", index=index, error=f"{type(exc).__name__}: {exc}"[:300])
    invalid.append((index, str(exc)[:500]))


def _plan_one(
    data: Any, event: ChangeEvent, known_id: str | None, tenant: TenantSettings
) -> _Planned:
    record = event.record
    route: Route
    tx = _with_known_id(record, known_id) if isinstance(record, Transaction) else None
    raw = _raw_json(data, known_id, tx)
    try:
        if tx is None:
            route, payload, reason, state = "realtime", raw, str(event.kind), "queued"
        else:
            route, payload, reason, state = _plan_transaction(tx, tenant, raw)
    except MappingError as exc:
        route, payload, reason, state = (
            "hold",
            raw,
            f"cannot map: {exc.path}: {exc.reason}",
            "invalid",
        )
    return _Planned(
        tenant=tenant,
        member=member(event.kind, record.id),
        kind=event.kind,
        record_id=str(record.id),
        version=version_number(event.version),
        route=route,
        payload=payload,
        reason=reason,
        state=state,
        event=raw if route == "batch" else "",
        new_donor=str(tx.owner.id)
        if tx is not None and route == "batch" and tx.owner.virtuous_contact_id is None
        else "",
    )


def apply(
    ledger: Ledger, related: RelatedRecords, planned: list[_Planned], published_ms: int = 0
) -> IntakeResult:
    """Apply planned changes in one pipelined round trip; returns what happened."""
    result = IntakeResult()
    if not planned:
        return result
    pipe = ledger.pipeline()
    for item in planned:
        if item.new_donor:
            # A donor embedded in a batch entry: Virtuous matches or makes its Contact at the
            # import, and the donor sweep learns the id by reference afterwards.
            first_seen = published_ms or int(time.time() * 1000)
            related.donor_pending(item.tenant.name, item.new_donor, first_seen, pipe=pipe)
    # One script call per tenant, each tenant's changes in the chunk's order.
    by_tenant: dict[str, list[int]] = {}
    for index, item in enumerate(planned):
        by_tenant.setdefault(item.tenant.name, []).append(index)
    for tenant_name, indexes in by_tenant.items():
        ledger.accept_many(
            tenant_name,
            [
                (
                    planned[i].member,
                    planned[i].version,
                    planned[i].route,
                    planned[i].payload,
                    planned[i].reason,
                    planned[i].state,
                    planned[i].event,
                )
                for i in indexes
            ],
            published_ms=published_ms,
            pipe=pipe,
        )
    accepted_at: dict[int, Accepted] = {}
    for indexes, raw in zip(by_tenant.values(), pipe.execute()[-len(by_tenant) :], strict=True):
        accepted_at.update(zip(indexes, parse_accepted_many(raw), strict=True))
    counted: Counter[tuple[Any, tuple[str, ...]]] = Counter()
    for index, item in enumerate(planned):
        accepted = accepted_at[index]
        tenant = item.tenant.name
        result.outcomes[accepted.outcome] = result.outcomes.get(accepted.outcome, 0) + 1
        if accepted.outcome == "stale":
            counted[(metrics.EVENTS_STALE, (tenant,))] += 1
            if accepted.state == "queued":
                # Still waiting for its send: this chunk may be a redelivery after the worker
                # died between the ledger change and enqueuing that send, which would then be
                # lost. Enqueue it again; a send that finds nothing newer to apply does nothing.
                result.sends.append((tenant, item.member, item.kind))
        elif accepted.outcome == "buffered":
            counted[(metrics.GIFTS_BUFFERED, (tenant,))] += 1
            if accepted.buffered >= 100:
                result.full_buffers.add(tenant)
        elif accepted.outcome == "skipped":
            counted[(metrics.EVENTS_SKIPPED, (tenant, item.reason.split(":")[0]))] += 1
        elif accepted.outcome in ("held", "hold"):
            counted[(metrics.GIFTS_HELD, (tenant, item.reason.split(":")[0]))] += 1
        elif accepted.outcome == "realtime":
            result.sends.append((tenant, item.member, item.kind))
    for (counter, labels), count in counted.items():
        counter.labels(*labels).inc(count)
    return result


def run(rt: Runtime, events: list[Any], published_ms: int = 0) -> IntakeResult:
    """Plan and apply one chunk, then cut the full buffers and enqueue the direct sends."""
    tenants = rt.settings.tenants
    planned, invalid = plan(events, tenants, rt.ledger)
    result = apply(rt.ledger, rt.related, planned, published_ms)
    result.invalid = invalid
    for tenant_name in sorted(result.full_buffers):
        cut_and_enqueue(rt, tenants[tenant_name])
    for tenant_name, member_name, _kind in result.sends:
        messages.enqueue(messages.send_record(tenant_name, member_name))
    return result
