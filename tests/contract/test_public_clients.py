"""The public Virtuous clients' ordinary requests, replayed against the sandbox over loopback,
answered as docs/virtuous-contract.md says; and each one conforms to the contract table."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from sandbox import RunningSandbox
from tests.contract.public_requests import REQUESTS, PublicRequest
from tests.contract.table import violations
from tests.sandbox_fixtures import seed_contacts

pytest_plugins = ["tests.sandbox_fixtures"]
pytestmark = pytest.mark.integration


def _records(api: httpx.Client, admin: httpx.Client) -> dict[str, int]:
    (contact,) = seed_contacts(
        admin,
        "alpha",
        {
            "firstName": "Ada",
            "lastName": "Lovelace",
            "email": "ada@example.org",
            "referenceSource": "API Testing",
            "referenceId": "test-1",
        },
    )
    gift = api.post(
        "/api/Gift",
        json={
            "contactId": contact,
            "transactionSource": "WeGive",
            "transactionId": "g-1",
            "giftType": "Credit",
            "giftDate": "2026-11-20",
            "amount": "25.00",
            "giftDesignations": [{"projectId": 101, "amount": "25.00"}],
        },
    )
    recurring = api.post(
        "/api/RecurringGift",
        json={
            "contactId": contact,
            "startDate": "2026-12-01",
            "frequency": "Monthly",
            "amount": "15.00",
            "designations": [{"projectId": 101, "amountDesignated": "15.00"}],
        },
    )
    assert gift.status_code == recurring.status_code == 200, (gift.text, recurring.text)
    return {"contact": contact, "gift": gift.json()["id"], "recurring": recurring.json()["id"]}


def _fill(value: Any, ids: dict[str, int]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.strip("{}") in ids:
        return ids[value.strip("{}")]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


def _path(path: str, ids: dict[str, int]) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", str(value))
    return path


def _at(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


@pytest.mark.parametrize("req", REQUESTS, ids=lambda r: r.name)
def test_a_public_client_request_is_answered_as_the_contract_says(
    req: PublicRequest, sandbox: RunningSandbox, api: httpx.Client, admin: httpx.Client
) -> None:
    ids = _records(api, admin)
    body = _fill(req.body, ids)
    content = None if body is None else json.dumps(body).encode()
    headers = {} if body is None else {"Content-Type": "application/json"}
    response = api.request(req.method, _path(req.path, ids), content=content, headers=headers)
    assert response.status_code == req.status, f"{req.source}: {response.text}"
    if not req.expect:
        return
    answer = response.json()
    for dotted, want in _fill(req.expect, ids).items():
        got = _at(answer, dotted)
        if want is not ...:
            assert got == want, f"{req.source}: {dotted} is {got!r}, not {want!r}"


@pytest.mark.parametrize("req", [r for r in REQUESTS if r.status == 200], ids=lambda r: r.name)
def test_every_ordinary_public_request_is_in_the_contract_table(req: PublicRequest) -> None:
    path = req.path.replace("{gift}", "1").replace("{recurring}", "2").replace("{contact}", "3")
    assert violations(req.method, path.split("?")[0].rstrip("/"), req.body) == []


def test_the_contract_table_refuses_what_it_does_not_list() -> None:
    assert violations("POST", "/api/Contact", {"email": "a@b.org"}) == [
        "POST /api/Contact: unknown field email"
    ]
    # A GET's status goes back in a full-replacement PUT (virtuous-ts): listed, and ignored by
    # the sandbox (test_sandbox_crm: a PUT never cancels).
    assert violations("PUT", "/api/RecurringGift/7", {"status": "Cancelled"}) == []
    assert violations("PUT", "/api/RecurringGift/Cancel/7", {"status": "Cancelled"}) == [
        "PUT /api/RecurringGift/Cancel/7: unknown field status"
    ]
    assert violations("POST", "/api/Gift/Cancel", {}) == [
        "POST /api/Gift/Cancel: no such endpoint in the contract"
    ]
    bad_contact = {"transactions": [{"contact": {"address": {"zip": "1"}}}]}
    assert violations("POST", "/api/v2/Gift/Transactions", bad_contact) == [
        "POST /api/v2/Gift/Transactions: unknown field transactions[0].contact.address.zip"
    ]
