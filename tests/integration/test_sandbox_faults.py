"""Fault injection over real HTTP: 500s, slow answers, dropped connections (before and after
the request was applied), timeouts after apply, 429 bursts; per organisation, at start or at
run time, reproducible from a seed, and never on the admin routes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from giftsync.waiting import wait_for
from sandbox import FaultConfig, RunningSandbox, SandboxConfig
from tests.sandbox_fixtures import TOKEN_B, client, org_stats, seed_contacts, small_config

pytest_plugins = ["tests.sandbox_fixtures"]
pytestmark = pytest.mark.integration

Factory = Callable[[SandboxConfig], RunningSandbox]


@pytest.fixture
def faulty(make_sandbox: Factory) -> RunningSandbox:
    """A dedicated server (a stalled answer must not outlive into another test's server)."""
    return make_sandbox(small_config())


@pytest.fixture
def fapi(faulty: RunningSandbox) -> Iterator[httpx.Client]:
    with client(faulty) as c:
        yield c


@pytest.fixture
def fadmin(faulty: RunningSandbox) -> Iterator[httpx.Client]:
    with client(faulty, None) as c:
        yield c


def _gift_body(admin: httpx.Client, tid: str) -> dict[str, Any]:
    (donor,) = seed_contacts(admin, "alpha", {"lastName": f"Donor {tid}"})
    return {
        "contactId": donor,
        "transactionSource": "WeGive",
        "transactionId": tid,
        "giftDate": "2026-11-20",
        "amount": "5.00",
        "giftDesignations": [{"projectId": 101, "amount": "5.00"}],
    }


def _gift_count(sb: RunningSandbox) -> int:
    with sb.state.lock:
        return len(sb.state.org("alpha").gifts)


def _set(admin: httpx.Client, **faults: Any) -> None:
    r = admin.post("/_admin/faults", json=faults)
    assert r.status_code == 200, r.text


def test_fail_rate_answers_500_before_applying(
    faulty: RunningSandbox, fapi: httpx.Client, fadmin: httpx.Client
) -> None:
    body = _gift_body(fadmin, "f1")
    _set(fadmin, fail_rate=1.0)
    r = fapi.post("/api/Gift", json=body)
    assert r.status_code == 500
    assert r.json() == {"message": "An error has occurred."}
    assert "X-RateLimit-Remaining" in r.headers
    assert _gift_count(faulty) == 0
    assert org_stats(fadmin)["faults_injected"] == {"fail": 1}
    # The admin routes are never faulted.
    assert fadmin.get("/_admin/stats").status_code == 200
    _set(fadmin, fail_rate=0.0)
    assert fapi.post("/api/Gift", json=body).status_code == 200


def test_slow_answers_arrive_late_but_whole(fapi: httpx.Client, fadmin: httpx.Client) -> None:
    _set(fadmin, slow_rate=1.0, slow_seconds=0.3)
    started = time.monotonic()
    r = fapi.get("/api/Gift/1")
    assert r.status_code == 404
    assert time.monotonic() - started >= 0.3


def test_a_connection_dropped_before_applying_is_a_transport_error(
    faulty: RunningSandbox, fapi: httpx.Client, fadmin: httpx.Client
) -> None:
    body = _gift_body(fadmin, "d1")
    _set(fadmin, drop_rate=1.0, drop_after_apply_share=0.0)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        fapi.post("/api/Gift", json=body)
    assert _gift_count(faulty) == 0
    assert org_stats(fadmin)["faults_injected"] == {"drop": 1}


def test_a_connection_dropped_after_applying_leaves_the_gift(
    faulty: RunningSandbox, fapi: httpx.Client, fadmin: httpx.Client
) -> None:
    body = _gift_body(fadmin, "d2")
    _set(fadmin, drop_rate=1.0, drop_after_apply_share=1.0)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        fapi.post("/api/Gift", json=body)
    assert _gift_count(faulty) == 1
    _set(fadmin, drop_rate=0.0)
    # The careful client looks the gift up by its reference before sending again.
    assert fapi.get("/api/Gift/WeGive/d2").status_code == 200


def test_a_timeout_after_apply_applies_the_change(
    faulty: RunningSandbox, fadmin: httpx.Client
) -> None:
    body = _gift_body(fadmin, "s1")
    _set(fadmin, timeout_after_apply_rate=1.0, stall_seconds=3.0)
    with client(faulty, timeout=0.3) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post("/api/Gift", json=body)
    wait_for(lambda: _gift_count(faulty) == 1, what="the stalled gift to be applied")
    assert org_stats(fadmin)["faults_injected"] == {"timeout_after_apply": 1}


def test_a_429_burst_refuses_the_next_calls(fapi: httpx.Client, fadmin: httpx.Client) -> None:
    _set(fadmin, burst_429=3, burst_retry_after=2)
    answers = [fapi.get("/api/Gift/1") for _ in range(4)]
    assert [a.status_code for a in answers] == [429, 429, 429, 404]
    assert answers[0].headers["Retry-After"] == "2"
    assert answers[0].headers["X-RateLimit-Remaining"] == "0"
    stats = org_stats(fadmin)
    assert (stats["rate_limited"], stats["calls"]) == (3, 1)


def test_faults_can_target_one_organisation(
    faulty: RunningSandbox, fapi: httpx.Client, fadmin: httpx.Client
) -> None:
    _set(fadmin, org="alpha", fail_rate=1.0)
    with client(faulty, TOKEN_B) as beta:
        assert beta.get("/api/Gift/1").status_code == 404
    assert fapi.get("/api/Gift/1").status_code == 500
    snapshot = fadmin.get("/_admin/faults").json()
    assert snapshot["orgs"]["alpha"]["fail_rate"] == 1.0
    assert snapshot["global"]["fail_rate"] == 0.0
    _set(fadmin, org="alpha", clear=True)
    assert fapi.get("/api/Gift/1").status_code == 404
    assert fadmin.post("/_admin/faults", json={"fail_rat": 1}).status_code == 400
    assert fadmin.post("/_admin/faults", json={"fail_rate": 2}).status_code == 400
    assert fadmin.post("/_admin/faults", json={"org": "nobody"}).status_code == 404


def test_faults_set_at_start_replay_from_the_seed(make_sandbox: Factory) -> None:
    def outcomes() -> list[int]:
        sb = make_sandbox(small_config(faults=FaultConfig(fail_rate=0.5), seed=42))
        with client(sb) as api:
            codes = [api.get("/api/Gift/1").status_code for _ in range(40)]
        sb.stop()
        return codes

    first, second = outcomes(), outcomes()
    assert first == second
    assert 5 < first.count(500) < 35
    assert set(first) == {404, 500}


def test_reset_restores_the_start_up_faults(make_sandbox: Factory) -> None:
    sb = make_sandbox(small_config(org_faults={"alpha": FaultConfig(burst_429=1)}))
    with client(sb) as api, client(sb, None) as admin:
        assert api.get("/api/Gift/1").status_code == 429
        assert api.get("/api/Gift/1").status_code == 404
        _set(admin, fail_rate=1.0)
        admin.post("/_admin/reset")
        assert api.get("/api/Gift/1").status_code == 429
        assert api.get("/api/Gift/1").status_code == 404
