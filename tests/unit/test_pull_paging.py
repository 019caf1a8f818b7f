"""Key paging for the pull: the condition builder, and paging through the sandbox's own query
engine visits every record exactly once, ties on the date included, with no skip ever."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pytest

from sandbox.query import GIFT_PARAMETERS, RECURRING_PARAMETERS, run_query
from workers.flows.pull_plan import Cursor, after_cursor, instant, page_query


def test_no_cursor_asks_for_every_dated_record_in_key_order() -> None:
    assert page_query("Last Modified Date", "Gift Id", None) == {
        "groups": [{"conditions": [{"parameter": "Last Modified Date", "operator": "Is Known"}]}],
        "sortBy": "Last Modified Date",
        "descending": False,
    }


def test_a_cursor_becomes_date_after_or_same_date_and_id_after() -> None:
    cursor = Cursor("2026-11-20T15:00:00.250000", 42)
    body = page_query("Last Modified Date", "Gift Id", cursor)
    assert body["groups"] == [
        {
            "conditions": [
                {
                    "parameter": "Last Modified Date",
                    "operator": "Greater Than",
                    "value": "2026-11-20T15:00:00.250000",
                }
            ]
        },
        {
            "conditions": [
                {
                    "parameter": "Last Modified Date",
                    "operator": "Is",
                    "value": "2026-11-20T15:00:00.250000",
                },
                {"parameter": "Gift Id", "operator": "Greater Than", "value": "42"},
            ]
        },
    ]
    assert body["sortBy"] == "Last Modified Date" and body["descending"] is False


# Stored as the sandbox stores them: 19-character gift dates, 26-character timestamps.
TIMES = ("00:00:00", "09:30:00", "09:30:00.500000")


def _records(count: int, field: str, seed: int) -> list[dict[str, Any]]:
    """Records with few distinct dates (many ties) and shuffled ids."""
    rng = random.Random(seed)
    ids = rng.sample(range(1, 10 * count), count)
    stamps = [f"2026-11-{20 + rng.randrange(3)}T{rng.choice(TIMES)}" for _ in range(count)]
    return [{"id": i, field: s} for i, s in zip(ids, stamps, strict=True)]


def _page_all(
    records: list[dict[str, Any]],
    parameters: Mapping[str, tuple[str, str]],
    date_parameter: str,
    id_parameter: str,
    field: str,
    take: int,
) -> list[int]:
    seen: list[int] = []
    cursor: Cursor | None = None
    while True:
        body = page_query(date_parameter, id_parameter, cursor)
        page, _total = run_query(records, body, 0, take, parameters)
        seen += [r["id"] for r in page]
        if len(page) < take:
            return seen
        cursor = Cursor(page[-1][field], page[-1]["id"])


@pytest.mark.parametrize("take", [1, 7, 50])
@pytest.mark.parametrize(
    ("parameters", "date_parameter", "id_parameter", "field"),
    [
        (GIFT_PARAMETERS, "Last Modified Date", "Gift Id", "modifiedDateTimeUtc"),
        (GIFT_PARAMETERS, "Gift Date", "Gift Id", "giftDate"),
        (RECURRING_PARAMETERS, "Create Date", "Recurring Gift Id", "createDateTimeUtc"),
    ],
)
def test_key_paging_visits_every_record_once_in_order(
    parameters: Mapping[str, tuple[str, str]],
    date_parameter: str,
    id_parameter: str,
    field: str,
    take: int,
) -> None:
    records = _records(120, field, seed=take)
    expected = [
        r["id"] for r in sorted(records, key=lambda r: (instant(r[field]) or datetime.min, r["id"]))
    ]
    assert _page_all(records, parameters, date_parameter, id_parameter, field, take) == expected


def test_instant_reads_virtuous_dates() -> None:
    assert instant("2026-11-20") == datetime(2026, 11, 20)
    assert instant("2026-11-20T09:30:00") == datetime(2026, 11, 20, 9, 30)
    assert instant("2026-11-20T09:30:00.1234567") == datetime(2026, 11, 20, 9, 30, 0, 123456)
    assert instant("2026-11-20T09:30:00Z") == datetime(2026, 11, 20, 9, 30)
    assert instant("2026-11-20T03:30:00-06:00") == datetime(2026, 11, 20, 9, 30)
    assert instant("not a date") is None
    assert instant(None) is None


def test_after_cursor_is_strict_in_date_then_id() -> None:
    cursor = Cursor("2026-11-20T09:30:00", 10)
    assert not after_cursor("2026-11-20T09:30:00.000000", 10, cursor)
    assert not after_cursor("2026-11-20T09:30:00", 9, cursor)
    assert after_cursor("2026-11-20T09:30:00", 11, cursor)
    assert after_cursor("2026-11-20T09:30:00.000001", 1, cursor)
    assert not after_cursor("2026-11-19T23:59:59", 99, cursor)
    assert after_cursor("garbled", 1, cursor)  # the server's filter placed it: trust it
    assert after_cursor("2026-01-01", 1, None)
