"""The direct-send skeleton, written once for gifts, recurring gifts and donors.

One record at a time, under its owner-checked lock: load the newest stored version that
Virtuous does not hold yet, let the flow apply it, and settle the outcome. Virtuous refusing
the version quarantines it with one wording of the reason (:func:`workers.errors.
refusal_reason`); a donor whose Contact is still pending holds the record until its id is
learned. When a newer version arrived while this one was in flight, the record is sent again,
so the gap between what the platform wants and what Virtuous holds always has a send scheduled.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from mapping.tenant import TenantSettings
from workers.errors import ContactPending, NotFoundError, RejectedError, Throttled, refusal_reason
from workers.flows.related import hold_for_donor
from workers.observe import metrics
from workers.queue import messages
from workers.runtime import Runtime
from workers.store.lock import OwnedLock

log = structlog.get_logger("giftsync.direct_send")

# How long one message may hold a record (longer than any send).
RECORD_LOCK_MS = 120_000
# How soon a message that found the record busy tries again.
BUSY_RETRY_SECONDS = 0.2

# Applies one stored record to Virtuous; returns the record's newest version afterwards.
Apply = Callable[[dict[str, str]], int]


def run(rt: Runtime, tenant: TenantSettings, member: str, apply: Apply, *, kind: str) -> None:
    """Apply the newest stored version of ``member`` with ``apply``; ``kind`` names the
    writeback of a quarantine (``gift``, ``recurring``, ``donor``)."""
    lock = OwnedLock(rt.redis, rt.keys.record_lock(tenant.name, member), RECORD_LOCK_MS)
    if not lock.acquire():
        raise Throttled(BUSY_RETRY_SECONDS, "record_busy")
    try:
        record = rt.ledger.pending(tenant.name, member)
        if record is None:
            return
        try:
            newest = apply(record)
        except (RejectedError, NotFoundError) as exc:
            newest = quarantine(rt, tenant.name, member, record["version"], exc, kind)
        except ContactPending as exc:
            hold_for_donor(rt, tenant.name, member, exc.donor_id)
            return
    finally:
        lock.release()
    if newest > int(record["version"]):
        # A newer change arrived while this one was in flight: its own message may already
        # have found the record busy, so make sure someone applies it.
        messages.enqueue(messages.send_record(tenant.name, member))


def applied(
    rt: Runtime,
    tenant: str,
    member: str,
    version: str,
    *,
    state: str,
    virtuous_id: str,
    writeback_type: str,
    reason: str,
) -> int:
    """Record that ``version`` is settled; returns the record's newest version."""
    return rt.ledger.applied(
        tenant,
        member,
        version=version,
        state=state,
        virtuous_id=virtuous_id,
        writeback_type=writeback_type,
        reason=reason,
    )


def quarantine(
    rt: Runtime,
    tenant: str,
    member: str,
    version: str,
    exc: RejectedError | NotFoundError,
    kind: str,
) -> int:
    """Virtuous refused this version: record why, tell the platform, and do not retry it.

    Returns the record's newest version (a newer change may still be sent)."""
    reason = refusal_reason(exc)
    newest = applied(
        rt,
        tenant,
        member,
        version,
        state="quarantined",
        virtuous_id="",
        writeback_type=f"{kind}.quarantined",
        reason=reason,
    )
    rt.ledger.quarantined(tenant, member, rt.ledger.server_ms())
    metrics.GIFTS_QUARANTINED.labels(tenant).inc()
    log.warning("record_quarantined", member=member, reason=reason)
    return newest
