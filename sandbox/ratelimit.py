"""The per-organisation call budget: a rolling window, counted exactly.

Every admitted call's time is kept in a deque; a call is admitted when fewer than ``limit``
calls lie in the window ``(now - window, now]``. Because the deque holds exactly the calls of
the window ending now, its length right after an admission is the count of the busiest window
ending at that call, and the busiest window of all ends at some call: so ``max_in_window`` is
the exact busiest rolling window, not an estimate.

"Other integrations" of the organisation spend the same budget: they call at a steady pace
(``other_per_window`` per window) and are folded in lazily whenever the window is consulted.
When the window is full they are refused like anyone else.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    """The answer for one call, and what the rate-limit headers say."""

    allowed: bool
    limit: int
    remaining: int
    # Unix time when every call now in the window has left it (Remaining back to Limit).
    reset_epoch: float
    # Seconds until the oldest call in the window leaves it (the next slot frees up).
    reset_after: float

    @property
    def retry_after(self) -> int:
        """Whole seconds for the Retry-After header (at least 1)."""
        return max(1, math.ceil(self.reset_after))


class RollingWindow:
    """One organisation's budget. Not thread-safe: the caller holds the state lock."""

    def __init__(
        self, limit: int, window: float, other_per_window: int = 0, now: float | None = None
    ) -> None:
        self.limit = limit
        self.window = window
        self.other_per_window = other_per_window
        start = time.monotonic() if now is None else now
        self._times: deque[float] = deque()
        self._api_times: deque[float] = deque()
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
            self._prune(self._times, tick)
            if len(self._times) < self.limit:
                self._times.append(tick)
                self.other_calls += 1
                self.max_in_window = max(self.max_in_window, len(self._times))
            else:
                self.other_refused += 1
            self._next_other += step

    def _verdict(self, allowed: bool, now: float) -> Verdict:
        wall = time.time()
        if self._times:
            reset_after = max(0.0, self._times[0] + self.window - now)
            reset_epoch = wall + max(0.0, self._times[-1] + self.window - now)
        else:
            reset_after, reset_epoch = 0.0, wall
        return Verdict(
            allowed, self.limit, max(0, self.limit - len(self._times)), reset_epoch, reset_after
        )

    def admit(self, now: float | None = None) -> Verdict:
        """Count one call if the window has room; say so either way."""
        now = time.monotonic() if now is None else now
        self._spend_others(now)
        self._prune(self._times, now)
        self._prune(self._api_times, now)
        if len(self._times) >= self.limit:
            self.refused += 1
            return self._verdict(False, now)
        self._times.append(now)
        self._api_times.append(now)
        self.admitted += 1
        self.max_in_window = max(self.max_in_window, len(self._times))
        self.max_api_in_window = max(self.max_api_in_window, len(self._api_times))
        return self._verdict(True, now)

    def peek(self, now: float | None = None) -> Verdict:
        """The current standing without counting a call."""
        now = time.monotonic() if now is None else now
        self._spend_others(now)
        self._prune(self._times, now)
        return self._verdict(len(self._times) < self.limit, now)

    def in_window(self, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        self._spend_others(now)
        self._prune(self._times, now)
        return len(self._times)
