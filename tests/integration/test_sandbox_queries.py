"""The Query endpoints: conditions on "Last Modified Date", "Gift Date", "Gift Id" (and the
recurring equivalents), sorting, paging by key, take at most 1000, and the deep-skip 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sandbox import RunningSandbox, SandboxConfig
from tests.sandbox_fixtures import client, seed_contacts, small_config

pytest_plugins = ["tests.sandbox_fixtures"]
pytestmark = pytest.mark.integration

N_GIFTS = 250


def _cond(parameter: str, operator: str, value: Any) -> dict[str, Any]:
    return {"parameter": parameter, "operator": operator, "value": value}


def _query(
    api: httpx.Client,
    *conditions: dict[str, Any],
    sort: str = "Id",
    descending: bool = False,
    skip: int = 0,
    take: int = 100,
    path: str = "/api/Gift/Query/FullGift",
) -> dict[str, Any]:
    r = api.post(
        path,
        params={"skip": skip, "take": take},
        json={
            "groups": [{"conditions": list(conditions)}] if conditions else [],
            "sortBy": sort,
            "descending": descending,
        },
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.fixture
def seeded(admin: httpx.Client) -> list[dict[str, Any]]:
    """250 gifts "entered by staff": gift dates over ten days, modified times in blocks of five
    that share a timestamp (ties a pager must survive)."""
    (donor,) = seed_contacts(admin, "alpha", {"firstName": "Ada", "lastName": "Lovelace"})
    gifts = [
        {
            "contactId": donor,
            "giftDate": f"2026-10-{1 + i % 10:02d}",
            "amount": "1.00",
            "giftDesignations": [{"projectId": 101, "amountDesignated": "1.00"}],
            "createDateTimeUtc": "2026-10-01T00:00:00",
            "modifiedDateTimeUtc": f"2026-10-15T12:{i // 5 % 60:02d}:00.{i // 300:06d}",
        }
        for i in range(N_GIFTS)
    ]
    r = admin.post("/_admin/gifts", json={"org": "alpha", "gifts": gifts})
    assert r.status_code == 200, r.text
    made: list[dict[str, Any]] = r.json()["gifts"]
    return made


def test_paging_by_modified_date_then_id_returns_every_gift_once(
    api: httpx.Client, seeded: list[dict[str, Any]]
) -> None:
    seen: list[int] = []
    cursor_date, cursor_id = "2026-10-15T00:00:00", 0
    while True:
        # Key paging: everything on or after the cursor's date, then skip ids already seen
        # at exactly that date: never a deep skip.
        page = _query(
            api,
            _cond("Last Modified DateTime UTC", "OnOrAfter", cursor_date),
            sort="ModifiedDateTimeUtc",
            take=40,
        )["list"]
        page = [g for g in page if (g["modifiedDateTimeUtc"], g["id"]) > (cursor_date, cursor_id)]
        if not page:
            break
        seen.extend(g["id"] for g in page)
        cursor_date, cursor_id = page[-1]["modifiedDateTimeUtc"], page[-1]["id"]
    assert sorted(seen) == sorted(g["id"] for g in seeded)
    assert len(seen) == len(set(seen))


def test_total_counts_every_match_and_take_pages(
    api: httpx.Client, seeded: list[dict[str, Any]]
) -> None:
    first = _query(api, take=100)
    assert (first["total"], len(first["list"])) == (N_GIFTS, 100)
    last = _query(api, skip=200, take=100)
    assert len(last["list"]) == 50
    assert [g["id"] for g in first["list"]] == sorted(g["id"] for g in seeded)[:100]
    desc = _query(api, descending=True, take=1)["list"]
    assert desc[0]["id"] == max(g["id"] for g in seeded)


def test_gift_date_and_gift_id_conditions(api: httpx.Client, seeded: list[dict[str, Any]]) -> None:
    assert _query(api, _cond("Gift Date", "GreaterThan", "2026-10-08"))["total"] == 50
    assert _query(api, _cond("Gift Date", "OnOrAfter", "2026-10-08"))["total"] == 75
    assert _query(api, _cond("Gift Date", "LessThan", "2026-10-02"))["total"] == 25
    assert _query(api, _cond("Gift Date", "Is", "2026-10-05"))["total"] == 25
    pivot = sorted(g["id"] for g in seeded)[199]
    assert _query(api, _cond("Gift Id", "GreaterThan", pivot))["total"] == 50
    both = _query(
        api, _cond("Gift Date", "Is", "2026-10-05"), _cond("Gift Id", "GreaterThan", pivot)
    )
    assert both["total"] == 5
    # Groups are alternatives.
    r = api.post(
        "/api/Gift/Query/FullGift",
        json={
            "groups": [
                {"conditions": [_cond("Gift Date", "Is", "2026-10-01")]},
                {"conditions": [_cond("Gift Date", "Is", "2026-10-02")]},
            ]
        },
    )
    assert r.json()["total"] == 50
    stamp = "2026-10-15T12:10:00.000000"
    assert (
        _query(api, _cond("Last Modified DateTime UTC", "GreaterThan", stamp))["total"]
        == N_GIFTS - 55
    )


def test_take_over_1000_and_bad_conditions_are_400(api: httpx.Client) -> None:
    r = api.post("/api/Gift/Query/FullGift", params={"take": 1001}, json={})
    assert r.status_code == 400
    assert "take" in r.json()["modelState"]
    assert api.post("/api/Gift/Query/FullGift", params={"take": 1000}, json={}).status_code == 200
    bad = api.post(
        "/api/Gift/Query/FullGift",
        json={
            "groups": [
                {
                    "conditions": [
                        _cond("Favourite Colour", "Is", "blue"),
                        _cond("Gift Date", "Sometime", "x"),
                    ]
                }
            ]
        },
    )
    assert set(bad.json()["modelState"]) == {
        "groups[0].conditions[0].parameter",
        "groups[0].conditions[1].operator",
    }
    assert api.post("/api/Gift/Query/FullGift", json={"sortBy": "Nope"}).status_code == 400


def test_a_deep_skip_answers_500(make_sandbox: Callable[[SandboxConfig], RunningSandbox]) -> None:
    sb = make_sandbox(small_config(deep_skip_limit=200))
    with client(sb) as api:
        assert (
            api.post("/api/Gift/Query/FullGift", params={"skip": 200}, json={}).status_code == 200
        )
        deep = api.post("/api/Gift/Query/FullGift", params={"skip": 201}, json={})
        assert deep.status_code == 500
        assert (
            api.post("/api/RecurringGift/Query", params={"skip": 5000}, json={}).status_code == 500
        )


def test_recurring_gift_query(api: httpx.Client, admin: httpx.Client) -> None:
    (donor,) = seed_contacts(admin, "alpha", {"lastName": "Lovelace"})
    items = [
        {
            "contactId": donor,
            "startDate": "2026-01-01",
            "frequency": "Monthly",
            "amount": "10.00",
            "createDateTimeUtc": f"2026-0{1 + i % 3}-01T00:00:00",
            **(
                {"status": "Cancelled", "cancelDateTimeUtc": "2026-06-01T00:00:00"}
                if i % 4 == 0
                else {}
            ),
        }
        for i in range(12)
    ]
    made = admin.post(
        "/_admin/recurring-gifts", json={"org": "alpha", "recurringGifts": items}
    ).json()
    ids = [r["id"] for r in made["recurringGifts"]]
    path = "/api/RecurringGift/Query"
    assert _query(api, path=path)["total"] == 12
    assert (
        _query(api, _cond("Create DateTime UTC", "OnOrAfter", "2026-02-01"), path=path)["total"]
        == 8
    )
    assert _query(api, _cond("Recurring Gift Id", "GreaterThan", ids[5]), path=path)["total"] == 6
    # No source lists a status parameter: the cancelled ones are read from the rows.
    rows = _query(api, path=path)["list"]
    cancelled = [r for r in rows if r["status"] == "Cancelled"]
    assert [r["cancelDateTimeUtc"] for r in cancelled] == ["2026-06-01T00:00:00.000000"] * 3
    newest = _query(api, sort="CreateDateTimeUtc", descending=True, take=1, path=path)["list"]
    assert newest[0]["createDateTimeUtc"].startswith("2026-03-01")
