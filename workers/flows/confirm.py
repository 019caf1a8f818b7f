"""Confirmation: learning which gifts Virtuous really created, and which wait for a person.

A 2xx from a Gift Transaction means "accepted into the holding state" (seeds 001, 003). The
real Gift, and its id, appear only after Virtuous's nightly batch or a person's Import, and
some never do on their own (Match Needed, Update Needed, needs-update). Two ways in:

- the ``giftCreate`` webhook (:func:`apply_webhook`, fed by ``giftsync webhooks``), matched by
  transactionSource + transactionId;
- the reconcile sweep (:func:`sweep`), which looks up gifts submitted longer ago than the
  tenant's ``reconcile_after_seconds`` by ``GET /api/Gift/{transactionSource}/{transactionId}``
  under the limiter's lookup share, and marks those still missing after
  ``review_deadline_seconds`` as ``needs_review`` with the batch they came in.

Confirming is one Lua script (``ledger_confirm.lua``): a duplicate or late webhook changes
nothing twice. A refund or update that waited for the real id is released to the real-time
sender in the same step.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from mapping.tenant import TenantSettings
from workers.errors import Throttled
from workers.flows import donors
from workers.flows.gate import call
from workers.flows.related import remember
from workers.observe import metrics
from workers.queue import messages
from workers.runtime import Runtime
from workers.store.keys import member as member_name
from workers.store.lock import OwnedLock
from workers.virtuous.client import VirtuousClient

log = structlog.get_logger("giftsync.confirm")

# Lookups one sweep makes at most (the limiter's lookup share bounds them too).
SWEEP_MAX_LOOKUPS = 200
# A gift looked up and not found is looked up again no sooner than this share of the
# tenant's reconcile window later.
RECHECK_SHARE = 0.25


# A sweep holds its tenant this long at most (a crashed sweep frees it by itself).
RECONCILE_LOCK_MS = 300_000


@dataclass
class ConfirmResult:
    """What one confirmation did."""

    outcome: str
    previous_state: str = ""


def confirm(
    rt: Runtime, tenant: TenantSettings, transaction_id: str, gift_id: int, source: str
) -> ConfirmResult:
    """Record ``gift_id`` as the real Gift of a transaction; release what waited for it."""
    member = member_name("transaction", transaction_id)
    outcome, previous, published = rt.ledger.confirm(tenant.name, member, gift_id, source)
    if outcome in ("confirmed", "release"):
        metrics.CONFIRMATIONS.labels(tenant.name, source).inc()
        if published:
            seconds = max(rt.ledger.server_ms() - published, 0) / 1000
            metrics.PUBLISH_TO_CONFIRM.labels(tenant.name).observe(seconds)
    if outcome == "release":
        messages.enqueue(messages.send_gift(tenant.name, member))
        log.info("waiting_change_released", member=member, waited_as=previous)
    return ConfirmResult(outcome, previous)


def _models(payload: Mapping[str, Any], key: str) -> Iterable[Mapping[str, Any]]:
    """The records of one type in a delivery, single (``{key: ...}``) or bulk (``models``)."""
    if isinstance(payload.get(key), Mapping):
        yield payload[key]
    for model in payload.get("models") or []:
        if isinstance(model, Mapping) and isinstance(model.get(key), Mapping):
            yield model[key]


def _references(contact: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    if contact.get("referenceSource") and contact.get("referenceId"):
        yield str(contact["referenceSource"]), str(contact["referenceId"])
    for ref in contact.get("contactReferences") or []:
        if not isinstance(ref, Mapping):
            continue
        # Virtuous spells these both ways in different payloads.
        source = ref.get("referenceSource") or ref.get("source")
        ref_id = ref.get("referenceId") or ref.get("id")
        if source and ref_id:
            yield str(source), str(ref_id)


@dataclass
class WebhookResult:
    """Counts of what one delivery changed."""

    outcomes: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def event_name(payload: Mapping[str, Any]) -> str:
    """The delivery's event, normalised: ``GiftCreate``, ``gift_create`` and ``giftCreated``
    are all ``giftcreate``; an unnamed event is ``""``."""
    raw = payload.get("event") or payload.get("Event") or ""
    name = str(raw).lower().replace("_", "").replace(".", "").replace("-", "")
    return name.removesuffix("d") if name.endswith(("created", "updated", "deleted")) else name


def _gift_reference(gift: Mapping[str, Any], tenant: TenantSettings) -> tuple[str, int] | None:
    """The (transactionId, Gift id) of one of our gifts in a delivery, or None."""
    tx_id, gift_id = gift.get("transactionId"), gift.get("id")
    if gift.get("transactionSource") != tenant.transaction_source:
        return None
    if not isinstance(tx_id, str | int) or isinstance(tx_id, bool) or not str(tx_id).strip():
        return None
    if not isinstance(gift_id, int) or isinstance(gift_id, bool) or gift_id <= 0:
        return None
    return str(tx_id)[:200], gift_id


def apply_webhook(rt: Runtime, tenant: TenantSettings, payload: Mapping[str, Any]) -> WebhookResult:
    """Apply one verified delivery, entry by entry (a bad entry never takes the next with it).

    Only a gift-created event confirms a gift; a gift deleted in Virtuous is reported on the
    writeback stream; a gift update changes nothing here (the pull brings staff edits back);
    contact events link donors by reference; any other event is ignored.
    """
    result = WebhookResult()
    event = event_name(payload)
    for gift in _models(payload, "gift"):
        reference = _gift_reference(gift, tenant)
        if reference is None:
            result.add("not_ours")
            continue
        tx_id, gift_id = reference
        try:
            if event == "giftcreate":
                result.add(confirm(rt, tenant, tx_id, gift_id, "webhook").outcome)
            elif event == "giftdelete":
                rt.related.gift_deleted(tenant.name, member_name("transaction", tx_id), gift_id)
                result.add("deleted_reported")
            else:
                result.add("ignored")
        except Exception as exc:  # one entry's failure must not lose the entries after it
            log.error("webhook_entry_failed", event=event, error=type(exc).__name__)
            result.add("failed")
    if event in ("contactcreate", "contactupdate", ""):
        for contact in _models(payload, "contact"):
            contact_id = contact.get("id")
            if not isinstance(contact_id, int) or isinstance(contact_id, bool):
                continue
            for ref_source, ref_id in _references(contact):
                if ref_source == tenant.reference_source:
                    remember(rt, tenant.name, "donor", ref_id, contact_id)
                    result.add("contact_linked")
    return result


@dataclass
class SweepResult:
    """What one reconcile sweep did."""

    looked_up: int = 0
    confirmed: int = 0
    needs_review: int = 0
    throttled: bool = False


def _mark_review(rt: Runtime, tenant: TenantSettings, member: str) -> bool:
    done = rt.ledger.mark_review(tenant.name, member)
    if done:
        metrics.NEEDS_REVIEW.labels(tenant.name).inc()
    return done


def _find(source: str, transaction_id: str, client: VirtuousClient) -> dict[str, Any] | None:
    return client.find_gift(source, transaction_id)


def sweep(rt: Runtime, tenant: TenantSettings, max_lookups: int = SWEEP_MAX_LOOKUPS) -> SweepResult:
    """Look up gifts that stayed unconfirmed too long; mark the hopeless ones needs_review."""
    result = SweepResult()
    now = rt.ledger.server_ms()
    recheck_ms = int(tenant.reconcile_after_seconds * 1000 * RECHECK_SHARE)
    deadline_ms = tenant.review_deadline_seconds * 1000
    due = rt.ledger.due_for_lookup(tenant.name, now, tenant.reconcile_after_seconds * 1000)
    for member, submitted in due[:max_lookups]:
        _, tx_id = member.split(":", 1)
        lookup = functools.partial(_find, tenant.transaction_source, tx_id)
        try:
            found = call(rt, tenant, lookup, kind="lookup")
        except Throttled:
            result.throttled = True
            break
        result.looked_up += 1
        if found is not None and isinstance(found.get("id"), int):
            if confirm(rt, tenant, tx_id, found["id"], "lookup").outcome != "already":
                result.confirmed += 1
            continue
        rt.ledger.recheck_after(tenant.name, member, now + max(recheck_ms, 1000))
        if now - submitted >= deadline_ms and _mark_review(rt, tenant, member):
            result.needs_review += 1
    if result.looked_up:
        log.info(
            "reconcile_sweep",
            tenant=tenant.name,
            looked_up=result.looked_up,
            confirmed=result.confirmed,
            needs_review=result.needs_review,
        )
    return result


def reconcile(rt: Runtime, tenant: TenantSettings) -> None:
    """One reconcile pass of the tenant: gifts, then pending donors; skipped while another
    pass of the same tenant runs."""
    lock = OwnedLock(rt.redis, rt.keys.sweep_lock(tenant.name), RECONCILE_LOCK_MS)
    if not lock.acquire():
        return
    try:
        sweep(rt, tenant)
        donors.sweep(rt, tenant)
    finally:
        lock.release()
