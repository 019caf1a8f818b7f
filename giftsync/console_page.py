"""The operator console's HTML: plain data in, one self-contained page out.

Rendering is pure (no Redis, no request): :mod:`giftsync.console` gathers a
:class:`TenantView` per tenant and hands them here. Every value that came from Redis, a
tenant file or Virtuous is escaped; the page has no script and loads nothing from
elsewhere, so its Content-Security-Policy can forbid both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Any

# Longest reason shown in a table cell; the rest is in ``giftsync dlq list --json``.
MAX_REASON_CHARS = 400

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#1d2733;background:#f4f6f8}
header{background:#23395d;color:#fff;padding:10px 24px;display:flex;align-items:center;gap:16px}
header h1{font-size:20px;margin:0;flex:1}header a{color:#dce8ff}
header button{background:none;border:1px solid #dce8ff;color:#dce8ff;border-radius:4px;
padding:3px 10px;cursor:pointer}
main{padding:12px 24px}section.tenant{background:#fff;border:1px solid #cdd6df;
border-radius:6px;margin:16px 0;padding:12px 16px}h2{margin:4px 0 8px;font-size:18px}
h3{font-size:15px;margin:14px 0 6px}table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #e1e6ec;padding:4px 8px;text-align:left;font-size:13px;
vertical-align:top}th{background:#eef2f6}.states span{display:inline-block;margin:2px 6px 2px 0;
padding:2px 8px;border-radius:10px;background:#eef2f6;font-size:13px}
.bar{background:#e3e8ee;border-radius:4px;height:10px;width:320px;display:inline-block}
.bar i{display:block;height:10px;border-radius:4px;background:#2e7d32}
.bar i.high{background:#c77700}.bar i.full{background:#b3261e}
.paused{background:#fdecea;border:1px solid #b3261e;padding:6px 10px;border-radius:4px}
.notice{background:#e8f3ea;border:1px solid #2e7d32;padding:6px 10px;border-radius:4px}
.muted{color:#6b7785}.reason{color:#8a4b08}form.inline{display:inline;margin:0}
button.replay{background:#23395d;color:#fff;border:0;padding:4px 12px;border-radius:4px;
cursor:pointer}
"""


@dataclass(frozen=True)
class ReviewBatch:
    """Gifts of one Import Tool import that wait for a person, by transactionId."""

    import_name: str
    count: int
    transaction_ids: tuple[str, ...]


@dataclass(frozen=True)
class Quarantined:
    """One gift Virtuous refused, with its reason."""

    member: str
    reason: str
    at_ms: int


@dataclass(frozen=True)
class Letter:
    """One dead letter as the page shows it."""

    message_id: str
    actor: str
    attempts: int
    failed_ms: int
    reason: str
    subject: str


@dataclass(frozen=True)
class TenantView:
    """Everything the page shows about one tenant (tenant "" holds letters of no tenant)."""

    name: str
    mode: str = ""
    states: dict[str, int] = field(default_factory=dict)
    calls_in_window: int = 0
    calls_cap: int = 0
    window_seconds: float = 3600.0
    blocked_seconds: float = 0.0
    paused: str | None = None
    oldest_buffered_seconds: float | None = None
    oldest_unconfirmed: dict[str, Any] | None = None
    review: list[ReviewBatch] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    quarantined_total: int = 0
    letters: list[Letter] = field(default_factory=list)


def _e(value: object) -> str:
    return escape("" if value is None else str(value))


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(text: str) -> str:
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS] + "…"


def _budget(view: TenantView) -> str:
    share = view.calls_in_window / view.calls_cap if view.calls_cap else 0.0
    level = "full" if share >= 0.97 else ("high" if share >= 0.85 else "")
    width = min(share, 1.0) * 100
    blocked = (
        f' <span class="reason">blocked by a 429 for {view.blocked_seconds:.0f}s more</span>'
        if view.blocked_seconds
        else ""
    )
    return (
        f'<p class="budget">Budget: <b>{view.calls_in_window}</b> of {view.calls_cap} calls '
        f"used in the current {view.window_seconds:g}s window ({share:.1%}) "
        f'<span class="bar"><i class="{level}" style="width:{width:.1f}%"></i></span>'
        f"{blocked}</p>"
    )


def _states(view: TenantView) -> str:
    shown = [(state, n) for state, n in view.states.items() if n]
    if not shown:
        return '<p class="states muted">No gifts yet.</p>'
    spans = "".join(
        f'<span data-state="{_e(state)}">{_e(state)} <b>{n}</b></span>' for state, n in shown
    )
    return f'<p class="states">{spans}</p>'


def _ages(view: TenantView) -> str:
    parts = []
    if view.oldest_buffered_seconds is not None:
        parts.append(f"oldest buffered entry {view.oldest_buffered_seconds:g}s")
    if view.oldest_unconfirmed:
        oldest = view.oldest_unconfirmed
        parts.append(f"oldest unconfirmed {_e(oldest['member'])} ({oldest['age_seconds']:g}s)")
    return f'<p class="muted">{"; ".join(parts)}</p>' if parts else ""


def _review(view: TenantView) -> str:
    if not view.review:
        return ""
    rows = "".join(
        f"<tr><td>{_e(b.import_name)}</td><td>{b.count}</td>"
        f'<td class="muted">{_e(", ".join(b.transaction_ids))}</td></tr>'
        for b in view.review
    )
    total = sum(b.count for b in view.review)
    return (
        f'<h3>Needs review in the Import Tool ({total})</h3><table class="review">'
        f"<tr><th>Import</th><th>gifts</th><th>transactionIds to find in it</th></tr>{rows}</table>"
    )


def _quarantined(view: TenantView) -> str:
    if not view.quarantined_total:
        return ""
    rows = "".join(
        f"<tr><td>{_e(q.member)}</td><td>{_when(q.at_ms)}</td>"
        f'<td class="reason">{_e(_short(q.reason))}</td></tr>'
        for q in view.quarantined
    )
    more = view.quarantined_total - len(view.quarantined)
    tail = f'<p class="muted">and {more} older</p>' if more > 0 else ""
    return (
        f"<h3>Quarantined ({view.quarantined_total})</h3>"
        f'<table class="quarantined"><tr><th>record</th><th>when</th>'
        f"<th>Virtuous said</th></tr>{rows}</table>{tail}"
    )


def _letters(view: TenantView, csrf: str) -> str:
    if not view.letters:
        return ""
    rows = "".join(
        f'<tr data-message="{_e(d.message_id)}"><td>{_e(d.message_id)}</td><td>{_e(d.actor)}'
        f"</td><td>{_e(d.subject)}</td><td>{d.attempts}</td><td>{_when(d.failed_ms)}</td>"
        f'<td class="reason">{_e(_short(d.reason))}</td><td>'
        '<form class="inline" method="post" action="/replay">'
        f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
        f'<input type="hidden" name="message_id" value="{_e(d.message_id)}">'
        '<button class="replay" type="submit">Replay</button></form></td></tr>'
        for d in view.letters
    )
    return (
        f"<h3>Dead letters ({len(view.letters)})</h3>"
        '<table class="dead-letters"><tr><th>message</th><th>actor</th><th>carries</th>'
        f"<th>attempts</th><th>failed</th><th>last error</th><th></th></tr>{rows}</table>"
    )


def _tenant(view: TenantView, csrf: str) -> str:
    if not view.name:
        return (
            '<section class="tenant" data-tenant="">'
            f"<h2>Dead letters of no tenant</h2>{_letters(view, csrf)}</section>"
        )
    paused = (
        f'<p class="paused">PAUSED: {_e(view.paused)} (<code>giftsync resume --tenant '
        f"{_e(view.name)}</code> once the token is fixed)</p>"
        if view.paused
        else ""
    )
    return (
        f'<section class="tenant" id="tenant-{_e(view.name)}" data-tenant="{_e(view.name)}">'
        f'<h2>{_e(view.name)} <span class="muted">({_e(view.mode)})</span></h2>{paused}'
        f"{_states(view)}{_budget(view)}{_ages(view)}{_review(view)}{_quarantined(view)}"
        f"{_letters(view, csrf)}</section>"
    )


def render_page(
    views: Sequence[TenantView], *, csrf: str, notice: str | None, logout: bool, now_ms: int
) -> str:
    """The whole console page."""
    banner = f'<p class="notice">{_e(notice)}</p>' if notice else ""
    out = (
        '<form class="inline" method="post" action="/logout">'
        f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
        '<button type="submit">Log out</button></form>'
        if logout
        else ""
    )
    body = "".join(_tenant(view, csrf) for view in views)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>giftsync console</title>"
        f'<meta name="viewport" content="width=device-width"><style>{_STYLE}</style></head>'
        f"<body><header><h1>giftsync console</h1><span>as of {_when(now_ms)}</span>"
        f'<a href="/">Refresh</a>{out}</header><main>{banner}{body}</main></body></html>'
    )


def render_login(*, error: str | None) -> str:
    """The login form (a token, posted to /login, answered with a session cookie)."""
    problem = f'<p class="paused">{_e(error)}</p>' if error else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>giftsync console: log in</title><style>{_STYLE}</style></head><body>"
        "<header><h1>giftsync console</h1></header><main>"
        f'<section class="tenant"><h2>Log in</h2>{problem}'
        '<form method="post" action="/login"><label>Console token '
        '<input type="password" name="token" id="token" autocomplete="current-password" '
        'required></label> <button type="submit" id="login">Log in</button></form>'
        "</section></main></body></html>"
    )
