"""Every change reaches Virtuous exactly once, at its newest version, whatever arrives when.

A hypothesis state machine drives the real ledger, batcher, Lua scripts and flows (intake,
batch send, direct sends, confirmation, the reconcile sweep, dead letters and their replay)
against :mod:`tests.model.virtuous_model`, through random interleavings of: publishing a new
version, a refund, an edit, a stale or duplicate or out-of-order version; cutting batches;
sending with the answer 200, 400 (a refused entry) or lost; imports and gift-created deliveries
(genuine, for a record in the wrong state, and of other event types); lookups; dead letters and
replays; the retention sweep expiring every record at rest (so stale versions and newer ones
also meet tombstones). Messages are kept in a list the machine delivers in any order, as several
workers would.

Invariants: never two Gifts for one transaction, and the state counts equal the records'
states, at any step. At quiescence (everything
delivered, imported and confirmed): each transaction whose newest version is sendable is one
Gift at that version's amount (a refund: no Gift or a zeroed one), and every record rests in
a terminal state with nothing scheduled.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from giftsync.settings import Settings
from mapping.money import dollars
from mapping.tenant import TenantSettings
from tests.model.virtuous_model import POISON_AMOUNT, SOURCE, ModelClient, VirtuousModel
from workers.errors import AmbiguousOutcomeError, Throttled, TransientError
from workers.flows import batch_send, confirm, gifts, intake
from workers.queue import messages
from workers.runtime import Runtime
from workers.store.limiter import Grant

pytestmark = pytest.mark.integration

TENANT = "model-org"
RECORDS = (1, 2, 3)
AMOUNTS = (5000, 7500, 1313)  # 1313 cents is the model's refused amount
# At rest, or expired from rest by the retention sweep.
TERMINAL = {"confirmed", "sent", "skipped", "quarantined", "expired"}
BASE = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SCHEDULES = int(os.environ.get("GIFTSYNC_MODEL_SCHEDULES", "2000"))

assert dollars(1313) == POISON_AMOUNT


def _tenant() -> TenantSettings:
    return TenantSettings(
        name=TENANT,
        virtuous_base_url="http://virtuous.model.invalid",
        virtuous_token_env="MODEL_TOKEN",
        timezone="America/Chicago",
        transaction_source=SOURCE,
        reconcile_after_seconds=0.0,
        review_deadline_seconds=3600.0,
    )


def _event(record_id: int, version: int, status: str, amount: int) -> dict[str, Any]:
    return {
        "tenant": TENANT,
        "kind": "transaction",
        "version": (BASE + timedelta(seconds=version)).isoformat(),
        "record": {
            "id": record_id,
            "status": status,
            "amount": amount,
            "created_at": "2026-11-20T11:00:00-06:00",
            "is_tax_deductible": True,
            "anonymous": False,
            "source_type": "card",
            "owner": {
                "type": "individual",
                "id": 700 + record_id,
                "virtuous_contact_id": 500 + record_id,
                "first_name": "Ana",
                "last_name": "Model",
                "email": "ana@example.org",
            },
            "fund": {"id": 12, "name": "General Fund", "virtuous_id": 4012, "code": "GEN"},
            "allocations": [],
            "campaign": None,
            "scheduled_donation": None,
            "virtuous_id": None,
        },
    }


class OpenLimiter:
    """A limiter that grants every call."""

    def acquire(self, tenant: TenantSettings, **_: Any) -> Grant:
        return Grant(granted=True, wait_seconds=0.0, tokens_left=1_000_000.0)

    def block(self, tenant: str, seconds: float) -> None:
        """Never asked: the model never answers 429."""

    def observe(self, tenant: TenantSettings, **_: Any) -> None:
        """Nothing to learn."""


class ExactlyOnce(RuleBasedStateMachine):
    """Random schedules against the real ledger and a model of Virtuous."""

    redis_url = ""

    def __init__(self) -> None:
        super().__init__()
        self.prefix = f"model-{uuid.uuid4().hex[:10]}"
        self.tenant = _tenant()
        self.rt = Runtime(
            Settings(
                redis_url=self.redis_url,
                config_path=Path("model-tenants.toml"),
                tenants={TENANT: self.tenant},
                key_prefix=self.prefix,
                env={"MODEL_TOKEN": "model-token"},
            )
        )
        self.virtuous = VirtuousModel()
        self.rt._clients[TENANT] = ModelClient(self.virtuous)  # type: ignore[assignment]
        # The call budget is the limiter's own guarantee, tested on its own: here every call
        # may go, so the schedule alone decides what happens when.
        self.rt.__dict__["limiter"] = OpenLimiter()
        self.queue: list[dramatiq.Message[Any]] = []
        self.dead: list[dramatiq.Message[Any]] = []
        self.clock = 0
        # Every version published per record: (version, event).
        self.history: dict[int, list[tuple[int, dict[str, Any]]]] = {r: [] for r in RECORDS}
        messages.enqueue = self._enqueue

    def _enqueue(
        self, message: dramatiq.Message[Any], broker: object = None
    ) -> dramatiq.Message[Any]:
        self.queue.append(message)
        return message

    def teardown(self) -> None:
        try:
            self.drain()
            self.check_quiescent()
        finally:
            messages.enqueue = ORIGINAL_ENQUEUE
            keys = list(self.rt.redis.scan_iter(match=f"{self.prefix}:*", count=1000))
            if keys:
                self.rt.redis.delete(*keys)
            self.rt.close()
            self.rt.redis.close()

    # Publishing

    def _publish(self, record_id: int, version: int, event: dict[str, Any]) -> None:
        intake.run(self.rt, [json.loads(json.dumps(event))], published_ms=1)

    @rule(record=st.sampled_from(RECORDS), amount=st.sampled_from(AMOUNTS))
    def publish_new_version(self, record: int, amount: int) -> None:
        self.clock += 1
        event = _event(record, self.clock, "success", amount)
        self.history[record].append((self.clock, event))
        self._publish(record, self.clock, event)

    @rule(record=st.sampled_from(RECORDS))
    def publish_refund(self, record: int) -> None:
        self.clock += 1
        amount = self.history[record][-1][1]["record"]["amount"] if self.history[record] else 5000
        event = _event(record, self.clock, "refunded", amount)
        self.history[record].append((self.clock, event))
        self._publish(record, self.clock, event)

    @precondition(lambda self: any(self.history.values()))
    @rule(data=st.data())
    def publish_stale_or_duplicate(self, data: st.DataObject) -> None:
        record = data.draw(st.sampled_from([r for r in RECORDS if self.history[r]]))
        version, event = data.draw(st.sampled_from(self.history[record]))
        self._publish(record, version, event)

    # Batches and sends

    @rule()
    def cut(self) -> None:
        batch_send.cut_and_enqueue(self.rt, self.tenant, force=True)

    @precondition(lambda self: bool(self.queue))
    @rule(data=st.data(), lose=st.booleans())
    def deliver(self, data: st.DataObject, lose: bool) -> None:
        index = data.draw(st.integers(0, len(self.queue) - 1))
        self._run(self.queue.pop(index), lose=lose)

    def _run(self, message: dramatiq.Message[Any], *, lose: bool = False) -> None:
        self.virtuous.lose_next_answer = lose
        kwargs = message.kwargs
        try:
            if message.actor_name == "send_batch":
                batch_send.run(self.rt, self.tenant, kwargs["batch_id"], message.message_id)
            elif message.actor_name == "send_gift":
                gifts.send_gift(self.rt, self.tenant, kwargs["member"])
            else:
                raise AssertionError(f"unexpected message {message.actor_name}")
        except (Throttled, AmbiguousOutcomeError, TransientError):
            # The retry middleware puts the message back (a delay, or a retry).
            self.queue.append(message)
        finally:
            self.virtuous.lose_next_answer = False

    # Virtuous's side

    @rule()
    def staff_run_the_import(self) -> None:
        self.virtuous.run_import()

    @precondition(lambda self: bool(self.virtuous.deliveries))
    @rule(data=st.data())
    def gift_created_delivery(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.virtuous.deliveries) - 1))
        payload = self.virtuous.deliveries.pop(index)
        confirm.apply_webhook(self.rt, self.tenant, payload)

    @rule(record=st.sampled_from(RECORDS), event=st.sampled_from(["GiftUpdate", "GiftCreate"]))
    def delivery_that_must_change_nothing(self, record: int, event: str) -> None:
        state = self._record(record).get("state")
        gift = self.virtuous.by_transaction(str(record))
        if event == "GiftCreate":
            # A gift-created delivery for a record Virtuous cannot hold yet.
            if gift is not None or state not in (None, "buffered", "skipped", "quarantined"):
                return
            gift_id = 1
        else:
            if gift is None:
                return
            gift_id = gift.id
        before = self._record(record)
        payload = {
            "event": event,
            "gift": {"id": gift_id, "transactionSource": SOURCE, "transactionId": str(record)},
        }
        confirm.apply_webhook(self.rt, self.tenant, payload)
        assert self._record(record) == before

    @rule()
    def reconcile_sweep(self) -> None:
        confirm.sweep(self.rt, self.tenant)

    # Dead letters

    @precondition(lambda self: bool(self.queue))
    @rule(data=st.data())
    def dead_letter(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.queue) - 1))
        message = self.queue.pop(index)
        members = self._members_of(message)
        if members:
            self.rt.ledger.mark(TENANT, "dead", "dead letter: model", members)
        self.dead.append(message)

    @precondition(lambda self: bool(self.dead))
    @rule()
    def replay(self) -> None:
        self._replay(self.dead.pop(0))

    def _replay(self, message: dramatiq.Message[Any]) -> None:
        members = self._members_of(message)
        if members:
            state = "batched" if "batch_id" in message.kwargs else "queued"
            self.rt.ledger.mark(TENANT, state, "replayed", members)
        self.queue.append(message)

    def _members_of(self, message: dramatiq.Message[Any]) -> list[str]:
        if "batch_id" in message.kwargs:
            batch = self.rt.batcher.load(message.kwargs["batch_id"])
            return batch.members if batch and batch.state == "pending" else []
        return [str(message.kwargs["member"])]

    # Retention

    @rule()
    def retention_sweep(self) -> None:
        # A clock past the retention: every record at rest expires now.
        retention = self.rt.retention
        retention.sweep([TENANT], now_ms=retention.server_ms() + retention.retention_ms + 1)

    # Checks

    def _record(self, record: int) -> dict[str, str]:
        return self.rt.ledger.record(TENANT, f"transaction:{record}")

    @invariant()
    def never_two_gifts_for_one_transaction(self) -> None:
        duplicates = {tx: n for tx, n in self.virtuous.made.items() if n > 1}
        assert not duplicates, f"duplicate Gifts: {duplicates}"

    @invariant()
    def counts_are_the_records_states(self) -> None:
        states: dict[str, int] = {}
        for record in RECORDS:
            state = self._record(record).get("state")
            if state is not None:
                states[state] = states.get(state, 0) + 1
        assert self.rt.ledger.state_counts(TENANT) == states

    def drain(self) -> None:
        for _ in range(60):
            while self.dead:
                self._replay(self.dead.pop(0))
            batch_send.cut_and_enqueue(self.rt, self.tenant, force=True)
            while self.queue:
                self._run(self.queue.pop(0))
            imported = self.virtuous.run_import()
            delivered = bool(self.virtuous.deliveries)
            while self.virtuous.deliveries:
                confirm.apply_webhook(self.rt, self.tenant, self.virtuous.deliveries.pop(0))
            found = confirm.sweep(self.rt, self.tenant).confirmed
            if not (self.queue or imported or delivered or found or self._buffered()):
                return
        raise AssertionError("the system did not come to rest")

    def _buffered(self) -> int:
        return self.rt.batcher.buffer_size(TENANT)

    def check_quiescent(self) -> None:
        for record, published in self.history.items():
            if not published:
                continue
            _, newest = max(published, key=lambda item: item[0])
            ledger = self._record(record)
            assert ledger.get("state") in TERMINAL, (record, ledger)
            gift = self.virtuous.by_transaction(str(record))
            status, amount = newest["record"]["status"], newest["record"]["amount"]
            if status == "refunded":
                assert gift is None or gift.amount == "0.00", (record, gift, ledger)
            elif dollars(amount) != POISON_AMOUNT:
                assert gift is not None, (record, ledger)
                assert gift.amount == dollars(amount), (record, gift, ledger)


ORIGINAL_ENQUEUE = messages.enqueue


@pytest.fixture
def model_redis(redis_url: str) -> Iterator[str]:
    client = redis.Redis.from_url(redis_url)
    client.ping()
    client.close()
    yield redis_url


@pytest.mark.timeout(1200)
def test_every_change_reaches_virtuous_exactly_once_at_its_newest_version(
    model_redis: str,
) -> None:
    ExactlyOnce.redis_url = model_redis
    run = ExactlyOnce.TestCase
    run.settings = settings(
        max_examples=SCHEDULES,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    run().runTest()
