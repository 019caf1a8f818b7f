"""Donors in step: Contact Transactions out, Contact ids back, never a second Contact."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from benchmarks.deployment import deployment, tenant_table
from giftsync.examples import donor, scheduled_donation, version_at
from giftsync.waiting import wait_for
from producers.publish import publish_many
from sandbox.config import demo_config

pytestmark = pytest.mark.integration

ENV = {"GIFTSYNC_RECONCILE_EVERY_SECONDS": "0.5"}


def sandbox_config() -> Any:
    """The demo organisations (with their existing Contacts) and a budget these tests cannot
    exhaust: they are about matching, not the cap."""
    config = demo_config()
    orgs = [replace(o, calls_per_hour=1_000_000) for o in config.orgs]
    return replace(config, orgs=orgs)


def tenants(url: str) -> str:
    return tenant_table(
        "hope-shelter",
        url,
        "VIRTUOUS_TOKEN_HOPE",
        reconcile_after_seconds=1,
        calls_per_hour=1_000_000,
    )


def donor_event(record: dict[str, Any], seconds: float) -> dict[str, Any]:
    return {
        "tenant": "hope-shelter",
        "kind": "donor",
        "version": version_at(seconds),
        "record": record,
    }


def references(contacts: list[dict[str, Any]]) -> Counter[str]:
    return Counter(
        ref["id"]
        for c in contacts
        for ref in c.get("contactReferences", [])
        if ref["source"] == "WeGive"
    )


def linked(dep: Any) -> dict[str, str]:
    return {w["id"]: w["virtuous_id"] for w in dep.writeback() if w["type"] == "donor.linked"}


def contacts(dep: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = dep.admin("GET", "contacts?org=hope-shelter")["hope-shelter"]
    return found


def test_three_hundred_donor_changes_end_with_no_duplicate_contact(
    tmp_path: Path, redis_url: str
) -> None:
    with deployment(
        tmp_path, redis_url, tenants=tenants, env=ENV, sandbox_config=sandbox_config()
    ) as dep:
        seeded_ids = {c["name"]: c["id"] for c in contacts(dep)}
        seeded = len(seeded_ids)
        dep.start_worker(processes=1, threads=8)
        new = [donor_event(donor(50_000 + i, contact_id=None), 1) for i in range(250)]
        changed = []
        for i in range(0, 250, 5):  # 50 of them change email and address afterwards
            moved = donor(50_000 + i, contact_id=None)
            moved["email"] = f"new{i}@example.org"
            moved["address"] = {**moved["address"], "line1": f"{i} New Rd"}
            changed.append(donor_event(moved, 2))
        existing = [
            donor_event(
                {**donor(1001, contact_id=None), "first_name": "Ada", "last_name": "Lovelace"}, 1
            ),
            donor_event({**donor(3001, contact_id=None), "email": "grace@hope.example.org"}, 1),
            donor_event(
                {
                    **donor(3002, contact_id=None),
                    "email": None,
                    "phone": "555-010-0003",
                    "first_name": "Alan",
                    "last_name": "Turing",
                },
                1,
            ),
            donor_event(
                {
                    **donor(2001, contact_id=None, company=True),
                    "company_name": "Acme Foundation",
                    "email": "giving@acme-hope.example.org",
                },
                1,
            ),
        ]
        publish_many(new + existing)
        wait_for(
            lambda: dep.state_counts("hope-shelter").get("submitted", 0) == 254,
            timeout=60,
            what="254 Contact Transactions",
        )
        publish_many(changed)
        wait_for(
            lambda: sum(1 for w in dep.writeback() if w["type"] == "donor.submitted") == 304,
            timeout=60,
            what="the 50 changes sent too",
        )
        dep.admin("POST", "nightly", json={"org": "hope-shelter"})
        donor_ids = {str(50_000 + i) for i in range(250)} | {"1001", "3001", "3002", "2001"}
        wait_for(lambda: set(linked(dep)) == donor_ids, timeout=60, what="every donor linked")

        people = contacts(dep)
        assert len(people) == seeded + 250  # four donors matched existing Contacts
        refs = references(people)
        assert all(refs[d] == 1 for d in donor_ids), "a donor reference on two Contacts"
        ids = {donor_id: int(contact_id) for donor_id, contact_id in linked(dep).items()}
        assert ids["3001"] == seeded_ids["Grace Hopper"]  # matched by email
        assert ids["3002"] == seeded_ids["Alan Turing"]  # matched by phone
        assert ids["1001"] == seeded_ids["Ada Lovelace"]  # matched by reference
        assert ids["2001"] == seeded_ids["Acme Foundation"]
        assert len(set(ids.values())) == len(ids)


def test_a_donor_change_racing_a_recurring_gift_yields_one_contact(
    tmp_path: Path, redis_url: str
) -> None:
    with deployment(
        tmp_path, redis_url, tenants=tenants, env=ENV, sandbox_config=sandbox_config()
    ) as dep:
        dep.start_worker(processes=2, threads=4)
        new_donor = donor(77_001, contact_id=None)
        publish_many(
            [
                donor_event(new_donor, 1),
                scheduled_donation("hope-shelter", 880, source=new_donor, version=version_at(1)),
            ]
        )
        wait_for(
            lambda: any(w["type"] == "donor.submitted" for w in dep.writeback()),
            what="the Contact Transaction",
        )
        dep.admin("POST", "nightly", json={"org": "hope-shelter"})
        wait_for(
            lambda: any(w["type"] == "recurring.created" for w in dep.writeback()),
            timeout=60,
            what="the recurring gift, once the donor's Contact is known",
        )
        refs = references(contacts(dep))
        assert refs["77001"] == 1
        [rg] = dep.admin("GET", "recurring-gifts?org=hope-shelter")["hope-shelter"]
        assert rg["contactId"] == int(linked(dep)["77001"])
