"""Key paging for the pull: the condition builder, and a sweep through the sandbox's own query
engine visits every record from its bound once, in id order, with no skip ever, whether dates
compare as instants or as days."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest

from sandbox.query import GIFT_PARAMETERS, RECURRING_PARAMETERS, run_query
from workers.flows.pull_paging import (
    CLOCK_MARGIN_SECONDS,
    Cursor,
    after_cursor,
    instant,
    next_sweep,
    page_query,
)


def test_no_cursor_asks_for_every_record_in_id_order() -> None:
    # Contract: operators as QueryOptions spell them, sortBy a property name.
    assert page_query("Last Modified DateTime UTC", "Gift Id", None) == {
        "groups": [{"conditions": [{"parameter": "Gift Id", "operator": "GreaterThan",
                                    "value": "0"}]}],
        "sortBy": "Id",
        "descending": False,
    }  # fmt: skip


def test_a_cursor_is_its_sweeps_lower_bound_and_the_last_id() -> None:
    cursor = Cursor("2026-11-20T09:30:00.123456", 42)
    body = page_query("Last Modified DateTime UTC", "Gift Id", cursor)
    assert body["groups"] == [
        {
            "conditions": [
                {"parameter": "Last Modified DateTime UTC", "operator": "GreaterThanOrEqual",
                 "value": "2026-11-20T09:30:00"},
                {"parameter": "Gift Id", "operator": "GreaterThan", "value": "42"},
            ]
        }
    ]  # fmt: skip
    day = page_query("Gift Date", "Gift Id", Cursor("2026-11-20T00:00:00", 7), moving=False)
    assert day["groups"][0]["conditions"][0]["value"] == "2026-11-20"


def test_the_next_sweep_starts_before_this_one_began_or_at_the_latest_fixed_date() -> None:
    asked = datetime(2026, 11, 20, 12, 0, 0)
    first = next_sweep(Cursor("", 0), [], "modifiedDateTimeUtc", asked)
    assert instant(first) == asked - timedelta(seconds=CLOCK_MARGIN_SECONDS)
    later = next_sweep(Cursor("", 5, first), [], "modifiedDateTimeUtc", asked + timedelta(hours=1))
    assert later == first  # fixed when the sweep began
    rows = [{"giftDate": "2026-11-18T00:00:00"}, {"giftDate": "2026-11-19T00:00:00"}]
    assert instant(next_sweep(Cursor("2026-11-01", 0), rows, "giftDate", asked)) == datetime(
        2026, 11, 19
    )


# Stored as the sandbox stores them: 19-character gift dates, 26-character timestamps.
TIMES = ("00:00:00", "09:30:00", "09:30:00.500000")


def _records(count: int, field: str, seed: int) -> list[dict[str, Any]]:
    """Records with few distinct dates (many ties) and shuffled ids."""
    rng = random.Random(seed)
    ids = rng.sample(range(1, 10 * count), count)
    stamps = [f"2026-11-{20 + rng.randrange(3)}T{rng.choice(TIMES)}" for _ in range(count)]
    return [{"id": i, field: s} for i, s in zip(ids, stamps, strict=True)]


def _sweep(
    records: list[dict[str, Any]],
    parameters: Mapping[str, tuple[str, str]],
    date_parameter: str,
    id_parameter: str,
    start: str,
    take: int,
    day_precision: bool,
) -> list[int]:
    seen: list[int] = []
    cursor = Cursor(start, 0)
    while True:
        body = page_query(date_parameter, id_parameter, cursor)
        page, _total = run_query(records, body, 0, take, parameters, day_precision)
        seen += [r["id"] for r in page]
        if len(page) < take:
            return seen
        cursor = Cursor(cursor.date, page[-1]["id"])


@pytest.mark.parametrize("day_precision", [False, True])
@pytest.mark.parametrize("take", [1, 7, 50])
@pytest.mark.parametrize(
    ("parameters", "date_parameter", "id_parameter", "field"),
    [
        (GIFT_PARAMETERS, "Last Modified DateTime UTC", "Gift Id", "modifiedDateTimeUtc"),
        (GIFT_PARAMETERS, "Gift Date", "Gift Id", "giftDate"),
        (RECURRING_PARAMETERS, "Create DateTime UTC", "Recurring Gift Id", "createDateTimeUtc"),
    ],
)
def test_a_sweep_visits_every_record_from_its_bound_once_whatever_the_precision(
    parameters: Mapping[str, tuple[str, str]],
    date_parameter: str,
    id_parameter: str,
    field: str,
    take: int,
    day_precision: bool,
) -> None:
    records = _records(120, field, seed=take)
    bound = "2026-11-21T09:30:00"
    got = _sweep(records, parameters, date_parameter, id_parameter, bound, take, day_precision)
    assert len(got) == len(set(got)) and got == sorted(got)
    at_least = {r["id"] for r in records if instant(r[field]) >= instant(bound)}  # type: ignore[operator]
    same_day = {r["id"] for r in records if r[field][:10] >= bound[:10]}
    assert at_least <= set(got) <= same_day


def test_an_edit_behind_the_cursor_is_read_by_the_next_sweep_at_day_precision() -> None:
    field = "modifiedDateTimeUtc"
    records = [{"id": i, field: "2026-11-20T08:00:00"} for i in range(1, 11)]
    asked = datetime(2026, 11, 20, 9, 0)
    cursor = Cursor("", 0)
    body = page_query("Last Modified DateTime UTC", "Gift Id", cursor)
    page, _ = run_query(records, body, 0, 5, GIFT_PARAMETERS, True)
    following = next_sweep(cursor, page, field, asked)
    records[0][field] = "2026-11-20T09:10:00"  # staff edit of a record the sweep has passed
    cursor = Cursor("", page[-1]["id"], following)
    body = page_query("Last Modified DateTime UTC", "Gift Id", cursor)
    rest, _ = run_query(records, body, 0, 5, GIFT_PARAMETERS, True)
    assert [r["id"] for r in rest] == [6, 7, 8, 9, 10]
    body = page_query("Last Modified DateTime UTC", "Gift Id", Cursor(following, 0))
    again, _ = run_query(records, body, 0, 100, GIFT_PARAMETERS, True)
    assert 1 in {r["id"] for r in again}


def test_instant_reads_virtuous_dates() -> None:
    assert instant("2026-11-20") == datetime(2026, 11, 20)
    assert instant("2026-11-20T09:30:00") == datetime(2026, 11, 20, 9, 30)
    assert instant("2026-11-20T09:30:00.1234567") == datetime(2026, 11, 20, 9, 30, 0, 123456)
    assert instant("2026-11-20T09:30:00Z") == datetime(2026, 11, 20, 9, 30)
    assert instant("2026-11-20T03:30:00-06:00") == datetime(2026, 11, 20, 9, 30)
    assert instant("not a date") is None
    assert instant(None) is None


def test_after_cursor_is_an_id_above_the_cursors() -> None:
    cursor = Cursor("2026-11-20T09:30:00", 10)
    assert not after_cursor("2026-11-21T09:30:00", 10, cursor)
    assert not after_cursor("2026-11-21T09:30:00", 9, cursor)
    assert after_cursor("2026-11-19T00:00:00", 11, cursor)  # the server placed its date
    assert after_cursor("2026-01-01", 1, None)
