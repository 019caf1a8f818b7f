"""Calendar days and timestamps between WeGive, Virtuous and the tenant's timezone.

Two conventions, kept in one place:

* A push sends ``giftDate`` as the ``Y-m-d`` calendar day on which the gift was made *in the
  tenant's timezone* (a 23:30 gift in Chicago is that day, not the next UTC day).
* A pull turns a Virtuous date back into the platform's ``created_at``, written as
  :data:`PLATFORM_FORMAT` (``"2026-11-20 17:00:00"``) **in UTC**, the way the platform stores
  timestamps. Virtuous often keeps a gift date as a bare day (``"2026-11-20"`` or
  ``"2026-11-20T00:00:00"``); such midnight dates are stored as 17:00:00 UTC of that same day
  (seed 002), a moment that falls on that calendar day in every zone west of UTC+7. For a tenant
  further east, where 17:00 UTC is already the next day, the day is stored as 17:00 on the
  tenant's own clock instead (in UTC, earlier that day), so the day survives the round trip
  everywhere. A giftDate that carries a time is the tenant's wall clock (or its own offset, if
  it has one) and is converted to UTC.

Invariant: for every tenant zone, ``gift_date(parse(pulled_created_at(day, zone)), zone) ==
day``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

# How the platform writes created_at / deleted_at: UTC, no offset, second precision.
PLATFORM_FORMAT = "%Y-%m-%d %H:%M:%S"
# The UTC time of day given to a pulled gift whose date has no time.
MIDNIGHT_STORED_AS = time(17, 0, 0)


def _require_aware(moment: datetime, what: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must carry a UTC offset, got naive {moment.isoformat()}")


def _parse(value: str, what: str) -> datetime:
    # Virtuous writes ISO 8601, sometimes with a 'Z', sometimes a bare day; Python 3.11
    # fromisoformat reads all of those.
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be an ISO 8601 date string, got {value!r}")
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{what} is not an ISO 8601 date: {value!r}") from None


def gift_date(created_at: datetime, zone: ZoneInfo) -> str:
    """The ``Y-m-d`` day on which a gift made at ``created_at`` falls in the tenant's zone."""
    _require_aware(created_at, "created_at")
    return created_at.astimezone(zone).date().isoformat()


def pulled_created_at(gift_date: str, zone: ZoneInfo) -> str:
    """Map a Virtuous giftDate to the platform's created_at (UTC, :data:`PLATFORM_FORMAT`).

    ``"2026-11-20"`` and ``"2026-11-20T00:00:00"`` become ``"2026-11-20 17:00:00"`` (for a
    tenant east of UTC+7, 17:00 of that day on its clock, in UTC); ``"2026-11-20T09:30:00"``
    is 09:30 on the tenant's clock, converted to UTC.
    """
    moment = _parse(gift_date, "giftDate")
    if moment.timetz().replace(tzinfo=None) == time(0, 0, 0):
        day = moment.date()
        stored = datetime.combine(day, MIDNIGHT_STORED_AS, tzinfo=UTC)
        if stored.astimezone(zone).date() != day:
            stored = datetime.combine(day, MIDNIGHT_STORED_AS, tzinfo=zone).astimezone(UTC)
        return stored.strftime(PLATFORM_FORMAT)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC).strftime(PLATFORM_FORMAT)


def calendar_date(value: str) -> str:
    """The ``Y-m-d`` day of a Virtuous date field such as ``nextExpectedPaymentDate``.

    These are calendar days in Virtuous already; no timezone arithmetic applies.
    """
    return _parse(value, "date").date().isoformat()


def utc_timestamp(value: str) -> str:
    """Map a Virtuous ``...DateTimeUtc`` value to the platform format (naive input is UTC)."""
    moment = _parse(value, "timestamp")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(PLATFORM_FORMAT)


def virtuous_utc(moment: datetime) -> str:
    """Write an aware moment for a Virtuous ``...DateTimeUtc`` field: ``2026-11-20T15:04:05Z``."""
    _require_aware(moment, "moment")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ymd(day: date) -> str:
    """A calendar day as Virtuous's ``Y-m-d`` string."""
    return day.isoformat()
