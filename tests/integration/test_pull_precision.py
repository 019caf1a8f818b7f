"""The pull against a sandbox whose "DateTime UTC" query parameters compare days, as Virtuous's
"Date" parameters do: a sweep keyed by id under a fixed lower bound still reads every record
once, across pages; records read again are skipped as unchanged; and RecurringGifts whose
frequency WeGive lacks are skipped with their reason, never stopping the pull."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from benchmarks.deployment import deployment
from tests.integration.test_pull import (
    ORG,
    check_first_pull,
    expected_transaction,
    pull_and_wait,
    pull_config,
    pull_tenant,
    pulled,
    saved,
    seed,
)

pytestmark = pytest.mark.integration

# More than one page (1,000) of records all edited today: at day precision the next sweep's
# date condition matches every one of them, so only the id key pages them.
EDITED = 1100
# Enough gifts that more than EDITED of them are staff gifts (pulled_create).
GIFTS = 1400


def test_a_pull_at_day_precision_reads_each_record_once_and_skips_frequencies_wegive_lacks(
    tmp_path: Path, redis_url: str
) -> None:
    config = pull_config(query_day_precision=True)
    with deployment(tmp_path, redis_url, tenants=pull_tenant, sandbox_config=config) as dep:
        dep.start_worker(processes=1, threads=4)
        seeded = seed(dep, GIFTS, 300)
        contact = next(iter(dep.admin("GET", f"contacts?org={ORG}")[ORG]))
        odd = [
            {
                "contactId": contact["id"],
                "startDate": "2025-03-15",
                "frequency": frequency,
                "amount": "12.00",
                "designations": [{"projectId": 101, "amountDesignated": "12.00"}],
            }
            for frequency in ("Bimonthly", "Semiannually", "Biennially")
        ]
        dep.admin("POST", "recurring-gifts", json={"org": ORG, "recurringGifts": odd})

        pull_and_wait(dep, "gifts", "recurring")
        check_first_pull(dep, seeded, gifts_total=GIFTS, rg_skipped=len(odd))
        first = len(pulled(dep))

        edited = sorted(seeded.created)[:EDITED]
        assert len(edited) == EDITED
        pages_before = int(saved(dep, "gifts")["gen"])
        for vid in edited:
            dep.admin("POST", f"gifts/{vid}", json={"notes": f"edited {vid}", "webhooks": False})
        pull_and_wait(dep, "gifts")
        updates = pulled(dep)[first:]
        assert Counter(int(e["virtuous_id"]) for e in updates) == Counter(edited)
        gifts = {g["id"]: g for g in dep.admin("GET", f"gifts?org={ORG}")[ORG]}
        for e in updates:
            assert e["type"] == "transaction.pulled_update" and e["match"] == "virtuous_id"
            want = expected_transaction(gifts[int(e["virtuous_id"])], create=False)
            assert e["record"] == want | {"status": "success"}
        # The edits took two pages (1,000 and 100) of one sweep.
        assert int(saved(dep, "gifts")["gen"]) - pages_before == 2

        # Day precision: the next sweep reads today's edits again, and writes nothing.
        pull_and_wait(dep, "gifts", "recurring")
        assert len(pulled(dep)) == first + EDITED
        assert int(saved(dep, "gifts")["skipped"]) >= EDITED
