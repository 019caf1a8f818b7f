"""The shared per-tenant limiter: every call giftsync makes to Virtuous takes a token.

One GCRA bucket per tenant lives in Redis and is changed only by one Lua script
(``limiter.lua``), so every worker process on every machine draws from the same budget, and
the clock is Redis's (``TIME`` inside the script): workers with skewed clocks still agree.

Guarantee
---------
For a tenant with cap ``C = calls_per_hour`` over ``W = rate_window_seconds``: in every rolling
window of ``W`` seconds (by the Redis clock at the grant), at most ``C`` call tokens are
granted, pushes, retries, lookups and pulls together.

Why a plain GCRA is not enough, and what is used instead
-------------------------------------------------------
A GCRA with emission interval ``W/C`` and burst ``B`` admits ``B`` calls at once after an idle
spell and then one every ``W/C``: ``C + B - 1`` in one window. So the limiter widens the
interval instead of trusting the burst away. With a small guard ``g`` and ``S = W + g``::

    T = S / (C - B + 1)          emission interval
    grant c tokens at t  iff  max(TAT, t) + c*T - t <= B*T      then  TAT := max(TAT, t) + c*T

Claim: any grants at ``t_1 <= ... <= t_n`` with ``t_n - t_1 < S`` total ``sum(c_k) <= C``.
Proof: the first grant leaves ``TAT >= t_1 + c_1*T``; every later grant raises TAT by at
least its ``c_k*T`` (``max(TAT, t) >= TAT``), so after the n-th, ``TAT_n >= t_1 + sum(c_k)*T``.
The n-th was admitted, so ``TAT_n - t_n <= B*T``. Hence ``sum(c_k)*T <= B*T + (t_n - t_1) <
B*T + S``, i.e. ``sum(c_k) < B + C - B + 1 = C + 1``; an integer, so ``<= C``. Since
``W < S``, every rolling window of ``W`` holds at most ``C``. (The script forgives float
round-off of 1 us, far below ``g``, so the bound holds over ``S - 1 us > W``.)

What it costs: a backlog gets one call every ``T``, i.e. ``(C-B+1) * W/(W+g)`` per window.
Every burst token beyond the first costs one call per window for ever, but a little burst
pays: ``(B-1)*T`` of slack absorbs callers that come back late for a freed token (a
re-enqueued message runs some milliseconds after its delay), where with ``B = 1`` each late
caller's lateness is lost. So the burst used is ``min(rate_burst, max(2, 1% of C))`` (at most
``C``), and ``g = clamp(0.5% of W, 0.25 s, 5 s)``. The guard absorbs the spread between a
grant and the moment the call reaches Virtuous, whose window counts arrivals, not grants; its
floor matters only for compressed test windows. For caps of 100 or more and windows of a
minute or more, at least 98.5% of the cap is usable (10,000/h with burst 20: 99.67%).

The other rules, all checked in the same script
-----------------------------------------------
- ``kind`` "lookup"/"pull" must also pass a second bucket of the same shape sized
  ``C * lookup_budget_share``, so lookups can never take more than that share: pushes keep at
  least the rest of the cap whatever the reconcile sweep and the pulls want.
- ``block(tenant, s)`` (a 429's Retry-After) refuses every caller until the block expires.
- ``observe()`` folds every answer's ``X-RateLimit-*`` headers in: until the reported reset,
  grants stop after ``remaining - in_flight`` more, where ``in_flight`` counts calls granted
  but not yet answered (each grant adds one to a sorted set, each observed answer removes the
  oldest, and entries older than ``inflight_timeout`` expire for calls that never answered).
  Those calls may reach Virtuous after it counted ``remaining``, so they are spent already. A
  reported ``X-RateLimit-Limit`` below the configured cap lowers the cap used for pacing.
  Hence every answer of every worker must be observed: wire ``VirtuousClient(on_rate_limit=)``
  to ``observe`` and acquire right before the call.

Keys are ``{prefix}:limiter:{tenant}:...`` with ``{tenant}`` as a Redis Cluster hash tag, so
each script's keys share one slot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import redis
from redis.commands.core import Script

from mapping.tenant import TenantSettings

Kind = Literal["push", "lookup", "pull"]

# Largest share of the cap given up to allow back-to-back calls (see the module docstring).
MAX_BURST_SHARE = 0.01
# The window is enforced this much longer, to cover grant-to-arrival spread (share of window)...
GUARD_SHARE = 0.005
# ...but never more than this many seconds...
GUARD_MAX_SECONDS = 5.0
# ...nor less: a call may reach Virtuous this much later than its grant on a loaded machine.
GUARD_MIN_SECONDS = 0.25
# calls_in_window() counts the window in this many slots: its answer is exact to one slot.
COUNT_SLOTS = 100
# A granted call not answered after this long no longer counts as in flight.
INFLIGHT_TIMEOUT_SECONDS = 120.0
# Kinds that spend the lookup share of the budget.
LOOKUP_KINDS = frozenset({"lookup", "pull"})


@dataclass(frozen=True)
class Grant:
    """The result of one :meth:`Limiter.acquire`."""

    granted: bool
    # 0.0 when granted; else how long until the tokens free up (for a delayed re-enqueue).
    wait_seconds: float
    # Whole calls that could still go right now (for the giftsync_limiter_tokens_left gauge).
    tokens_left: float
    # The Redis clock at the decision (epoch seconds).
    at: float = 0.0


def _script(client: redis.Redis, name: str) -> Script:
    text = resources.files("workers.store").joinpath(name).read_text(encoding="utf-8")
    return client.register_script(text)


def _arg(value: float | None) -> str:
    return "" if value is None else repr(float(value))


class Limiter:
    """Per-tenant call budget shared through Redis by every worker."""

    def __init__(
        self,
        redis: redis.Redis,
        *,
        prefix: str = "giftsync",
        inflight_timeout: float = INFLIGHT_TIMEOUT_SECONDS,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._inflight_timeout = inflight_timeout
        self._acquire = _script(redis, "limiter.lua")
        self._observe = _script(redis, "limiter_observe.lua")
        self._block = _script(redis, "limiter_block.lua")

    def _key(self, tenant_name: str, part: str) -> str:
        return f"{self._prefix}:limiter:{{{tenant_name}}}:{part}"

    def acquire(
        self,
        tenant: TenantSettings,
        *,
        kind: Kind = "push",
        cost: int = 1,
        ticket: bool = False,
    ) -> Grant:
        """Take ``cost`` call tokens for ``tenant`` now, or say how long to wait for them.

        With ``ticket``, a refused caller promises to come back after the wait it is given,
        and waiters are spread one emission interval apart (see limiter.lua).
        """
        return self._acquire_at(tenant, kind=kind, cost=cost, now=None, ticket=ticket)

    def _acquire_at(
        self,
        tenant: TenantSettings,
        *,
        kind: Kind,
        cost: int,
        now: float | None,
        ticket: bool = False,
    ) -> Grant:
        # ``now`` overrides the Redis clock; only tests that replay a timeline pass it.
        if cost < 1:
            raise ValueError("cost must be at least 1")
        name = tenant.name
        keys = [self._key(name, p) for p in ("state", "block", "inflight", "calls")]
        args: list[str | int] = [
            tenant.calls_per_hour,
            _arg(tenant.rate_window_seconds),
            tenant.rate_burst,
            _arg(tenant.lookup_budget_share),
            "1" if kind in LOOKUP_KINDS else "0",
            cost,
            _arg(MAX_BURST_SHARE),
            _arg(GUARD_SHARE),
            _arg(GUARD_MAX_SECONDS),
            COUNT_SLOTS,
            _arg(self._inflight_timeout),
            _arg(now),
            "1" if ticket else "0",
            _arg(GUARD_MIN_SECONDS),
            _arg(tenant.rate_guard_seconds),
        ]
        try:
            reply: Any = self._acquire(keys=keys, args=args)
        except redis.ResponseError as exc:
            if "exceeds the" in str(exc):
                raise ValueError(f"tenant {name!r}: {exc}") from None
            raise
        granted, wait, left, at = reply
        # Round the wait up to the microsecond so sleeping exactly that long is enough.
        wait_s = math.ceil(float(wait) * 1e6) / 1e6
        return Grant(bool(int(granted)), wait_s, float(left), float(at))

    def block(self, tenant_name: str, seconds: float) -> None:
        """Refuse every call for the tenant for ``seconds`` (a 429's Retry-After), never shorter."""
        ms = math.ceil(seconds * 1000)
        if ms > 0:
            self._block(keys=[self._key(tenant_name, "block")], args=[ms])

    def blocked_for(self, tenant_name: str) -> float:
        """Seconds left of a 429 block, 0.0 if none."""
        ms = int(self._redis.pttl(self._key(tenant_name, "block")))
        return ms / 1000 if ms > 0 else 0.0

    def observe(
        self,
        tenant: TenantSettings,
        *,
        remaining: int | None,
        reset_seconds: float | None,
        limit: int | None = None,
    ) -> None:
        """Fold one answer's X-RateLimit-* values in (call once per answer, whatever its status).

        ``reset_seconds`` is seconds until Virtuous's window resets, or an epoch timestamp when
        larger than 1e9 (read against the Redis clock).
        """
        self._observe_at(tenant, remaining=remaining, reset_seconds=reset_seconds, limit=limit)

    def _observe_at(
        self,
        tenant: TenantSettings,
        *,
        remaining: int | None,
        reset_seconds: float | None,
        limit: int | None,
        now: float | None = None,
    ) -> None:
        keys = [self._key(tenant.name, "state"), self._key(tenant.name, "inflight")]
        args: list[str | int] = [
            "" if remaining is None else max(0, int(remaining)),
            _arg(reset_seconds),
            "" if limit is None else int(limit),
            _arg(tenant.rate_window_seconds),
            _arg(self._inflight_timeout),
            _arg(now),
        ]
        self._observe(keys=keys, args=args)

    def calls_in_window(self, tenant: TenantSettings) -> int:
        """Calls granted in the current rolling window (to 1/COUNT_SLOTS of the window)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.time()
        pipe.hgetall(self._key(tenant.name, "calls"))
        (secs, micros), counts = pipe.execute()
        now = int(secs) + int(micros) / 1e6
        width = tenant.rate_window_seconds / COUNT_SLOTS
        oldest = math.floor(now / width) - COUNT_SLOTS + 1
        return sum(int(n) for slot, n in counts.items() if int(slot) >= oldest)

    def reset(self, tenant_name: str) -> None:
        """Forget everything about the tenant: pacing, budget, block, counts (tests and ops)."""
        parts = ("state", "block", "inflight", "calls")
        self._redis.delete(*(self._key(tenant_name, p) for p in parts))
