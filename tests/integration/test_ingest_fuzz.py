"""Malformed input thrown at the ingest endpoint over real HTTP: every piece gets a clear 4xx.

Each generated event starts valid and gets one mutation that the contract must reject (wrong
type, missing or extra field, negative or absurd amount, unbalanced allocations, another or
unknown tenant, unknown status, bad date or timezone, control characters, huge string, deep
nesting, not an object at all), and the test knows the path the error must name. Requests
hold one to five of them, often with a good event among them that must still be accepted.
Raw bodies (random bytes, truncated JSON, nesting thousands deep) must get a 400 at ``$``.
At the end the queue must hold exactly the good events, and the service must still take one.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from giftsync.examples import FUNDS, transaction
from giftsync.ingest import start_ingest
from giftsync.settings import Settings, load_settings
from mapping.fields import MAX_CENTS
from producers import signing
from workers.queue.queues import CHANGE_QUEUES

pytestmark = pytest.mark.integration

SECRET = "fuzz-secret-0c1d"
TENANTS = """
[tenants.alpha]
virtuous_base_url = "http://127.0.0.1:1"
virtuous_token_env = "VIRTUOUS_TOKEN_ALPHA"
timezone = "America/Chicago"
ingest_secret_env = "GS_FUZZ_INGEST_ALPHA"

[tenants.beta]
virtuous_base_url = "http://127.0.0.1:1"
virtuous_token_env = "VIRTUOUS_TOKEN_BETA"
timezone = "UTC"
"""

TX = transaction(
    "alpha",
    1,
    amount=2500,
    allocations=[{"fund": FUNDS[0], "amount": 1000}, {"fund": FUNDS[1], "amount": 1500}],
)
SD = {
    "tenant": "alpha",
    "kind": "scheduled_donation",
    "version": "2026-11-21T10:00:00Z",
    "record": {
        "id": 5001,
        "status": "active",
        "start_date": "2026-12-01",
        "frequency": "monthly",
        "amount": 2500,
        "fee_amount": 105,
        "source": copy.deepcopy(TX["record"]["owner"]),
        "fund": FUNDS[0],
        "allocations": [{"fund": FUNDS[0], "amount": 2500}],
        "virtuous_id": None,
    },
}
BASES = {"transaction": TX, "scheduled_donation": SD}

# --- values that are wrong for a kind of field -------------------------------------------
numbers = st.integers() | st.floats(allow_nan=False, allow_infinity=False)
scalars = numbers | st.booleans() | st.text(max_size=20)
containers = st.lists(scalars, max_size=3) | st.dictionaries(
    st.text(max_size=5), scalars, max_size=3
)
not_text = numbers | st.booleans() | containers
long_text = st.integers(1001, 200_000).map(lambda n: "x" * n)
control = st.sampled_from(["\x00", "\x07", "\x1b", "\x7f", "\x85", "\r"])
with_control = st.builds(
    lambda a, c, b: a + c + b, st.text(max_size=5), control, st.text(max_size=5)
)
bad_moments = st.sampled_from(
    [
        "2026-11-20T10:00:00",  # no offset
        "2026-11-20 09:59:00",
        "2026-13-40T00:00:00Z",
        "2026-11-20T10:00:00+25:00",
        "2026-11-20T10:00:00 America/Chicago",
        "yesterday",
        "",
        "1795000000",
    ]
)
bad_days = st.sampled_from(["2026-02-30", "12/01/2026", "2026-1-1", "2026-12-01T00:00:00Z", ""])
bad_cents = (
    st.integers(max_value=-1)
    | st.integers(min_value=MAX_CENTS)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.booleans()
    | st.none()
    | containers
)
bad_ids = (
    st.integers(max_value=0)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
    | st.none()
    | containers
    | st.sampled_from(["", " 1", "a b", "x" * 65, "id\x00"])
)


def deep(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


nested = st.integers(2, 300).map(deep)
WRONG: dict[str, st.SearchStrategy[Any]] = {
    "moment": not_text | st.none() | bad_moments | nested,
    "day": not_text | st.none() | bad_days,
    "id": bad_ids | nested,
    "word": not_text | st.none() | st.just("") | long_text | with_control,
    "name": not_text | st.none() | long_text | with_control,
    "text": not_text | long_text | with_control | nested,
    "bool": numbers | st.text(max_size=5) | st.none() | containers,
    "cents": bad_cents | nested,
    "object": numbers | st.text(max_size=5) | st.booleans() | st.lists(scalars, max_size=2),
    "list": numbers
    | st.text(max_size=5)
    | st.booleans()
    | st.none()
    | st.dictionaries(st.text(max_size=3), scalars, max_size=2),
    "status": st.text(max_size=12).filter(lambda s: s not in ("active", "cancelled")) | not_text,
    "frequency": st.sampled_from(["daily", "Monthly", "", "biweekly"]) | not_text,
}
FIELDS: dict[str, dict[tuple[str, ...], str]] = {
    "transaction": {
        ("version",): "moment",
        ("record",): "object",
        ("record", "id"): "id",
        ("record", "status"): "word",
        ("record", "amount"): "cents",
        ("record", "created_at"): "moment",
        ("record", "description"): "text",
        ("record", "is_tax_deductible"): "bool",
        ("record", "owner"): "object",
        ("record", "owner", "id"): "id",
        ("record", "owner", "first_name"): "text",
        ("record", "owner", "email"): "text",
        ("record", "owner", "address", "line1"): "text",
        ("record", "fund"): "object",
        ("record", "fund", "name"): "name",
        ("record", "allocations"): "list",
        ("record", "allocations", "0", "amount"): "cents",
    },
    "scheduled_donation": {
        ("version",): "moment",
        ("record", "id"): "id",
        ("record", "status"): "status",
        ("record", "frequency"): "frequency",
        ("record", "start_date"): "day",
        ("record", "amount"): "cents",
        ("record", "fee_amount"): "cents",
        ("record", "anonymous"): "bool",
        ("record", "source"): "object",
        ("record", "source", "last_name"): "text",
        ("record", "fund"): "object",
    },
}
REQUIRED = {
    "transaction": [
        "tenant",
        "kind",
        "version",
        "record",
        "record.id",
        "record.status",
        "record.amount",
        "record.created_at",
        "record.owner",
        "record.fund",
        "record.owner.type",
        "record.owner.id",
        "record.fund.id",
        "record.fund.name",
    ],
    "scheduled_donation": [
        "record.id",
        "record.status",
        "record.start_date",
        "record.frequency",
        "record.amount",
        "record.source",
        "record.fund",
    ],
}


def _parent(event: Any, path: tuple[str, ...]) -> Any:
    node = event
    for part in path[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _set(event: Any, path: tuple[str, ...], value: Any) -> None:
    parent = _parent(event, path)
    parent[int(path[-1]) if isinstance(parent, list) else path[-1]] = value


@st.composite
def bad_event(draw: st.DrawFn) -> tuple[Any, tuple[str, ...]]:
    """A malformed event and the error paths the answer must name."""
    kind = draw(st.sampled_from(sorted(BASES)))
    event = copy.deepcopy(BASES[kind])
    how = draw(
        st.sampled_from(
            ["wrong", "missing", "extra", "unbalanced", "tenant", "kind", "not_object", "records"]
        )
    )
    if how == "wrong":
        path, field_kind = draw(st.sampled_from(sorted(FIELDS[kind].items())))
        _set(event, path, draw(WRONG[field_kind]))
        return event, (".".join(path),)
    if how == "missing":
        dotted = draw(st.sampled_from(REQUIRED[kind]))
        path = tuple(dotted.split("."))
        del _parent(event, path)[path[-1]]
        return event, (dotted,)
    if how == "extra":
        where = draw(st.sampled_from([(), ("record",), ("record", "fund")]))
        key = "x_" + draw(st.text(max_size=10))
        target = event
        for part in where:
            target = target[part]
        target[key] = draw(scalars | nested)
        return event, (".".join((*where, key)),)
    if how == "unbalanced":
        shift = draw(st.integers(-999, 10**6).filter(bool))
        event["record"]["allocations"][0]["amount"] += shift
        return event, ("record.allocations",)
    if how == "tenant":
        other = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True).filter(
            lambda name: name != "alpha"
        )
        event["tenant"] = draw(other | st.sampled_from(["Alpha", "", "x" * 100]) | not_text)
        return event, ("tenant",)
    if how == "kind":
        misfit = "scheduled_donation" if kind == "transaction" else "transaction"
        event["kind"] = draw(st.sampled_from(["refund", "Transaction", ""]) | not_text)
        if draw(st.booleans()):
            event["kind"] = misfit  # a valid kind that does not fit the record
            return event, ("record",)
        return event, ("kind",)
    if how == "not_object":
        return draw(scalars | st.none() | st.lists(scalars, max_size=3)), ("$",)
    # Several problems at once: every one must be reported.
    event["record"]["amount"] = -1
    event["version"] = "not a date"
    return event, ("record.amount", "version")


@st.composite
def bad_request(draw: st.DrawFn) -> tuple[list[tuple[Any, tuple[str, ...]]], int | None, bool]:
    """(bad events with their paths, where a good event goes or None, send a bare object)."""
    bads = draw(st.lists(bad_event(), min_size=1, max_size=5))
    good_at = draw(st.none() | st.integers(0, len(bads)))
    # A bare list would be read as a list of events, so only a non-list goes bare.
    alone = len(bads) == 1 and good_at is None and not isinstance(bads[0][0], list)
    bare = alone and draw(st.booleans())
    return bads, good_at, bare


raw_bodies = (
    st.binary(max_size=200)
    | st.text(max_size=200).map(str.encode)
    | st.integers(1, len(json.dumps(TX)) - 1).map(lambda n: json.dumps(TX).encode()[:n])
    | st.integers(1_000, 200_000).map(lambda n: b"[" * n + b"]" * n)
    | st.integers(1_000, 100_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n)
)


@pytest.fixture
def ingest_settings(tmp_path: Path, redis_url: str) -> Iterator[Settings]:
    config = tmp_path / "tenants.toml"
    config.write_text(TENANTS, encoding="utf-8")
    prefix = f"gs-fuzz-{uuid.uuid4().hex[:8]}"
    yield load_settings(
        {
            "GIFTSYNC_CONFIG": str(config),
            "REDIS_URL": redis_url,
            "GIFTSYNC_PREFIX": prefix,
            "GS_FUZZ_INGEST_ALPHA": SECRET,
        }
    )
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{prefix}:*", count=1000):
        client.delete(key)
    client.close()


def test_malformed_input_gets_a_clear_4xx_and_good_events_still_go_through(
    ingest_settings: Settings, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tried = {"requests": 0, "events": 0, "bodies": 0}
    good_ids: list[int] = []

    with start_ingest(ingest_settings) as url, httpx.Client(base_url=url, timeout=30) as http:

        def post(body: bytes) -> httpx.Response:
            # Leading whitespace unique per request: two equal bodies would be a replay.
            body = b" " * tried["requests"] + body
            tried["requests"] += 1
            headers = signing.signed_headers("alpha", SECRET.encode(), body)
            return http.post("/v1/changes", content=body, headers=headers)

        @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
        @given(bad_request())
        def events_property(request: tuple[list[Any], int | None, bool]) -> None:
            bads, good_at, bare = request
            items: list[tuple[Any, tuple[str, ...] | None]] = list(bads)
            if good_at is not None:
                good_ids.append(900_000 + len(good_ids))
                items.insert(good_at, (transaction("alpha", good_ids[-1]), None))
            tried["events"] += len(items)
            payload = items[0][0] if bare else [event for event, _ in items]
            response = post(json.dumps(payload).encode())
            assert response.status_code == 400, response.text
            results = response.json()["results"]
            assert len(results) == len(items)
            for result, (_, expected) in zip(results, items, strict=True):
                if expected is None:
                    assert result["status"] == "accepted"
                    continue
                assert result["status"] == "invalid"
                assert result["errors"], result
                for error in result["errors"]:
                    assert isinstance(error["path"], str) and error["reason"].strip()
                paths = [error["path"] for error in result["errors"]]
                for path in expected:
                    assert any(p == path or p.startswith(path + ".") for p in paths), (path, paths)

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(raw_bodies)
        def bodies_property(body: bytes) -> None:
            tried["bodies"] += 1
            response = post(body)
            assert response.status_code == 400, response.text
            answer = response.json()
            if "errors" in answer:
                assert answer["errors"][0]["path"] == "$" and answer["errors"][0]["reason"]
            else:  # it happened to be JSON: then every event in it is reported invalid
                assert all(r["status"] == "invalid" and r["errors"] for r in answer["results"])

        events_property()
        bodies_property()

        # Exactly the good events were enqueued, nothing of the bad ones.
        client = redis.Redis.from_url(redis_url)
        keys = [f"{ingest_settings.key_prefix}:dramatiq:{q}.msgs" for q in CHANGE_QUEUES]
        raws = [raw for key in keys for raw in client.hvals(key)]
        queued = [e for raw in raws for e in json.loads(raw)["kwargs"]["events"]]
        client.close()
        assert sorted(e["record"]["id"] for e in queued) == sorted(good_ids)

        # And the service is still up.
        assert http.get("/healthz").status_code == 200
        assert post(json.dumps(transaction("alpha", 1)).encode()).status_code == 202

    with capsys.disabled():
        print(
            f"\ningest fuzz: {tried['requests']} requests, {tried['events']} events "
            f"({len(good_ids)} good among them), {tried['bodies']} raw bodies"
        )
