"""``GET /``: the Import Tool page a nonprofit's staff would see (seed 000).

Server-rendered HTML with no external assets: a summary per organisation, then each import
batch with its three tabs (Ready for Import, Update Needed, Match Needed, plus what was
imported), each gift's matched contact or the reason it has none, and an Import button that
posts to ``/_admin/imports/{id}/import``. Match Needed rows can be resolved from the page by
creating the contact or naming one. A few lines of inline script switch tabs; everything else
works as plain forms.
"""

from __future__ import annotations

from html import escape
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from sandbox.holding import TAB_TITLES, ImportBatch, ImportEntry
from sandbox.state import SandboxState

# Newest batches shown in full, and rows shown per tab: a giving-day backlog must not make
# the page unreadable.
MAX_BATCHES = 50
MAX_ROWS = 200
TABS = ("ready", "update", "match", "imported")

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#1d2733;background:#f4f6f8}
header{background:#1f4e79;color:#fff;padding:12px 24px}header a{color:#cfe3ff}
main{padding:16px 24px}table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #dde3ea;padding:6px 8px;text-align:left;font-size:14px}
th{background:#e9eef3}.batch{background:#fff;border:1px solid #cdd6df;border-radius:6px;
margin:16px 0;padding:12px 16px}.tabs{display:flex;gap:4px;margin:8px 0}
.tab{border:1px solid #9fb3c8;background:#eef3f8;padding:6px 12px;cursor:pointer;border-radius:4px}
.tab.active{background:#1f4e79;color:#fff}.panel{display:none}.panel.active{display:block}
.status{font-size:13px;background:#e9eef3;border-radius:10px;padding:2px 8px;margin-left:8px}
.reason{color:#8a4b08}.import{background:#2e7d32;color:#fff;border:0;padding:8px 18px;
border-radius:4px;font-size:15px;cursor:pointer}.import:disabled{background:#9aa9b5}
form.inline{display:inline}
"""

_SCRIPT = """
document.querySelectorAll('.tab').forEach(function (tab) {
  tab.addEventListener('click', function () {
    var batch = tab.closest('.batch');
    batch.querySelectorAll('.tab').forEach(function (t) { t.classList.remove('active'); });
    batch.querySelectorAll('.panel').forEach(function (p) { p.classList.remove('active'); });
    tab.classList.add('active');
    document.getElementById(tab.dataset.panel).classList.add('active');
  });
});
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _donor(entry: ImportEntry) -> str:
    c = entry.pending.contact
    if c is None:
        return "<em>no contact data</em>"
    parts = [c.display_name(), c.email, c.phone]
    if not c.address.is_empty():
        parts.append(", ".join(p for p in (c.address.city, c.address.state, c.address.postal) if p))
    refs = ", ".join(f"{s}/{r}" for s, r in c.references)
    if refs:
        parts.append(f"ref {refs}")
    if c.contact_id is not None:
        parts.append(f"contact #{c.contact_id}")
    return "<br>".join(_e(p) for p in parts if p)


def _outcome(batch: ImportBatch, entry: ImportEntry, contacts: dict[int, Any]) -> str:
    if entry.tab == "imported":
        return f"Gift #{entry.gift_id} for contact #{entry.contact_id}"
    if entry.contact_id is not None:
        name = contacts.get(entry.contact_id, {}).get("name")
        text = f"Contact #{entry.contact_id} {_e(name)} <small>({_e(entry.reason)})</small>"
        if entry.differences:
            text += "<br><span class='reason'>" + _e("; ".join(entry.differences)) + "</span>"
        return text
    action = f"/_admin/imports/{batch.id}/entries/{entry.index}/resolve"
    return (
        f"<span class='reason'>{_e(entry.reason)}</span><br>"
        f"<form class='inline' method='post' action='{action}'>"
        f"<input type='hidden' name='createContact' value='true'>"
        f"<button id='create-{batch.id}-{entry.index}'>Create contact</button></form> "
        f"<form class='inline' method='post' action='{action}'>"
        f"<input name='contactId' size='6' placeholder='contact id'>"
        f"<button>Match</button></form>"
    )


def _panel(batch: ImportBatch, tab: str, contacts: dict[int, Any], active: bool) -> str:
    entries = [e for e in batch.entries if e.tab == tab]
    rows = []
    for entry in entries[:MAX_ROWS]:
        g = entry.pending.fields
        ref = "/".join(entry.pending.ref) if entry.pending.ref else "(no reference)"
        rows.append(
            f"<tr data-index='{entry.index}'><td>{entry.index}</td><td>{_e(ref)}</td>"
            f"<td>{_donor(entry)}</td><td>{_e(g['amount'])}</td>"
            f"<td>{_e((g['giftDate'] or '')[:10])}</td>"
            f"<td>{_outcome(batch, entry, contacts)}</td></tr>"
        )
    more = len(entries) - MAX_ROWS
    if more > 0:
        rows.append(f"<tr><td colspan='6'>… and {more} more</td></tr>")
    if not entries:
        rows.append("<tr><td colspan='6'><em>Nothing here.</em></td></tr>")
    cls = "panel active" if active else "panel"
    return (
        f"<div class='{cls}' id='panel-{batch.id}-{tab}'><table><tr><th>#</th>"
        f"<th>Transaction</th><th>Donor (incoming)</th><th>Amount</th><th>Date</th>"
        f"<th>Matched contact / reason</th></tr>{''.join(rows)}</table></div>"
    )


def _batch(batch: ImportBatch, contacts: dict[int, Any]) -> str:
    counts = batch.counts()
    first = next((t for t in TABS if counts[t]), "ready")
    tabs = "".join(
        f"<button class='tab{' active' if t == first else ''}' id='tab-{batch.id}-{t}' "
        f"data-panel='panel-{batch.id}-{t}'>{TAB_TITLES[t]} "
        f"(<span class='count' id='count-{batch.id}-{t}'>{counts[t]}</span>)</button>"
        for t in TABS
    )
    panels = "".join(_panel(batch, t, contacts, t == first) for t in TABS)
    resolvable = counts["ready"] + counts["update"]
    disabled = "" if resolvable else " disabled"
    return (
        f"<article class='batch' id='batch-{batch.id}' data-batch='{batch.id}'>"
        f"<h3>{_e(batch.name)}<span class='status' id='status-{batch.id}'>"
        f"{_e(batch.status)}</span></h3>"
        f"<p>{_e(batch.org)} · batch {batch.id} · {len(batch.entries)} gifts · "
        f"received {_e(batch.created[:19])} UTC</p><div class='tabs'>{tabs}</div>{panels}"
        f"<form method='post' action='/_admin/imports/{batch.id}/import'>"
        f"<button class='import' id='import-{batch.id}'{disabled}>Import "
        f"{resolvable} gifts</button></form></article>"
    )


def render(state: SandboxState) -> str:
    """The whole page, from the state as it is now."""
    with state.lock:
        summary = []
        batches: list[tuple[ImportBatch, dict[int, Any]]] = []
        needs: list[str] = []
        for store in state.orgs.values():
            s = store.summary()
            lim = store.limiter
            summary.append(
                f"<tr id='org-{_e(store.name)}'><td>{_e(store.name)}</td><td>{s['gifts']}</td>"
                f"<td>{s['contacts']}</td><td>{s['held']}</td><td>{s['needs_update']}</td>"
                f"<td>{s['imports']}</td><td>{lim.in_window()} / {lim.limit} per "
                f"{lim.window:g}s</td><td>{lim.max_in_window}</td>"
                f"<td>{store.counters.rate_limited}</td></tr>"
            )
            batches.extend((b, store.contacts) for b in store.imports.values())
            needs.extend(
                f"<tr><td>{_e(store.name)}</td><td>{h.id}</td>"
                f"<td>{_e('/'.join(h.gift.ref) if h.gift and h.gift.ref else '')}</td>"
                f"<td>{_e(h.gift.fields['amount'] if h.gift else '')}</td>"
                f"<td class='reason'>{_e(h.reason)}</td></tr>"
                for h in store.needs_update.values()
            )
        batches.sort(key=lambda pair: pair[0].id, reverse=True)
        shown = "".join(_batch(b, contacts) for b, contacts in batches[:MAX_BATCHES])
    hidden = len(batches) - MAX_BATCHES
    older = f"<p>… and {hidden} older batches (see /_admin/imports).</p>" if hidden > 0 else ""
    needs_html = "".join(needs) or "<tr><td colspan='5'><em>None.</em></td></tr>"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Import Tool · Virtuous sandbox</title>"
        f"<style>{_STYLE}</style></head><body><header><h1>Import Tool</h1>"
        "<p>Virtuous sandbox · <a href='/_admin/stats'>stats</a> · "
        "<a href='/_admin/state'>state</a></p></header><main>"
        "<h2>Organisations</h2><table id='orgs'><tr><th>Organisation</th><th>Gifts</th>"
        "<th>Contacts</th><th>Held</th><th>Needs update</th><th>Import batches</th>"
        "<th>Calls in window / cap</th><th>Busiest window</th><th>429s</th></tr>"
        f"{''.join(summary)}</table>"
        "<form method='post' action='/_admin/nightly'><p><button id='run-nightly'>"
        "Run the nightly batch now</button></p></form>"
        f"<h2>Import batches</h2>{shown or '<p><em>No import batches yet.</em></p>'}{older}"
        "<h2>Needs update</h2><table id='needs-update'><tr><th>Organisation</th><th>#</th>"
        f"<th>Transaction</th><th>Amount</th><th>Reason</th></tr>{needs_html}</table>"
        f"</main><script>{_SCRIPT}</script></body></html>"
    )


def routes(state: SandboxState) -> list[Route]:
    async def import_tool(request: Request) -> HTMLResponse:
        return HTMLResponse(render(state))

    return [Route("/", import_tool, methods=["GET"])]
