"""The shared per-tenant limiter: every call giftsync makes to Virtuous takes a token.

One token bucket per tenant lives in Redis and is changed only by Lua scripts
(``limiter.lua`` to take tokens, ``limiter_observe.lua`` to read an answer's headers), so every
worker process on every machine draws from the same budget, and the clock is Redis's (``TIME``
inside the script): workers with skewed clocks still agree.

The window drives the bucket
----------------------------
The tokens are the calls left in the rolling window: the limiter logs the time of every call
it grants (a sorted set), and a token comes back exactly when the call that spent it leaves the
window. So a backlog gets the whole cap, a window's worth of calls at a time as they free up,
and a burst into an idle tenant goes at once as long as the window has room: 300 gifts at
10,000 calls an hour are 300 calls now, not a pacing interval each.

Guarantee
---------
For a tenant with cap ``C = calls_per_hour`` over ``W = rate_window_seconds``, with a guard
``g`` and ``S = W + g``: a grant of ``c`` tokens at ``t`` is made only if the calls logged in
``(t - S, t]`` plus ``c`` fit in ``C`` (less the reserve and the other integrations' spend).
Every grant in that interval is in the log at ``t`` (only calls at or before ``t - S`` are
pruned), and the Lua script is atomic, so no half-open interval of length ``S`` ever holds more
than ``C`` granted tokens, pushes, retries, lookups and pulls together; as ``W < S``, neither
does any rolling window of ``W``. The guard covers the spread between a grant and the moment
the call reaches Virtuous, whose window counts arrivals: a call arriving up to ``g`` after its
grant still lies in a span the log accounts for. ``g = clamp(0.5% of W, 0.25 s, 5 s)``, or
``rate_guard_seconds``. It costs nothing once a call is answered (see below).

A token is held from the answer, not the grant
----------------------------------------------
Virtuous counts a call when it arrives, which may be well after its grant when a burst queues
at the server, and surely by its answer. So every answer observed moves its call's log entry
to a guard before the answer's time, before its grant if the answer came within the guard: a
token frees a span after its entry, which is exactly a window after the answer, when Virtuous
stops counting the call at the latest. The guard is spent only on calls not answered yet. The
bound above still holds, read for arrivals: every call has arrived by a guard after its entry
(by its grant's guard while in flight, by its answer once answered), so whichever of two calls
in one window of Virtuous is granted later finds the other in the span it checks. The gate
names the call each answer belongs to (:data:`calls_in_hand`); an answer nobody names moves
the oldest call in flight to the answer's time instead, keeping the guard, as the named call
may still be on its way.

Virtuous's headers reveal only the others
-----------------------------------------
The limiter's own log is the truth about giftsync's calls. Each answer's
``X-RateLimit-Limit - X-RateLimit-Remaining`` is every call Virtuous counts in its window; less
giftsync's own calls of the last window that have been answered, what remains is what *other*
integrations of the organisation spend, and the bucket shrinks by that much. The reading needs
no reset header and no particular meaning of it: the count stays valid until the answer's
``X-RateLimit-Reset`` if one is sent (whether that is when the rolling window empties, when the
next call frees up, or the end of a fixed window, some counted calls leave then), and never
longer than a window. Calls still in flight are not subtracted (they may not have arrived), nor
are answered ones granted before the window began (they may have arrived before it), so the
others' spend is overstated, never understated. Such an answered call still holds its token in
the log for a while, though, and while it does it may be taken for ours after all (counted by
Virtuous, it is then counted once rather than twice; forgotten, the log makes up for it): it
is lent to the count until its token frees, and is the others' again from then on. The
highest count of the last ``g`` seconds is kept, and an answer overtaken by a later call's
answer lowers the count only when Virtuous counted that later call too, so answers that
overtake one another cannot lower it. With no valid count (no
answer yet, or it lapsed) the limiter probes: one call at a time, each awaited up to
``PROBE_SECONDS``, until an answer says what the others spend; a backlog starting into an
organisation whose other integrations fill the window then gets no 429.

The other rules, all checked in the same script
-----------------------------------------------
- ``rate_reserve_share`` (default 0) keeps that share of the organisation's cap unused, for
  other integrations that start suddenly: their spend is seen only after their calls, so a
  window giftsync has filled leaves them nothing until its calls leave it.
- ``kind`` "lookup"/"pull" must also fit a second log sized ``C * lookup_budget_share``, so
  lookups can never take more than that share: pushes keep the rest of the cap whatever the
  reconcile sweep and the pulls want.
- ``block(tenant, s)`` (a 429's Retry-After) refuses every caller until the block expires.
- A reported ``X-RateLimit-Limit`` below the configured cap lowers the cap.
- Tickets: a refused caller that re-enqueues itself is told to come back when the next token
  after the previous waiter's frees, so a throttled backlog wakes one message per freed token,
  each right when its token frees. A caller that says which ticket it holds (``held``) keeps
  its place in that line whenever it comes back: it may come back early and wait the rest
  out itself (see :func:`workers.flows.gate.call`), which is far more punctual than a queue's
  delayed delivery, and a token that frees later than its ticket said does not send it to the
  end of the line.

Hence every answer of every worker must be observed: wire ``VirtuousClient(on_rate_limit=)``
to ``observe`` and acquire right before the call. The log costs Redis about 100 bytes per call
in the window (about 1 MB for a tenant calling at 10,000 an hour).

Keys are :meth:`workers.store.keys.Keys.limiter`'s, with the tenant as a Redis Cluster hash
tag, so each script's keys share one slot.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import redis
from redis.commands.core import Script

from mapping.tenant import TenantSettings
from workers.store.keys import Keys
from workers.store.scripts import decode, load_script

Kind = Literal["push", "lookup", "pull"]

# The wake-up ticket (Redis clock) the message being processed in this thread holds, if any:
# set by the queue's middleware from the message, read by the gate.
held_ticket: ContextVar[float | None] = ContextVar("giftsync_held_ticket", default=None)
# The calls granted to this thread and not yet answered (log members), oldest first: set by
# the gate at each grant, taken one per answer by the observer, so each answer moves its own
# call's log entry (see limiter_observe.lua).
calls_in_hand: ContextVar[list[str] | None] = ContextVar("giftsync_calls_in_hand", default=None)

# The window is enforced this much longer, to cover grant-to-arrival spread (share of window)...
GUARD_SHARE = 0.005
# ...but never more than this many seconds...
GUARD_MAX_SECONDS = 5.0
# ...nor less: a call may reach Virtuous this much later than its grant on a loaded machine.
GUARD_MIN_SECONDS = 0.25
# A granted call not answered after this long no longer counts as in flight.
INFLIGHT_TIMEOUT_SECONDS = 120.0
# While the others' spend is unknown, one call is awaited at most this long before the next.
PROBE_SECONDS = 2.0
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
    # The granted calls' names in the limiter's log, one per token.
    calls: tuple[str, ...] = ()
    # Refused with a place in the waiters' line: ``at + wait_seconds`` is a ticket to hold.
    in_line: bool = False


# What the acquire and observe scripts share.
_PRELUDE = "limiter_prelude.lua"


def _script(client: redis.Redis, name: str, prelude: str | None = None) -> Script:
    return load_script(client, name, prelude=prelude)


def _arg(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def guard_seconds(tenant: TenantSettings) -> float:
    """How much longer than its window the tenant's cap is enforced (see the docstring)."""
    if tenant.rate_guard_seconds is not None:
        return tenant.rate_guard_seconds
    window = tenant.rate_window_seconds
    return min(max(window * GUARD_SHARE, GUARD_MIN_SECONDS), GUARD_MAX_SECONDS)


class Limiter:
    """Per-tenant call budget shared through Redis by every worker."""

    def __init__(
        self,
        redis: redis.Redis,
        *,
        prefix: str = "giftsync",
        inflight_timeout: float = INFLIGHT_TIMEOUT_SECONDS,
        probe_seconds: float = PROBE_SECONDS,
    ) -> None:
        self._redis = redis
        self._keys = Keys(prefix)
        self._inflight_timeout = inflight_timeout
        self._probe_seconds = probe_seconds
        self._acquire = _script(redis, "limiter.lua", _PRELUDE)
        self._observe = _script(redis, "limiter_observe.lua", _PRELUDE)
        self._block = _script(redis, "limiter_block.lua")

    def _key(self, tenant_name: str, part: str) -> str:
        return self._keys.limiter(tenant_name, part)

    def acquire(
        self,
        tenant: TenantSettings,
        *,
        kind: Kind = "push",
        cost: int = 1,
        ticket: bool = False,
        held: float | None = None,
    ) -> Grant:
        """Take ``cost`` call tokens for ``tenant`` now, or say how long to wait for them.

        With ``ticket``, a refused caller promises to come back after the wait it is given,
        and waiters are told to wake one freed token apart (see limiter.lua); a caller back
        with the ticket it was given (``held``, the Redis time it was told) keeps its place.
        """
        return self._acquire_at(tenant, kind=kind, cost=cost, now=None, ticket=ticket, held=held)

    def _acquire_at(
        self,
        tenant: TenantSettings,
        *,
        kind: Kind,
        cost: int,
        now: float | None,
        ticket: bool = False,
        held: float | None = None,
    ) -> Grant:
        # ``now`` overrides the Redis clock; only tests that replay a timeline pass it.
        if cost < 1:
            raise ValueError("cost must be at least 1")
        name = tenant.name
        keys = [self._key(name, p) for p in ("state", "block", "inflight", "calls", "lookups")]
        window = tenant.rate_window_seconds
        guard = guard_seconds(tenant)
        args: list[str | int] = [
            tenant.calls_per_hour,
            _arg(window),
            _arg(window + guard),
            _arg(tenant.rate_reserve_share),
            _arg(tenant.lookup_budget_share),
            "1" if kind in LOOKUP_KINDS else "0",
            cost,
            _arg(self._inflight_timeout),
            _arg(now),
            "1" if ticket else "0",
            _arg(min(self._probe_seconds, window / 4)),
            _arg(guard),
            _arg(held),
        ]
        try:
            reply: Any = self._acquire(keys=keys, args=args)
        except redis.ResponseError as exc:
            if "exceeds the" in str(exc):
                raise ValueError(f"tenant {name!r}: {exc}") from None
            raise
        granted, wait, left, at, extra = reply
        # Round the wait up to the microsecond so sleeping exactly that long is enough.
        wait_s = math.ceil(float(wait) * 1e6) / 1e6
        if int(granted):
            calls = tuple(str(decode(m)) for m in extra)
            return Grant(True, wait_s, float(left), float(at), calls)
        return Grant(False, wait_s, float(left), float(at), in_line=bool(int(extra)))

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
        call: str | None = None,
    ) -> None:
        """Fold one answer's X-RateLimit-* values in (call once per answer, whatever its status).

        ``reset_seconds`` is seconds until Virtuous's reset, or an epoch timestamp when larger
        than 1e9 (read against the Redis clock). ``call`` names the answered call (one of a
        :class:`Grant`'s ``calls``); unnamed, the oldest call in flight stands for it.
        """
        self._observe_at(
            tenant, remaining=remaining, reset_seconds=reset_seconds, limit=limit, call=call
        )

    def _observe_at(
        self,
        tenant: TenantSettings,
        *,
        remaining: int | None,
        reset_seconds: float | None,
        limit: int | None,
        now: float | None = None,
        call: str | None = None,
    ) -> None:
        keys = [self._key(tenant.name, p) for p in ("state", "inflight", "calls", "lookups")]
        args: list[str | int] = [
            "" if remaining is None else max(0, int(remaining)),
            _arg(reset_seconds),
            "" if limit is None else int(limit),
            tenant.calls_per_hour,
            _arg(tenant.rate_window_seconds),
            _arg(self._inflight_timeout),
            _arg(now),
            _arg(guard_seconds(tenant)),
            call or "",
            _arg(guard_seconds(tenant)),
        ]
        self._observe(keys=keys, args=args)

    def calls_in_window(self, tenant: TenantSettings) -> int:
        """giftsync's calls granted in the current rolling window (exact)."""
        secs, micros = self._redis.time()
        edge = int(secs) + int(micros) / 1e6 - tenant.rate_window_seconds
        return int(self._redis.zcount(self._key(tenant.name, "calls"), f"({edge!r}", "+inf"))

    def grant_times(self, tenant: TenantSettings) -> list[tuple[str, float, float]]:
        """(call id, grant time, log time) of every call still holding a token, oldest first.

        A call's log time is its grant until it is answered, then a guard before its answer
        (its answer itself when the answer named no call); its token frees a span after it."""
        rows: Any = self._redis.zrange(self._key(tenant.name, "calls"), 0, -1, withscores=True)
        out = []
        for member, score in rows:
            text = bytes(member).decode()
            out.append((text, float(text.split(":", 1)[0]), float(score)))
        return out

    def reset(self, tenant_name: str) -> None:
        """Forget all the tenant's limiter state: log, others' spend, block (tests, ops)."""
        parts = ("state", "block", "inflight", "calls", "lookups")
        self._redis.delete(*(self._key(tenant_name, p) for p in parts))
