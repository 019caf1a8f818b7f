"""Dates and timestamps as the sandbox writes them, and a clock that never repeats.

Every timestamp is a fixed-width naive UTC string, ``YYYY-MM-DDTHH:MM:SS.ffffff``, and every
gift date ``YYYY-MM-DDTHH:MM:SS``: fixed width means string order is time order, so queries
compare strings. The clock hands out strictly increasing timestamps, so "Last Modified Date"
plus "Gift Id" is a total order clients can page by.
"""

from __future__ import annotations

import functools
import re
import threading
from datetime import UTC, datetime, timedelta

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$"
)
_US = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


def _parse(text: str) -> tuple[datetime, bool] | None:
    """(naive datetime, had a time of day) or None; a UTC offset converts the value to UTC."""
    text = text.strip()
    if us := _US.match(text):
        us_month, us_day, us_year = (int(g) for g in us.groups())
        try:
            return datetime(us_year, us_month, us_day), False
        except ValueError:
            return None
    m = _ISO.match(text)
    if not m:
        return None
    year, month, day, hh, mm, ss, frac, tz = m.groups()
    try:
        micro = int((frac or "0")[:6].ljust(6, "0"))
        value = datetime(
            int(year), int(month), int(day), int(hh or 0), int(mm or 0), int(ss or 0), micro
        )
    except ValueError:
        return None
    if tz:
        offset = (
            timedelta(0)
            if tz == "Z"
            else timedelta(hours=int(tz[1:3]), minutes=int(tz[-2:])) * (1 if tz[0] == "+" else -1)
        )
        value = value.replace(tzinfo=UTC) - offset
        value = value.replace(tzinfo=None)
    return value, hh is not None


@functools.lru_cache(maxsize=4096)
def parse_gift_date(text: str) -> str | None:
    """A gift date as ``YYYY-MM-DDTHH:MM:SS`` (wall time kept, offset dropped), or None."""
    text = text.strip()
    m = _ISO.match(text)
    if m and m.group(8):
        # A gift date is a calendar day where the gift was made: keep the wall time.
        text = text[: m.start(8)].rstrip()
    parsed = _parse(text)
    return parsed[0].strftime("%Y-%m-%dT%H:%M:%S") if parsed else None


def parse_timestamp(text: str) -> tuple[str, bool] | None:
    """A UTC timestamp in the stored format and whether the text carried a time of day."""
    parsed = _parse(text)
    if parsed is None:
        return None
    return format_timestamp(parsed[0]), parsed[1]


def format_timestamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")


class Clock:
    """Strictly increasing UTC timestamps (microsecond steps when called faster than that)."""

    def __init__(self) -> None:
        self._last = datetime.min
        self._lock = threading.Lock()

    def now(self) -> str:
        with self._lock:
            value = datetime.now(UTC).replace(tzinfo=None)
            if value <= self._last:
                value = self._last + timedelta(microseconds=1)
            self._last = value
            return format_timestamp(value)
