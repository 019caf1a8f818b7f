"""Retention against a real Redis: records at rest longer than the retention become tombstones
with nothing personal left, settled batches go, counts and indexes stay exact, nothing that is
not at rest ever expires, a record revived by a new version starts over, and a replayed old
version stays stale after its record expired.

Time is driven by handing the sweep a clock (``now_ms``), never by sleeping.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest

from benchmarks.deployment import tenant_table
from giftsync.examples import transaction, version_at
from giftsync.settings import Settings, SettingsError, load_settings
from giftsync.waiting import wait_for
from mapping.tenant import TenantSettings
from tests.runtimes import isolated_runtime
from workers.flows import intake
from workers.observe.status import review_imports
from workers.queue import messages
from workers.queue.scheduler import Scheduler
from workers.runtime import Runtime
from workers.store import retention as retention_module
from workers.store.keys import member
from workers.store.ledger import version_number
from workers.store.retention import DAY_MS, TERMINAL_STATES, Retention
from workers.store.scripts import decode

pytestmark = pytest.mark.integration

BATCH = TenantSettings(
    name="keep-batch",
    virtuous_base_url="http://virtuous.invalid",
    virtuous_token_env="TOKEN",
    timezone="America/Chicago",
)
REALTIME = TenantSettings(
    name="keep-realtime",
    virtuous_base_url="http://virtuous.invalid",
    virtuous_token_env="TOKEN",
    timezone="America/Chicago",
    mode="real_time",
)
RETENTION_MS = 30 * DAY_MS


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The messages the flows enqueue, caught rather than queued."""
    caught: list[Any] = []
    monkeypatch.setattr(messages, "enqueue", lambda message, broker=None: caught.append(message))
    return caught


@pytest.fixture
def rt(redis_url: str, sends: list[Any]) -> Iterator[Runtime]:
    with isolated_runtime(redis_url, BATCH, REALTIME, retention_days=30) as runtime:
        yield runtime


def email(tx_id: int) -> str:
    """The donor email giftsync.examples gives transaction ``tx_id``'s owner."""
    return f"donor{10_000 + tx_id % 5000}@example.org"


def street(tx_id: int) -> str:
    return f"{10_000 + tx_id % 5000} Main St"


def version_of(event: dict[str, Any]) -> str:
    """The ledger's version number of an event."""
    return str(version_number(datetime.fromisoformat(event["version"])))


def entries(rt: Runtime, key: bytes | str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return cast("list[tuple[bytes, dict[bytes, bytes]]]", rt.redis.xrange(key))


def everything(rt: Runtime) -> str:
    """Every value of every key under the test's prefix, as one string."""
    parts: list[str] = []
    for key in rt.redis.scan_iter(match=f"{rt.keys.prefix}:*"):
        kind = decode(rt.redis.type(key))
        values: list[Any]
        if kind == "hash":
            values = [v for pair in rt.redis.hgetall(key).items() for v in pair]
        elif kind == "list":
            values = rt.redis.lrange(key, 0, -1)
        elif kind == "zset":
            values = rt.redis.zrange(key, 0, -1)
        elif kind == "set":
            values = list(rt.redis.smembers(key))
        elif kind == "stream":
            values = [v for _, fields in entries(rt, key) for v in fields.values()]
        else:
            values = [rt.redis.get(key) or b""]
        parts += [decode(key), *(decode(v) for v in values)]
    return "\n".join(parts)


def counted(rt: Runtime, tenant: str) -> dict[str, int]:
    """Records per state, counted from the records themselves."""
    states: Counter[str] = Counter()
    for key in rt.redis.scan_iter(match=rt.keys.record(tenant, "*")):
        state = rt.redis.hget(key, "state")
        if state is not None:
            states[decode(state)] += 1
    return dict(states)


def terminal_index(rt: Runtime, tenant: str) -> set[str]:
    return {decode(k) for k in rt.redis.zrange(rt.keys.terminal(tenant), 0, -1)}


def state(rt: Runtime, tenant: str, tx_id: int) -> str:
    return rt.ledger.record(tenant, member("transaction", tx_id)).get("state", "")


def cut(rt: Runtime, *tx_ids: int) -> str:
    """Take ``tx_ids`` in and cut them into one batch; its id."""
    intake.run(rt, [transaction(BATCH.name, i, contact_id=None) for i in tx_ids])
    [(batch_id, _)] = rt.batcher.cut_all_due(BATCH, lambda: "owner", force=True)
    return batch_id


def settle(rt: Runtime, batch_id: str, outcome: str) -> None:
    batch = rt.batcher.load(batch_id)
    assert batch is not None
    assert rt.batcher.settle(
        batch, outcome, "accepted" if outcome == "submitted" else "bad", "owner"
    )


def confirm(rt: Runtime, tx_id: int) -> None:
    outcome, _, _ = rt.ledger.confirm(
        BATCH.name, member("transaction", tx_id), 9000 + tx_id, "webhook"
    )
    assert outcome == "confirmed"


def sent(rt: Runtime, tx_id: int) -> None:
    """A real-time gift taken in and created by a direct call."""
    name = member("transaction", tx_id)
    intake.run(rt, [transaction(REALTIME.name, tx_id, contact_id=None)])
    record = rt.ledger.record(REALTIME.name, name)
    rt.ledger.applied(
        REALTIME.name,
        name,
        version=record["version"],
        state="sent",
        virtuous_id=str(9000 + tx_id),
        writeback_type="gift.created",
        reason="created",
    )


def after(rt: Runtime, moment_ms: int) -> int:
    """Redis's clock once it has passed ``moment_ms`` (a millisecond or so)."""
    wait_for(lambda: rt.retention.server_ms() > moment_ms, timeout=5, what="the clock to move")
    return rt.retention.server_ms()


def since(rt: Runtime, tenant: str, tx_id: int) -> int:
    """When the record last entered a terminal state, as the terminal index holds it."""
    key = rt.keys.record(tenant, member("transaction", tx_id))
    score = rt.redis.zscore(rt.keys.terminal(tenant), key)
    assert score is not None, f"{key} is not in the terminal index"
    return int(score)


@pytest.fixture
def world(rt: Runtime) -> dict[str, Any]:
    """Records in every state that matters, in batches settled every way.

    At rest: 101 confirmed, 102 skipped, 103 quarantined, 108 confirmed, 201 sent.
    Not at rest: 104 submitted, 105 buffered, 106 needs_review, 107 dead (its batch is
    pending), 202 queued, 203 held.
    """
    batch_a = cut(rt, 101, 104, 106)
    batch_b = cut(rt, 103)
    batch_d = cut(rt, 108)
    batch_c = cut(rt, 107)
    intake.run(rt, [transaction(BATCH.name, 105, contact_id=None)])
    intake.run(rt, [transaction(BATCH.name, 102, status="failed", contact_id=None)])
    settle(rt, batch_a, "submitted")
    confirm(rt, 101)
    assert rt.ledger.mark_review(BATCH.name, member("transaction", 106))
    settle(rt, batch_b, "quarantined")
    settle(rt, batch_d, "submitted")
    confirm(rt, 108)
    rt.ledger.mark(BATCH.name, "dead", "dead letter: boom", [member("transaction", 107)])
    sent(rt, 201)
    intake.run(rt, [transaction(REALTIME.name, 202, contact_id=None)])
    intake.run(rt, [transaction(REALTIME.name, 203, contact_id=None)])
    rt.ledger.wait_for_donor(REALTIME.name, member("transaction", 203), "10203", "donor pending")
    expected = {
        101: "confirmed", 102: "skipped", 103: "quarantined", 104: "submitted",
        105: "buffered", 106: "needs_review", 107: "dead", 108: "confirmed",
    }  # fmt: skip
    for tx_id, wanted in expected.items():
        assert state(rt, BATCH.name, tx_id) == wanted, tx_id
    for tx_id, wanted in {201: "sent", 202: "queued", 203: "held"}.items():
        assert state(rt, REALTIME.name, tx_id) == wanted, tx_id
    return {"a": batch_a, "b": batch_b, "c": batch_c, "d": batch_d}


AT_REST = {BATCH.name: (101, 102, 103, 108), REALTIME.name: (201,)}
NOT_AT_REST = {BATCH.name: (104, 105, 106, 107), REALTIME.name: (202, 203)}
TENANTS = [BATCH.name, REALTIME.name]


def test_the_terminal_states_are_the_same_in_python_and_lua() -> None:
    lua = (Path(retention_module.__file__).parent / "state_prelude.lua").read_text()
    table = re.search(r"local TERMINAL = \{([^}]*)\}", lua)
    assert table is not None
    assert set(re.findall(r"(\w+) = true", table.group(1))) == TERMINAL_STATES


def test_the_terminal_index_holds_exactly_the_records_at_rest(
    rt: Runtime, world: dict[str, Any]
) -> None:
    for tenant in TENANTS:
        wanted = {rt.keys.record(tenant, member("transaction", i)) for i in AT_REST[tenant]}
        assert terminal_index(rt, tenant) == wanted


def test_records_at_rest_past_the_retention_expire_with_everything_personal(
    rt: Runtime, world: dict[str, Any]
) -> None:
    # Donors with no Contact id yet: batch entries carry their details. A skipped change
    # stores none; a batch gift's are in its buffer or batch; a direct send's in its record.
    before = everything(rt)
    for tx_id in (101, 103, 104, 105, 106, 107, 108, 201, 202, 203):
        assert email(tx_id) in before and street(tx_id) in before, tx_id
    now = rt.retention.server_ms() + RETENTION_MS + 1000
    swept = rt.retention.sweep(TENANTS, now_ms=now)
    assert swept.records == {BATCH.name: 4, REALTIME.name: 1}
    assert swept.complete
    left = everything(rt)
    for tenant, tx_ids in AT_REST.items():
        for tx_id in tx_ids:
            assert email(tx_id) not in left and street(tx_id) not in left, tx_id
            tomb = rt.ledger.record(tenant, member("transaction", tx_id))
            assert tomb["state"] == "expired"
            assert not set(tomb) & {"payload", "pending_entry", "reason", "last_error"}
            assert tomb["version"] == version_of(transaction(tenant, tx_id))
    assert rt.ledger.record(BATCH.name, member("transaction", 101))["virtuous_id"] == "9101"
    assert rt.ledger.record(REALTIME.name, member("transaction", 201))["virtuous_id"] == "9201"
    # What is not at rest keeps what it needs: the buffered entry, the pending batch, the
    # direct sends' events. The settled batch of 104 and 106 lost its body all the same.
    for tx_id in (105, 107, 202, 203):
        assert email(tx_id) in left and street(tx_id) in left, tx_id
    for tx_id in (104, 106):
        assert email(tx_id) not in left, tx_id
        assert state(rt, BATCH.name, tx_id) in ("submitted", "needs_review")
    # The quarantined record left the quarantine index with its record.
    assert rt.ledger.quarantined_count(BATCH.name) == 0
    # Counts are exact: what the hash says is what the records say.
    for tenant in TENANTS:
        assert rt.ledger.state_counts(tenant) == counted(rt, tenant)
        assert terminal_index(rt, tenant) == set()
    assert rt.ledger.state_counts(BATCH.name)["expired"] == 4
    # A second sweep finds nothing more to do.
    again = rt.retention.sweep(TENANTS, now_ms=now + 1000)
    assert not again.anything


def test_nothing_expires_before_the_retention(rt: Runtime, world: dict[str, Any]) -> None:
    youngest = max(since(rt, t, i) for t, ids in AT_REST.items() for i in ids)
    oldest = min(since(rt, t, i) for t, ids in AT_REST.items() for i in ids)
    swept = rt.retention.sweep(TENANTS, now_ms=oldest + RETENTION_MS - 1)
    assert swept.records == {BATCH.name: 0, REALTIME.name: 0}
    swept = rt.retention.sweep(TENANTS, now_ms=youngest + RETENTION_MS)
    assert sum(swept.records.values()) == 5


def test_what_is_not_at_rest_never_expires(rt: Runtime, world: dict[str, Any]) -> None:
    before = {
        (tenant, tx_id): rt.ledger.record(tenant, member("transaction", tx_id))
        for tenant, tx_ids in NOT_AT_REST.items()
        for tx_id in tx_ids
    }
    ten_years = rt.retention.server_ms() + 3650 * DAY_MS
    rt.retention.sweep(TENANTS, now_ms=ten_years)
    for (tenant, tx_id), record in before.items():
        assert rt.ledger.record(tenant, member("transaction", tx_id)) == record
    # The dead record's batch is pending: untouched, body and all.
    pending = rt.batcher.load(world["c"])
    assert (
        pending is not None and pending.state == "pending" and email(107) in pending.body.decode()
    )
    for tenant in TENANTS:
        assert rt.ledger.state_counts(tenant) == counted(rt, tenant)


def test_settled_batches_go_and_one_a_record_still_needs_keeps_only_its_name(
    rt: Runtime, world: dict[str, Any]
) -> None:
    imports = review_imports(rt, BATCH.name)
    now = rt.retention.server_ms() + RETENTION_MS + 1000
    swept = rt.retention.sweep(TENANTS, now_ms=now)
    assert swept.batches[BATCH.name] == 2
    for gone in (world["b"], world["d"]):
        assert rt.batcher.load(gone) is None
        assert not rt.redis.exists(rt.keys.batch_entries(gone), rt.keys.batch_members(gone))
    listed = {decode(b) for b in rt.redis.zrange(rt.keys.tenant_batches(BATCH.name), 0, -1)}
    assert listed == {world["a"], world["c"]}
    # Batch a still names the Import Tool import of the gift that needs review, but holds
    # no body and no entries: nobody's details.
    kept = rt.batcher.load(world["a"])
    assert kept is not None and kept.body == b"" and kept.state == "submitted"
    assert not rt.redis.exists(rt.keys.batch_entries(world["a"]))
    assert review_imports(rt, BATCH.name) == imports
    # Once its last record is at rest it goes too.
    for tx_id in (104, 106):
        confirm(rt, tx_id)
    later = rt.retention.server_ms() + 1
    rt.retention.sweep(TENANTS, now_ms=later)
    assert rt.batcher.load(world["a"]) is not None  # settled too lately for this clock
    rt.retention.sweep(TENANTS, now_ms=later + RETENTION_MS)
    assert rt.batcher.load(world["a"]) is None
    assert rt.ledger.state_counts(BATCH.name) == counted(rt, BATCH.name)


def test_the_writeback_stream_keeps_only_the_retention(rt: Runtime) -> None:
    sent(rt, 301)
    [(first_id, _)] = entries(rt, rt.keys.writeback)
    first_ms = int(decode(first_id).split("-")[0])
    after(rt, first_ms)
    sent(rt, 302)
    assert rt.redis.xlen(rt.keys.writeback) == 2
    swept = rt.retention.sweep(TENANTS, now_ms=first_ms + 1 + RETENTION_MS)
    assert swept.writeback == 1
    [(_, fields)] = entries(rt, rt.keys.writeback)
    assert decode(fields[b"id"]) == "302"


def test_a_record_revived_by_a_new_version_does_not_expire(rt: Runtime) -> None:
    cut_id = cut(rt, 401)
    settle(rt, cut_id, "submitted")
    confirm(rt, 401)
    confirmed_at = since(rt, BATCH.name, 401)
    after(rt, confirmed_at)
    # An edit of the confirmed gift: a direct update by Gift id, so the record is queued.
    edit = transaction(BATCH.name, 401, amount=3000, version=version_at(401 + 60))
    assert intake.run(rt, [edit]).outcomes == {"realtime": 1}
    assert state(rt, BATCH.name, 401) == "queued"
    assert terminal_index(rt, BATCH.name) == set()
    ten_years = rt.retention.server_ms() + 3650 * DAY_MS
    rt.retention.sweep(TENANTS, now_ms=ten_years)
    assert state(rt, BATCH.name, 401) == "queued"
    assert email(401) in rt.ledger.record(BATCH.name, member("transaction", 401))["payload"]
    # Applied: at rest again, and the clock starts over from then.
    name = member("transaction", 401)
    rt.ledger.applied(
        BATCH.name,
        name,
        version=rt.ledger.record(BATCH.name, name)["version"],
        state="sent",
        virtuous_id="",
        writeback_type="gift.updated",
        reason="updated",
    )
    sent_at = since(rt, BATCH.name, 401)
    assert sent_at > confirmed_at
    rt.retention.sweep(TENANTS, now_ms=sent_at + RETENTION_MS - 1)
    assert state(rt, BATCH.name, 401) == "sent"
    rt.retention.sweep(TENANTS, now_ms=sent_at + RETENTION_MS)
    assert state(rt, BATCH.name, 401) == "expired"
    assert rt.ledger.state_counts(BATCH.name) == counted(rt, BATCH.name)


def test_a_newer_version_kept_on_a_record_at_rest_restarts_its_clock(rt: Runtime) -> None:
    cut_id = cut(rt, 402)
    settle(rt, cut_id, "submitted")
    confirm(rt, 402)
    confirmed_at = since(rt, BATCH.name, 402)
    changed_at = after(rt, confirmed_at)
    # Not sent (the decision says no) and kept on the record, which stays confirmed.
    pending = transaction(BATCH.name, 402, status="pending", version=version_at(402 + 60))
    assert intake.run(rt, [pending]).outcomes == {"skipped": 1}
    assert state(rt, BATCH.name, 402) == "confirmed"
    rt.retention.sweep(TENANTS, now_ms=confirmed_at + RETENTION_MS)
    assert state(rt, BATCH.name, 402) == "confirmed"
    assert since(rt, BATCH.name, 402) >= changed_at
    rt.retention.sweep(TENANTS, now_ms=since(rt, BATCH.name, 402) + RETENTION_MS)
    assert state(rt, BATCH.name, 402) == "expired"


def test_an_old_version_replayed_after_expiry_stays_stale_and_a_new_one_revives(
    rt: Runtime, world: dict[str, Any], sends: list[Any]
) -> None:
    now = rt.retention.server_ms() + RETENTION_MS + 1000
    rt.retention.sweep(TENANTS, now_ms=now)
    tomb = rt.ledger.record(BATCH.name, member("transaction", 101))
    counts = rt.ledger.state_counts(BATCH.name)
    # The same version, and an older one, as a platform resend or a dead letter's replay.
    replays = [
        transaction(BATCH.name, 101, contact_id=None),
        transaction(BATCH.name, 101, amount=1, version=version_at(50), contact_id=None),
        transaction(REALTIME.name, 201, contact_id=None),
    ]
    sends.clear()
    result = intake.run(rt, replays)
    assert result.outcomes == {"stale": 3}
    assert sends == []
    assert rt.ledger.record(BATCH.name, member("transaction", 101)) == tomb
    assert rt.ledger.state_counts(BATCH.name) == counts
    assert rt.batcher.buffer_size(BATCH.name) == 1  # 105 alone
    # A newer version of the confirmed gift updates it by the Gift id the tombstone kept, even
    # though the platform's event does not carry it.
    refund = transaction(
        BATCH.name, 101, status="refunded", version=version_at(101 + 60), contact_id=None
    )
    assert intake.run(rt, [refund]).outcomes == {"realtime": 1}
    record = rt.ledger.record(BATCH.name, member("transaction", 101))
    assert record["state"] == "queued" and '"virtuous_id":"9101"' in record["payload"]
    # A newer version of a skipped one is simply new.
    success = transaction(BATCH.name, 102, version=version_at(102 + 60), contact_id=None)
    assert intake.run(rt, [success]).outcomes == {"buffered": 1}
    # A newer version that is not sent: skipped, at rest again, and no tombstone left holding
    # its event.
    held_back = transaction(
        BATCH.name, 103, status="pending", version=version_at(103 + 60), contact_id=None
    )
    assert intake.run(rt, [held_back]).outcomes == {"skipped": 1}
    assert state(rt, BATCH.name, 103) == "skipped"
    assert rt.keys.record(BATCH.name, member("transaction", 103)) in terminal_index(rt, BATCH.name)
    after_counts = rt.ledger.state_counts(BATCH.name)
    assert after_counts["expired"] == counts["expired"] - 3
    assert rt.ledger.state_counts(BATCH.name) == counted(rt, BATCH.name)


def test_a_batch_settled_after_its_confirmed_records_expired_changes_no_gift(rt: Runtime) -> None:
    # The batch's message died (its answer lost), the import ran anyway and confirmed both
    # gifts; they expire while the dead letter waits; 502 gets a newer version. Then the dead
    # letter is replayed and the batch settles: each tombstone still says which version the
    # batch carried and that the Gift id is known.
    batch_id = cut(rt, 501, 502)
    members = [member("transaction", 501), member("transaction", 502)]
    rt.ledger.mark(BATCH.name, "dead", "dead letter: lost answer", members)
    confirm(rt, 501)
    confirm(rt, 502)
    rt.retention.sweep(TENANTS, now_ms=rt.retention.server_ms() + RETENTION_MS + 1)
    assert rt.batcher.load(batch_id) is not None  # pending: never touched
    edit = transaction(BATCH.name, 502, amount=3000, version=version_at(502 + 60), contact_id=None)
    assert intake.run(rt, [edit]).outcomes == {"realtime": 1}
    rt.ledger.mark(BATCH.name, "batched", "replayed", members)
    batch = rt.batcher.load(batch_id)
    assert batch is not None
    settled = rt.batcher.settle(batch, "submitted", "accepted", "owner")
    assert settled is not None and settled.send_now == [member("transaction", 502)]
    first = rt.ledger.record(BATCH.name, members[0])
    assert first["state"] == "confirmed" and first["virtuous_id"] == "9501"
    assert first["applied_version"] == first["version"] == version_of(transaction(BATCH.name, 501))
    assert rt.ledger.record(BATCH.name, members[1])["state"] == "queued"
    assert rt.redis.zcard(rt.keys.unconfirmed(BATCH.name)) == 0
    assert rt.ledger.state_counts(BATCH.name) == counted(rt, BATCH.name)


def test_records_at_rest_from_before_the_index_are_found_once(
    rt: Runtime, world: dict[str, Any]
) -> None:
    # As after an upgrade: records at rest that no terminal index lists yet.
    for tenant in TENANTS:
        rt.redis.delete(rt.keys.terminal(tenant), rt.keys.retention_progress(tenant))
    now = rt.retention.server_ms() + RETENTION_MS + 1000
    swept = rt.retention.sweep(TENANTS, now_ms=now)
    assert swept.indexed == 5
    assert swept.records == {BATCH.name: 4, REALTIME.name: 1}
    assert rt.retention.index_older(BATCH.name) == 0  # the pass is done, never repeated
    for tenant in TENANTS:
        assert rt.ledger.state_counts(tenant) == counted(rt, tenant)


def test_zero_retention_keeps_everything(rt: Runtime, world: dict[str, Any]) -> None:
    forever = Retention(rt.redis, rt.keys, 0)
    swept = forever.sweep(TENANTS, now_ms=rt.retention.server_ms() + 3650 * DAY_MS)
    assert not swept.anything
    assert state(rt, BATCH.name, 101) == "confirmed"


def test_the_scheduler_runs_the_sweep_with_the_configured_retention(
    rt: Runtime, world: dict[str, Any]
) -> None:
    # A retention of one millisecond: everything at rest is old as soon as the clock moves.
    tiny = Runtime(
        Settings(
            redis_url=rt.settings.redis_url,
            config_path=Path("x.toml"),
            tenants=rt.settings.tenants,
            key_prefix=rt.settings.key_prefix,
            retention_days=1 / DAY_MS,
        )
    )
    assert tiny.retention.retention_ms == 1
    youngest = max(since(rt, t, i) for t, ids in AT_REST.items() for i in ids)
    after(tiny, youngest + 1)
    Scheduler(tiny).expire_old()
    for tenant, tx_ids in AT_REST.items():
        for tx_id in tx_ids:
            assert state(tiny, tenant, tx_id) == "expired"
    tiny.close()


def test_the_retention_setting(tmp_path: Path) -> None:
    config = tmp_path / "giftsync.toml"
    config.write_text(tenant_table(BATCH.name, "http://virtuous.invalid", "TOKEN"))
    assert load_settings({"GIFTSYNC_CONFIG": str(config)}).retention_days == 30
    env = {"GIFTSYNC_CONFIG": str(config), "GIFTSYNC_RETENTION_DAYS": "0"}
    assert load_settings(env).retention_days == 0
    for bad in ("-1", "forever", "inf", "nan"):
        with pytest.raises(SettingsError, match="GIFTSYNC_RETENTION_DAYS"):
            load_settings({**env, "GIFTSYNC_RETENTION_DAYS": bad})
