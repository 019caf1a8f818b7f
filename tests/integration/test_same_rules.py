"""The door, the preview and the worker apply the same rules, and one poisonous event in a
message never takes another event with it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from giftsync.examples import transaction
from mapping.errors import EventValidationError
from mapping.preview import preview_event
from mapping.routing import check_change
from mapping.tenant import TenantSettings
from tests.runtimes import isolated_runtime
from workers.flows import intake
from workers.runtime import Runtime

pytestmark = pytest.mark.integration

BATCH, REAL_TIME = "same-batch", "same-realtime"
NO_PROJECT = {"id": 77, "name": "New Fund", "virtuous_id": None, "code": "NEW"}


def _tenant(name: str, mode: str) -> TenantSettings:
    return TenantSettings(
        name=name,
        virtuous_base_url="http://virtuous.invalid",
        virtuous_token_env="TOKEN",
        timezone="Asia/Tokyo",
        mode=mode,  # type: ignore[arg-type]
    )


TENANTS = {BATCH: _tenant(BATCH, "batch"), REAL_TIME: _tenant(REAL_TIME, "real_time")}


@pytest.fixture
def rt(redis_url: str) -> Iterator[Runtime]:
    with isolated_runtime(redis_url, *TENANTS.values()) as runtime:
        yield runtime


def _cases() -> list[tuple[str, dict[str, Any], bool]]:
    """(name, event, whether giftsync can take it)."""
    far_future = transaction(REAL_TIME, 11, version="9999-12-31T23:00:00-05:00")
    before_year_one = transaction(BATCH, 12, version="0001-01-01T00:30:00+01:00")
    created_overflow = transaction(BATCH, 13)
    created_overflow["record"]["created_at"] = "9999-12-31T23:59:00-12:00"
    return [
        ("a plain batch gift", transaction(BATCH, 1), True),
        ("a plain real-time gift", transaction(REAL_TIME, 2), True),
        ("a batch gift whose fund has only a code", transaction(BATCH, 3, fund=NO_PROJECT), True),
        (
            "a real-time gift whose fund has no Project",
            transaction(REAL_TIME, 4, fund=NO_PROJECT),
            False,
        ),
        ("a version past year 9999 in UTC", far_future, False),
        ("a version before year 1 in UTC", before_year_one, False),
        ("a created_at past year 9999", created_overflow, False),
        ("an unknown tenant", transaction("nobody-here", 5), False),
    ]


@pytest.mark.parametrize(("name", "event", "takes"), _cases(), ids=[c[0] for c in _cases()])
def test_door_preview_and_worker_agree(
    rt: Runtime, name: str, event: dict[str, Any], takes: bool
) -> None:
    try:
        check_change(event, TENANTS)
        door = True
    except EventValidationError as exc:
        door = False
        assert exc.errors and all(e.path and e.reason for e in exc.errors), name
    preview = preview_event(json.dumps(event), TENANTS)["decision"] != "invalid"
    planned, _ = intake.plan([event], TENANTS, rt.ledger)
    worker = bool(planned) and planned[0].state != "invalid"
    assert (door, preview, worker) == (takes, takes, takes), name


def test_one_poisonous_event_never_takes_another_with_it(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = [transaction(BATCH, 100 + i) for i in range(5)]
    overflow = transaction(BATCH, 200, version="9999-12-31T23:00:00-05:00")
    not_json_object = ["not", "an", "event"]
    unforeseen = transaction(BATCH, 300)
    original = intake._plan_transaction

    def explode_on_300(tx: Any, tenant: TenantSettings, raw: str) -> Any:
        if tx.id == 300:
            raise RuntimeError("a rule nobody foresaw")
        return original(tx, tenant, raw)

    monkeypatch.setattr(intake, "_plan_transaction", explode_on_300)
    chunk: list[Any] = [good[0], overflow, good[1], not_json_object, good[2], unforeseen, *good[3:]]
    result = intake.run(rt, chunk, published_ms=1)
    assert result.outcomes == {"buffered": 5}
    assert sorted(i for i, _ in result.invalid) == [1, 3, 5]
    assert rt.batcher.buffer_size(BATCH) == 5
