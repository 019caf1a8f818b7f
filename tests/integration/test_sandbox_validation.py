"""Validation 400s over HTTP: each kind of problem is named in ``modelState``, a batch names
the entry at fault, and nothing of a refused request is applied."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox import RunningSandbox
from tests.sandbox_fixtures import gift_transaction, seed_contacts

pytest_plugins = ["tests.sandbox_fixtures"]
pytestmark = pytest.mark.integration


def _held(sandbox: RunningSandbox) -> int:
    with sandbox.state.lock:
        org = sandbox.state.org("alpha")
        return len(org.held) + sum(len(b.entries) for b in org.imports.values())


def _bad(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["message"]
    state: dict[str, list[str]] = body["modelState"]
    return state


@pytest.mark.parametrize(
    "raw,reason",
    [
        (b'{"amount": ', "Malformed JSON"),
        (b"", "JSON body is required"),
        (b"[1, 2]", "Expected a JSON object"),
    ],
)
def test_malformed_bodies_are_refused(
    api: httpx.Client, sandbox: RunningSandbox, raw: bytes, reason: str
) -> None:
    for path in ("/api/v2/Gift/Transaction", "/api/v2/Gift/Transactions", "/api/Gift"):
        state = _bad(api.post(path, content=raw))
        assert reason in state["body"][0]
    assert _held(sandbox) == 0


@pytest.mark.parametrize(
    "change,field,reason",
    [
        ({"giftDate": None}, "giftDate", "giftDate field is required"),
        ({"giftDate": "2026-13-45"}, "giftDate", "not a valid date"),
        ({"amount": None}, "amount", "amount field is required"),
        (
            {"amount": "12.345", "designations": [{"id": 101, "amountDesignated": "12.345"}]},
            "amount",
            "more than two decimal places",
        ),
        ({"amount": "ten"}, "amount", "not a valid amount"),
        (
            {"designations": [{"id": 101, "amountDesignated": "9.99"}]},
            "designations",
            "must sum to the gift amount",
        ),
        (
            {"designations": [{"id": 999, "amountDesignated": "10.00"}]},
            "designations[0].projectId",
            "Project 999 does not exist",
        ),
        (
            {"designations": [{"projectCode": "NOPE", "amountDesignated": "10.00"}]},
            "designations[0].projectCode",
            "No project has the code 'NOPE'",
        ),
        (
            {"designations": [{"projectId": 101}]},
            "designations[0].amountDesignated",
            "amountDesignated field is required",
        ),
        ({"giftType": "Venmo"}, "giftType", "not a valid giftType"),
    ],
)
def test_single_transaction_problems_are_named(
    api: httpx.Client, sandbox: RunningSandbox, change: dict[str, Any], field: str, reason: str
) -> None:
    body = {k: v for k, v in {**gift_transaction("t1"), **change}.items() if v is not None}
    state = _bad(api.post("/api/v2/Gift/Transaction", json=body))
    assert field in state, state
    assert any(reason in r for r in state[field]), state
    assert _held(sandbox) == 0


def test_amounts_compare_exactly_as_strings_or_numbers(
    api: httpx.Client, sandbox: RunningSandbox
) -> None:
    # 0.1 + 0.2 is not 0.3 in floating point; Virtuous's check is exact.
    as_numbers = gift_transaction("n", amount="0.30")
    as_numbers["amount"] = 0.3
    as_numbers["designations"] = [
        {"id": 101, "amountDesignated": 0.1},
        {"projectCode": "food", "amountDesignated": 0.2},
    ]
    assert api.post("/api/v2/Gift/Transaction", json=as_numbers).status_code == 200
    as_strings = gift_transaction("s", amount="100.10")
    as_strings["designations"] = [
        {"projectId": 101, "amountDesignated": "33.37"},
        {"projectId": 102, "amountDesignated": "33.37"},
        {"projectId": 103, "amountDesignated": "33.36"},
    ]
    assert api.post("/api/v2/Gift/Transaction", json=as_strings).status_code == 200
    off_by_a_cent = {**as_strings, "transactionId": "x", "amount": "100.11"}
    assert api.post("/api/v2/Gift/Transaction", json=off_by_a_cent).status_code == 400
    assert _held(sandbox) == 2


def test_field_names_bind_case_insensitively(api: httpx.Client) -> None:
    body = {
        "TransactionSource": "WeGive",
        "transactionid": "t1",
        "GIFTDATE": "11/20/2026",
        "Amount": 5,
        "Designations": [{"ProjectID": 101, "AmountDesignated": 5}],
        "contact": {"FirstName": "Ada", "lastname": "Lovelace"},
    }
    assert api.post("/api/v2/Gift/Transaction", json=body).status_code == 200


def test_a_batch_is_refused_whole_and_names_each_bad_entry(
    api: httpx.Client, sandbox: RunningSandbox
) -> None:
    entries = [gift_transaction(f"t{i}") for i in range(6)]
    entries[1]["giftType"] = "Venmo"
    entries[3]["amount"] = "11.00"
    del entries[5]["giftDate"]
    for create_import in (True, False):
        state = _bad(
            api.post(
                "/api/v2/Gift/Transactions",
                json={
                    "transactionSource": "WeGive",
                    "transactions": entries,
                    "createImport": create_import,
                    "importName": "B",
                },
            )
        )
        assert set(state) == {
            "transactions[1].giftType",
            "transactions[3].designations",
            "transactions[5].giftDate",
        }
    assert _held(sandbox) == 0
    # A client bisecting down to the bad entry gets it alone, with index 0.
    state = _bad(
        api.post(
            "/api/v2/Gift/Transactions",
            json={"transactionSource": "WeGive", "transactions": [entries[3]]},
        )
    )
    assert list(state) == ["transactions[0].designations"]


def test_an_empty_or_missing_transaction_list_is_refused(api: httpx.Client) -> None:
    bodies: list[dict[str, Any]] = [
        {"transactionSource": "WeGive"},
        {"transactions": []},
        {"transactions": 3},
    ]
    for body in bodies:
        assert "transactions" in _bad(api.post("/api/v2/Gift/Transactions", json=body))


def test_direct_create_needs_an_existing_contact_and_valid_designations(
    api: httpx.Client, admin: httpx.Client
) -> None:
    (contact_id,) = seed_contacts(admin, "alpha", {"firstName": "Ada", "lastName": "Lovelace"})
    body: dict[str, Any] = {
        "giftDate": "2026-11-20",
        "amount": "25.00",
        "giftType": "Cash",
        "giftDesignations": [{"projectId": 101, "amount": "25.00"}],
    }
    assert "contactId" in _bad(api.post("/api/Gift", json=body))
    assert (
        "Contact 424242 does not exist."
        in _bad(api.post("/api/Gift", json={**body, "contactId": 424242}))["contactId"]
    )
    wrong_sum = {
        **body,
        "contactId": contact_id,
        "giftDesignations": [{"projectId": 101, "amount": "20.00"}],
    }
    assert "giftDesignations" in _bad(api.post("/api/Gift", json=wrong_sum))
    ok = api.post("/api/Gift", json={**body, "contactId": contact_id})
    assert ok.status_code == 200


def test_contact_transactions_need_someone_to_match(api: httpx.Client) -> None:
    assert "lastName" in _bad(api.post("/api/Contact/Transaction", json={"city": "Austin"}))
    assert "email" in _bad(
        api.post("/api/Contact/Transaction", json={"lastName": "Lovelace", "email": "not-an-email"})
    )
    assert (
        api.post(
            "/api/Contact/Transaction", json={"referenceSource": "WeGive", "referenceId": "7"}
        ).status_code
        == 200
    )
