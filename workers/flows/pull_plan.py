"""What one page of a pull writes back: the per-record decisions (pure; the key paging is
:mod:`workers.flows.pull_paging`'s).

No Redis, no HTTP, no clock: :func:`plan_page` takes a page of Virtuous records, what Redis
knows about them (:class:`PageFacts`) and the time of the query, and returns the writeback
entries, told-index updates, outcome counts and the new cursor that :mod:`workers.flows.pull`
commits in one step. Mapping itself is :mod:`mapping.pull`'s.

Per record, in order:

1. *Echo*: giftsync pushed it (its Virtuous id is a ledger record's ``virtuous_id``, or, for a
   gift, its ``wg_id`` custom field or our ``transactionId`` names a ledger record) and it
   holds what giftsync last sent. Counted, never written back. Judged by content, not origin:
   a gift giftsync pushed that staff then edited in Virtuous is an update of that platform
   transaction, once Virtuous is known to hold giftsync's newest version (while a newer one is
   still on its way, Virtuous is about to be overwritten and the gift counts as an echo). A
   RecurringGift giftsync pushed is an echo unless staff cancelled it in Virtuous (and the
   platform has not): the platform must hear of that.
2. *Match* (:func:`mapping.pull.match_pulled_gift`): by the told index's Virtuous id, then by
   ``wg_id`` (a platform transaction giftsync never pushed), else new.
3. *Unchanged*: the record's steady-state mapping has the fingerprint last told: skipped.
4. Otherwise one ``{kind}.pulled_create`` / ``{kind}.pulled_update`` entry.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog

from mapping.decision import decide
from mapping.errors import MappingError
from mapping.events import EventValidationError, Transaction, parse_event_json, real_gift_id
from mapping.pull import (
    holds_what_was_sent,
    match_pulled_gift,
    pulled_scheduled_donation,
    pulled_transaction,
    wg_id_of,
)
from mapping.realtime import realtime_desired
from mapping.tenant import TenantSettings
from workers.flows.pull_paging import Cursor, instant
from workers.store.scripts import decode
from workers.virtuous.client import VirtuousClient

log = structlog.get_logger("giftsync.pull")

PullKind = Literal["gifts", "recurring"]
OUTCOMES = ("created", "updated", "echo", "skipped")

# Records per query page: the most Virtuous gives.
PAGE_SIZE = 1000
# An unrecognised RecurringGift younger than this may be one giftsync has just created and not
# yet recorded the id of (nothing else marks it as ours): the pull waits, not to call it new.
SETTLE_SECONDS = 30.0
# Stands for an amount the platform holds but giftsync never learned ("already present").
KEPT = "kept"


@dataclass(frozen=True)
class KindSpec:
    """How one kind of record is queried, recognised and written back."""

    name: PullKind
    record_kind: str  # the platform kind: ledger member prefix, writeback type prefix
    metric_kind: str  # the kind label of the pull metrics
    id_parameter: str
    # tenant pull_by -> (query parameter, record field holding that date)
    dates: Mapping[str, tuple[str, str]]
    query: Callable[[VirtuousClient, Mapping[str, Any]], dict[str, Any]]


def _query_gifts(client: VirtuousClient, body: Mapping[str, Any]) -> dict[str, Any]:
    return client.query_gifts(body, skip=0, take=PAGE_SIZE)


def _query_recurring(client: VirtuousClient, body: Mapping[str, Any]) -> dict[str, Any]:
    return client.query_recurring_gifts(body, skip=0, take=PAGE_SIZE)


# Parameter names as Virtuous's QueryOptions list them (taylorbrooks/virtuous
# gift_designation_query_options.json; virtuous-ts build-recurring-gift-query.ts). The
# "DateTime UTC" parameters are UTC whatever the organisation's timezone.
_MODIFIED = ("Last Modified DateTime UTC", "modifiedDateTimeUtc")
KINDS: dict[str, KindSpec] = {
    "gifts": KindSpec(
        "gifts",
        "transaction",
        "gift",
        "Gift Id",
        {"Last Modified Date": _MODIFIED, "Gift Date": ("Gift Date", "giftDate")},
        _query_gifts,
    ),
    # A RecurringGift has no gift date: "Gift Date" tenants pull recurring gifts by creation.
    "recurring": KindSpec(
        "recurring",
        "scheduled_donation",
        "recurring",
        "Recurring Gift Id",
        {
            "Last Modified Date": _MODIFIED,
            "Gift Date": ("Create DateTime UTC", "createDateTimeUtc"),
        },
        _query_recurring,
    ),
}
# What the platform was told, and what Redis knows about a page


@dataclass(frozen=True)
class Told:
    """The told index's entry for one Virtuous id: the platform holds this record."""

    fp: str  # fingerprint of the record's steady-state mapping last written back
    id: str = ""  # the platform record id, when giftsync knows it
    status: str | None = None  # the transaction status the platform holds, if known

    def dumps(self) -> str:
        return json.dumps({"fp": self.fp, "id": self.id, "status": self.status})

    @staticmethod
    def loads(raw: object) -> Told | None:
        if raw is None:
            return None
        data = json.loads(decode(raw))
        return Told(str(data["fp"]), str(data.get("id") or ""), data.get("status"))


@dataclass(frozen=True)
class Sent:
    """What giftsync last sent for a pushed gift that Virtuous is known to hold at rest."""

    platform_id: str  # the platform transaction id
    payload: str  # the newest change event, the one Virtuous holds


@dataclass(frozen=True)
class PageFacts:
    """What Redis knows about one page's records."""

    # Ledger: real Virtuous id -> member, for every record giftsync pushed of this kind.
    pushed: Mapping[int, str]
    # Platform ids (wg_id, our transactionId) of this page that have a ledger record.
    ledger_ids: AbstractSet[str] = frozenset()
    # Members whose newest platform event says the scheduled donation is cancelled.
    platform_cancelled: AbstractSet[str] = frozenset()
    told: Mapping[int, Told] = field(default_factory=dict)
    # Virtuous id -> what giftsync sent, for this page's pushed gifts whose record is at rest
    # with its newest version applied (the others are echoes whatever they hold).
    sent: Mapping[int, Sent] = field(default_factory=dict)


@dataclass
class PagePlan:
    """What committing one page writes: entries, told-index updates, counts and the cursor."""

    entries: list[list[str]] = field(default_factory=list)
    told: dict[int, str] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    last: Cursor | None = None
    # > 0 when the page stopped early at a record that must settle first.
    defer_seconds: float = 0.0


@dataclass(frozen=True)
class _Decision:
    outcome: str
    record: dict[str, Any] | None = None
    steady: dict[str, Any] | None = None
    platform_id: str = ""
    match: str = "new"
    status: str | None = None


def our_reference(gift: Mapping[str, Any], tenant: TenantSettings) -> str | None:
    """The transactionId of a gift giftsync sent (every push carries its reference pair)."""
    tid = gift.get("transactionId")
    if gift.get("transactionSource") == tenant.transaction_source and tid not in (None, ""):
        return str(tid)
    return None


def _edited_in_virtuous(
    gift: Mapping[str, Any], sent: Sent | None, tenant: TenantSettings
) -> tuple[str, str | None] | None:
    """For a gift giftsync pushed: (platform id, platform status) when Virtuous holds other
    content than giftsync last sent, else None (an echo)."""
    if sent is None:
        return None
    try:
        tx = parse_event_json(sent.payload).record
        if not isinstance(tx, Transaction):
            return None
        decision = decide(tx, tenant)
        # What giftsync cannot express in the direct-API shape (a fund known only by its
        # code) it cannot compare either: the gift stays an echo.
        if not decision.send or holds_what_was_sent(
            gift, realtime_desired(tx, tenant, decision), tenant
        ):
            return None
    except (EventValidationError, MappingError):
        return None
    return sent.platform_id, tx.status


def _gift(gift: Mapping[str, Any], vid: int, tenant: TenantSettings, facts: PageFacts) -> _Decision:
    wg, ref = wg_id_of(gift), our_reference(gift, tenant)
    if vid in facts.pushed or {wg, ref} & facts.ledger_ids:
        edited = _edited_in_virtuous(gift, facts.sent.get(vid), tenant)
        if edited is None:
            return _Decision("echo")
        platform_id, status = edited
        record = pulled_transaction(gift, existing={"amount": KEPT, "status": status},
                                    tenant=tenant)  # fmt: skip
        return _Decision("", record, record, platform_id, "virtuous_id", status)
    told = facts.told.get(vid)
    known = {vid: told.id} if told is not None else {}
    match = match_pulled_gift(
        gift, known_by_virtuous_id=known, known_by_wg_id={wg} if wg else set()
    )
    status = told.status if told is not None else None
    existing = None if match.by == "new" else {"amount": KEPT, "status": status}
    record = pulled_transaction(gift, existing=existing, tenant=tenant)
    if existing is not None and status is None:
        # The platform's own status stands: giftsync never learned it, so it sends none.
        del record["status"]
    status = record.get("status")
    steady = record
    if existing is None:
        steady = pulled_transaction(
            gift, existing={"amount": KEPT, "status": status}, tenant=tenant
        )
    return _Decision("", record, steady, match.transaction_id or "", match.by, status)


def _recurring(
    rg: Mapping[str, Any], vid: int, tenant: TenantSettings, facts: PageFacts
) -> _Decision:
    pushed, told = facts.pushed.get(vid), facts.told.get(vid)
    if pushed is not None:
        # WeGive owns the plans it pushed; the one change only Virtuous can originate is a
        # staff cancellation, which the platform must hear about (once, via the told index).
        if not rg.get("cancelDateTimeUtc") or pushed in facts.platform_cancelled:
            return _Decision("echo")
        platform_id, by = pushed.split(":", 1)[1], "virtuous_id"
    elif told is not None:
        platform_id, by = told.id, "virtuous_id"
    else:
        platform_id, by = "", "new"
    existing: dict[str, Any] | None = None if by == "new" else {}
    record = pulled_scheduled_donation(rg, existing=existing, tenant=tenant)
    steady = (
        record
        if existing is not None
        else pulled_scheduled_donation(rg, existing={}, tenant=tenant)
    )
    return _Decision("", record, steady, platform_id, by)


def _canonical(record: Mapping[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(record: Mapping[str, Any]) -> str:
    """A short digest of a mapped record: equal records, equal fingerprints."""
    return hashlib.blake2b(_canonical(record).encode("utf-8"), digest_size=10).hexdigest()


def plan_page(
    spec: KindSpec,
    tenant: TenantSettings,
    records: Sequence[Mapping[str, Any]],
    facts: PageFacts,
    *,
    date_field: str,
    now: datetime,
) -> PagePlan:
    """Decide every record of a page (pure): echo, unchanged, or a create/update entry."""
    plan = PagePlan()
    settle_after = now - timedelta(seconds=SETTLE_SECONDS)
    for rec in records:
        vid, date = real_gift_id(rec.get("id")), rec.get(date_field)
        if vid is None or not isinstance(date, str):
            plan.counts["skipped"] += 1
            log.warning("pull_record_unreadable", kind=spec.name, field=date_field)
            continue
        if spec.name == "recurring" and vid not in facts.pushed and vid not in facts.told:
            created = instant(rec.get("createDateTimeUtc"))
            if created is not None and created > settle_after:
                plan.defer_seconds = max((created - settle_after).total_seconds(), 0.001)
                break
        try:
            decide = _gift if spec.name == "gifts" else _recurring
            decision = decide(rec, vid, tenant, facts)
        except MappingError as exc:
            decision = _Decision("skipped")
            log.warning(
                "pull_record_unmappable", virtuous_id=vid, field=exc.path, reason=exc.reason
            )
        plan.last = Cursor(date, vid)
        if decision.record is None or decision.steady is None:
            plan.counts[decision.outcome] += 1
            continue
        told = Told(fingerprint(decision.steady), decision.platform_id, decision.status)
        previous = facts.told.get(vid)
        if previous is not None and previous.fp == told.fp:
            plan.counts["skipped"] += 1  # unchanged since the platform was last told
            continue
        create = decision.match == "new"
        plan.counts["created" if create else "updated"] += 1
        plan.told[vid] = told.dumps()
        modified = rec.get("modifiedDateTimeUtc") or told.fp
        plan.entries.append(
            [
                "type", f"{spec.record_kind}.pulled_{'create' if create else 'update'}",
                "tenant", tenant.name,
                "kind", spec.record_kind,
                "id", decision.platform_id,
                "virtuous_id", str(vid),
                "match", decision.match,
                "key", f"{spec.record_kind}:{vid}:{modified}",
                "modified", str(modified),
                "record", _canonical(decision.record),
            ]
        )  # fmt: skip
    return plan
