"""Gift dates in the tenant's timezone; pulled Virtuous dates back to the platform's created_at."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mapping.dates import (
    PLATFORM_FORMAT,
    calendar_date,
    gift_date,
    pulled_created_at,
    utc_timestamp,
    virtuous_utc,
)

CHICAGO = ZoneInfo("America/Chicago")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")


@pytest.mark.parametrize(
    ("created_at", "zone", "day"),
    [
        (datetime(2026, 11, 21, 3, 30, tzinfo=UTC), CHICAGO, "2026-11-20"),
        (datetime(2026, 11, 21, 6, 0, tzinfo=UTC), CHICAGO, "2026-11-21"),
        (datetime(2026, 11, 21, 7, 59, tzinfo=UTC), LOS_ANGELES, "2026-11-20"),
        (
            datetime(2026, 11, 20, 23, 30, tzinfo=timezone(timedelta(hours=-6))),
            CHICAGO,
            "2026-11-20",
        ),
        (datetime(2026, 7, 1, 4, 30, tzinfo=UTC), CHICAGO, "2026-06-30"),  # daylight time
        (datetime(2026, 1, 1, 0, 0, tzinfo=UTC), ZoneInfo("Asia/Tokyo"), "2026-01-01"),
    ],
)
def test_gift_date_is_the_day_in_the_tenant_zone(
    created_at: datetime, zone: ZoneInfo, day: str
) -> None:
    assert gift_date(created_at, zone) == day


def test_gift_date_refuses_a_naive_moment() -> None:
    with pytest.raises(ValueError):
        gift_date(datetime(2026, 11, 20, 12, 0), CHICAGO)


@pytest.mark.parametrize(
    ("gift_day", "created_at"),
    [
        # Midnight dates are stored as 17:00:00 of the same day.
        ("2026-11-20T00:00:00", "2026-11-20 17:00:00"),
        ("2026-11-20", "2026-11-20 17:00:00"),
        ("2026-11-20T00:00:00.000", "2026-11-20 17:00:00"),
        ("2026-11-20T00:00:00Z", "2026-11-20 17:00:00"),
        # A time of day is the tenant's wall clock, stored in UTC.
        ("2026-11-20T09:30:00", "2026-11-20 15:30:00"),
        ("2026-11-20T21:15:00", "2026-11-21 03:15:00"),
        # A value with its own offset keeps it.
        ("2026-11-20T09:30:00+00:00", "2026-11-20 09:30:00"),
        ("2026-11-20T09:30:00-08:00", "2026-11-20 17:30:00"),
    ],
)
def test_pulled_created_at(gift_day: str, created_at: str) -> None:
    assert pulled_created_at(gift_day, CHICAGO) == created_at


@pytest.mark.parametrize("bad", ["", "20/11/2026", "tomorrow"])
def test_pulled_created_at_refuses_what_is_not_a_date(bad: str) -> None:
    with pytest.raises(ValueError):
        pulled_created_at(bad, CHICAGO)


@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)),
    st.sampled_from(
        [
            "America/Chicago",
            "America/Los_Angeles",
            "America/New_York",
            "Pacific/Honolulu",
            "UTC",
            "Europe/Berlin",
            "Asia/Kolkata",
            "Asia/Bangkok",
            "Asia/Singapore",
            "Asia/Tokyo",
            "Australia/Sydney",
            "Pacific/Auckland",
            "Pacific/Kiritimati",
        ]
    ),
)
def test_a_pulled_midnight_date_keeps_its_day_in_the_tenant_zone(day: date, zone: str) -> None:
    stored = pulled_created_at(f"{day.isoformat()}T00:00:00", ZoneInfo(zone))
    moment = datetime.strptime(stored, PLATFORM_FORMAT).replace(tzinfo=UTC)
    assert gift_date(moment, ZoneInfo(zone)) == day.isoformat()


@pytest.mark.parametrize(
    ("zone", "stored"),
    [
        ("America/Chicago", "2026-11-20 17:00:00"),  # the seed's 17:00 UTC holds the day
        ("Europe/Berlin", "2026-11-20 17:00:00"),
        ("Asia/Singapore", "2026-11-20 09:00:00"),  # 17:00 UTC is already the 21st there
        ("Pacific/Kiritimati", "2026-11-20 03:00:00"),
    ],
)
def test_a_pulled_midnight_date_east_of_utc_plus_7_is_5pm_on_the_tenant_clock(
    zone: str, stored: str
) -> None:
    assert pulled_created_at("2026-11-20", ZoneInfo(zone)) == stored


def test_recurring_pull_helpers() -> None:
    assert calendar_date("2026-12-01T00:00:00") == "2026-12-01"
    assert calendar_date("2026-12-01") == "2026-12-01"
    assert utc_timestamp("2026-11-22T16:45:00.123") == "2026-11-22 16:45:00"
    assert utc_timestamp("2026-11-22T10:45:00-06:00") == "2026-11-22 16:45:00"
    assert virtuous_utc(datetime(2026, 11, 22, 10, 45, tzinfo=CHICAGO)) == "2026-11-22T16:45:00Z"
    with pytest.raises(ValueError):
        virtuous_utc(datetime(2026, 11, 22, 10, 45))
