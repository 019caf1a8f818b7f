"""The pull path end to end: real Redis, real ``giftsync worker`` processes, the sandbox over HTTP.

The sandbox holds 2,500 gifts and 300 recurring gifts: some pushed by giftsync's own real-time
path, some seeded with a ``wg_id`` and a matching ledger record (as the batch path leaves them),
some whose real Gift id only the ledger knows, some carrying the ``wg_id`` of a platform
transaction giftsync never pushed, and the rest entered "by staff" (midnight and timed gift
dates, company and individual donors, split designations, cancelled recurring gifts). Expected
records are derived here from the seeds' tables, independently of mapping/pull.py.
"""

from __future__ import annotations

import json
import operator
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from benchmarks.deployment import Deployment, deployment, make_config, org, tenant_table, text
from giftsync.examples import donor, scheduled_donation, transaction
from giftsync.waiting import wait_for
from producers.publish import publish_many
from workers.queue import messages

pytestmark = pytest.mark.integration

ORG = "river-arts"
TOKEN = "demo-token-river"
# These tests are about correctness, not the cap: a budget they cannot exhaust.
BIG_CAP = 1_000_000
ZONE = ZoneInfo("America/Chicago")
FREQUENCIES = {"Weekly": "weekly", "Monthly": "monthly", "Quarterly": "quarterly",
               "Annually": "yearly"}  # fmt: skip
PUSHED_GIFTS = 20
PUSHED_RECURRING = 5


def pull_tenant(url: str, **settings: Any) -> str:
    # A long interval: the scheduler never pulls during a test; the tests enqueue each pull.
    values: dict[str, Any] = {
        "mode": "real_time",
        "calls_per_hour": BIG_CAP,
        "pull_interval_seconds": 3600,
        **settings,
    }
    return tenant_table(ORG, url, "VIRTUOUS_TOKEN_RIVER", **values)


def pull_config(**kwargs: Any) -> Any:
    return make_config(org(ORG, TOKEN, calls_per_hour=BIG_CAP), **kwargs)


@dataclass
class Seeded:
    """Virtuous ids by what the pull must make of them."""

    created: set[int] = field(default_factory=set)  # staff gifts: pulled_create
    wg_linked: dict[int, str] = field(default_factory=dict)  # gift id -> wg_id: pulled_update
    echoes: set[int] = field(default_factory=set)  # giftsync's own gifts: nothing
    rg_created: set[int] = field(default_factory=set)
    rg_cancelled_by_staff: dict[int, str] = field(default_factory=dict)  # id -> platform id
    rg_echoes: set[int] = field(default_factory=set)


# Seeding


def _ledger(dep: Deployment, member: str, virtuous_id: str, state: str = "confirmed") -> None:
    """A ledger record as the push path leaves it (and its state count, kept in step)."""
    dep.redis.hset(
        dep.key("rec", ORG, member), mapping={"state": state, "virtuous_id": virtuous_id}
    )
    dep.redis.hincrby(dep.key("states", ORG), state, 1)


def _contacts(dep: Deployment) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    people = [{"firstName": f"Staff{i}", "lastName": "Donor"} for i in range(12)]
    companies = [{"name": f"Company {i}", "contactType": "Organization"} for i in range(4)]
    made = dep.admin("POST", "contacts", json={"org": ORG, "contacts": people + companies})
    return made["contacts"][:12], made["contacts"][12:]


def _gift_input(i: int, people: list[Any], companies: list[Any]) -> dict[str, Any]:
    amount = Decimal(1000 + 37 * i) / 100
    company = i % 7 == 0
    contact = (companies if company else people)[i % (4 if company else 12)]
    if i % 4 == 0:
        first = (amount * 2 / 3).quantize(Decimal("0.01"))
        designations = [
            {"projectId": 102, "amountDesignated": str(first)},
            {"projectId": 103, "amountDesignated": str(amount - first)},
        ]
    else:
        designations = [{"projectId": 101 + i % 3, "amountDesignated": str(amount)}]
    item: dict[str, Any] = {
        "contactId": contact["id"],
        "giftType": "Check" if i % 2 else "Cash",
        # Every third gift has a time of day; the others are bare (midnight) dates.
        "giftDate": f"2025-10-{1 + i % 28:02d}" + ("T14:30:00" if i % 3 == 0 else ""),
        "amount": str(amount),
        "description": None if i % 5 == 0 else f"Staff gift {i}",
        "notes": f"note {i}" if i % 6 == 0 else None,
        "isTaxDeductible": i % 9 != 0,
        "isPrivate": i % 8 == 0,
        "segmentId": 201 if i % 3 == 1 else None,
        "giftDesignations": designations,
        "createDateTimeUtc": "2025-11-01T08:00:00",
        # Five timestamps for 2,480 gifts: pages end inside runs of equal dates.
        "modifiedDateTimeUtc": f"2025-11-0{1 + i % 5}T10:00:00",
    }
    if not company and i % 2 == 0:
        item["contactIndividualId"] = contact["contactIndividuals"][0]["id"]
    return item


def seed(dep: Deployment, gifts: int, recurring: int) -> Seeded:
    """Seed the sandbox and the ledger; returns what the pull must make of each record."""
    people, companies = _contacts(dep)
    seeded = Seeded()
    kinds: dict[int, str] = {}
    items = []
    for i in range(gifts):
        item = _gift_input(i, people, companies)
        if i % 10 == 0:  # giftsync's batch path: wg_id + reference, ledger holds a btch_ id
            kinds[i] = "batch"
            item["customFields"] = [{"name": "wg_id", "value": str(100_000 + i)}]
            item["transactionSource"], item["transactionId"] = "WeGive", str(100_000 + i)
            _ledger(dep, f"transaction:{100_000 + i}", "btch_WeGive_Import", "submitted")
        elif i % 50 == 1:  # only the ledger knows the real Gift id (set below)
            kinds[i] = "ledger_id"
        elif i % 50 == 3:  # a platform transaction giftsync never pushed
            kinds[i] = "wg_linked"
            item["customFields"] = [{"name": "wg_id", "value": str(700_000 + i)}]
        else:
            kinds[i] = "staff"
        items.append(item)
    made: list[dict[str, Any]] = []
    for start in range(0, len(items), 1000):
        made += dep.admin("POST", "gifts", json={"org": ORG, "gifts": items[start : start + 1000]})[
            "gifts"
        ]
    for i, gift in enumerate(made):
        if kinds[i] == "staff":
            seeded.created.add(gift["id"])
        elif kinds[i] == "wg_linked":
            seeded.wg_linked[gift["id"]] = str(700_000 + i)
        else:
            seeded.echoes.add(gift["id"])
            if kinds[i] == "ledger_id":
                _ledger(dep, f"transaction:{900_000 + i}", str(gift["id"]))
    rgs = []
    for i in range(recurring):
        contact = people[i % 12] if i % 6 else companies[i % 4]
        amount = Decimal(2500 + 100 * (i % 9)) / 100
        split = i % 5 == 0
        designations = (
            [
                {"projectId": 101, "amountDesignated": "10.00"},
                {"projectId": 104, "amountDesignated": str(amount - 10)},
            ]
            if split
            else [{"projectId": 102, "amountDesignated": str(amount)}]
        )
        rg: dict[str, Any] = {
            "contactId": contact["id"],
            "startDate": f"2025-0{1 + i % 9}-15",
            "nextExpectedPaymentDate": f"2025-12-{1 + i % 28:02d}",
            "frequency": list(FREQUENCIES)[i % 4],
            "amount": str(amount),
            "isPrivate": i % 7 == 0,
            "segmentId": 205 if i % 2 else None,
            "designations": designations,
            "createDateTimeUtc": f"2025-0{1 + i % 9}-10T09:00:00.{i:06d}",
            "modifiedDateTimeUtc": f"2025-10-0{1 + i % 3}T12:00:00",
        }
        if i % 5 == 2:  # cancelled by staff in Virtuous
            rg["cancelDateTimeUtc"] = f"2025-09-{1 + i % 28:02d}T16:45:00"
        rgs.append(rg)
    made_rgs = dep.admin("POST", "recurring-gifts", json={"org": ORG, "recurringGifts": rgs})
    seeded.rg_created = {rg["id"] for rg in made_rgs["recurringGifts"]}
    return seeded


def push_through_giftsync(dep: Deployment, seeded: Seeded) -> None:
    """Create gifts and recurring gifts through giftsync's own real-time push path; then staff
    cancel two of the pushed recurring gifts in Virtuous."""
    events = [transaction(ORG, 50_000 + i, amount=1500 + i, contact_id=None) for i in range(20)]
    events += [
        scheduled_donation(ORG, 60_000 + i, amount=3000, source=donor(880 + i, contact_id=None))
        for i in range(PUSHED_RECURRING)
    ]
    publish_many(events)
    wait_for(
        lambda: dep.state_counts(ORG).get("sent", 0) == len(events),
        timeout=30,
        what="the real-time pushes",
    )
    for i in range(PUSHED_GIFTS):
        raw = dep.redis.hget(dep.key("rec", ORG, f"transaction:{50_000 + i}"), "virtuous_id")
        seeded.echoes.add(int(text(raw)))
    api = httpx.Client(base_url=dep.sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"})
    with api:
        for i in range(PUSHED_RECURRING):
            rg_id = int(text(dep.redis.hget(dep.key("rec", ORG, f"scheduled_donation:{60_000 + i}"),
                                            "virtuous_id")))  # fmt: skip
            if i < 2:  # a staff cancellation: the platform must hear of it
                # Contract: only the Cancel route cancels (a PUT with a status does not).
                api.put(f"/api/RecurringGift/Cancel/{rg_id}", json={}).raise_for_status()
                seeded.rg_cancelled_by_staff[rg_id] = str(60_000 + i)
            else:
                seeded.rg_echoes.add(rg_id)


# Pulling and reading back


def enqueue_pull(kind: str) -> None:
    messages.enqueue(messages.pull(kind, ORG))


def saved(dep: Deployment, kind: str) -> dict[str, str]:
    raw = dep.redis.hgetall(dep.key("pull", ORG, kind, "cursor"))
    return {text(k): text(v) for k, v in raw.items()}


def runs(dep: Deployment, kind: str) -> int:
    """How many ``kind`` pulls have finished."""
    return int(saved(dep, kind).get("runs", 0))


def pull_and_wait(dep: Deployment, *kinds: str, timeout: float = 30) -> None:
    before = {kind: runs(dep, kind) for kind in kinds}
    for kind in kinds:
        enqueue_pull(kind)
    for kind in kinds:
        wait_for(
            partial(runs, dep, kind),
            until=partial(operator.lt, before[kind]),  # more runs than before
            timeout=timeout,
            what=f"the {kind} pull to finish",
        )


def pulled(dep: Deployment) -> list[dict[str, Any]]:
    entries = [e for e in dep.writeback() if ".pulled_" in e["type"]]
    for e in entries:
        e["record"] = json.loads(e["record"])
    return entries


def lag_seconds() -> dict[tuple[str, ...], float]:
    """giftsync_pull_cursor_lag_seconds as a scrape would read it, by (tenant, kind)."""
    from workers.observe.state_metrics import StateCollector
    from workers.queue.broker import namespace
    from workers.runtime import runtime

    rt = runtime()
    return {
        tuple(sample.labels[k] for k in ("tenant", "kind")): sample.value
        for family in StateCollector(rt, namespace(rt.settings)).collect()
        if family.name == "giftsync_pull_cursor_lag_seconds"
        for sample in family.samples
    }


def _cents(value: Any) -> int:
    return int(Decimal(str(value)) * 100)


def expected_transaction(gift: dict[str, Any], *, create: bool) -> dict[str, Any]:
    """Seed 002's pull table, applied by hand."""
    day = gift["giftDate"]
    if day.endswith("T00:00:00"):
        created_at = f"{day[:10]} 17:00:00"
    else:
        local = datetime.fromisoformat(day).replace(tzinfo=ZONE)
        created_at = local.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M:%S")
    allocations: dict[int, int] = {}
    for d in gift["giftDesignations"]:
        allocations[d["projectId"]] = allocations.get(d["projectId"], 0) + _cents(
            d["amountDesignated"]
        )
    owner = [{"by": "company", "virtuous_contact_id": gift["contactId"]}]
    if gift.get("contactIndividualId"):
        owner.append(
            {"by": "individual", "virtuous_contact_individual_id": gift["contactIndividualId"]}
        )
    owner.append({"by": "primary_individual", "virtuous_contact_id": gift["contactId"]})
    record: dict[str, Any] = {
        "virtuous_id": gift["id"],
        "description": gift["description"] or "Virtuous Import",
        "created_at": created_at,
        "is_tax_deductible": gift["isTaxDeductible"],
        "anonymous": gift["isPrivate"],
        "supporter_inputted_notes": gift["notes"],
        "owner_lookup": owner,
        "fund_virtuous_id": gift["giftDesignations"][0]["projectId"],
        "campaign_virtuous_segment_id": gift["segmentId"],
        "allocations": [{"fund_virtuous_id": p, "amount": a} for p, a in allocations.items()],
    }
    if create:
        record["amount"] = _cents(gift["amount"])
        record["status"] = "success"
    return record


def expected_scheduled_donation(rg: dict[str, Any], *, create: bool) -> dict[str, Any]:
    """Seed 004's pull table, applied by hand."""
    record: dict[str, Any] = {
        "virtuous_id": rg["id"],
        "start_date": rg["nextExpectedPaymentDate"][:10],
        "created_at": rg["createDateTimeUtc"][:19].replace("T", " "),
        "frequency": FREQUENCIES[rg["frequency"]],
        "anonymous": rg["isPrivate"],
        "owner_lookup": [
            {"by": "company", "virtuous_contact_id": rg["contactId"]},
            {"by": "primary_individual", "virtuous_contact_id": rg["contactId"]},
        ],
        "fund_virtuous_id": rg["designations"][0]["projectId"] if rg["designations"] else None,
        "campaign_virtuous_segment_id": rg["segmentId"],
    }
    if rg.get("cancelDateTimeUtc"):
        record["deleted_at"] = rg["cancelDateTimeUtc"][:19].replace("T", " ")
    if create:
        record["amount"] = _cents(rg["amount"])
        record["fee_amount"] = 0
        record["allocations"] = [
            {"fund_virtuous_id": d["projectId"], "amount": _cents(d["amountDesignated"])}
            for d in rg["designations"]
        ]
    return record


def check_first_pull(
    dep: Deployment, seeded: Seeded, *, gifts_total: int = 2500, rg_skipped: int = 0
) -> None:
    """Exactly the entries the seeds' tables say, every field of every record; ``rg_skipped``
    RecurringGifts beyond the seeded ones have a frequency WeGive lacks."""
    entries = pulled(dep)
    keys = Counter(e["key"] for e in entries)
    assert max(keys.values()) == 1, "a writeback entry was appended twice"
    gifts = {g["id"]: g for g in dep.admin("GET", f"gifts?org={ORG}")[ORG]}
    rgs = {r["id"]: r for r in dep.admin("GET", f"recurring-gifts?org={ORG}")[ORG]}
    assert len(gifts) == gifts_total and len(rgs) == 300 + rg_skipped
    by_type: dict[str, dict[int, dict[str, Any]]] = {}
    for e in entries:
        assert e["tenant"] == ORG and e["at_ms"].isdigit()
        by_type.setdefault(e["type"], {})[int(e["virtuous_id"])] = e
    expected = {
        "transaction.pulled_create": seeded.created,
        "transaction.pulled_update": set(seeded.wg_linked),
        "scheduled_donation.pulled_create": seeded.rg_created,
        "scheduled_donation.pulled_update": set(seeded.rg_cancelled_by_staff),
    }
    assert {t: set(by_type.get(t, {})) for t in expected} == expected
    assert set(by_type) <= set(expected)
    written = {int(e["virtuous_id"]) for e in entries if e["kind"] == "transaction"}
    assert not seeded.echoes & written, "an echo was written back"

    by_type = {t: by_type.get(t, {}) for t in expected}
    for vid, e in by_type["transaction.pulled_create"].items():
        gift = gifts[vid]
        assert e["kind"] == "transaction" and e["id"] == "" and e["match"] == "new"
        assert e["key"] == f"transaction:{vid}:{gift['modifiedDateTimeUtc']}"
        assert e["record"] == expected_transaction(gift, create=True), vid
    for vid, e in by_type["transaction.pulled_update"].items():
        assert (e["id"], e["match"]) == (seeded.wg_linked[vid], "wg_id")
        # A platform transaction: its amount and status stand.
        assert e["record"] == expected_transaction(gifts[vid], create=False), vid
    for vid, e in by_type["scheduled_donation.pulled_create"].items():
        assert e["kind"] == "scheduled_donation" and e["match"] == "new"
        assert e["record"] == expected_scheduled_donation(rgs[vid], create=True), vid
    for vid, e in by_type["scheduled_donation.pulled_update"].items():
        assert (e["id"], e["match"]) == (seeded.rg_cancelled_by_staff[vid], "virtuous_id")
        assert "deleted_at" in e["record"]
        assert e["record"] == expected_scheduled_donation(rgs[vid], create=False), vid

    gift_totals, rg_totals = saved(dep, "gifts"), saved(dep, "recurring")
    assert int(gift_totals["created"]) == len(seeded.created)
    assert int(gift_totals["updated"]) == len(seeded.wg_linked)
    assert int(gift_totals["echo"]) == len(seeded.echoes)
    assert int(rg_totals.get("echo", 0)) == len(seeded.rg_echoes)
    assert "skipped" not in gift_totals
    assert int(rg_totals.get("skipped", 0)) == rg_skipped


def test_a_pull_writes_back_what_the_seeds_say_once_and_never_echoes(
    tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with deployment(tmp_path, redis_url, tenants=pull_tenant, sandbox_config=pull_config()) as dep:
        dep.start_worker(processes=1, threads=4)
        seeded = seed(dep, 2500 - PUSHED_GIFTS, 300 - PUSHED_RECURRING)
        push_through_giftsync(dep, seeded)
        count = len(seeded.created) + len(seeded.wg_linked) + 300 - len(seeded.rg_echoes)

        pull_and_wait(dep, "gifts", "recurring")
        check_first_pull(dep, seeded)
        assert len(pulled(dep)) == count
        # The sweep ended: the next one starts from when this one began (ids from 0 again).
        assert saved(dep, "gifts")["date"] and saved(dep, "gifts")["id"] == "0"
        assert 0 <= lag_seconds()[("river-arts", "gift")] < 30  # it just reached the end
        assert 0 <= lag_seconds()[("river-arts", "recurring")] < 30

        # A second pull finds nothing new; re-reading everything from the start (the CLI, in
        # this process) finds nothing changed: no entry either way.
        pull_and_wait(dep, "gifts", "recurring")
        from giftsync.cli import main

        assert main(["pull", "--tenant", ORG, "--since", "2000-01-01"]) == 0
        out = capsys.readouterr().out
        assert (
            f"gifts: 2500 records in 3 pages: created 0, updated 0, echo {len(seeded.echoes)}"
            in out
        )
        assert "recurring: 300 records in 1 pages: created 0, updated 0" in out
        assert len(pulled(dep)) == count

        # A staff correction of a pulled gift is an update: no amount, the told status.
        vid = min(seeded.created)
        dep.admin("POST", f"gifts/{vid}", json={"description": "Corrected by staff",
                                                "webhooks": False})  # fmt: skip
        pull_and_wait(dep, "gifts")
        (update,) = pulled(dep)[count:]
        gift = dep.admin("GET", f"gifts?org={ORG}")[ORG]
        gift = next(g for g in gift if g["id"] == vid)
        assert update["type"] == "transaction.pulled_update"
        assert update["match"] == "virtuous_id"
        assert update["record"] == expected_transaction(gift, create=False) | {"status": "success"}

        # A staff edit of a gift giftsync pushed is not an echo: Virtuous no longer holds what
        # giftsync sent, so the platform's transaction hears of it, once.
        pushed_vid = int(text(dep.redis.hget(dep.key("rec", ORG, "transaction:50003"),
                                             "virtuous_id")))  # fmt: skip
        dep.admin("POST", f"gifts/{pushed_vid}", json={"notes": "Staff note", "webhooks": False})
        pull_and_wait(dep, "gifts")
        (edit,) = pulled(dep)[count + 1 :]
        assert (edit["type"], edit["id"], edit["match"]) == (
            "transaction.pulled_update",
            "50003",
            "virtuous_id",
        )
        assert edit["record"]["supporter_inputted_notes"] == "Staff note"
        assert "amount" not in edit["record"] and edit["record"]["status"] == "success"
        pull_and_wait(dep, "gifts")
        assert len(pulled(dep)) == count + 2
