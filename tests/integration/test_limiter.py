"""The shared limiter against a real Redis: the rolling-window bound, shares, blocks, feedback.

Some tests replay a timeline through the real Lua script by overriding its clock
(``_acquire_at``), which makes the bound checkable on thousands of calls in a second; the
contention test uses the Redis clock from several OS processes, as production does.
"""

from __future__ import annotations

import bisect
import multiprocessing
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapping.tenant import TenantSettings
from workers.store.limiter import GUARD_MAX_SECONDS, GUARD_MIN_SECONDS, GUARD_SHARE, Grant, Limiter

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0  # replayed timelines start here


def tenant(name: str, **overrides: Any) -> TenantSettings:
    base = TenantSettings(
        name=name,
        virtuous_base_url="http://127.0.0.1:1",
        virtuous_token_env="GIFTSYNC_TEST_TOKEN",
        timezone="UTC",
        calls_per_hour=200,
        rate_window_seconds=2.0,
    )
    return replace(base, **overrides)


@pytest.fixture
def limiter(redis_client: redis.Redis, unique: str) -> Iterator[Limiter]:
    lim = Limiter(redis_client, prefix=f"test-{unique}")
    yield lim
    for key in redis_client.scan_iter(match=f"test-{unique}:*"):
        redis_client.delete(key)


def busiest_window(
    times: Sequence[float], length: float, costs: Sequence[int] | None = None
) -> int:
    """The most call tokens in any half-open window (t - length, t] of the sorted times."""
    costs = costs or [1] * len(times)
    prefix = [0]
    for c in costs:
        prefix.append(prefix[-1] + c)
    best = 0
    for i, t in enumerate(times):
        first = bisect.bisect_right(times, t - length)
        best = max(best, prefix[i + 1] - prefix[first])
    return best


def redis_now(client: redis.Redis) -> float:
    secs, micros = client.time()
    return float(secs) + micros / 1e6


# --- the bound, under contention from several OS processes on the Redis clock ---------------


def _hammer(url: str, prefix: str, name: str, start: float, stop: float, out: Any) -> None:
    client = redis.Redis.from_url(url)
    lim = Limiter(client, prefix=prefix)
    settings_ = tenant(name)
    granted: list[float] = []
    while time.time() < start:
        time.sleep(0.001)
    while time.time() < stop:
        grant = lim.acquire(settings_)
        if grant.granted:
            granted.append(grant.at)
        else:
            time.sleep(min(grant.wait_seconds, max(0.0, stop - time.time())))
    out.put(granted)
    client.close()


def test_rolling_window_holds_under_four_processes(
    redis_url: str, limiter: Limiter, unique: str
) -> None:
    name = f"mp-{unique}"
    cap, window, windows = 200, 2.0, 3
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    start = time.time() + 0.3
    stop = start + windows * window + 0.2
    procs = [
        ctx.Process(target=_hammer, args=(redis_url, f"test-{unique}", name, start, stop, out))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=10)
        assert p.exitcode == 0
    times = sorted(t for r in results for t in r)
    assert all(results), "every process got some grants"
    assert busiest_window(times, window) <= cap
    guard = min(max(window * GUARD_SHARE, GUARD_MIN_SECONDS), GUARD_MAX_SECONDS)
    assert busiest_window(times, window + guard - 2e-6) <= cap
    first = times[0]
    used = sum(1 for t in times if t < first + windows * window)
    # The limiter paces over window + guard, so that is the most a backlog can get.
    assert used >= 0.95 * windows * cap * window / (window + guard), used
    assert limiter.calls_in_window(tenant(name)) <= cap


# --- the bound, for any timeline, through the real script -------------------------------------


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    cap=st.integers(1, 300),
    window=st.floats(0.5, 30.0),
    burst=st.integers(1, 40),
    share=st.floats(0.05, 0.95),
    steps=st.lists(
        st.tuples(st.floats(0.0, 0.2), st.integers(1, 3), st.sampled_from(["push", "lookup"])),
        min_size=1,
        max_size=250,
    ),
)
def test_no_timeline_breaks_the_bound(
    limiter: Limiter,
    unique: str,
    cap: int,
    window: float,
    burst: int,
    share: float,
    steps: list[tuple[float, int, str]],
) -> None:
    settings_ = tenant(
        f"hyp-{unique}-{time.monotonic_ns()}",
        calls_per_hour=cap,
        rate_window_seconds=window,
        rate_burst=burst,
        lookup_budget_share=share,
    )
    now = T0
    granted: list[tuple[float, int, str]] = []
    for gap, cost, kind in steps:
        now += gap * window
        try:
            grant = limiter._acquire_at(settings_, kind=kind, cost=cost, now=now)  # type: ignore[arg-type]
        except ValueError:
            continue  # cost above the burst: refused outright
        if grant.granted:
            granted.append((now, cost, kind))
    times = [t for t, _, _ in granted]
    assert busiest_window(times, window, [c for _, c, _ in granted]) <= cap
    lookups = [(t, c) for t, c, k in granted if k == "lookup"]
    lookup_cap = max(1, int(cap * share))
    assert busiest_window([t for t, _ in lookups], window, [c for _, c in lookups]) <= lookup_cap
    limiter.reset(settings_.name)


@pytest.mark.parametrize(("cap", "burst"), [(10_000, 20), (2_000, 20), (200, 20), (1_500, 50)])
def test_a_backlog_uses_nearly_the_whole_cap(
    limiter: Limiter, unique: str, cap: int, burst: int
) -> None:
    # A backlog asks again exactly when told, for 1.25 windows of the real hourly shape; the
    # window measured starts after the opening burst.
    window = 3600.0
    settings_ = tenant(
        f"use-{unique}-{cap}", calls_per_hour=cap, rate_window_seconds=window, rate_burst=burst
    )
    now, times = T0, []
    while now < T0 + 1.25 * window:
        grant = limiter._acquire_at(settings_, kind="push", cost=1, now=now)
        if grant.granted:
            times.append(now)
        else:
            now += grant.wait_seconds
    assert busiest_window(times, window) <= cap
    start = T0 + 0.25 * window
    used = sum(1 for t in times if start <= t < start + window)
    assert used >= 0.985 * cap, used


# --- the lookup share ---------------------------------------------------------------------------


def test_lookups_spend_at_most_their_share_and_pushes_still_go(
    limiter: Limiter, unique: str
) -> None:
    settings_ = tenant(f"share-{unique}", calls_per_hour=100, lookup_budget_share=0.2)
    now, lookups, pushes = T0, [], []
    while now < T0 + 3 * 2.0:
        if limiter._acquire_at(settings_, kind="lookup", cost=1, now=now).granted:
            lookups.append(now)
        if limiter._acquire_at(settings_, kind="push", cost=1, now=now).granted:
            pushes.append(now)
        now += 0.001
    assert busiest_window(lookups, 2.0) <= 20
    assert len(lookups) >= 0.85 * 20 * 3  # paced over window + guard
    assert len(pushes) >= 0.85 * 80 * 3  # lookups starve nobody but themselves
    assert busiest_window(sorted(lookups + pushes), 2.0) <= 100
    pull = limiter._acquire_at(settings_, kind="pull", cost=1, now=now)
    push = limiter._acquire_at(settings_, kind="push", cost=1, now=now)
    assert not pull.granted or push.granted  # a pull never gets what a push is refused


# --- blocks, Virtuous's own counts, and waits ---------------------------------------------------


def test_block_makes_every_worker_wait(
    redis_url: str, redis_client: redis.Redis, limiter: Limiter, unique: str
) -> None:
    settings_ = tenant(f"block-{unique}", calls_per_hour=10_000, rate_window_seconds=3600.0)
    other = Limiter(redis.Redis.from_url(redis_url), prefix=f"test-{unique}")
    blocked_at = redis_now(redis_client)
    limiter.block(settings_.name, 0.4)
    limiter.block(settings_.name, 0.1)  # a shorter Retry-After never shortens the block
    assert 0.3 < limiter.blocked_for(settings_.name) <= 0.4
    for lim in (limiter, other):
        grant = lim.acquire(settings_)
        assert not grant.granted
        assert 0.3 < grant.wait_seconds <= 0.4
        assert grant.tokens_left == 0
    deadline = time.monotonic() + 3
    while not (grant := other.acquire(settings_)).granted:
        assert time.monotonic() < deadline
        time.sleep(grant.wait_seconds)
    assert grant.at - blocked_at >= 0.399  # Redis keeps expiries to the millisecond
    assert limiter.blocked_for(settings_.name) == 0.0


def test_wait_seconds_is_exact(limiter: Limiter, unique: str) -> None:
    settings_ = tenant(f"wait-{unique}")
    now = T0
    for _ in range(20):
        grant = limiter._acquire_at(settings_, kind="push", cost=1, now=now)
        if grant.granted:
            continue
        early = limiter._acquire_at(
            settings_, kind="push", cost=1, now=now + grant.wait_seconds - 1e-4
        )
        assert not early.granted
        now += grant.wait_seconds
        assert limiter._acquire_at(settings_, kind="push", cost=1, now=now).granted


def test_waiting_as_told_succeeds_on_the_redis_clock(limiter: Limiter, unique: str) -> None:
    settings_ = tenant(f"rwait-{unique}")
    deadline = time.monotonic() + 3
    waited = 0
    while waited < 5:
        assert time.monotonic() < deadline
        grant = limiter.acquire(settings_)
        if grant.granted:
            continue
        time.sleep(grant.wait_seconds)
        assert limiter.acquire(settings_).granted
        waited += 1


def test_low_remaining_throttles_until_the_reset(limiter: Limiter, unique: str) -> None:
    settings_ = tenant(f"obs-{unique}", calls_per_hour=10_000, rate_window_seconds=3600.0)
    limiter._observe_at(settings_, remaining=3, reset_seconds=30.0, limit=None, now=T0)
    grants = [limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 0.001) for _ in range(4)]
    assert [g.granted for g in grants] == [True, True, True, False]
    assert grants[-1].wait_seconds == pytest.approx(30.0 - 0.001, abs=1e-5)
    assert limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 30.0).granted


def test_calls_in_flight_are_spent_already(limiter: Limiter, unique: str) -> None:
    settings_ = tenant(f"inflight-{unique}", calls_per_hour=10_000, rate_window_seconds=3600.0)
    for _ in range(5):
        assert limiter._acquire_at(settings_, kind="push", cost=1, now=T0).granted
    # One of the five answers: Virtuous says 10 remain, but 4 of ours are still on their way.
    limiter._observe_at(settings_, remaining=10, reset_seconds=60.0, limit=None, now=T0 + 0.1)
    granted = [
        limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 0.2).granted for _ in range(8)
    ]
    assert granted == [True] * 6 + [False] * 2
    # An older answer arriving late cannot raise the budget again within the same period.
    limiter._observe_at(settings_, remaining=9, reset_seconds=59.8, limit=None, now=T0 + 0.3)
    assert not limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 0.4).granted


def test_an_epoch_reset_is_read_on_the_redis_clock(
    redis_client: redis.Redis, limiter: Limiter, unique: str
) -> None:
    settings_ = tenant(f"epoch-{unique}", calls_per_hour=10_000, rate_window_seconds=3600.0)
    limiter.observe(settings_, remaining=0, reset_seconds=redis_now(redis_client) + 0.3)
    grant = limiter.acquire(settings_)
    assert not grant.granted and 0.2 < grant.wait_seconds <= 0.3
    deadline = time.monotonic() + 3
    while not (grant := limiter.acquire(settings_)).granted:
        assert time.monotonic() < deadline
        time.sleep(grant.wait_seconds)


def test_a_lower_reported_limit_slows_the_pace(limiter: Limiter, unique: str) -> None:
    settings_ = tenant(f"limit-{unique}", calls_per_hour=10_000, rate_window_seconds=3600.0)
    assert limiter._acquire_at(settings_, kind="push", cost=1, now=T0).tokens_left == 19
    limiter._observe_at(settings_, remaining=None, reset_seconds=None, limit=50, now=T0)
    for _ in range(2):  # burst 2 at 50 an hour...
        assert limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 1).granted
    grant = limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 1)
    assert not grant.granted  # ...then one call every T = (W + g) / (50 - 2 + 1)
    span = 3600.0 + min(3600.0 * GUARD_SHARE, GUARD_MAX_SECONDS)
    assert grant.wait_seconds == pytest.approx(span / 49, abs=1e-3)


def test_counts_tokens_and_reset(limiter: Limiter, unique: str) -> None:
    settings_ = tenant(f"count-{unique}", calls_per_hour=10_000, rate_window_seconds=3600.0)
    grants: list[Grant] = [limiter.acquire(settings_) for _ in range(5)]
    assert all(g.granted for g in grants)
    assert [round(g.tokens_left) for g in grants] == [19, 18, 17, 16, 15]
    assert limiter.calls_in_window(settings_) == 5
    with pytest.raises(ValueError):
        limiter.acquire(settings_, cost=21)
    limiter.reset(settings_.name)
    assert limiter.calls_in_window(settings_) == 0
    assert limiter.acquire(settings_).tokens_left == pytest.approx(19, abs=0.01)


def test_keys_share_the_tenants_hash_tag(
    redis_client: redis.Redis, limiter: Limiter, unique: str
) -> None:
    settings_ = tenant(f"keys-{unique}")
    limiter.acquire(settings_)
    keys = {k.decode() for k in redis_client.scan_iter(match=f"test-{unique}:limiter:*")}
    assert keys == {
        f"test-{unique}:limiter:{{keys-{unique}}}:{part}" for part in ("state", "inflight", "calls")
    }
