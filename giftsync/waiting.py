"""Wait on a condition with a deadline: the one polling loop of the tests, the benchmarks and
``giftsync demo``.

Work here happens in other processes (workers, the sandbox, Redis), so whoever needs a result
polls for it; a fixed sleep would either waste time or fail on a slow machine. When the
deadline passes, the error names what was awaited and the last value seen, which is usually
enough to tell a stuck pipeline from a slow one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

# Long enough to show a count or a small dict; a whole record list would drown the message.
_LAST_VALUE_CHARS = 1000


class WaitTimeout(TimeoutError):
    """The awaited condition did not hold before the deadline."""

    def __init__(self, what: str, timeout: float, last: object) -> None:
        shown = repr(last)
        if len(shown) > _LAST_VALUE_CHARS:
            shown = shown[:_LAST_VALUE_CHARS] + "..."
        super().__init__(f"timed out after {timeout:g}s waiting for {what}; last value: {shown}")
        self.what = what
        self.timeout = timeout
        self.last = last


@overload
def wait_for(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout: float = ...,
    interval: float = ...,
) -> T: ...


@overload
def wait_for(
    probe: Callable[[], T],
    *,
    what: str,
    until: Callable[[T], bool],
    timeout: float = ...,
    interval: float = ...,
) -> T: ...


def wait_for(
    probe: Callable[[], object],
    *,
    what: str,
    until: Callable[[Any], bool] | None = None,
    timeout: float = 30.0,
    interval: float = 0.05,
) -> object:
    """Call ``probe`` every ``interval`` seconds until its value is truthy (or satisfies
    ``until``) and return that value; raise WaitTimeout after ``timeout`` seconds.

    ``what`` names the awaited thing in the error ("30 gifts sent"). Exceptions from ``probe``
    propagate at once, so a probe can fail fast (a worker that exited).
    """
    accept = until if until is not None else bool
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if accept(value):
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(what, timeout, value)
        time.sleep(interval)
