"""The sandbox's gate over real HTTP: bearer tokens, the per-organisation rolling cap and its
headers, 429 with Retry-After, other integrations' spend, the busiest-window report, and the
request counts per endpoint and token."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from giftsync.waiting import wait_for
from sandbox import RunningSandbox, SandboxConfig, token_fingerprint
from tests.sandbox_fixtures import (
    TOKEN_A,
    TOKEN_A2,
    TOKEN_B,
    client,
    gift_transaction,
    org_stats,
    small_config,
)

pytest_plugins = ["tests.sandbox_fixtures"]
pytestmark = pytest.mark.integration

Factory = Callable[[SandboxConfig], RunningSandbox]
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def _rate_header_names(response: httpx.Response) -> set[str]:
    """The rate-limit headers an answer carries, lower-cased."""
    return {
        name.lower()
        for name in response.headers
        if name.lower().startswith(("x-ratelimit", "x-rate-limit", "ratelimit", "retry-after"))
    }


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN_A}", "Bearer"])
def test_missing_or_bad_token_gets_plain_text_401(
    sandbox: RunningSandbox, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    r = httpx.post(
        f"{sandbox.url}/api/v2/Gift/Transaction", json=gift_transaction("t1"), headers=headers
    )
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("text/plain")
    assert "denied" in r.text
    assert "X-RateLimit-Limit" not in r.headers
    with sandbox.state.lock:
        assert not sandbox.state.org("alpha").held


def test_a_bad_token_costs_no_budget_and_is_counted_by_fingerprint(
    sandbox: RunningSandbox, admin: httpx.Client
) -> None:
    httpx.get(f"{sandbox.url}/api/Gift/1", headers={"Authorization": "Bearer nope"})
    stats = admin.get("/_admin/stats").json()
    assert stats["orgs"]["alpha"]["calls"] == 0
    assert stats["requests"]["by_token"][token_fingerprint("nope")] == {"count": 1, "org": None}
    assert "nope" not in str(stats)


@pytest.mark.parametrize(
    "path,method,status",
    [
        ("/api/v2/Gift/Transaction", "POST", 200),
        ("/api/v2/Gift/Transaction", "POST-bad", 400),
        ("/api/Gift/999", "GET", 404),
    ],
)
def test_every_answer_carries_the_rate_limit_headers(
    api: httpx.Client, path: str, method: str, status: int
) -> None:
    if method == "POST":
        r = api.post(path, json=gift_transaction("t1"))
    elif method == "POST-bad":
        r = api.post(path, content=b"{not json")
    else:
        r = api.get(path)
    assert r.status_code == status
    # By default exactly the documented headers: none that no Virtuous source names.
    assert _rate_header_names(r) == {name.lower() for name in RATE_HEADERS}
    assert r.headers["X-RateLimit-Limit"] == "10000"
    assert r.headers["X-RateLimit-Remaining"] == "9999"
    # A one-hour window: Reset is whole Unix seconds, an hour ahead.
    reset = int(r.headers["X-RateLimit-Reset"])
    assert time.time() + 3590 < reset < time.time() + 3610


def test_cap_is_shared_by_every_token_of_the_org_and_429_carries_retry_after(
    make_sandbox: Factory,
) -> None:
    sb = make_sandbox(small_config(alpha={"calls_per_hour": 20, "window_seconds": 2.0}))
    with client(sb, TOKEN_A) as a1, client(sb, TOKEN_A2) as a2, client(sb, TOKEN_B) as b:
        remaining = [
            int(c.get("/api/Gift/1").headers["X-RateLimit-Remaining"]) for c in [a1, a2] * 10
        ]
        assert remaining == list(range(19, -1, -1))
        refused = a1.get("/api/Gift/1")
        assert refused.status_code == 429
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        retry_after = int(refused.headers["Retry-After"])
        assert 1 <= retry_after <= 2
        # No Virtuous source has X-RateLimit-Reset-After or any header but these.
        assert _rate_header_names(refused) == {n.lower() for n in (*RATE_HEADERS, "Retry-After")}
        # A compressed hour gives Reset with milliseconds: the window fully frees by then.
        assert time.time() < float(refused.headers["X-RateLimit-Reset"]) <= time.time() + 2.01
        assert "quota" in refused.json()["message"]
        assert a2.get("/api/Gift/1").status_code == 429
        # Another organisation's budget is untouched.
        assert b.get("/api/Gift/1").status_code == 404
        # 429s are not counted: once the window rolls on, calls go through again.
        wait_for(
            lambda: a1.get("/api/Gift/1").status_code == 404,
            timeout=4,
            interval=0.05,
            what="the window to free a call",
        )
    stats = org_stats(client(sb, None))
    assert stats["rate_limited"] >= 2
    assert stats["max_calls_in_window"] == 20


def test_rejected_calls_count_against_the_cap(make_sandbox: Factory) -> None:
    sb = make_sandbox(small_config(alpha={"calls_per_hour": 3, "window_seconds": 60.0}))
    with client(sb) as api:
        assert [
            api.post("/api/v2/Gift/Transaction", content=b"{").status_code for _ in range(3)
        ] == [400, 400, 400]
        assert api.get("/api/Gift/1").status_code == 429


def test_other_integrations_spend_the_budget(make_sandbox: Factory) -> None:
    sb = make_sandbox(
        small_config(
            alpha={
                "calls_per_hour": 20,
                "window_seconds": 2.0,
                "other_integrations_calls_per_hour": 10,
            }
        )
    )
    with client(sb) as api, client(sb, None) as admin:
        wait_for(
            lambda: org_stats(admin)["other_integrations_calls"] >= 4,
            timeout=3,
            what="other integrations to call",
        )
        first = api.get("/api/Gift/1")
        assert int(first.headers["X-RateLimit-Remaining"]) <= 20 - 1 - 4
        # A client that trusts only its own count (20 calls) is refused before it gets there.
        statuses = [api.get("/api/Gift/1").status_code for _ in range(19)]
        assert 429 in statuses
        stats = org_stats(admin)
        assert stats["max_calls_in_window"] == 20
        assert stats["max_api_calls_in_window"] < 20


def test_busiest_rolling_window_is_reported_exactly(make_sandbox: Factory) -> None:
    sb = make_sandbox(small_config(alpha={"calls_per_hour": 1000, "window_seconds": 1.0}))
    with client(sb) as api, client(sb, None) as admin:
        for _ in range(30):
            api.get("/api/Gift/1")
        assert org_stats(admin)["max_calls_in_window"] == 30
        wait_for(
            lambda: org_stats(admin)["calls_in_window"] == 0,
            timeout=3,
            what="the window to empty",
        )
        for _ in range(5):
            api.get("/api/Gift/1")
        stats = org_stats(admin)
        assert stats["calls_in_window"] == 5
        assert stats["max_calls_in_window"] == 30
        assert stats["calls"] == 35


def test_request_counts_per_endpoint_template_and_token(
    sandbox: RunningSandbox, admin: httpx.Client
) -> None:
    with client(sandbox, TOKEN_A) as a1, client(sandbox, TOKEN_A2) as a2:
        a1.get("/api/Gift/1")
        a1.get("/api/Gift/2")
        a2.get("/api/Gift/WeGive/abc")
        a2.post("/api/v2/Gift/Transaction", json=gift_transaction("t1"))
    requests = admin.get("/_admin/stats").json()["requests"]
    assert requests["by_endpoint"]["GET /api/Gift/{id:int}"] == {
        "count": 2,
        "by_status": {"404": 2},
    }
    assert requests["by_endpoint"]["GET /api/Gift/{source}/{transaction_id}"]["count"] == 1
    assert requests["by_endpoint"]["POST /api/v2/Gift/Transaction"]["by_status"] == {"200": 1}
    assert requests["by_token"][token_fingerprint(TOKEN_A)] == {"count": 2, "org": "alpha"}
    assert requests["by_token"][token_fingerprint(TOKEN_A2)] == {"count": 2, "org": "alpha"}
    assert TOKEN_A not in str(requests)


@pytest.mark.parametrize(
    ("mode", "reset_from_now"),
    [
        ("reset-when-window-empties", (1.5, 2.01)),  # the newest call leaves then
        ("reset-when-next-call-frees", (0.0, 1.51)),  # the oldest call (0.5 s older) leaves then
        ("no-reset", None),
        ("fixed-window", (1.0, 1.96)),  # the fixed window's end
    ],
)
def test_each_reading_of_the_rate_limit_headers(
    make_sandbox: Factory, mode: str, reset_from_now: tuple[float, float] | None
) -> None:
    sb = make_sandbox(
        small_config(alpha={"calls_per_hour": 4, "window_seconds": 2.0, "rate_limit_headers": mode})
    )
    with client(sb, TOKEN_A) as a:
        if mode == "fixed-window":
            # Shapes the timeline (all calls in one fixed window), not a wait for work.
            time.sleep(2.0 - time.time() % 2.0 + 0.05)
        first = a.get("/api/Gift/1")
        time.sleep(0.5)  # spaces the calls so the two resets differ, not a wait for work
        answers = [first] + [a.get("/api/Gift/1") for _ in range(3)]
        refused = a.get("/api/Gift/1")
    assert [int(r.headers["X-RateLimit-Remaining"]) for r in answers] == [3, 2, 1, 0]
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    for answer in (answers[-1], refused):
        assert answer.headers["X-RateLimit-Limit"] == "4"
        assert "X-RateLimit-Reset-After" not in answer.headers
        if reset_from_now is None:
            assert "X-RateLimit-Reset" not in answer.headers
            continue
        low, high = reset_from_now
        ahead = float(answer.headers["X-RateLimit-Reset"]) - time.time()
        assert low - 0.2 <= ahead <= high, (mode, ahead)
