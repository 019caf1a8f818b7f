"""The pull path: Virtuous Gifts and RecurringGifts back to the platform (seeds 002/004 "Pull").

A pull reads one kind of record, ``gifts`` (``POST /api/Gift/Query/FullGift``) or ``recurring``
(``POST /api/RecurringGift/Query``), 1000 a page in (pull_by date, Virtuous id) order from a
saved cursor. It pages by key, never by skip (Virtuous answers a deep skip with a 500): each
query asks for ``date > cursor date OR (date = cursor date AND id > cursor id)``, and records at
or before the cursor are dropped client-side too, should a server round the comparison.

Each record is mapped by :mod:`mapping.pull` and becomes at most one entry on the writeback
stream (format and rules: ``workers/PULL.md``). Records giftsync pushed itself are *echoes*:
counted, never written back, so nothing loops. A per-tenant *told index* remembers what the
pull last told the platform about each Virtuous id, so an unchanged record is not written again
and a changed one is known to be an update.

Invariants:

- A page's writeback entries, its told-index updates and the cursor move are one Lua script
  (``pull_commit.lua``); a crash re-reads at most the page in flight, never appending twice.
- Every Virtuous call goes through :func:`workers.sending.call` with kind ``"pull"`` (the capped
  lookup share); a throttle raises :class:`Throttled` and the re-delivered message resumes from
  the saved cursor.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog

from mapping.errors import MappingError
from mapping.events import real_gift_id
from mapping.pull import (
    match_pulled_gift,
    pulled_scheduled_donation,
    pulled_transaction,
    wg_id_of,
)
from mapping.tenant import TenantSettings
from workers import metrics
from workers.keys import member
from workers.middleware import Throttled
from workers.runtime import Runtime
from workers.scripts import decode, load_script
from workers.sending import call
from workers.virtuous import VirtuousClient

log = structlog.get_logger("giftsync.pull")

PullKind = Literal["gifts", "recurring"]
OUTCOMES = ("created", "updated", "echo", "skipped")

# Records per query page: the most Virtuous gives.
PAGE_SIZE = 1000
# One delivery stops after this long and continues in the next (the time limit is 10 minutes).
RUN_BUDGET_SECONDS = 120.0
# An unrecognised RecurringGift younger than this may be one giftsync has just created and not
# yet recorded the id of (nothing else marks it as ours): the pull waits rather than echo it.
SETTLE_SECONDS = 30.0
# A queued or running pull holds its pending flag this long unless it refreshes it.
PENDING_LEASE_MS = 15 * 60 * 1000
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


_MODIFIED = ("Last Modified Date", "modifiedDateTimeUtc")
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
        {"Last Modified Date": _MODIFIED, "Gift Date": ("Create Date", "createDateTimeUtc")},
        _query_recurring,
    ),
}


# Key paging (pure)


@dataclass(frozen=True)
class Cursor:
    """The last record a pull committed: its pull_by date as Virtuous wrote it, and its id."""

    date: str
    id: int


def _condition(parameter: str, operator: str, value: str | None = None) -> dict[str, str]:
    cond = {"parameter": parameter, "operator": operator}
    if value is not None:
        cond["value"] = value
    return cond


def page_query(date_parameter: str, id_parameter: str, cursor: Cursor | None) -> dict[str, Any]:
    """The Query body for the page after ``cursor``: (date, id) order, keyed past the cursor.

    Groups are OR-ed and a group's conditions AND-ed, so the filter reads
    ``date > c.date OR (date = c.date AND id > c.id)``; with no cursor, every dated record.
    """
    if cursor is None:
        groups = [{"conditions": [_condition(date_parameter, "Is Known")]}]
    else:
        groups = [
            {"conditions": [_condition(date_parameter, "Greater Than", cursor.date)]},
            {
                "conditions": [
                    _condition(date_parameter, "Is", cursor.date),
                    _condition(id_parameter, "Greater Than", str(cursor.id)),
                ]
            },
        ]
    return {"groups": groups, "sortBy": date_parameter, "descending": False}


_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$"
)


def instant(value: object) -> datetime | None:
    """A Virtuous date or timestamp as a naive UTC datetime (naive input is UTC), or None.

    Reads up to seven fraction digits (.NET writes seven; the seventh is dropped).
    """
    if not isinstance(value, str):
        return None
    m = _ISO.match(value.strip())
    if m is None:
        return None
    year, month, day, hh, mm, ss, frac, tz = m.groups()
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hh or 0), int(mm or 0), int(ss or 0),
            int((frac or "0")[:6].ljust(6, "0")),
        )  # fmt: skip
    except ValueError:
        return None
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        moment -= sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[-2:]))
    return moment


def after_cursor(date: object, record_id: object, cursor: Cursor | None) -> bool:
    """Whether a record lies strictly after the cursor in (date, id) order.

    An unreadable date is let through: the server's filter already placed it.
    """
    if cursor is None:
        return True
    mine, theirs = instant(date), instant(cursor.date)
    vid = real_gift_id(record_id) if isinstance(record_id, int | str) else None
    if mine is None or theirs is None or vid is None:
        return True
    return (mine, vid) > (theirs, cursor.id)


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
class PageFacts:
    """What Redis knows about one page's records."""

    # Ledger: real Virtuous id -> member, for every record giftsync pushed of this kind.
    pushed: Mapping[int, str]
    # Platform ids (wg_id, our transactionId) of this page that have a ledger record.
    ledger_ids: AbstractSet[str] = frozenset()
    # Members whose newest platform event says the scheduled donation is cancelled.
    platform_cancelled: AbstractSet[str] = frozenset()
    told: Mapping[int, Told] = field(default_factory=dict)


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


def _our_reference(gift: Mapping[str, Any], tenant: TenantSettings) -> str | None:
    """The transactionId of a gift giftsync sent (every push carries its reference pair)."""
    tid = gift.get("transactionId")
    if gift.get("transactionSource") == tenant.transaction_source and tid not in (None, ""):
        return str(tid)
    return None


def _gift(gift: Mapping[str, Any], vid: int, tenant: TenantSettings, facts: PageFacts) -> _Decision:
    wg, ref = wg_id_of(gift), _our_reference(gift, tenant)
    if vid in facts.pushed or {wg, ref} & facts.ledger_ids:
        return _Decision("echo")
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
    existing = None if by == "new" else {}
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


# Redis: facts, the commit, the cursor


def pushed_ids(rt: Runtime, tenant: str, record_kind: str) -> dict[int, str]:
    """Every real Virtuous id the ledger holds for ``record_kind``, mapped to its member.

    One SCAN of the tenant's ledger per pull run (the ledger keeps no reverse index).
    """
    start = len(rt.keys.record(tenant, ""))
    found: dict[int, str] = {}
    pattern = rt.keys.record(tenant, member(record_kind, "*"))
    chunk: list[bytes] = []

    def resolve() -> None:
        pipe = rt.redis.pipeline(transaction=False)
        for key in chunk:
            pipe.hget(key, "virtuous_id")
        for key, value in zip(chunk, pipe.execute(), strict=True):
            gift_id = real_gift_id(decode(value)) if value is not None else None
            if gift_id is not None:
                found[gift_id] = decode(key)[start:]
        chunk.clear()

    for key in rt.redis.scan_iter(match=pattern, count=1000):
        chunk.append(key)
        if len(chunk) >= 1000:
            resolve()
    resolve()
    return found


def gather_facts(
    rt: Runtime,
    tenant: TenantSettings,
    spec: KindSpec,
    records: Iterable[Mapping[str, Any]],
    pushed: Mapping[int, str],
) -> PageFacts:
    """Read, in a few round trips, what Redis knows about this page's records."""
    records = list(records)
    ids = [vid for vid in (real_gift_id(r.get("id")) for r in records) if vid is not None]
    raw = rt.redis.hmget(rt.keys.pull_told(tenant.name, spec.name), ids) if ids else []
    told = {vid: t for vid, value in zip(ids, raw, strict=True) if (t := Told.loads(value))}
    ledger_ids: set[str] = set()
    cancelled: set[str] = set()
    pipe = rt.redis.pipeline(transaction=False)
    if spec.name == "gifts":
        wanted = sorted({c for r in records for c in (wg_id_of(r), _our_reference(r, tenant)) if c})
        for platform_id in wanted:
            pipe.exists(rt.keys.record(tenant.name, member("transaction", platform_id)))
        ledger_ids = {p for p, hit in zip(wanted, pipe.execute(), strict=True) if hit}
    else:
        members = sorted(
            {pushed[vid] for r in records if r.get("cancelDateTimeUtc")
             if (vid := real_gift_id(r.get("id"))) in pushed}
        )  # fmt: skip
        for name in members:
            pipe.hget(rt.keys.record(tenant.name, name), "payload")
        for name, payload in zip(members, pipe.execute(), strict=True):
            if _platform_status(payload) == "cancelled":
                cancelled.add(name)
    return PageFacts(pushed, frozenset(ledger_ids), frozenset(cancelled), told)


def _platform_status(payload: object) -> str | None:
    """The record status in a ledger's newest change event, if readable."""
    try:
        status = json.loads(decode(payload))["record"]["status"]
    except (TypeError, ValueError, KeyError):
        return None
    return status if isinstance(status, str) else None


def _saved(rt: Runtime, tenant: str, kind: str) -> dict[str, str]:
    raw = rt.redis.hgetall(rt.keys.pull_cursor(tenant, kind))
    return {decode(k): decode(v) for k, v in raw.items()}


def load_cursor(rt: Runtime, tenant: TenantSettings, kind: str) -> tuple[Cursor | None, str]:
    """The saved cursor (None: from the start) and its generation.

    A cursor saved under another pull_by setting is ignored: its date is of another field.
    """
    saved = _saved(rt, tenant.name, kind)
    gen = saved.get("gen", "0")
    if not saved.get("date") or saved.get("by") != tenant.pull_by:
        return None, gen
    return Cursor(saved["date"], int(saved.get("id") or 0)), gen


def commit(
    rt: Runtime,
    tenant: TenantSettings,
    spec: KindSpec,
    plan: PagePlan,
    gen: str,
    *,
    synced_ms: int | None,
) -> bool:
    """Write a page's plan atomically; False if the cursor moved since it was read."""
    args: list[str | int] = [
        gen,
        tenant.pull_by,
        plan.last.date if plan.last else "",
        plan.last.id if plan.last else "",
        "" if synced_ms is None else synced_ms,
        *(plan.counts[outcome] for outcome in OUTCOMES),
        len(plan.entries),
    ]
    for entry in plan.entries:
        args += [len(entry), *entry]
    args.append(len(plan.told))
    for vid, told in plan.told.items():
        args += [vid, told]
    keys = rt.keys
    script = load_script(rt.redis, "pull_commit.lua")
    result = decode(
        script(
            keys=[
                keys.pull_cursor(tenant.name, spec.name),
                keys.pull_told(tenant.name, spec.name),
                keys.writeback,
            ],
            args=args,
        )
    )
    return bool(result[0] == "ok")


def reset_cursor(rt: Runtime, tenant: TenantSettings, kind: str, since: str) -> None:
    """Start the next pull at ``since`` (an ISO date or time, UTC); the told index stays."""
    key = rt.keys.pull_cursor(tenant.name, kind)
    pipe = rt.redis.pipeline(transaction=True)
    pipe.hset(key, mapping={"by": tenant.pull_by, "date": since, "id": 0})
    pipe.hincrby(key, "gen", 1)
    pipe.execute()


def cursor_lag_seconds(rt: Runtime, tenant: str, kind: str, now_ms: int) -> float | None:
    """How far behind ``now_ms`` the pull is: the cursor's date, or the moment the last run
    reached the end, whichever is later. None before the first commit."""
    saved = _saved(rt, tenant, kind)
    if "gen" not in saved:
        return None
    moment = instant(saved.get("date"))
    at_ms = int(moment.replace(tzinfo=UTC).timestamp() * 1000) if moment else 0
    at_ms = max(at_ms, int(saved.get("synced_ms") or 0))
    return max(now_ms - at_ms, 0) / 1000


# Running a pull


@dataclass
class PullReport:
    """Progress of one pull, page by page."""

    kind: str
    pages: int = 0
    records: int = 0
    # Records the last answer said lie beyond its page (None before the first page).
    remaining: int | None = None
    counts: Counter[str] = field(default_factory=Counter)
    done: bool = False


def pull(
    rt: Runtime,
    tenant: TenantSettings,
    kind: str,
    *,
    budget_seconds: float | None = None,
    on_page: Callable[[PullReport], None] | None = None,
) -> PullReport:
    """Pull pages from the saved cursor until the end (or raise Throttled to wait)."""
    spec = KINDS[kind]
    date_parameter, date_field = spec.dates[tenant.pull_by]
    pushed = pushed_ids(rt, tenant.name, spec.record_kind)
    report = PullReport(kind)
    started = time.monotonic()
    while True:
        cursor, gen = load_cursor(rt, tenant, spec.name)
        body = page_query(date_parameter, spec.id_parameter, cursor)
        asked_ms = rt.batcher.server_ms()
        answer = call(rt, tenant, functools.partial(spec.query, body=body), kind="pull")
        rows = [r for r in answer.get("list") or [] if isinstance(r, Mapping)]
        records = [r for r in rows if after_cursor(r.get(date_field), r.get("id"), cursor)]
        if len(rows) >= PAGE_SIZE and not records:
            raise RuntimeError(f"{spec.name} query ignored the key-paging conditions")
        facts = gather_facts(rt, tenant, spec, records, pushed)
        now = datetime.fromtimestamp(asked_ms / 1000, UTC).replace(tzinfo=None)
        plan = plan_page(spec, tenant, records, facts, date_field=date_field, now=now)
        end = len(rows) < PAGE_SIZE and not plan.defer_seconds
        if not commit(rt, tenant, spec, plan, gen, synced_ms=asked_ms if end else None):
            log.info("pull_cursor_moved", kind=spec.name)  # another pull committed: re-read
            continue
        for outcome, count in plan.counts.items():
            metrics.PULL_RECORDS.labels(tenant.name, spec.metric_kind, outcome).inc(count)
        report.pages += 1
        report.records += sum(plan.counts.values())
        report.counts.update(plan.counts)
        total = answer.get("total")
        report.remaining = max(int(total) - len(rows), 0) if isinstance(total, int) else None
        report.done = end
        if on_page is not None:
            on_page(report)
        if plan.defer_seconds:
            raise Throttled(plan.defer_seconds, "settle")
        if end:
            _finish(rt, tenant.name, spec.name)
            return report
        if budget_seconds is not None and time.monotonic() - started > budget_seconds:
            raise Throttled(0.001, "continue")


def _finish(rt: Runtime, tenant: str, kind: str) -> None:
    key = rt.keys.pull_cursor(tenant, kind)
    pipe = rt.redis.pipeline(transaction=True)
    pipe.hincrby(key, "runs", 1)
    pipe.hset(key, "last_run_ms", rt.batcher.server_ms())
    pipe.execute()


def run(rt: Runtime, tenant: TenantSettings, kind: str, message_id: str) -> None:
    """One actor delivery: pull until done, the run budget or a throttle (re-delivered)."""
    pending = rt.keys.pull_pending(tenant.name, kind)
    rt.redis.set(pending, message_id, px=PENDING_LEASE_MS)
    label = KINDS[kind].metric_kind
    try:
        report = pull(
            rt,
            tenant,
            kind,
            budget_seconds=RUN_BUDGET_SECONDS,
            on_page=lambda _: rt.redis.pexpire(pending, PENDING_LEASE_MS),
        )
    except Throttled as exc:
        metrics.PULL_RUNS.labels(tenant.name, label, exc.reason).inc()
        raise
    except Exception:
        metrics.PULL_RUNS.labels(tenant.name, label, "failed").inc()
        raise
    metrics.PULL_RUNS.labels(tenant.name, label, "done").inc()
    release(rt, tenant.name, kind, message_id)
    log.info("pull_done", kind=kind, pages=report.pages, **dict(report.counts))


def claim_schedule(rt: Runtime, tenant: TenantSettings, kind: str, message_id: str) -> bool:
    """True when the scheduler must enqueue ``message_id`` now (see pull_schedule.lua)."""
    script = load_script(rt.redis, "pull_schedule.lua", prelude=False)
    keys = [rt.keys.pull_due(tenant.name, kind), rt.keys.pull_pending(tenant.name, kind)]
    interval_ms = max(int(tenant.pull_interval_seconds * 1000), 1)
    return bool(script(keys=keys, args=[interval_ms, message_id, PENDING_LEASE_MS]))


def release(rt: Runtime, tenant: str, kind: str, message_id: str) -> None:
    """Clear the pending flag if this message still holds it."""
    rt.redis.eval(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end"
        " return 0",
        1,
        rt.keys.pull_pending(tenant, kind),
        message_id,
    )
