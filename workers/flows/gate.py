"""Calling Virtuous on a tenant's behalf: the limiter first, then the call, then the answer.

:func:`call` is the one gate every Virtuous call of every actor passes: it refuses while the
tenant is paused (Virtuous said 401: the token is bad, and hammering it helps nobody), takes
a token from the shared limiter or raises :class:`Throttled` with the limiter's wait, and turns
a 429 into a block of the whole tenant for Retry-After.

Actors never sleep long holding a message. A throttled message goes back to its queue, with
the limiter's wake-up ticket, to come back ``EARLY_WAKE_SECONDS`` before its token frees; back
with its ticket, it keeps its place in the limiter's line and waits the rest out here. A
queue's delayed delivery is late by up to two polls of the queue, and at a compressed window
those late wake-ups cost several percent of the cap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import structlog

from mapping.tenant import TenantSettings
from workers.errors import AuthError, Throttled, ThrottledError
from workers.observe import metrics
from workers.runtime import Runtime
from workers.store.limiter import Kind, calls_in_hand, held_ticket
from workers.virtuous.client import VirtuousClient

log = structlog.get_logger("giftsync.sending")

T = TypeVar("T")

# A paused tenant's messages look again this often.
PAUSE_RECHECK_SECONDS = 30.0
# A pause lifts by itself after this long, so a fixed token needs no manual step (a new 401
# pauses it again at once).
PAUSE_SECONDS = 300
# A throttled message is asked back this long before its token frees (more than a queue's
# delayed delivery is usually late)...
EARLY_WAKE_SECONDS = 0.4
# ...and, back with its ticket, waits in place for its turn within this budget.
INLINE_WAIT_SECONDS = 0.8


def pause(rt: Runtime, tenant: TenantSettings, reason: str) -> None:
    """Pause every send of ``tenant`` (kept, not failed) for PAUSE_SECONDS."""
    rt.marks.pause(tenant.name, reason, PAUSE_SECONDS)
    metrics.TENANT_PAUSES.labels(tenant.name).inc()
    log.error("tenant_paused", tenant=tenant.name, reason=reason)


def resume(rt: Runtime, tenant_name: str) -> bool:
    """Lift a pause now; True if the tenant was paused."""
    return rt.marks.resume(tenant_name)


def paused_reason(rt: Runtime, tenant_name: str) -> str | None:
    """Why the tenant is paused, or None."""
    return rt.marks.paused_reason(tenant_name)


def _take_tokens(rt: Runtime, tenant: TenantSettings, kind: Kind, cost: int) -> None:
    """Take the call's tokens; a caller back with its ticket waits in place for its turn, a
    newcomer refused gets a ticket and goes back to the queue (raises Throttled)."""
    held = held_ticket.get()
    # Only a waiter holding its place in the line waits in place: a newcomer sleeping
    # outside the line would take tokens the line has already promised to others.
    deadline = time.monotonic() + (INLINE_WAIT_SECONDS if held is not None else 0.0)
    while True:
        grant = rt.limiter.acquire(tenant, kind=kind, cost=cost, ticket=True, held=held)
        metrics.LIMITER_TOKENS.labels(tenant.name).set(grant.tokens_left)
        if grant.granted:
            # Spent: a later call of the same message queues like any other.
            held_ticket.set(None)
            calls_in_hand.set(list(grant.calls))
            return
        wait = max(grant.wait_seconds, 0.001)
        # A wait that is no place in the line (a probe's answer awaited) is no ticket either:
        # held, it would take a token the line promised to another waiter.
        held = grant.at + wait if grant.in_line else None
        if time.monotonic() + wait > deadline:
            raise Throttled(max(wait - EARLY_WAKE_SECONDS, 0.001), "limiter", ticket_at=held)
        time.sleep(wait)


def call(
    rt: Runtime,
    tenant: TenantSettings,
    do: Callable[[VirtuousClient], T],
    *,
    kind: Kind = "push",
    before: Callable[[], object] | None = None,
    cost: int = 1,
) -> T:
    """Make one Virtuous call for ``tenant`` under its limiter; raise Throttled to wait.

    ``before`` runs once the call is granted, right before the request goes: what must be
    recorded only when the call really is made (a create about to be attempted). ``cost``
    grants that many calls at once, for a ``do`` that makes them all (a GET and its PUT).
    """
    if paused_reason(rt, tenant.name) is not None:
        raise Throttled(PAUSE_RECHECK_SECONDS, "paused")
    _take_tokens(rt, tenant, kind, cost)
    client = rt.client(tenant)
    if before is not None:
        before()
    try:
        return do(client)
    except ThrottledError as exc:
        metrics.VIRTUOUS_THROTTLED.labels(tenant.name).inc()
        rt.limiter.block(tenant.name, exc.retry_after)
        log.warning("virtuous_429", retry_after=exc.retry_after)
        raise Throttled(exc.retry_after, "429") from exc
    except AuthError as exc:
        pause(rt, tenant, "Virtuous answered 401: the tenant's token was refused")
        raise Throttled(PAUSE_RECHECK_SECONDS, "paused") from exc
