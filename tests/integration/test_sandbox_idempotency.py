"""Idempotency by (transactionSource, transactionId): a repeat is never a second Gift, answered
as a counted no-op or as a 400 "already been submitted", by setting; duplicates made through
the direct ``POST /api/Gift`` are counted so tests can assert there are none."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sandbox import RunningSandbox, SandboxConfig
from tests.sandbox_fixtures import (
    client,
    gift_transaction,
    org_stats,
    seed_contacts,
    small_config,
)

pytest_plugins = ["tests.sandbox_fixtures"]
pytestmark = pytest.mark.integration


def _gifts(sandbox: RunningSandbox) -> list[dict[str, Any]]:
    with sandbox.state.lock:
        return list(sandbox.state.org("alpha").gifts.values())


def _matched(tid: str) -> dict[str, Any]:
    return gift_transaction(tid, contact={"referenceSource": "WeGive", "referenceId": "d1"})


@pytest.fixture
def donor(admin: httpx.Client) -> int:
    (contact_id,) = seed_contacts(
        admin,
        "alpha",
        {
            "firstName": "Ada",
            "lastName": "Lovelace",
            "referenceSource": "WeGive",
            "referenceId": "d1",
        },
    )
    return contact_id


def test_repeats_are_counted_no_ops_by_default(
    api: httpx.Client, admin: httpx.Client, sandbox: RunningSandbox, donor: int
) -> None:
    for _ in range(3):
        r = api.post("/api/v2/Gift/Transaction", json=_matched("t1"))
        assert (r.status_code, r.content) == (200, b"")
    assert org_stats(admin)["held"] == 1
    admin.post("/_admin/nightly")
    # Once the Gift exists a repeat is still a no-op, through either endpoint.
    api.post("/api/v2/Gift/Transaction", json=_matched("t1"))
    api.post("/api/v2/Gift/Transactions", json={"transactions": [_matched("t1")]})
    admin.post("/_admin/nightly")
    gifts = _gifts(sandbox)
    assert [(g["transactionSource"], g["transactionId"], g["contactId"]) for g in gifts] == [
        ("WeGive", "t1", donor)
    ]
    stats = org_stats(admin)
    assert stats["duplicates_noop"] == 4
    assert stats["duplicates_refused"] == 0
    assert stats["duplicate_gifts_created"] == 0


def test_repeats_within_and_across_batches_keep_only_the_first(
    api: httpx.Client, admin: httpx.Client, sandbox: RunningSandbox, donor: int
) -> None:
    first = [_matched("a"), _matched("b"), _matched("a")]
    assert (
        api.post(
            "/api/v2/Gift/Transactions",
            json={
                "transactionSource": "WeGive",
                "transactions": first,
                "createImport": True,
                "importName": "one",
            },
        ).status_code
        == 200
    )
    second = [_matched("b"), _matched("c")]
    # The entry's own transactionSource wins over the batch's.
    second.append({**_matched("a"), "transactionSource": "OtherPlatform"})
    assert (
        api.post(
            "/api/v2/Gift/Transactions",
            json={
                "transactionSource": "Ignored",
                "transactions": second,
                "createImport": True,
                "importName": "two",
            },
        ).status_code
        == 200
    )
    imports = admin.get("/_admin/imports", params={"org": "alpha"}).json()["alpha"]
    assert [
        [(e["transactionSource"], e["transactionId"]) for e in b["entries"]] for b in imports
    ] == [[("WeGive", "a"), ("WeGive", "b")], [("WeGive", "c"), ("OtherPlatform", "a")]]
    for batch in imports:
        admin.post(f"/_admin/imports/{batch['id']}/import")
    assert sorted((g["transactionSource"], g["transactionId"]) for g in _gifts(sandbox)) == [
        ("OtherPlatform", "a"),
        ("WeGive", "a"),
        ("WeGive", "b"),
        ("WeGive", "c"),
    ]
    assert org_stats(admin)["duplicates_noop"] == 2


def test_error_setting_refuses_repeats_saying_already_submitted(
    api: httpx.Client, admin: httpx.Client, sandbox: RunningSandbox, donor: int
) -> None:
    assert (
        admin.post("/_admin/settings", json={"duplicate_response": "error"}).json()[
            "duplicate_response"
        ]
        == "error"
    )
    assert api.post("/api/v2/Gift/Transaction", json=_matched("t1")).status_code == 200
    single = api.post("/api/v2/Gift/Transaction", json=_matched("t1"))
    assert single.status_code == 400
    assert "already been submitted" in single.json()["message"]
    assert "already been submitted" in single.json()["modelState"]["transactionId"][0]
    # In a batch the whole request is refused, naming the repeated entry, so a client that
    # bisects finds it and can count it as submitted.
    batch = api.post(
        "/api/v2/Gift/Transactions",
        json={"transactions": [_matched("t2"), _matched("t1"), _matched("t3")]},
    )
    assert batch.status_code == 400
    assert list(batch.json()["modelState"]) == ["transactions[1].transactionId"]
    alone = api.post("/api/v2/Gift/Transactions", json={"transactions": [_matched("t1")]})
    assert "already been submitted" in alone.json()["message"]
    assert (
        api.post(
            "/api/v2/Gift/Transactions", json={"transactions": [_matched("t2"), _matched("t3")]}
        ).status_code
        == 200
    )
    admin.post("/_admin/nightly")
    assert sorted(g["transactionId"] for g in _gifts(sandbox)) == ["t1", "t2", "t3"]
    stats = org_stats(admin)
    assert (stats["duplicates_refused"], stats["duplicates_noop"]) == (3, 0)


def test_error_setting_from_the_config(
    make_sandbox: Callable[[SandboxConfig], RunningSandbox],
) -> None:
    sb = make_sandbox(small_config(duplicate_response="error"))
    with client(sb) as api:
        assert api.post("/api/v2/Gift/Transaction", json=gift_transaction("x")).status_code == 200
        assert api.post("/api/v2/Gift/Transaction", json=gift_transaction("x")).status_code == 400


def test_transactions_without_a_reference_pair_are_never_repeats(
    api: httpx.Client, admin: httpx.Client
) -> None:
    body = gift_transaction("t1")
    del body["transactionId"]
    for _ in range(2):
        assert api.post("/api/v2/Gift/Transaction", json=body).status_code == 200
    assert org_stats(admin)["held"] == 2


def test_direct_create_makes_duplicates_but_counts_them(
    api: httpx.Client, admin: httpx.Client, donor: int
) -> None:
    body = {
        "contactId": donor,
        "transactionSource": "WeGive",
        "transactionId": "rt-1",
        "giftDate": "2026-11-20",
        "amount": "5.00",
        "giftDesignations": [{"projectId": 101, "amount": "5.00"}],
    }
    first = api.post("/api/Gift", json=body).json()
    assert org_stats(admin)["duplicate_gifts_created"] == 0
    second = api.post("/api/Gift", json=body).json()
    assert second["id"] != first["id"]
    assert org_stats(admin)["duplicate_gifts_created"] == 1
    # The lookup by reference keeps answering the first Gift.
    assert api.get("/api/Gift/WeGive/rt-1").json()["id"] == first["id"]
    # And the Transaction path treats the pair as already there.
    api.post("/api/v2/Gift/Transaction", json={**_matched("rt-1")})
    assert org_stats(admin)["duplicates_noop"] == 1
