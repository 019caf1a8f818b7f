"""Reading Virtuous's rate-limit headers, tolerantly: a header that is missing or garbled is None.

Every Virtuous answer may carry ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and
``X-RateLimit-Reset``; a 429 also carries ``Retry-After``. The reset is documented as a unix
time: it is turned into seconds against the answer's own ``Date`` header, Virtuous's clock,
never the worker's (without a ``Date`` it stays an epoch, which
:meth:`workers.store.limiter.Limiter.observe` reads against the Redis clock). A value below
:data:`EPOCH_THRESHOLD` is taken as seconds from now.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

# A reset above this is an epoch timestamp (2001-09-09), not seconds to wait.
EPOCH_THRESHOLD = 1e9
# A reset above this is an epoch in milliseconds.
EPOCH_MS_THRESHOLD = 1e11


@dataclass(frozen=True)
class RateLimitInfo:
    """One answer's rate-limit headers; each field None when absent or unreadable."""

    limit: int | None
    remaining: int | None
    # Seconds until Virtuous's window resets (an epoch only when the answer had no Date).
    reset_seconds: float | None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    # A proxy may repeat the header; httpx joins the copies with commas.
    first = value.split(",")[0].strip()
    try:
        number = float(first)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _whole(value: str | None) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def parse_rate_limit(headers: httpx.Headers) -> RateLimitInfo:
    """The X-RateLimit-* values of one answer (missing or garbage -> None).

    Only the headers Virtuous documents are read. Whatever moment ``X-RateLimit-Reset`` names
    (the window emptying, the next call freeing up, a fixed window's end), the limiter needs
    only that some counted calls leave by then (see workers/store/limiter.py).
    """
    reset = _number(headers.get("X-RateLimit-Reset"))
    if reset is not None and reset > EPOCH_MS_THRESHOLD:
        reset /= 1000
    if reset is not None and reset > EPOCH_THRESHOLD:
        sent = _http_date(headers.get("Date"))
        if sent is not None:
            reset = max(0.0, reset - sent)
    return RateLimitInfo(
        limit=_whole(headers.get("X-RateLimit-Limit")),
        remaining=_whole(headers.get("X-RateLimit-Remaining")),
        reset_seconds=reset,
    )


def parse_retry_after(headers: httpx.Headers, *, now: float | None = None) -> float | None:
    """Seconds to wait per ``Retry-After`` (seconds or an HTTP date), None if absent/garbage.

    An HTTP date is measured against the answer's ``Date`` header, else against ``now``.
    """
    raw = headers.get("Retry-After")
    seconds = _number(raw)
    if seconds is not None:
        return seconds
    until = _http_date(raw)
    if until is None:
        return None
    sent = _http_date(headers.get("Date"))
    base = sent if sent is not None else now
    return None if base is None else max(0.0, until - base)
