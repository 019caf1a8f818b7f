"""Real-time mode and recurring gifts end to end, against the sandbox over HTTP."""

from __future__ import annotations

import random
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from benchmarks.deployment import Deployment, deployment, make_config, org, tenant_table, text
from giftsync.examples import FUNDS, donor, scheduled_donation, transaction, version_at
from giftsync.waiting import wait_for
from producers.publish import publish_many
from sandbox.config import FaultConfig

pytestmark = pytest.mark.integration


def rt_tx(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """A transaction whose donor has no Contact yet (the worker finds or creates one)."""
    kwargs.setdefault("contact_id", None)
    return transaction(*args, **kwargs)


# Real-time tests are about correctness, not the cap: give them a budget they cannot exhaust.
BIG_CAP = 1_000_000


def rt_tenant(url: str, **settings: Any) -> str:
    settings.setdefault("calls_per_hour", BIG_CAP)
    return tenant_table("river-arts", url, "VIRTUOUS_TOKEN_RIVER", mode="real_time", **settings)


def rt_config(**kwargs: Any) -> Any:
    return make_config(org("river-arts", "demo-token-river", calls_per_hour=BIG_CAP), **kwargs)


def gifts(dep: Deployment) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = dep.admin("GET", "gifts")["river-arts"]
    return found


def sent(dep: Deployment) -> int:
    return dep.state_counts("river-arts").get("sent", 0)


def test_creates_return_real_ids_into_the_ledger_and_writeback(
    tmp_path: Path, redis_url: str
) -> None:
    with deployment(tmp_path, redis_url, tenants=rt_tenant, sandbox_config=rt_config()) as dep:
        dep.start_worker(processes=1, threads=4)
        events = [rt_tx("river-arts", i, amount=1500 + i, contact_id=None) for i in range(1, 31)]
        publish_many(events)
        wait_for(lambda: sent(dep) == 30, timeout=60, what="30 gifts sent")
        by_tx = {g["transactionId"]: g for g in gifts(dep)}
        assert len(by_tx) == 30
        created = {w["id"]: w for w in dep.writeback() if w["type"] == "gift.created"}
        assert set(created) == {str(i) for i in range(1, 31)}
        for tx_id, entry in created.items():
            assert int(entry["virtuous_id"]) == by_tx[tx_id]["id"]
            record = dep.redis.hget(
                dep.key("rec", "river-arts", f"transaction:{tx_id}"), "virtuous_id"
            )
            assert int(text(record)) == by_tx[tx_id]["id"]
        # Donors without a Contact got one each, made once, found by reference afterwards.
        linked = [w for w in dep.writeback() if w["type"] == "donor.linked"]
        assert len({w["id"] for w in linked}) == len(linked)


def test_an_update_replaces_designations_by_the_diff_protocol(
    tmp_path: Path, redis_url: str
) -> None:
    with deployment(tmp_path, redis_url, tenants=rt_tenant, sandbox_config=rt_config()) as dep:
        dep.start_worker(processes=1, threads=2)
        first = rt_tx("river-arts", 7, amount=3000, version=version_at(1))
        publish_many([first])
        wait_for(lambda: sent(dep) == 1, timeout=30, what="the create")
        gift_id = gifts(dep)[0]["id"]
        second = transaction(
            "river-arts",
            7,
            amount=4000,
            version=version_at(2),
            virtuous_id=gift_id,
            allocations=[{"fund": FUNDS[1], "amount": 1000}, {"fund": FUNDS[2], "amount": 3000}],
            description="Edited",
        )
        publish_many([second])
        wait_for(
            lambda: any(w["type"] == "gift.updated" for w in dep.writeback()),
            timeout=30,
            what="the update",
        )
        gift = gifts(dep)[0]
        assert gift["id"] == gift_id and Decimal(str(gift["amount"])) == Decimal("40.00")
        assert gift["description"] == "Edited"
        lines = sorted(
            (d["projectId"], Decimal(str(d["amountDesignated"]))) for d in gift["giftDesignations"]
        )
        assert lines == [(102, Decimal("10.00")), (103, Decimal("30.00"))]


def test_timeouts_after_apply_never_make_a_second_gift(tmp_path: Path, redis_url: str) -> None:
    config = rt_config(faults=FaultConfig(timeout_after_apply_rate=0.3, stall_seconds=2.5))
    with deployment(
        tmp_path,
        redis_url,
        tenants=rt_tenant,
        sandbox_config=config,
        # Every call stalls past the timeout 30% of the time, and a retry of a create that went
        # through takes three calls (the lookup, then the update's GET and PUT): all three get
        # through only a third of the time, so with the default 12 retries a run of 30 gifts
        # dead-letters one now and then. The property here is "never a second gift": give the
        # retries room enough that every gift gets through.
        env={"GIFTSYNC_VIRTUOUS_TIMEOUT_SECONDS": "1", "GIFTSYNC_MAX_RETRIES": "40"},
    ) as dep:
        # A donor Virtuous already knows, so each gift is one create (plus lookups on retry).
        made = dep.admin(
            "POST", "contacts", json={"org": "river-arts", "firstName": "Kim", "lastName": "Lee"}
        )["contacts"]
        contact_id = made[0]["id"]
        dep.start_worker(processes=1, threads=8)
        publish_many(
            [rt_tx("river-arts", i, amount=100 * i, contact_id=contact_id) for i in range(1, 31)]
        )
        wait_for(lambda: sent(dep) == 30, timeout=150, what="30 gifts through the timeouts")
        assert len(gifts(dep)) == 30
        stats = dep.admin("GET", "stats")["orgs"]["river-arts"]
        assert stats["duplicate_gifts_created"] == 0
        assert stats["faults_injected"], "no timeout was injected"


def test_interleaved_updates_from_four_processes_end_at_the_newest_version(
    tmp_path: Path, redis_url: str
) -> None:
    with deployment(tmp_path, redis_url, tenants=rt_tenant, sandbox_config=rt_config()) as dep:
        # Create the 20 gifts first, then throw 200 updates at them in a random order.
        dep.start_worker(processes=2, threads=4)
        dep.start_worker(processes=2, threads=4)
        publish_many(
            [rt_tx("river-arts", r, amount=100, version=version_at(0)) for r in range(1, 21)]
        )
        wait_for(lambda: sent(dep) == 20, timeout=60, what="20 creates")
        ids = {g["transactionId"]: g["id"] for g in gifts(dep)}
        updates = [
            rt_tx("river-arts", r, amount=100 + v, version=version_at(v), virtuous_id=ids[str(r)])
            for r in range(1, 21)
            for v in range(1, 11)
        ]
        random.Random(3).shuffle(updates)
        for start in range(0, 200, 7):
            publish_many(updates[start : start + 7], chunk_size=3)

        def all_newest() -> bool:
            return all(Decimal(str(g["amount"])) == Decimal("1.10") for g in gifts(dep))

        wait_for(all_newest, timeout=90, what="every gift at its newest version")
        assert len(gifts(dep)) == 20


def test_recurring_pushes_each_dependency_once_and_splits_fees(
    tmp_path: Path, redis_url: str
) -> None:
    def tenants(url: str) -> str:
        return rt_tenant(url, fee_splitting=True)

    with deployment(tmp_path, redis_url, tenants=tenants, sandbox_config=rt_config()) as dep:
        dep.start_worker(processes=2, threads=4)
        new_donor = donor(777, contact_id=None)
        campaign = {
            "id": 55,
            "name": "Monthly Givers",
            "virtuous_segment_id": None,
            "segment_code": "MG",
        }
        fund_a = {"id": 501, "name": "New Fund A", "virtuous_id": None, "code": "NEWA"}
        fund_b = {"id": 502, "name": "New Fund B", "virtuous_id": None, "code": "NEWB"}
        allocations = [{"fund": fund_a, "amount": 1000}, {"fund": fund_b, "amount": 2000}]
        # Ten changes of one scheduled donation and five more of the same donor, all at once.
        events = [
            scheduled_donation(
                "river-arts",
                900,
                amount=3000,
                fee_amount=100,
                version=version_at(v),
                source=new_donor,
                campaign=campaign,
                fund=fund_a,
                allocations=allocations,
            )
            for v in range(10)
        ] + [
            scheduled_donation(
                "river-arts",
                901 + i,
                amount=3000,
                fee_amount=100,
                source=new_donor,
                campaign=campaign,
                fund=fund_a,
                allocations=allocations,
            )
            for i in range(5)
        ]
        publish_many(events)
        wait_for(lambda: sent(dep) == 6, timeout=60, what="six recurring gifts")
        state = dep.admin("GET", "state?org=river-arts")["river-arts"]
        assert len(state["recurring_gifts"]) == 6
        assert len(state["contacts"]) == 1  # the organisation started with none
        codes = Counter(p.get("projectCode") for p in state["projects"])
        assert codes["NEWA"] == 1 and codes["NEWB"] == 1
        assert Counter(g.get("code") for g in state["segments"])["MG"] == 1
        linked = [w for w in dep.writeback() if w["type"].endswith(".linked")]
        assert sorted(w["type"] for w in linked) == [
            "campaign.linked",
            "donor.linked",
            "fund.linked",
            "fund.linked",
        ]
        # Fee 1.00 split 1:2 over 10.00 and 20.00 -> 0.33 and the last row absorbs the rest.
        rg = state["recurring_gifts"][0]
        amounts = sorted(Decimal(str(d["amountDesignated"])) for d in rg["designations"])
        assert Decimal(str(rg["amount"])) == Decimal("31.00")
        assert amounts == [Decimal("10.33"), Decimal("20.67")]


def test_a_fee_fund_gets_the_fee_and_a_cancellation_reaches_virtuous(
    tmp_path: Path, redis_url: str
) -> None:
    def tenants(url: str) -> str:
        return rt_tenant(url, fee_splitting=False, fee_fund_virtuous_id=88)

    with deployment(tmp_path, redis_url, tenants=tenants, sandbox_config=rt_config()) as dep:
        dep.start_worker(processes=1, threads=4)
        allocations = [{"fund": FUNDS[0], "amount": 1500}, {"fund": FUNDS[1], "amount": 1500}]
        common: dict[str, Any] = {
            "amount": 3000,
            "fee_amount": 117,
            "fund": FUNDS[0],
            "allocations": allocations,
            "source": donor(951, contact_id=None),
        }
        publish_many([scheduled_donation("river-arts", 950, version=version_at(1), **common)])
        wait_for(lambda: sent(dep) == 1, what="the recurring gift")
        [rg] = dep.admin("GET", "recurring-gifts?org=river-arts")["river-arts"]
        lines = {d["projectId"]: Decimal(str(d["amountDesignated"])) for d in rg["designations"]}
        assert lines == {101: Decimal("15.00"), 102: Decimal("15.00"), 88: Decimal("1.17")}
        assert Decimal(str(rg["amount"])) == Decimal("31.17")

        cancel = scheduled_donation(
            "river-arts",
            950,
            version=version_at(2),
            status="cancelled",
            virtuous_id=rg["id"],
            **common,
        )
        publish_many([cancel])
        wait_for(
            lambda: any(w["type"] == "recurring.cancelled" for w in dep.writeback()),
            what="the cancellation",
        )
        [rg] = dep.admin("GET", "recurring-gifts?org=river-arts")["river-arts"]
        assert rg["status"] == "Cancelled" and rg["cancelDateTimeUtc"]


def error_lines(dep: Any) -> list[str]:
    """Worker log lines at ERROR or above, and every traceback line."""
    assert dep.log_dir is not None
    found = []
    for path in sorted(dep.log_dir.glob("worker-*.log")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            lowered = line.lower()
            if (
                "traceback" in lowered
                or '"level": "error"' in lowered
                or '"level":"error"' in lowered
                or '"level": "critical"' in lowered
                or " error " in line
                or "ERROR" in line
            ):
                found.append(line)
    return found


def test_paced_gifts_cost_one_call_each_and_throttles_log_no_error(
    tmp_path: Path, redis_url: str
) -> None:
    # 200 gifts against 50 calls per 2 s: most creates are throttled, some several times. A
    # create is marked attempted only once granted, so none of them costs a lookup, and a
    # throttle is no failure: no ERROR line, no traceback in the workers' logs.
    cap, window, total = 50, 2.0, 200
    config = make_config(
        org("river-arts", "demo-token-river", calls_per_hour=cap, window_seconds=window)
    )

    def tenants(url: str) -> str:
        return rt_tenant(url, calls_per_hour=cap, rate_window_seconds=window)

    env = {"GIFTSYNC_LOG_LEVEL": "INFO"}
    with deployment(tmp_path, redis_url, tenants=tenants, sandbox_config=config, env=env) as dep:
        made = dep.admin("POST", "contacts", json={"org": "river-arts", "lastName": "Lee"})
        contact = int(made["contacts"][0]["id"])
        dep.start_worker(processes=2, threads=8)
        started = time.monotonic()
        publish_many(
            [transaction("river-arts", i, contact_id=contact) for i in range(1, total + 1)]
        )
        wait_for(lambda: sent(dep) == total, timeout=90, what=f"{total} gifts sent")
        # 200 calls at 50 per window take three windows beyond the first: they were throttled.
        assert time.monotonic() - started >= 3 * window
        stats = dep.admin("GET", "stats")
        endpoints = stats["requests"]["by_endpoint"]
        org_stats = stats["orgs"]["river-arts"]
        assert endpoints["POST /api/Gift"]["count"] == total, endpoints
        assert "GET /api/Gift/{source}/{transaction_id}" not in endpoints
        assert org_stats["calls"] == total, endpoints
        assert org_stats["rate_limited"] == 0
        assert org_stats["max_calls_in_window"] <= cap
        assert len(gifts(dep)) == total
        logged = error_lines(dep)
        assert not logged, "\n".join(logged[:20])
