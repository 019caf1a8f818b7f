"""Secrets and personal data stay out of logs and metrics; tenants never borrow a token.

A demo-like run: three tenants (two batch, one real-time) with the demo's varied events (every
status, donors with and without a Contact, companies, split designations, refunds of batch
gifts, Contacts that do not exist), 5% of calls answered 500 and 2% dropped, and a real
``giftsync worker`` deployment serving ``/metrics``. Once every record has left the in-flight
states, the worker's log file and a /metrics scrape must hold no token, email, phone or street
address of any event.

Tenant isolation: the sandbox routes every call by its bearer token, so a gift sent with
another tenant's token would land in that tenant's organisation. Each organisation must hold
only its own tenant's transaction ids (the ids are unique across tenants), and
``/_admin/stats`` ``requests.by_token`` (token fingerprints, never tokens) must show only the
three tokens, each counted against its own organisation, and no 401.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.deployment import REPO, Deployment, deployment, tenant_table
from giftsync.embedded_redis import free_port
from giftsync.examples import demo_events
from giftsync.waiting import wait_for
from producers.publish import publish_many
from sandbox import token_fingerprint
from sandbox.config import FaultConfig, demo_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODES = {"hope-shelter": "batch", "river-arts": "real_time", "north-food-bank": "batch"}
TOKENS = {
    "hope-shelter": ("VIRTUOUS_TOKEN_HOPE", "demo-token-hope"),
    "river-arts": ("VIRTUOUS_TOKEN_RIVER", "demo-token-river"),
    "north-food-bank": ("VIRTUOUS_TOKEN_NORTH", "demo-token-north"),
}
IN_FLIGHT = ("buffered", "batched", "queued")
EVENTS = 600
BIG_CAP = 1_000_000


def tenants(url: str) -> str:
    return "".join(
        tenant_table(
            name,
            url,
            TOKENS[name][0],
            mode=mode,
            calls_per_hour=BIG_CAP,
            batch_max_wait_seconds=0.5,
        )
        for name, mode in MODES.items()
    )


def start_worker_with_metrics(dep: Deployment, port: int) -> Path:
    """``giftsync worker`` as production runs it (INFO logs, /metrics on ``port``)."""
    assert dep.log_dir is not None
    path = dep.log_dir / "worker-metrics.log"
    with path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "giftsync.cli", "worker", "--processes", "2", "--threads", "8"],
            cwd=REPO,
            env={**dep.env, "GIFTSYNC_METRICS_PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    dep.workers.append(proc)
    return path


def personal_data(events: list[dict[str, Any]]) -> set[str]:
    """Every email, phone and street address line in the events."""
    found: set[str] = set()
    for event in events:
        owner = event["record"]["owner"]
        found.update(v for v in (owner.get("email"), owner.get("phone")) if v)
        if owner.get("address") and owner["address"].get("line1"):
            found.add(owner["address"]["line1"])
    return found


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[tuple[Deployment, list[dict[str, Any]], str, str]]:
    """The finished demo-like run: deployment, events, worker log text, /metrics text."""
    demo = demo_config(faults=FaultConfig(fail_rate=0.05, drop_rate=0.02), seed=4)
    # A budget the run cannot exhaust: this test is about what leaks, not about pacing.
    config = replace(demo, orgs=[replace(o, calls_per_hour=BIG_CAP) for o in demo.orgs])
    tmp_path = tmp_path_factory.mktemp("secrets")
    with deployment(tmp_path, redis_url, tenants=tenants, sandbox_config=config) as dep:
        port = free_port()
        log_path = start_worker_with_metrics(dep, port)
        events = list(demo_events(EVENTS, list(MODES)))
        publish_many(events)

        def settled() -> bool:
            counts = {t: dep.state_counts(t) for t in MODES}
            return sum(sum(c.values()) for c in counts.values()) == EVENTS and not any(
                c.get(state) for c in counts.values() for state in IN_FLIGHT
            )

        wait_for(settled, timeout=180, interval=0.25, what="every record out of flight")
        scrape = wait_for(lambda: _scrape(port), timeout=30, what="a /metrics scrape")
        yield dep, events, log_path.read_text(encoding="utf-8", errors="replace"), scrape


def _scrape(port: int) -> str | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


def test_logs_and_metrics_hold_no_token_or_personal_data(
    run: tuple[Deployment, list[dict[str, Any]], str, str],
) -> None:
    _dep, events, logs, scrape = run
    secrets = {token for _env, token in TOKENS.values()} | personal_data(events)
    assert len(secrets) > 100, "the events carry too little personal data to prove anything"
    # The run did log and count things, including failures.
    assert "giftsync_gifts_submitted_total" in scrape and '"event"' in logs
    assert "retrying" in logs or "actor_failed" in logs, "no failure was logged"
    for name, text in (("worker log", logs), ("/metrics", scrape)):
        leaked = sorted(s for s in secrets if s in text)
        assert not leaked, f"{name} holds {len(leaked)} secret(s), e.g. {leaked[:3]}"
    # Nor an email of any shape, in case one came from somewhere else.
    assert "@example.org" not in logs and "@example.org" not in scrape


def test_each_tenants_gifts_go_only_with_its_own_token(
    run: tuple[Deployment, list[dict[str, Any]], str, str],
) -> None:
    dep, events, _logs, _scrape = run
    own = {name: {str(e["record"]["id"]) for e in events if e["tenant"] == name} for name in MODES}
    imports = dep.admin("GET", "imports")
    gifts = dep.admin("GET", "gifts")
    held = dep.admin("GET", "held")
    for name in MODES:
        landed = {entry["transactionId"] for batch in imports[name] for entry in batch["entries"]}
        landed |= {g["transactionId"] for g in gifts[name] if g.get("transactionId")}
        landed |= {h["transactionId"] for h in held[name] if h.get("transactionId")}
        assert landed, f"{name} received nothing"
        assert landed <= own[name], f"{name} holds another tenant's gifts: {landed - own[name]}"
    requests = dep.admin("GET", "stats")["requests"]
    expected = {token_fingerprint(token): name for name, (_env, token) in TOKENS.items()}
    assert {fp: entry["org"] for fp, entry in requests["by_token"].items()} == expected
    assert "401" not in requests["by_status"]
    print(f"\nrequests by token: {requests['by_token']}")
