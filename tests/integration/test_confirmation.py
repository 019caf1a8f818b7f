"""Confirmation end to end: webhooks, the reconcile sweep, the review backlog, held refunds."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.deployment import REPO, deployment, tenant_table, text
from giftsync.examples import transaction, version_at
from giftsync.waiting import wait_for
from producers.publish import publish_many

pytestmark = pytest.mark.integration

SECRET = "whsec-test-hope"


def tenants(url: str) -> str:
    return tenant_table(
        "hope-shelter",
        url,
        "VIRTUOUS_TOKEN_HOPE",
        webhook_secret_env="WEBHOOK_SECRET_HOPE",
        reconcile_after_seconds=3,
        review_deadline_seconds=6,
    )


ENV = {"WEBHOOK_SECRET_HOPE": SECRET, "GIFTSYNC_RECONCILE_EVERY_SECONDS": "0.5"}


def owner(donor_id: int, contact_id: int | None = None, **fields: Any) -> dict[str, Any]:
    base = {
        "type": "individual",
        "id": donor_id,
        "virtuous_contact_id": contact_id,
        "virtuous_contact_individual_id": None,
        "first_name": None,
        "last_name": None,
        "company_name": None,
        "email": None,
        "phone": None,
        "address": None,
    }
    return base | fields


def gift(tx_id: int, who: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    event = transaction("hope-shelter", tx_id, amount=2000 + tx_id, **kwargs)
    event["record"]["owner"] = who
    return event


def ada_id(dep: Any) -> int:
    contacts = dep.admin("GET", "contacts?org=hope-shelter")["hope-shelter"]
    ada: int = next(c["id"] for c in contacts if c["name"] == "Ada Lovelace")
    return ada


def tab_counts(dep: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for batch in dep.admin("GET", "imports?org=hope-shelter")["hope-shelter"]:
        for entry in batch["entries"]:
            counts[entry["tab"]] = counts.get(entry["tab"], 0) + 1
    return counts


def import_all(dep: Any) -> None:
    dep.admin("POST", "nightly", json={"org": "hope-shelter"})
    for batch in dep.admin("GET", "imports?org=hope-shelter&entries=0")["hope-shelter"]:
        dep.admin("POST", f"imports/{batch['id']}/import")


def status_json(dep: Any) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "giftsync.cli", "status", "--tenant", "hope-shelter", "--json"],
        cwd=REPO,
        env=dep.env,
        capture_output=True,
        text=True,
        check=True,
    )
    report: dict[str, Any] = json.loads(out.stdout)[0]
    return report


def test_webhooks_and_lookups_confirm_and_match_needed_waits_for_review(
    tmp_path: Path, redis_url: str
) -> None:
    from giftsync import webhooks
    from giftsync.serving import serve_in_thread
    from giftsync.settings import get_settings

    with deployment(tmp_path, redis_url, tenants=tenants, env=ENV) as dep:
        settings = get_settings()
        hope = settings.tenant("hope-shelter")
        with serve_in_thread(webhooks.create_app(settings), name="webhooks") as receiver:
            webhooks.subscribe(settings, hope, receiver)
            dep.start_worker(processes=1, threads=4)
            ada = ada_id(dep)
            ready = [gift(i, owner(5000 + i, contact_id=ada)) for i in (1, 2, 3)]
            update = [
                gift(
                    i,
                    owner(
                        1001,
                        first_name="Ada",
                        last_name="Lovelace",
                        email="ada@hope.example.org",
                        phone="555-999-0000",
                    ),
                )
                for i in (4, 5, 6)
            ]
            match = [
                gift(
                    i,
                    owner(
                        9000 + i,
                        first_name="Zed",
                        last_name=f"Nobody{i}",
                        email=f"zed{i}@nowhere.example",
                    ),
                )
                for i in (7, 8, 9)
            ]
            publish_many(ready + update + match)
            wait_for(
                lambda: dep.state_counts("hope-shelter").get("submitted", 0) == 9,
                what="9 submitted",
            )
            dep.admin("POST", "nightly", json={"org": "hope-shelter"})
            assert tab_counts(dep) == {"ready": 3, "update": 3, "match": 3}

            # The first import's webhooks arrive; the second's are all dropped.
            import_all(dep)
            wait_for(
                lambda: dep.state_counts("hope-shelter").get("confirmed", 0) == 6,
                what="6 confirmed by webhook",
            )
            later = [gift(i, owner(6000 + i, contact_id=ada)) for i in (10, 11)]
            dep.admin("POST", "faults", json={"webhook_drop_rate": 1.0})
            publish_many(later)
            wait_for(
                lambda: dep.state_counts("hope-shelter").get("submitted", 0) == 5,
                what="2 more submitted",
            )
            import_all(dep)
            wait_for(
                lambda: (
                    dep.state_counts("hope-shelter").get("confirmed", 0) == 8
                    and dep.state_counts("hope-shelter").get("needs_review", 0) == 3
                ),
                timeout=60,
                what="lookups confirm the rest and Match Needed goes to review",
            )
        confirmed = [w for w in dep.writeback() if w["type"] == "gift.confirmed"]
        sources = {w["id"]: w["source"] for w in confirmed}
        assert {sources[str(i)] for i in range(1, 7)} == {"webhook"}
        assert {sources["10"], sources["11"]} == {"lookup"}
        gifts = {
            g["transactionId"]: g["id"]
            for g in dep.admin("GET", "gifts?org=hope-shelter")["hope-shelter"]
        }
        assert all(int(w["virtuous_id"]) == gifts[w["id"]] for w in confirmed)
        report = status_json(dep)
        assert report["states"]["needs_review"] == 3
        batch_of_match = {
            text(dep.redis.hget(dep.key("rec", "hope-shelter", f"transaction:{i}"), "batch_id"))
            for i in (7, 8, 9)
        }
        assert report["review_batches"] == {b: 3 for b in batch_of_match}
        (batch_id,) = batch_of_match
        name = text(dep.redis.hget(dep.key("batch", batch_id), "import_name"))
        # Named as Virtuous shows the import, with the gifts to find in it.
        assert report["review_imports"] == [{"import": name, "transaction_ids": ["7", "8", "9"]}]
        assert name in {b["name"] for b in dep.admin("GET", "imports?entries=0")["hope-shelter"]}


def _sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


def test_forged_unsigned_and_replayed_webhooks_change_nothing(
    tmp_path: Path, redis_url: str
) -> None:
    from giftsync import webhooks
    from giftsync.serving import serve_in_thread
    from giftsync.settings import get_settings

    with deployment(tmp_path, redis_url, tenants=tenants, env=ENV) as dep:
        settings = get_settings()
        dep.start_worker(processes=1, threads=2)
        publish_many([transaction("hope-shelter", 1, contact_id=None)])
        wait_for(
            lambda: dep.state_counts("hope-shelter").get("submitted", 0) == 1, what="submitted"
        )
        with serve_in_thread(webhooks.create_app(settings), name="webhooks") as receiver:
            url = webhooks.subscription_url(receiver, settings, settings.tenant("hope-shelter"))
            body = json.dumps(
                {
                    "event": "GiftCreate",
                    "gift": {"id": 424242, "transactionSource": "WeGive", "transactionId": "1"},
                }
            ).encode()
            header = settings.webhook_signature_header
            assert httpx.post(url, content=body).status_code == 401  # unsigned
            assert (
                httpx.post(url, content=body, headers={header: _sign(b"other")}).status_code == 401
            )
            wrong_path = url.rsplit("/", 1)[0] + "/not-the-token"
            assert (
                httpx.post(wrong_path, content=body, headers={header: _sign(body)}).status_code
                == 401
            )
            assert dep.state_counts("hope-shelter") == {"submitted": 1}

            # Hex is accepted as well as Base64; the second identical delivery is a replay.
            hex_sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert httpx.post(url, content=body, headers={header: hex_sig}).status_code == 202
            wait_for(
                lambda: dep.state_counts("hope-shelter").get("confirmed", 0) == 1, what="confirmed"
            )
            assert httpx.post(url, content=body, headers={header: _sign(body)}).status_code == 200
        assert len([w for w in dep.writeback() if w["type"] == "gift.confirmed"]) == 1


def test_a_refund_of_a_batch_gift_waits_for_the_real_id_then_zeroes_it(
    tmp_path: Path, redis_url: str
) -> None:
    from giftsync import webhooks
    from giftsync.serving import serve_in_thread
    from giftsync.settings import get_settings

    with deployment(tmp_path, redis_url, tenants=tenants, env=ENV) as dep:
        settings = get_settings()
        with serve_in_thread(webhooks.create_app(settings), name="webhooks") as receiver:
            webhooks.subscribe(settings, settings.tenant("hope-shelter"), receiver)
            dep.start_worker(processes=1, threads=2)
            ada = ada_id(dep)
            original = gift(1, owner(5001, contact_id=ada), version=version_at(1))
            publish_many([original])
            wait_for(lambda: dep.state_counts("hope-shelter").get("submitted", 0) == 1, what="sent")
            batch_id = text(
                dep.redis.hget(dep.key("rec", "hope-shelter", "transaction:1"), "virtuous_id")
            )
            refund = gift(
                1,
                owner(5001, contact_id=ada),
                version=version_at(2),
                status="refunded",
                virtuous_id=batch_id,
            )
            publish_many([refund])
            wait_for(lambda: dep.state_counts("hope-shelter").get("held", 0) == 1, what="held")
            record = dep.redis.hgetall(dep.key("rec", "hope-shelter", "transaction:1"))
            assert b"waits_for_real_id" in record[b"reason"]
            import_all(dep)
            wait_for(
                lambda: any(w["type"] == "gift.zeroed" for w in dep.writeback()),
                timeout=30,
                what="the refund to zero the gift",
            )
        [created] = dep.admin("GET", "gifts?org=hope-shelter")["hope-shelter"]
        assert float(created["amount"]) == 0.0
        assert all(float(d["amountDesignated"]) == 0.0 for d in created["giftDesignations"])
