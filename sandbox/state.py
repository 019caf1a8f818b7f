"""The sandbox's whole in-memory state: organisations, ids, request counts, faults, webhooks.

uvicorn runs every handler on one event loop thread, but tests read the state from their own
thread, webhooks go out from worker threads and the nightly timer runs on another: so every
read or change goes through ``lock`` (an RLock). ``mutate()`` is the one way to change an
organisation: it holds the lock and, on the way out, hands the webhook events the change made
to the dispatcher.

Direct inspection from tests: ``state.org("hope-shelter").gifts`` etc. are live dicts; hold
``state.lock`` while reading them, or use ``snapshot()``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sandbox import nightly
from sandbox.config import OrgConfig, SandboxConfig
from sandbox.faults import FaultInjector
from sandbox.jsonio import json_default
from sandbox.store import OrgStore
from sandbox.timefmt import Clock
from sandbox.webhooks import Dispatcher

SNAPSHOT_TABLES = (
    "gifts",
    "contacts",
    "recurring_gifts",
    "projects",
    "segments",
    "imports",
    "held",
    "needs_update",
    "webhooks",
)


def token_fingerprint(token: str | None) -> str:
    """How a token appears in stats: never in full."""
    if not token:
        return "none"
    return "tok_" + hashlib.sha256(token.encode()).hexdigest()[:10]


class RequestStats:
    """Counts of /api requests by endpoint (route template), token and status."""

    def __init__(self) -> None:
        self.by_endpoint: Counter[tuple[str, int]] = Counter()
        self.by_token: Counter[str] = Counter()
        self.token_org: dict[str, str | None] = {}
        self.by_status: Counter[int] = Counter()
        self.total = 0

    def record(self, endpoint: str, fingerprint: str, org: str | None, status: int) -> None:
        self.total += 1
        self.by_endpoint[(endpoint, status)] += 1
        self.by_token[fingerprint] += 1
        self.token_org[fingerprint] = org
        self.by_status[status] += 1

    def to_json(self) -> dict[str, Any]:
        endpoints: dict[str, dict[str, Any]] = {}
        for (endpoint, status), n in sorted(self.by_endpoint.items()):
            entry = endpoints.setdefault(endpoint, {"count": 0, "by_status": {}})
            entry["count"] += n
            entry["by_status"][str(status)] = n
        return {
            "total": self.total,
            "by_endpoint": endpoints,
            "by_token": {
                fp: {"count": n, "org": self.token_org.get(fp)}
                for fp, n in sorted(self.by_token.items())
            },
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
        }


class SandboxState:
    """Everything the server holds. Create one per server; ``reset()`` empties it."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.clock = Clock()
        self.duplicate_response = config.duplicate_response
        self.webhook_bulk = config.webhook_bulk
        self.faults = FaultInjector(config.faults, config.org_faults, config.seed)
        self.webhooks = Dispatcher(config.webhook_max_attempts, config.webhook_timeout_seconds)
        self._build()

    def _build(self) -> None:
        self._ids: Counter[str] = Counter()
        self.orgs: dict[str, OrgStore] = {}
        self.tokens: dict[str, OrgStore] = {}
        self.requests = RequestStats()
        for org in self.config.orgs:
            self.add_org(org)

    def new_id(self, kind: str) -> int:
        """The next id of a kind (ids are unique across organisations)."""
        self._ids[kind] += 1
        return self._ids[kind]

    def reset(self) -> None:
        """Back to the configured start: no records, no counts, start-up faults, no webhooks."""
        with self.lock:
            self.duplicate_response = self.config.duplicate_response
            self.webhook_bulk = self.config.webhook_bulk
            self.faults.reset()
            self.webhooks.clear()
            self._build()

    def add_org(self, config: OrgConfig) -> OrgStore:
        """Add an organisation, or apply new settings to an existing one (keeping its data)."""
        with self.lock:
            store = self.orgs.get(config.name)
            previous: list[str] = []
            if store is None:
                store = OrgStore(config, self.new_id, self.clock)
                self.orgs[config.name] = store
            else:
                previous = list(store.config.tokens)
                store.configure(config)
            # Only this organisation's own old tokens: a sandbox serving thousands of
            # organisations is built in time linear in them.
            for token in previous:
                if token not in config.tokens and self.tokens.get(token) is store:
                    del self.tokens[token]
            for token in config.tokens:
                other = self.tokens.get(token)
                if other is not None and other is not store:
                    raise ValueError(f"token already belongs to organisation {other.name!r}")
                self.tokens[token] = store
            return store

    def org(self, name: str) -> OrgStore:
        return self.orgs[name]

    def org_for_token(self, token: str | None) -> OrgStore | None:
        return self.tokens.get(token) if token else None

    def orgs_named(self, name: str | None) -> list[OrgStore]:
        """One organisation by name, or all when ``name`` is None (KeyError if unknown)."""
        with self.lock:
            return [self.orgs[name]] if name else list(self.orgs.values())

    def publish(self, store: OrgStore) -> None:
        """Hand the store's queued webhook events to the dispatcher."""
        if store.events:
            events, store.events = store.events, []
            self.webhooks.publish(
                store.name,
                list(store.webhooks.values()),
                events,
                self.webhook_bulk,
                lambda: self.faults.drop_webhook(store.name),
            )

    @contextmanager
    def mutate(self, store: OrgStore) -> Iterator[OrgStore]:
        """Hold the lock while changing ``store``; publish its webhook events afterwards."""
        with self.lock:
            try:
                yield store
            finally:
                self.publish(store)

    def run_nightly(self, name: str | None = None) -> dict[str, Any]:
        """Run the nightly batch for one organisation or all."""
        out = {}
        for store in self.orgs_named(name):
            with self.mutate(store):
                out[store.name] = nightly.run_nightly(
                    store, self.config.create_contact_for_unmatched_gifts
                )
        return out

    def org_stats(self, store: OrgStore) -> dict[str, Any]:
        limiter = store.limiter
        verdict = limiter.peek()
        return {
            "calls": limiter.admitted,
            "calls_in_window": limiter.limit - verdict.remaining,
            "limit": limiter.limit,
            "window_seconds": limiter.window,
            "remaining": verdict.remaining,
            "max_calls_in_window": limiter.max_in_window,
            "max_api_calls_in_window": limiter.max_api_in_window,
            "other_integrations_calls": limiter.other_calls,
            "other_integrations_refused": limiter.other_refused,
            "rate_limited": store.counters.rate_limited,
            **store.counters.to_json(),
            **store.summary(),
            "faults_injected": self.faults.injected_for(store.name),
            "webhook_deliveries": self.webhooks.counts(store.name),
        }

    def stats(self) -> dict[str, Any]:
        """Everything ``GET /_admin/stats`` answers."""
        with self.lock:
            return {
                "requests": self.requests.to_json(),
                "orgs": {name: self.org_stats(s) for name, s in self.orgs.items()},
            }

    def snapshot(
        self, name: str | None = None, tables: Iterable[str] = SNAPSHOT_TABLES
    ) -> dict[str, Any]:
        """A deep, JSON-ready copy of one organisation's records (or all's): ``tables`` from
        gifts, contacts, recurring_gifts, projects, segments, imports, held, needs_update,
        webhooks."""
        views: dict[str, Callable[[OrgStore], list[Any]]] = {
            "gifts": lambda s: list(s.gifts.values()),
            "contacts": lambda s: list(s.contacts.values()),
            "recurring_gifts": lambda s: list(s.recurring_gifts.values()),
            "projects": lambda s: list(s.projects.values()),
            "segments": lambda s: list(s.segments.values()),
            "imports": lambda s: [b.to_json() for b in s.imports.values()],
            "held": lambda s: [h.to_json() for h in s.held.values()],
            "needs_update": lambda s: [h.to_json() for h in s.needs_update.values()],
            "webhooks": lambda s: [w.to_json() for w in s.webhooks.values()],
        }
        with self.lock:
            out = {
                store.name: {t: views[t](store) for t in tables} for store in self.orgs_named(name)
            }
            # One JSON round trip: a copy no later change can touch, with numbers as JSON has them.
            copied: dict[str, Any] = json.loads(json.dumps(out, default=json_default))
            return copied
