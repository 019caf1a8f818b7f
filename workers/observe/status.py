"""``giftsync status``: what every tenant's gifts are doing, read from the ledger.

The report is plain data (:func:`tenant_status`) so the CLI, the operator console and the
tests read the same thing; :func:`render` turns it into text for a terminal.
"""

from __future__ import annotations

from typing import Any

from mapping.tenant import TenantSettings
from workers.flows.gate import paused_reason
from workers.runtime import Runtime

# The states an operator asks about first, in the order a gift moves through them.
HEADLINE_STATES = (
    "buffered",
    "batched",
    "submitted",
    "confirmed",
    "sent",
    "needs_review",
    "quarantined",
    "dead",
    "held",
    "update_held",
    "queued",
    "skipped",
    "invalid",
)


# transactionIds listed per import on a terminal (--json lists them all).
SHOWN_IDS = 20


def _review_batches(rt: Runtime, tenant: str) -> dict[str, int]:
    batches: dict[str, int] = {}
    for _, batch_id in rt.ledger.in_review(tenant):
        name = batch_id or "unknown"
        batches[name] = batches.get(name, 0) + 1
    return batches


def review_imports(rt: Runtime, tenant: str) -> list[dict[str, Any]]:
    """The gifts waiting for a person, by Import Tool import as Virtuous names it: each with
    the transactionIds to look for in it, so staff know what to open and what to find."""
    waiting = rt.ledger.in_review(tenant)
    if not waiting:
        return []
    names = rt.batcher.import_names(sorted({b for _, b in waiting if b}))
    by_import: dict[str, list[str]] = {}
    for member_name, batch_id in waiting:
        name = names.get(batch_id or "") or "(import unknown)"
        by_import.setdefault(name, []).append(member_name.split(":", 1)[-1])
    return [
        {"import": name, "transaction_ids": sorted(ids, key=_natural)}
        for name, ids in sorted(by_import.items())
    ]


def _natural(record_id: str) -> tuple[int, str]:
    return (int(record_id), "") if record_id.isdigit() else (1 << 62, record_id)


def tenant_status(rt: Runtime, tenant: TenantSettings) -> dict[str, Any]:
    """One tenant's state counts, oldest unconfirmed gift, review backlog and budget."""
    now = rt.batcher.server_ms()
    counts = rt.ledger.state_counts(tenant.name)
    oldest = rt.ledger.oldest_unconfirmed(tenant.name)
    buffered_since = rt.batcher.oldest_buffered_ms(tenant.name)
    return {
        "tenant": tenant.name,
        "mode": tenant.mode,
        "states": {state: counts.get(state, 0) for state in HEADLINE_STATES}
        | {k: v for k, v in counts.items() if k not in HEADLINE_STATES},
        "oldest_unconfirmed": {
            "member": oldest[0],
            "age_seconds": round((now - oldest[1]) / 1000, 1),
        }
        if oldest
        else None,
        "oldest_buffered_age_seconds": round((now - buffered_since) / 1000, 1)
        if buffered_since is not None
        else None,
        "review_batches": _review_batches(rt, tenant.name),
        "review_imports": review_imports(rt, tenant.name),
        "calls_in_window": rt.limiter.calls_in_window(tenant),
        "calls_cap": tenant.calls_per_hour,
        "window_seconds": tenant.rate_window_seconds,
        "paused": paused_reason(rt, tenant.name),
        "dead_letters": sum(
            1 for letter in rt.ledger.dead_letters() if letter.get("tenant") == tenant.name
        ),
    }


def render(report: list[dict[str, Any]]) -> str:
    """The report as text for a person at a terminal."""
    lines: list[str] = []
    for item in report:
        used = item["calls_in_window"]
        cap = item["calls_cap"]
        lines.append(f"{item['tenant']} ({item['mode']})")
        if item["paused"]:
            lines.append(f"  PAUSED: {item['paused']}")
        states = ", ".join(f"{k} {v}" for k, v in item["states"].items() if v)
        lines.append(f"  gifts: {states or 'none yet'}")
        lines.append(
            f"  budget: {used} of {cap} calls used in the current "
            f"{item['window_seconds']:.0f}s window ({100 * used / cap:.1f}%)"
        )
        if item["oldest_buffered_age_seconds"] is not None:
            lines.append(f"  oldest buffered entry: {item['oldest_buffered_age_seconds']}s")
        if item["oldest_unconfirmed"]:
            oldest = item["oldest_unconfirmed"]
            lines.append(f"  oldest unconfirmed: {oldest['member']} ({oldest['age_seconds']}s)")
        if item["review_imports"]:
            lines.append("  needs review in the Import Tool (open the import, find these):")
            for found in item["review_imports"]:
                ids = found["transaction_ids"]
                shown = ", ".join(ids[:SHOWN_IDS])
                more = f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else ""
                lines.append(
                    f'    "{found["import"]}": {len(ids)} gift(s), transactionId {shown}{more}'
                )
        if item["dead_letters"]:
            lines.append(f"  dead letters: {item['dead_letters']} (giftsync dlq list)")
    return "\n".join(lines)
