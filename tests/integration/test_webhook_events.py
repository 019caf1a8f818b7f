"""Webhook deliveries are what they say: only a gift-created event confirms a gift, a gift
deleted in Virtuous is reported to the platform, contact events link donors, event names in any
case, and unknown events change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest

from giftsync.examples import transaction
from mapping.tenant import TenantSettings
from tests.runtimes import isolated_runtime
from workers.flows import confirm, intake
from workers.queue import messages
from workers.runtime import Runtime

pytestmark = pytest.mark.integration

TENANT = "hooks-org"
SETTINGS = TenantSettings(
    name=TENANT,
    virtuous_base_url="http://virtuous.invalid",
    virtuous_token_env="TOKEN",
    timezone="America/Chicago",
)


@pytest.fixture
def rt(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    sent: list[Any] = []
    monkeypatch.setattr(messages, "enqueue", lambda message, broker=None: sent.append(message))
    with isolated_runtime(redis_url, SETTINGS) as runtime:
        yield runtime


def _submitted(rt: Runtime, tx_id: int) -> None:
    intake.run(rt, [transaction(TENANT, tx_id, contact_id=5000)], published_ms=1)
    rt.batcher.cut_all_due(SETTINGS, lambda: "owner", force=True)
    batch_id = rt.ledger.record(TENANT, f"transaction:{tx_id}")["batch_id"]
    batch = rt.batcher.load(batch_id)
    assert batch is not None
    rt.batcher.settle(batch, "submitted", "accepted", "owner")


def _delivery(event: str, tx_id: int, gift_id: int) -> dict[str, Any]:
    gift = {"id": gift_id, "transactionSource": "WeGive", "transactionId": str(tx_id)}
    return {"event": event, "gift": gift}


def _state(rt: Runtime, tx_id: int) -> str:
    return rt.ledger.record(TENANT, f"transaction:{tx_id}")["state"]


def test_only_a_gift_created_event_confirms(rt: Runtime) -> None:
    _submitted(rt, 1)
    for event in ("GiftUpdate", "SomethingNew", ""):
        result = confirm.apply_webhook(rt, SETTINGS, _delivery(event, 1, 901))
        assert _state(rt, 1) == "submitted", event
        assert "confirmed" not in result.outcomes
    result = confirm.apply_webhook(rt, SETTINGS, _delivery("gift_create", 1, 901))
    assert result.outcomes == {"confirmed": 1}
    assert _state(rt, 1) == "confirmed"
    again = confirm.apply_webhook(rt, SETTINGS, _delivery("GIFTCREATE", 1, 901))
    assert again.outcomes == {"already": 1}


def test_a_gift_deleted_in_virtuous_is_reported_never_confirmed(rt: Runtime) -> None:
    _submitted(rt, 2)
    result = confirm.apply_webhook(rt, SETTINGS, _delivery("GiftDelete", 2, 902))
    assert result.outcomes == {"deleted_reported": 1}
    assert _state(rt, 2) == "submitted"
    raw = cast("list[tuple[bytes, dict[bytes, bytes]]]", rt.redis.xrange(rt.keys.writeback))
    entries = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in raw]
    deleted = [e for e in entries if e["type"] == "gift.deleted_in_virtuous"]
    assert deleted == [
        {
            "type": "gift.deleted_in_virtuous",
            "tenant": TENANT,
            "kind": "transaction",
            "id": "2",
            "virtuous_id": "902",
        }
    ]


def test_a_gift_created_for_a_record_not_in_virtuous_changes_nothing(rt: Runtime) -> None:
    intake.run(rt, [transaction(TENANT, 3, contact_id=5000)], published_ms=1)
    assert _state(rt, 3) == "buffered"
    result = confirm.apply_webhook(rt, SETTINGS, _delivery("GiftCreate", 3, 903))
    assert result.outcomes == {"ignored": 1}
    assert _state(rt, 3) == "buffered"


def test_one_bad_entry_in_a_bulk_delivery_loses_none_after_it(rt: Runtime) -> None:
    _submitted(rt, 4)
    _submitted(rt, 5)
    bulk = {
        "event": "GiftCreate",
        "models": [
            {"gift": {"id": True, "transactionSource": "WeGive", "transactionId": "4"}},
            {"gift": {"id": "x", "transactionSource": "WeGive", "transactionId": ["4"]}},
            {"gift": _delivery("GiftCreate", 4, 904)["gift"]},
            {"gift": _delivery("GiftCreate", 5, 905)["gift"]},
        ],
    }
    result = confirm.apply_webhook(rt, SETTINGS, bulk)
    assert result.outcomes == {"not_ours": 2, "confirmed": 2}
    assert (_state(rt, 4), _state(rt, 5)) == ("confirmed", "confirmed")


def test_contact_events_link_the_tenants_donors_in_any_case_single_or_bulk(rt: Runtime) -> None:
    reference = SETTINGS.reference_source
    single: dict[str, Any] = {
        "event": "ContactCreate",
        "contact": {"id": 7001, "referenceSource": reference, "referenceId": "d-1"},
    }
    bulk = {
        "event": "contact_update",
        "models": [
            # The sandbox's delivery shape (contactReferences of {source, id}).
            {"contact": {"id": 7002, "contactReferences": [{"source": reference, "id": "d-2"}]}},
            {"contact": {"id": 7003, "contactReferences": [{"source": "Other", "id": "d-3"}]}},
            {"contact": {"id": "7004", "referenceSource": reference, "referenceId": "d-4"}},
        ],
    }
    assert confirm.apply_webhook(rt, SETTINGS, single).outcomes == {"contact_linked": 1}
    assert confirm.apply_webhook(rt, SETTINGS, bulk).outcomes == {"contact_linked": 1}
    known = {d: rt.related.known_id(TENANT, "donor", d) for d in ("d-1", "d-2", "d-3", "d-4")}
    assert known == {"d-1": 7001, "d-2": 7002, "d-3": None, "d-4": None}
    # A gift event carrying a contact links nothing: only contact events do.
    gift_event = {**single, "event": "GiftUpdate", "contact": {**single["contact"], "id": 7005}}
    assert confirm.apply_webhook(rt, SETTINGS, gift_event).outcomes == {}
    assert rt.related.known_id(TENANT, "donor", "d-1") == 7001
