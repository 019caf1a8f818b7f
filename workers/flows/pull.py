"""The pull path: Virtuous Gifts and RecurringGifts back to the platform (seeds 002/004 "Pull").

A pull reads one kind of record, ``gifts`` (``POST /api/Gift/Query/FullGift``) or ``recurring``
(``POST /api/RecurringGift/Query``), 1000 a page in sweeps: every record dated on or after
the sweep's lower bound, in Virtuous id order from a saved cursor, paging by key, never by
skip (Virtuous answers a deep skip with a 500); see :class:`workers.flows.pull_paging.Cursor`. What
each page writes back is decided by :mod:`workers.flows.pull_plan`; the format and the rules are in
``docs/pull.md``.

Redis keys (see :class:`workers.store.keys.Keys`): the *cursor* hash (position, generation, totals),
the *told index* (what the pull last told the platform about each Virtuous id, so an
unchanged record is not written again and a changed one is known to be an update), and the
scheduler's *due* and *pending* keys.

Invariants:

- A page's writeback entries, its told-index updates and the cursor move are one Lua script
  (``cursor_commit.lua``); a crash re-reads at most the page in flight and appends nothing twice.
  A page read before another commit (a concurrent pull, a reset) is refused and read again.
- Every Virtuous call goes through :func:`workers.flows.gate.call` with kind ``"pull"`` (the capped
  lookup share); a throttle raises :class:`Throttled` and the re-delivered message resumes from
  the saved cursor.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from mapping.events import real_gift_id
from mapping.pull import wg_id_of
from mapping.tenant import TenantSettings
from workers.errors import Throttled
from workers.flows.gate import call
from workers.flows.pull_paging import (
    MOVING_FIELDS,
    Cursor,
    after_cursor,
    instant,
    next_sweep,
    page_query,
)
from workers.flows.pull_plan import (
    KINDS,
    OUTCOMES,
    PAGE_SIZE,
    KindSpec,
    PageFacts,
    PagePlan,
    Sent,
    Told,
    our_reference,
    plan_page,
)
from workers.observe import metrics
from workers.runtime import Runtime
from workers.store.cursor import ScheduleClaim
from workers.store.keys import member
from workers.store.scripts import decode
from workers.virtuous.client import VirtuousClient

log = structlog.get_logger("giftsync.pull")

# One delivery stops after this long and continues in the next (the time limit is 10 minutes).
RUN_BUDGET_SECONDS = 120.0
# A queued or running pull holds its pending flag this long unless it refreshes it.
PENDING_LEASE_MS = 15 * 60 * 1000


def pushed_ids(rt: Runtime, tenant: str, record_kind: str) -> dict[int, str]:
    """Every real Virtuous id the ledger holds for ``record_kind``, mapped to its member.

    One SCAN of the tenant's ledger per pull run (the ledger keeps no reverse index).
    """
    found: dict[int, str] = {}
    for name, value in rt.ledger.scan_field(tenant, record_kind, "virtuous_id"):
        gift_id = real_gift_id(value)
        if gift_id is not None:
            found[gift_id] = name
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
    raw = rt.cursors.told(tenant.name, spec.name, ids)
    told = {vid: t for vid, value in zip(ids, raw, strict=True) if (t := Told.loads(value))}
    ledger_ids: set[str] = set()
    cancelled: set[str] = set()
    sent: dict[int, Sent] = {}
    if spec.name == "gifts":
        wanted = sorted({c for r in records for c in (wg_id_of(r), our_reference(r, tenant)) if c})
        hits = rt.ledger.known(tenant.name, [member("transaction", p) for p in wanted])
        ledger_ids = {p for p, hit in zip(wanted, hits, strict=True) if hit}
        sent = _sent_gifts(rt, tenant, records, pushed, ledger_ids)
    else:
        members = set()
        for r in records:
            vid = real_gift_id(r.get("id"))
            if r.get("cancelDateTimeUtc") and vid is not None and vid in pushed:
                members.add(pushed[vid])
        ordered = sorted(members)
        payloads = rt.ledger.fields([(tenant.name, name) for name in ordered], "payload")
        for name, (payload,) in zip(ordered, payloads, strict=True):
            if _platform_status(payload) == "cancelled":
                cancelled.add(name)
    return PageFacts(pushed, frozenset(ledger_ids), frozenset(cancelled), told, sent)


# Only a record in these states, with its newest version applied, has nothing of giftsync's
# still on its way to Virtuous.
AT_REST = frozenset({"sent", "confirmed"})


def _sent_gifts(
    rt: Runtime,
    tenant: TenantSettings,
    records: list[Mapping[str, Any]],
    pushed: Mapping[int, str],
    ledger_ids: AbstractSet[str],
) -> dict[int, Sent]:
    """What giftsync last sent for each of the page's pushed gifts that Virtuous holds at rest."""
    owners: dict[int, str] = {}
    for r in records:
        vid = real_gift_id(r.get("id"))
        if vid is None:
            continue
        candidates = [pushed.get(vid)]
        candidates += [member("transaction", p) for p in (wg_id_of(r), our_reference(r, tenant))
                       if p in ledger_ids]  # fmt: skip
        name = next((c for c in candidates if c), None)
        if name is not None:
            owners[vid] = name
    rows = rt.ledger.fields(
        [(tenant.name, name) for name in owners.values()],
        "state",
        "version",
        "applied_version",
        "payload",
    )
    sent: dict[int, Sent] = {}
    for (vid, name), (state, version, applied, payload) in zip(owners.items(), rows, strict=True):
        if state in AT_REST and payload and version is not None and version == applied:
            sent[vid] = Sent(name.split(":", 1)[1], payload)
    return sent


def _platform_status(payload: object) -> str | None:
    """The record status in a ledger's newest change event, if readable."""
    try:
        status = json.loads(decode(payload))["record"]["status"]
    except (TypeError, ValueError, KeyError):
        return None
    return status if isinstance(status, str) else None


def load_cursor(rt: Runtime, tenant: TenantSettings, kind: str) -> tuple[Cursor | None, str]:
    """The saved cursor (None: from the start) and its generation.

    A cursor saved under another pull_by setting is ignored: its date is of another field.
    """
    saved = rt.cursors.saved(tenant.name, kind)
    gen = saved.get("gen", "0")
    if not saved.get("by") or saved.get("by") != tenant.pull_by:
        return None, gen
    return Cursor(saved.get("date", ""), int(saved.get("id") or 0), saved.get("next", "")), gen


def commit(
    rt: Runtime,
    tenant: TenantSettings,
    spec: KindSpec,
    plan: PagePlan,
    gen: str,
    *,
    synced_ms: int | None,
    cursor: Cursor | None = None,
) -> bool:
    """Write a page's plan and the new ``cursor`` (None: stay) atomically; False if the
    cursor moved since it was read."""
    args: list[str | int] = [
        gen,
        tenant.pull_by,
        cursor.date if cursor else "",
        cursor.id if cursor else "",
        "" if synced_ms is None else synced_ms,
        *(plan.counts[outcome] for outcome in OUTCOMES),
        len(plan.entries),
    ]
    for entry in plan.entries:
        args += [len(entry), *entry]
    args.append(len(plan.told))
    for vid, told in plan.told.items():
        args += [vid, told]
    args.append(cursor.next if cursor else "")
    return rt.cursors.commit(tenant.name, spec.name, args)


def reset_cursor(rt: Runtime, tenant: TenantSettings, kind: str, since: str) -> None:
    """Start the next pull at ``since`` (an ISO date or time, UTC), records dated exactly
    then included. The told index stays, so re-read records are written back only if changed.
    Raises ValueError for a ``since`` that is not a date."""
    moment = instant(since)
    if moment is None:
        raise ValueError(f"not an ISO date or time: {since!r}")
    rt.cursors.reset(tenant.name, kind, tenant.pull_by, moment.isoformat())


def cursor_lag_seconds(rt: Runtime, tenant: str, kind: str, now_ms: int) -> float | None:
    """How far behind ``now_ms`` the pull is: the cursor's date, or the moment the last run
    reached the end, whichever is later. None before the first commit."""
    saved = rt.cursors.saved(tenant, kind)
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
    report: PullReport | None = None,
) -> PullReport:
    """Pull pages from the saved cursor until the end (or raise Throttled to wait).

    Progress adds up in ``report`` when one is given (a caller resuming after a throttle).
    """
    spec = KINDS[kind]
    date_parameter, date_field = spec.dates[tenant.pull_by]
    pushed = pushed_ids(rt, tenant.name, spec.record_kind)
    report = report if report is not None else PullReport(kind)
    started = time.monotonic()
    while True:
        saved, gen = load_cursor(rt, tenant, spec.name)
        cursor = saved or Cursor("", 0)
        moving = date_field in MOVING_FIELDS
        body = page_query(date_parameter, spec.id_parameter, cursor, moving=moving)
        asked_ms = rt.batcher.server_ms()
        answer = call(rt, tenant, _asker(spec, body), kind="pull")
        rows = [r for r in answer.get("list") or [] if isinstance(r, Mapping)]
        records = [r for r in rows if after_cursor(r.get(date_field), r.get("id"), cursor)]
        facts = gather_facts(rt, tenant, spec, records, pushed)
        now = datetime.fromtimestamp(asked_ms / 1000, UTC).replace(tzinfo=None)
        plan = plan_page(spec, tenant, records, facts, date_field=date_field, now=now)
        end = len(rows) < PAGE_SIZE and not plan.defer_seconds
        if not end and plan.last is None and not plan.defer_seconds:
            # A full page the cursor cannot move past would be read again for ever.
            raise RuntimeError(f"{spec.name} page gave no record past the cursor")
        following = next_sweep(cursor, records, date_field, now)
        if end:
            moved = Cursor(following or cursor.date, 0)
        else:
            last_id = plan.last.id if plan.last is not None else cursor.id
            moved = Cursor(cursor.date, last_id, following)
        synced = asked_ms if end else None
        if not commit(rt, tenant, spec, plan, gen, synced_ms=synced, cursor=moved):
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


def _asker(spec: KindSpec, body: Mapping[str, Any]) -> Callable[[VirtuousClient], dict[str, Any]]:
    def ask(client: VirtuousClient) -> dict[str, Any]:
        return spec.query(client, body)

    return ask


def _finish(rt: Runtime, tenant: str, kind: str) -> None:
    rt.cursors.finished(tenant, kind, rt.ledger.server_ms())


def run(rt: Runtime, tenant: TenantSettings, kind: str, message_id: str) -> None:
    """One actor delivery: pull until done, the run budget or a throttle (re-delivered)."""
    rt.cursors.hold_pending(tenant.name, kind, message_id, PENDING_LEASE_MS)
    label = KINDS[kind].metric_kind

    def still_running(_: PullReport) -> None:
        rt.cursors.refresh_pending(tenant.name, kind, PENDING_LEASE_MS)

    try:
        report = pull(
            rt,
            tenant,
            kind,
            budget_seconds=RUN_BUDGET_SECONDS,
            on_page=still_running,
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


def claim_schedule(
    rt: Runtime, tenant: TenantSettings, kind: str, message_id: str
) -> ScheduleClaim:
    """Whether the scheduler must enqueue ``message_id`` now, and for how long it need not
    ask again (see cursor_schedule.lua)."""
    interval_ms = max(int(tenant.pull_interval_seconds * 1000), 1)
    return rt.cursors.claim_schedule(tenant.name, kind, message_id, interval_ms, PENDING_LEASE_MS)


def release(rt: Runtime, tenant: str, kind: str, message_id: str) -> None:
    """Clear the pending flag if this message still holds it."""
    rt.cursors.release_pending(tenant, kind, message_id)
