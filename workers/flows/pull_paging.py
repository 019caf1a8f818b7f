"""Key paging of a pull (pure): where a sweep stands and the query for its next page.

A sweep reads every record dated on or after a lower bound in Virtuous id order, one page at a
time, so a deep ``skip`` is never asked for (Virtuous answers one with a 500). What each page
writes back is :mod:`workers.flows.pull_plan`'s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mapping.events import real_gift_id

# Dates that move when a record is edited: a sweep's successor starts from when it began.
MOVING_FIELDS = frozenset({"modifiedDateTimeUtc"})
# How far before a sweep's first query its successor starts: covers a clock difference
# between Redis and Virtuous (the re-read records are skipped as unchanged).
CLOCK_MARGIN_SECONDS = 300.0


@dataclass(frozen=True)
class Cursor:
    """Where a pull stands: a *sweep* reads every record dated on or after ``date`` (empty:
    every record) in Virtuous id order, and ``id`` is the last id it committed. ``next`` is
    where the following sweep starts once this one reaches the end.

    Paging by id under a fixed lower bound stays correct whatever precision Virtuous compares
    the date at (a day, or an instant): the filter never cuts inside one sort key's run.
    """

    date: str
    id: int
    next: str = ""


def _condition(parameter: str, operator: str, value: str | None = None) -> dict[str, str]:
    cond = {"parameter": parameter, "operator": operator}
    if value is not None:
        cond["value"] = value
    return cond


def query_value(date: str, moving: bool) -> str:
    """A cursor date as a query value: an ISO instant (UTC) for a moving date, else a day."""
    moment = instant(date)
    if moment is None:
        return date
    return moment.strftime("%Y-%m-%dT%H:%M:%S") if moving else moment.strftime("%Y-%m-%d")


def page_query(
    date_parameter: str, id_parameter: str, cursor: Cursor | None, *, moving: bool = True
) -> dict[str, Any]:
    """The Query body for the page after ``cursor``: ids above the cursor's, dated on or after
    its sweep's lower bound, in id order (``sortBy`` is the property name ``Id``)."""
    conditions = [_condition(id_parameter, "GreaterThan", str(cursor.id if cursor else 0))]
    if cursor is not None and cursor.date:
        value = query_value(cursor.date, moving)
        conditions.insert(0, _condition(date_parameter, "GreaterThanOrEqual", value))
    return {"groups": [{"conditions": conditions}], "sortBy": "Id", "descending": False}


def next_sweep(
    cursor: Cursor, records: Sequence[Mapping[str, Any]], date_field: str, asked: datetime
) -> str:
    """Where the sweep after this one starts, given one more page of it.

    A moving date: the first query of the sweep less the clock margin (a record edited since
    then has a later date). A fixed date: the latest date the sweep has seen.
    """
    if date_field in MOVING_FIELDS:
        if cursor.next:
            return cursor.next
        start = asked - timedelta(seconds=CLOCK_MARGIN_SECONDS)
        return start.isoformat()
    dates = [m for m in (instant(cursor.next), instant(cursor.date)) if m is not None]
    dates += [m for m in (instant(r.get(date_field)) for r in records) if m is not None]
    return max(dates).isoformat() if dates else ""


_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$"
)


def instant(value: object) -> datetime | None:
    """A Virtuous date or timestamp as a naive UTC datetime (naive input is UTC), or None.

    Reads up to seven fraction digits (.NET writes seven; the seventh is dropped).
    """
    if not isinstance(value, str):
        return None
    m = _ISO.match(value.strip())
    if m is None:
        return None
    year, month, day, hh, mm, ss, frac, tz = m.groups()
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hh or 0), int(mm or 0), int(ss or 0),
            int((frac or "0")[:6].ljust(6, "0")),
        )  # fmt: skip
    except ValueError:
        return None
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        moment -= sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[-2:]))
    return moment


def after_cursor(date: object, record_id: object, cursor: Cursor | None) -> bool:
    """Whether a record lies after the cursor: an id above its id (the sweep's order).

    ``date`` is not compared: the server's filter placed it, at whatever precision it has.
    """
    if cursor is None:
        return True
    vid = real_gift_id(record_id) if isinstance(record_id, int | str) else None
    return vid is None or vid > cursor.id
