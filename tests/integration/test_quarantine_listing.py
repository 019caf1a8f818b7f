"""The console's quarantined records are the ones quarantined now.

A record quarantined for one version whose newer version then went out is no longer
quarantined: it leaves the console's list and its count, which agree with the state counts.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from giftsync.examples import transaction, version_at
from mapping.tenant import TenantSettings
from tests.runtimes import isolated_runtime
from workers.flows import intake
from workers.queue import messages
from workers.runtime import Runtime

pytestmark = pytest.mark.integration

TENANT = "hope-shelter"
SETTINGS = TenantSettings(
    name=TENANT,
    virtuous_base_url="http://127.0.0.1:1",
    virtuous_token_env="VIRTUOUS_TOKEN_HOPE",
    timezone="UTC",
)


@pytest.fixture
def rt(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    monkeypatch.setattr(messages, "enqueue", lambda message, broker=None: message)
    with isolated_runtime(redis_url, SETTINGS) as runtime:
        yield runtime


def send(rt: Runtime, outcome: str, *ids_versions: tuple[int, int]) -> None:
    """Take these versions in, cut them into one batch and settle it with ``outcome``."""
    events = [
        transaction(TENANT, tx_id, version=version_at(version), contact_id=5000)
        for tx_id, version in ids_versions
    ]
    intake.run(rt, events, published_ms=1)
    [(batch_id, _)] = rt.batcher.cut_all_due(SETTINGS, lambda: "owner", force=True)
    batch = rt.batcher.load(batch_id)
    assert batch is not None
    rt.batcher.settle(batch, outcome, "Virtuous refused the import", "owner")


def test_a_record_sent_at_a_newer_version_leaves_the_quarantine_list(rt: Runtime) -> None:
    send(rt, "quarantined", (1, 1), (2, 1))
    assert rt.ledger.quarantined_count(TENANT) == 2
    # Gift 1's next version goes out; gift 2 stays quarantined.
    send(rt, "submitted", (1, 2))
    assert rt.ledger.state_counts(TENANT) == {"quarantined": 1, "submitted": 1}
    assert rt.ledger.quarantined_count(TENANT) == 1
    listed = rt.ledger.newest_quarantined(TENANT, 10)
    assert [member for member, _, _ in listed] == ["transaction:2"]
    assert listed[0][1] == "Virtuous refused the import"
    # The moved-on record is dropped from the list as it is met, not only skipped.
    assert rt.redis.zcard(rt.keys.quarantine(TENANT)) == 1


def test_the_list_fills_up_past_records_that_moved_on(rt: Runtime) -> None:
    send(rt, "quarantined", *((tx_id, 1) for tx_id in range(1, 7)))
    # The newest five go out at a newer version; the oldest stays quarantined.
    send(rt, "submitted", *((tx_id, 2) for tx_id in range(2, 7)))
    listed = rt.ledger.newest_quarantined(TENANT, 2)
    assert [member for member, _, _ in listed] == ["transaction:1"]
    assert rt.ledger.quarantined_count(TENANT) == 1
