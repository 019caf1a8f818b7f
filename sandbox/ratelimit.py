"""The per-organisation call budget and its headers, under each reading the contract allows.

Virtuous's documentation names ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and
``X-RateLimit-Reset`` (a unix time) on every answer and ``Retry-After`` on a 429, and says the
budget is 10,000 calls an hour; it does not say whether the hour is rolling or fixed, nor which
moment the reset names (docs/virtuous-contract.md, "Rate limits"). So the sandbox offers every
reading, per organisation (``rate_limit_headers``):

- ``reset-when-window-empties`` (default): a rolling window; Reset is when every call now in
  it has left it (Remaining back to Limit).
- ``reset-when-next-call-frees``: a rolling window; Reset is when the oldest call in it
  leaves (the next slot frees up).
- ``no-reset``: a rolling window and no Reset header at all.
- ``fixed-window``: the hour is fixed (windows aligned to the unix clock); Remaining counts
  the current one and Reset is its end.

Counting is exact: every admitted call's time is kept in a deque, so ``max_in_window`` is
the busiest rolling window of all calls (right after an admission the deque holds exactly the
calls of the window ending at it, and the busiest window ends at some call). It is kept in
every mode, the fixed one included, where it may exceed the limit across a boundary.

"Other integrations" of the organisation spend the same budget: they call at a steady pace
(``other_per_window`` per window) and are folded in lazily whenever the window is consulted.
When the window is full they are refused like anyone else.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal, get_args

HeaderMode = Literal[
    "reset-when-window-empties", "reset-when-next-call-frees", "no-reset", "fixed-window"
]
HEADER_MODES: tuple[str, ...] = get_args(HeaderMode)


@dataclass(frozen=True)
class Verdict:
    """The answer for one call, and what the rate-limit headers say."""

    allowed: bool
    limit: int
    remaining: int
    # Unix time for X-RateLimit-Reset; None when the organisation sends no Reset.
    reset_epoch: float | None
    # Seconds until a call may be admitted again (for Retry-After on a 429).
    reset_after: float

    @property
    def retry_after(self) -> int:
        """Whole seconds for the Retry-After header (at least 1)."""
        return max(1, math.ceil(self.reset_after))


def rate_headers(verdict: Verdict, window: float) -> list[tuple[bytes, bytes]]:
    """The rate-limit headers of one answer. Reset is unix seconds, as Virtuous sends it; with
    a compressed hour (a window under a minute) it carries milliseconds, or it would be
    useless."""
    headers = [
        (b"x-ratelimit-limit", str(verdict.limit).encode()),
        (b"x-ratelimit-remaining", str(verdict.remaining).encode()),
    ]
    if verdict.reset_epoch is not None:
        epoch = verdict.reset_epoch
        reset = f"{epoch:.3f}" if window < 60 else str(math.ceil(epoch))
        headers.append((b"x-ratelimit-reset", reset.encode()))
    return headers


class RollingWindow:
    """One organisation's budget. Not thread-safe: the caller holds the state lock.

    ``now`` values are on a clock of the caller's (monotonic by default); ``wall_offset`` turns
    them into unix time for the headers (default: the offset between the two clocks now).
    """

    def __init__(
        self,
        limit: int,
        window: float,
        other_per_window: int = 0,
        now: float | None = None,
        headers: HeaderMode = "reset-when-window-empties",
        wall_offset: float | None = None,
    ) -> None:
        if headers not in HEADER_MODES:
            raise ValueError(f"rate_limit_headers must be one of {', '.join(HEADER_MODES)}")
        self.limit = limit
        self.window = window
        self.other_per_window = other_per_window
        self.headers = headers
        self._offset = time.time() - time.monotonic() if wall_offset is None else wall_offset
        start = time.monotonic() if now is None else now
        self._times: deque[float] = deque()
        self._api_times: deque[float] = deque()
        # Fixed-window mode: the window counted and its count.
        self._fixed_index = -1
        self._fixed_count = 0
        self._next_other = start + (window / other_per_window if other_per_window else 0.0)
        self.max_in_window = 0
        self.max_api_in_window = 0
        self.admitted = 0
        self.refused = 0
        self.other_calls = 0
        self.other_refused = 0

    def _prune(self, times: deque[float], now: float) -> None:
        edge = now - self.window
        while times and times[0] <= edge:
            times.popleft()

    def _fixed(self, now: float) -> int:
        """Calls counted in the fixed window holding ``now`` (starting a new one when due)."""
        index = math.floor((now + self._offset) / self.window)
        if index != self._fixed_index:
            self._fixed_index, self._fixed_count = index, 0
        return self._fixed_count

    def _used(self, now: float) -> int:
        self._prune(self._times, now)
        return self._fixed(now) if self.headers == "fixed-window" else len(self._times)

    def _count(self, now: float) -> None:
        self._times.append(now)
        self._fixed(now)
        self._fixed_count += 1
        self.max_in_window = max(self.max_in_window, len(self._times))

    def _spend_others(self, now: float) -> None:
        if not self.other_per_window:
            return
        step = self.window / self.other_per_window
        # Ticks older than a window no longer matter for the count; skip them in one go.
        if now - self._next_other > self.window:
            skipped = int((now - self.window - self._next_other) / step)
            self._next_other += skipped * step
        while self._next_other <= now:
            tick = self._next_other
            if self._used(tick) < self.limit:
                self._count(tick)
                self.other_calls += 1
            else:
                self.other_refused += 1
            self._next_other += step

    def _verdict(self, allowed: bool, now: float) -> Verdict:
        used = self._used(now)
        wall = now + self._offset
        reset: float | None
        if self.headers == "fixed-window":
            end = (self._fixed_index + 1) * self.window
            reset, after = end, end - wall
        else:
            after = max(0.0, self._times[0] + self.window - now) if self._times else 0.0
            newest = max(0.0, self._times[-1] + self.window - now) if self._times else 0.0
            reset = {
                "reset-when-window-empties": wall + newest,
                "reset-when-next-call-frees": wall + after,
                "no-reset": None,
            }[self.headers]
        return Verdict(allowed, self.limit, max(0, self.limit - used), reset, after)

    def admit(self, now: float | None = None) -> Verdict:
        """Count one call if the window has room; say so either way."""
        now = time.monotonic() if now is None else now
        self._spend_others(now)
        self._prune(self._api_times, now)
        if self._used(now) >= self.limit:
            self.refused += 1
            return self._verdict(False, now)
        self._count(now)
        self._api_times.append(now)
        self.admitted += 1
        self.max_api_in_window = max(self.max_api_in_window, len(self._api_times))
        return self._verdict(True, now)

    def peek(self, now: float | None = None) -> Verdict:
        """The current standing without counting a call."""
        now = time.monotonic() if now is None else now
        self._spend_others(now)
        return self._verdict(self._used(now) < self.limit, now)

    def in_window(self, now: float | None = None) -> int:
        """Calls of everyone in the rolling window ending now."""
        now = time.monotonic() if now is None else now
        self._spend_others(now)
        self._prune(self._times, now)
        return len(self._times)
