"""The shared limiter against a real Redis: the rolling-window bound, shares, blocks, feedback.

Some tests replay a timeline through the real Lua script by overriding its clock
(``_acquire_at``), which makes the bound checkable on thousands of calls in a second; the
header-reading tests replay it against the sandbox's own counter (every reading of the
rate-limit headers it offers); the contention test uses the Redis clock from several OS
processes, as production does.
"""

from __future__ import annotations

import bisect
import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mapping.tenant import TenantSettings
from sandbox.ratelimit import HEADER_MODES, RollingWindow, rate_headers
from workers.store.limiter import Grant, Limiter, guard_seconds
from workers.virtuous.ratelimit import parse_rate_limit

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


def take(limiter: Limiter, settings_: TenantSettings, now: float, kind: str = "push") -> Grant:
    """Acquire at ``now``; a granted call is answered at once with no rate-limit headers."""
    grant = limiter._acquire_at(settings_, kind=kind, cost=1, now=now)  # type: ignore[arg-type]
    if grant.granted:
        limiter._observe_at(settings_, remaining=None, reset_seconds=None, limit=None, now=now)
    return grant


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
            lim.observe(settings_, remaining=None, reset_seconds=None)
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
    guard = guard_seconds(tenant(name))
    assert busiest_window(times, window + guard - 2e-6) <= cap
    first = times[0]
    used = sum(1 for t in times if t < first + windows * window)
    # A token comes back window + guard after its call: three windows hold three caps' worth.
    assert used >= 0.95 * windows * cap, used
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
    share=st.floats(0.05, 0.95),
    others=st.integers(0, 300),
    answered=st.booleans(),
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
    share: float,
    others: int,
    answered: bool,
    steps: list[tuple[float, int, str]],
) -> None:
    # Other integrations hold `others` calls of the window all along; when `answered`, every
    # grant is answered at once with the count Virtuous would report.
    settings_ = tenant(
        f"hyp-{unique}-{time.monotonic_ns()}",
        calls_per_hour=cap,
        rate_window_seconds=window,
        lookup_budget_share=share,
    )
    others = min(others, cap)
    now = T0
    granted: list[tuple[float, int, str]] = []
    for gap, cost, kind in steps:
        now += gap * window
        try:
            grant = limiter._acquire_at(settings_, kind=kind, cost=cost, now=now)  # type: ignore[arg-type]
        except ValueError:
            continue  # cost above the cap: refused outright
        if grant.granted:
            granted.append((now, cost, kind))
            if answered:
                own = sum(c for t, c, _ in granted if t > now - window)
                left = max(0, cap - others - own)
                limiter._observe_at(
                    settings_, remaining=left, reset_seconds=None, limit=cap, now=now
                )
    times = [t for t, _, _ in granted]
    costs = [c for _, c, _ in granted]
    assert busiest_window(times, window, costs) <= cap
    if answered and times and others + costs[0] <= cap:
        # Only the first call (a probe, before any answer) may go without knowing the others.
        # (When that probe already overran the cap, Remaining reads 0 and hides how far: no
        # answer can reveal the others' spend then, only the cap itself still binds.)
        assert busiest_window(times[1:], window, costs[1:]) <= max(0, cap - others)
    lookups = [(t, c) for t, c, k in granted if k == "lookup"]
    lookup_cap = max(1, int(cap * share))
    assert busiest_window([t for t, _ in lookups], window, [c for _, c in lookups]) <= lookup_cap
    limiter.reset(settings_.name)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    cap=st.integers(1, 40),
    steps=st.lists(
        st.tuples(
            st.floats(0.0, 0.3),  # gap before the next attempt, in windows
            # Where the call arrives between its grant and its answer (the ends most often).
            st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)),
            st.floats(0.0, 0.5),  # how long its answer takes, in windows
            st.booleans(),  # whether the answer names its call
        ),
        min_size=1,
        max_size=200,
    ),
)
# The tightest case: a call arriving as it is answered, the next granted the moment its token
# frees and arriving at once.
@example(cap=1, steps=[(0.0, 1.0, 0.5, True), (0.0, 0.0, 0.0, True)])
def test_calls_held_from_their_answers_never_overfill_a_window(
    limiter: Limiter, unique: str, cap: int, steps: list[tuple[float, float, float, bool]]
) -> None:
    # Calls reach Virtuous anywhere between their grant and their answer (an unnamed answer's
    # call within the guard of its grant, as the guard assumes), answers come back in any
    # order, and a named answer frees its token a window after it, with no guard: Virtuous's
    # window (its arrivals) never holds more than the cap.
    window = 2.0
    settings_ = tenant(f"held-{unique}-{time.monotonic_ns()}", calls_per_hour=cap)
    guard = guard_seconds(settings_)
    now = T0
    answers: list[tuple[float, str | None]] = []
    arrivals: list[float] = []
    for gap, where, took, named in steps:
        now += gap * window
        while True:
            for at, call in sorted((a for a in answers if a[0] <= now), key=lambda a: a[0]):
                limiter._observe_at(
                    settings_, remaining=None, reset_seconds=None, limit=None, now=at, call=call
                )
            answers = [a for a in answers if a[0] > now]
            # A backlog: asks again right when told, so calls go the moment tokens free.
            grant = limiter._acquire_at(settings_, kind="push", cost=1, now=now)
            if grant.granted:
                break
            now += grant.wait_seconds
        answered = now + took * window
        latest = answered if named else min(answered, now + guard)
        arrivals.append(now + where * (latest - now))
        answers.append((answered, grant.calls[0] if named else None))
    assert busiest_window(sorted(arrivals), window) <= cap
    limiter.reset(settings_.name)


def test_a_named_answer_frees_its_token_a_window_after_it(limiter: Limiter, unique: str) -> None:
    settings_ = tenant(f"named-{unique}", calls_per_hour=2, rate_window_seconds=10.0)
    guard = guard_seconds(settings_)
    # Virtuous reports only our own calls: the others spend nothing.
    first = limiter._acquire_at(settings_, kind="push", cost=1, now=T0)
    limiter._observe_at(
        settings_, remaining=1, reset_seconds=None, limit=2, now=T0 + 1, call=first.calls[0]
    )
    assert limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 1.5).granted
    # The other call's answer names no call: the oldest in flight stands for it, guard kept.
    limiter._observe_at(settings_, remaining=0, reset_seconds=None, limit=2, now=T0 + 2)
    refused = limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 10.5)
    assert not refused.granted and refused.wait_seconds == pytest.approx(0.5, abs=1e-5)
    third = limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 11.0)
    assert third.granted
    limiter._observe_at(
        settings_, remaining=0, reset_seconds=None, limit=2, now=T0 + 11.1, call=third.calls[0]
    )
    refused = limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 11.5)
    assert not refused.granted and refused.wait_seconds == pytest.approx(0.5 + guard, abs=1e-5)
    assert limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 12 + guard).granted


@pytest.mark.parametrize("cap", [10_000, 2_000, 200])
def test_a_backlog_uses_nearly_the_whole_cap(limiter: Limiter, unique: str, cap: int) -> None:
    # A backlog asks again exactly when told, for 2.25 windows of the real hourly shape.
    window = 3600.0
    settings_ = tenant(f"use-{unique}-{cap}", calls_per_hour=cap, rate_window_seconds=window)
    now, times = T0, []
    while now < T0 + 2.25 * window:
        grant = take(limiter, settings_, now)
        if grant.granted:
            times.append(now)
        else:
            now += grant.wait_seconds
    assert busiest_window(times, window) <= cap
    # The first window goes at once; each later one as the calls of the one before free up.
    assert sum(1 for t in times if t == T0) == cap
    start = T0 + 1.1 * window
    used = sum(1 for t in times if start <= t < start + window)
    assert used >= 0.998 * cap, used


def test_a_burst_into_an_idle_tenant_goes_at_once(limiter: Limiter, unique: str) -> None:
    settings_ = tenant(f"burst-{unique}", calls_per_hour=10_000, rate_window_seconds=3600.0)
    assert take(limiter, settings_, T0).granted  # the probe: nothing is known of the others
    grants = [take(limiter, settings_, T0 + 0.01) for _ in range(299)]
    assert all(g.granted for g in grants)
    assert grants[-1].tokens_left == 10_000 - 300


# --- the others' spend, under every reading of the headers --------------------------------------


def replay_against_sandbox(
    limiter: Limiter,
    settings_: TenantSettings,
    counter: RollingWindow,
    until: float,
    latency: float,
) -> tuple[list[float], int]:
    """A backlog that asks again when told, each call reaching the sandbox's counter
    ``latency`` after its grant and its headers read as the client reads them."""
    now, arrivals, refused = T0, [], 0
    while now < until:
        grant = limiter._acquire_at(settings_, kind="push", cost=1, now=now)
        if not grant.granted:
            now += grant.wait_seconds
            continue
        arrival = now + latency
        verdict = counter.admit(arrival)
        if verdict.allowed:
            arrivals.append(arrival)
        else:
            refused += 1
        info = parse_rate_limit(httpx.Headers(rate_headers(verdict, counter.window)))
        limiter._observe_at(
            settings_,
            remaining=info.remaining,
            reset_seconds=info.reset_seconds,
            limit=info.limit,
            now=arrival + latency,
        )
    return arrivals, refused


@pytest.mark.parametrize(
    ("mode", "others_share"),
    [(mode, 0.0) for mode in HEADER_MODES]
    + [("reset-when-window-empties", 0.3), ("reset-when-next-call-frees", 0.3), ("no-reset", 0.3)],
)
def test_a_backlog_fills_what_the_others_leave_under_every_header_reading(
    limiter: Limiter, unique: str, mode: str, others_share: float
) -> None:
    cap, window, latency = 40, 20.0, 0.02
    settings_ = tenant(f"hdr-{unique}", calls_per_hour=cap, rate_window_seconds=window)
    others = int(cap * others_share)
    # The organisation has been running (the others spending) for a window already.
    counter = RollingWindow(cap, window, others, now=T0 - window, headers=mode, wall_offset=0.0)  # type: ignore[arg-type]
    end = T0 + 4 * window
    arrivals, refused = replay_against_sandbox(limiter, settings_, counter, end, latency)
    assert refused == 0, "Virtuous answered 429"
    assert counter.max_in_window <= cap or mode == "fixed-window"
    assert busiest_window(arrivals, window) <= cap - others
    # Every window from a refill's first call on holds all the others leave, less the guard's
    # share.
    for k in (1, 2):
        start = min(t for t in arrivals if t >= T0 + k * window - 1.0)
        used = sum(1 for t in arrivals if start <= t < start + window)
        assert used >= (cap - others) * 0.98 - 1, (mode, start, used)


def test_an_unknown_spend_is_probed_one_call_at_a_time(limiter: Limiter, unique: str) -> None:
    settings_ = tenant(f"probe-{unique}", calls_per_hour=10_000, rate_window_seconds=3600.0)
    assert limiter._acquire_at(settings_, kind="push", cost=1, now=T0).granted
    second = limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 0.001, ticket=True)
    assert not second.granted and 0 < second.wait_seconds <= 0.2
    assert not second.in_line  # every waiter is told alike: no ticket to hold
    # The answer: the others hold 9,990 of the organisation's 10,000.
    limiter._observe_at(settings_, remaining=9, reset_seconds=None, limit=10_000, now=T0 + 0.01)
    grants = [limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 0.02) for _ in range(10)]
    assert [g.granted for g in grants] == [True] * 9 + [False]


def test_a_stuck_probe_stops_nobody_for_long(limiter: Limiter, unique: str) -> None:
    settings_ = tenant(f"stuck-{unique}", calls_per_hour=10_000, rate_window_seconds=3600.0)
    assert limiter._acquire_at(settings_, kind="push", cost=1, now=T0).granted
    # The probe's answer never comes (a dropped connection): the next call goes after a while.
    assert limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 2.01).granted


def test_the_others_count_lapses_at_the_reset(limiter: Limiter, unique: str) -> None:
    settings_ = tenant(f"obs-{unique}", calls_per_hour=10, rate_window_seconds=3600.0)
    span = 3600.0 + guard_seconds(settings_)
    limiter._observe_at(settings_, remaining=3, reset_seconds=30.0, limit=None, now=T0)
    grants = [limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 0.001) for _ in range(4)]
    assert [g.granted for g in grants] == [True, True, True, False]
    assert grants[-1].wait_seconds == pytest.approx(30.0 - 0.001, abs=1e-5)
    # After the reset the others' calls may or may not have gone (a reset may name only the
    # next call to free up); room our own calls will make is waited for, not probed...
    late = limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 30.0)
    assert not late.granted
    assert late.wait_seconds == pytest.approx(span - 30.0 + 0.001, abs=1e-5)
    # ...but where only the others hold the window, one probe looks.
    other = tenant(f"obs2-{unique}", calls_per_hour=10, rate_window_seconds=3600.0)
    limiter._observe_at(other, remaining=0, reset_seconds=30.0, limit=None, now=T0)
    assert not limiter._acquire_at(other, kind="push", cost=1, now=T0 + 29.0).granted
    assert limiter._acquire_at(other, kind="push", cost=1, now=T0 + 30.0).granted
    assert not limiter._acquire_at(other, kind="push", cost=1, now=T0 + 30.01).granted


def test_a_call_granted_before_the_window_is_lent_to_the_count_only_while_it_holds_a_token(
    limiter: Limiter, unique: str
) -> None:
    # Virtuous counts arrivals: a call granted before the window started may have arrived
    # before it, even if answered inside it. Taken for ours, it would understate the others
    # unless our log still holds its token, which makes up for it: so it is lent to the count
    # until it frees its token, and is the others' again from then on.
    settings_ = tenant(f"edge-{unique}", calls_per_hour=10, rate_window_seconds=10.0)
    assert limiter._acquire_at(settings_, kind="push", cost=1, now=T0).granted
    limiter._observe_at(settings_, remaining=None, reset_seconds=None, limit=None, now=T0 + 0.5)
    assert limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 10.1).granted
    # Virtuous counts 5 in its window: the call of T0 + 10.1 and 4 of the others'.
    limiter._observe_at(settings_, remaining=5, reset_seconds=None, limit=10, now=T0 + 10.2)
    now = T0 + 10.3
    granted = 0
    while limiter._acquire_at(settings_, kind="push", cost=1, now=now).granted:
        granted += 1
        now += 0.001
    # 10 - (4 others - the lent call) - 2 of ours still in the span.
    assert granted == 5
    # The first call frees its token a span after its answer: it is the others' again, so
    # the token it frees is no room (4 others, the call of T0 + 10.1 and 5 more).
    span = 10.0 + guard_seconds(settings_)
    assert not limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 0.5 + span).granted
    # Without that, the 6 calls since T0 + 10.1 and the 4 others would be joined by a seventh.


def test_calls_in_flight_count_as_ours_only_once_answered(limiter: Limiter, unique: str) -> None:
    settings_ = tenant(f"inflight-{unique}", calls_per_hour=20, rate_window_seconds=3600.0)
    limiter._observe_at(settings_, remaining=None, reset_seconds=None, limit=None, now=T0)
    for _ in range(5):
        assert limiter._acquire_at(settings_, kind="push", cost=1, now=T0).granted
    # One of the five answers; Virtuous counted it and 10 calls of others; 4 of ours are on
    # their way, so the others may hold up to 20 - 9 - 1 = 10: 5 more calls fit.
    limiter._observe_at(settings_, remaining=9, reset_seconds=None, limit=20, now=T0 + 0.1)
    granted = [
        limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 0.2).granted for _ in range(7)
    ]
    assert granted == [True] * 5 + [False] * 2
    # An answer that overtook others reports fewer: the higher count holds for the guard.
    limiter._observe_at(settings_, remaining=5, reset_seconds=None, limit=20, now=T0 + 0.3)
    assert not limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 0.4).granted


def test_a_count_swollen_by_our_calls_in_flight_is_looked_at_again_when_they_answer(
    limiter: Limiter, unique: str
) -> None:
    # Virtuous counts our calls that arrived but are not answered yet; the limiter can only
    # take them for the others' until they answer. A waiter then looks again when the next
    # answer is due, not when our own next token frees a window later.
    settings_ = tenant(f"swollen-{unique}", calls_per_hour=10, rate_window_seconds=10.0)
    probe = limiter._acquire_at(settings_, kind="push", cost=1, now=T0)
    limiter._observe_at(
        settings_, remaining=9, reset_seconds=None, limit=10, now=T0 + 0.01, call=probe.calls[0]
    )
    calls = [limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 0.02) for _ in range(9)]
    assert all(c.granted for c in calls)
    # One answers: Virtuous holds all ten, eight of them still unanswered to us.
    limiter._observe_at(
        settings_, remaining=0, reset_seconds=None, limit=10, now=T0 + 0.03, call=calls[0].calls[0]
    )
    waiter = limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 0.035, ticket=True)
    assert not waiter.granted and waiter.wait_seconds < 0.1
    for call in calls[1:]:
        limiter._observe_at(
            settings_, remaining=0, reset_seconds=None, limit=10, now=T0 + 0.04, call=call.calls[0]
        )
    # All answered, nothing is in flight: the highest count is kept for the guard (answers
    # may overtake one another), then the count is ours alone and the next token is the
    # first call's, a window after its answer.
    guard = guard_seconds(settings_)
    later = limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 0.05, ticket=True)
    assert not later.granted
    assert T0 + 0.05 + later.wait_seconds == pytest.approx(T0 + 0.03 + guard, abs=1e-4)
    after = T0 + 0.03 + guard + 0.002
    last = limiter._acquire_at(settings_, kind="push", cost=1, now=after)
    assert not last.granted
    assert after + last.wait_seconds == pytest.approx(T0 + 10.01, abs=1e-4)


def test_an_answer_that_overtook_a_later_calls_never_lowers_the_count(
    limiter: Limiter, unique: str
) -> None:
    # The others hold one call. A reaches Virtuous before B, but B's answer comes back first.
    settings_ = tenant(f"overtaken-{unique}", calls_per_hour=10, rate_window_seconds=10.0)
    guard = guard_seconds(settings_)
    probe = limiter._acquire_at(settings_, kind="push", cost=1, now=T0)
    limiter._observe_at(
        settings_, remaining=8, reset_seconds=None, limit=10, now=T0 + 0.01, call=probe.calls[0]
    )
    a = limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 0.02)
    b = limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 0.021)
    # B was counted with A (4 in the window), A before B arrived (3).
    limiter._observe_at(
        settings_, remaining=6, reset_seconds=None, limit=10, now=T0 + 0.05, call=b.calls[0]
    )
    limiter._observe_at(
        settings_, remaining=7, reset_seconds=None, limit=10, now=T0 + 0.06, call=a.calls[0]
    )
    # A's answer alone would say the others hold nothing (10 - 7 - our 3); B's says 2 (A was
    # not answered yet). Past the guard's hold, the count must not be A's: 7 more calls would
    # put 11 in Virtuous's window.
    now = T0 + 0.06 + guard + 0.01
    granted = 0
    while limiter._acquire_at(settings_, kind="push", cost=1, now=now).granted:
        granted += 1
    assert granted == 5


def test_a_reserve_is_left_unused(limiter: Limiter, unique: str) -> None:
    settings_ = tenant(f"reserve-{unique}", calls_per_hour=100, rate_reserve_share=0.1)
    limiter._observe_at(settings_, remaining=None, reset_seconds=None, limit=None, now=T0)
    grants = [limiter._acquire_at(settings_, kind="push", cost=1, now=T0) for _ in range(91)]
    assert sum(g.granted for g in grants) == 90


# --- the lookup share ---------------------------------------------------------------------------


def test_lookups_spend_at_most_their_share_and_pushes_still_go(
    limiter: Limiter, unique: str
) -> None:
    settings_ = tenant(f"share-{unique}", calls_per_hour=100, lookup_budget_share=0.2)
    now, lookups, pushes = T0, [], []
    while now < T0 + 3 * 2.0:
        if take(limiter, settings_, now, "lookup").granted:
            lookups.append(now)
        if take(limiter, settings_, now).granted:
            pushes.append(now)
        now += 0.001
    assert busiest_window(lookups, 2.0) <= 20
    assert len(lookups) >= 0.85 * 20 * 3
    assert len(pushes) >= 0.85 * 80 * 3  # lookups starve nobody but themselves
    assert busiest_window(sorted(lookups + pushes), 2.0) <= 100
    pull = limiter._acquire_at(settings_, kind="pull", cost=1, now=now)
    push = limiter._acquire_at(settings_, kind="push", cost=1, now=now)
    assert not pull.granted or push.granted  # a pull never gets what a push is refused


# --- blocks, tickets and waits ------------------------------------------------------------------


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
    settings_ = tenant(f"wait-{unique}", calls_per_hour=5)
    now = T0
    for _ in range(20):
        grant = take(limiter, settings_, now)
        if grant.granted:
            now += 0.1
            continue
        early = limiter._acquire_at(
            settings_, kind="push", cost=1, now=now + grant.wait_seconds - 1e-4
        )
        assert not early.granted
        now += grant.wait_seconds
        assert take(limiter, settings_, now).granted


def test_waiters_are_told_to_wake_one_freed_token_apart(limiter: Limiter, unique: str) -> None:
    settings_ = tenant(f"ticket-{unique}", calls_per_hour=4, rate_window_seconds=2.0)
    span = 2.0 + guard_seconds(settings_)
    for i in range(4):
        assert take(limiter, settings_, T0 + 0.1 * i).granted
    waits = [
        limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 0.5, ticket=True)
        for _ in range(5)
    ]
    wakes = [T0 + 0.5 + w.wait_seconds for w in waits]
    # Each wakes exactly when its token frees (to the 10 us an answer may add); the fifth
    # waits on a call not made yet.
    assert wakes[:4] == pytest.approx([T0 + span + 0.1 * i for i in range(4)], abs=2e-5)
    assert wakes[4] > wakes[3]
    for wake in wakes[:4]:
        assert take(limiter, settings_, wake).granted


def test_a_waiter_back_with_its_ticket_keeps_its_place_in_line(
    limiter: Limiter, unique: str
) -> None:
    settings_ = tenant(f"held-line-{unique}", calls_per_hour=4, rate_window_seconds=2.0)
    for i in range(4):
        assert take(limiter, settings_, T0 + 0.1 * i).granted
    wakes = [
        T0
        + 0.5
        + limiter._acquire_at(
            settings_, kind="push", cost=1, now=T0 + 0.5, ticket=True
        ).wait_seconds
        for _ in range(5)
    ]
    # Back 0.4 s early with its ticket: the line is left as it was.
    back = wakes[2] - 0.4
    kept = limiter._acquire_at(settings_, kind="push", cost=1, now=back, ticket=True, held=wakes[2])
    # Its own turn, not the earlier freeing another waiter holds.
    assert not kept.granted and back + kept.wait_seconds == pytest.approx(wakes[2], abs=1e-5)
    # Back as early without a ticket: to the end of the line.
    newcomer = limiter._acquire_at(settings_, kind="push", cost=1, now=back, ticket=True)
    assert back + newcomer.wait_seconds > wakes[4]
    # Its token taken by others, a holder waits for the next freeing, however far that is...
    for wake in wakes[:4]:
        assert take(limiter, settings_, wake).granted
    now = wakes[3] + 0.01
    span = 2.0 + guard_seconds(settings_)
    holder = limiter._acquire_at(
        settings_, kind="push", cost=1, now=now, ticket=True, held=wakes[3]
    )
    assert now + holder.wait_seconds == pytest.approx(wakes[0] + span, abs=3e-5)
    # ...where a newcomer queues behind every ticket given.
    behind = limiter._acquire_at(settings_, kind="push", cost=1, now=now, ticket=True)
    assert now + behind.wait_seconds > wakes[0] + span + 0.05


def test_waiting_as_told_succeeds_on_the_redis_clock(limiter: Limiter, unique: str) -> None:
    settings_ = tenant(f"rwait-{unique}", calls_per_hour=5, rate_window_seconds=0.5)
    deadline = time.monotonic() + 5
    waited = 0
    while waited < 5:
        assert time.monotonic() < deadline
        grant = limiter.acquire(settings_)
        if grant.granted:
            limiter.observe(settings_, remaining=None, reset_seconds=None)
            continue
        time.sleep(grant.wait_seconds)
        assert limiter.acquire(settings_).granted
        limiter.observe(settings_, remaining=None, reset_seconds=None)
        waited += 1


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


def test_a_lower_reported_limit_lowers_the_cap(limiter: Limiter, unique: str) -> None:
    settings_ = tenant(f"limit-{unique}", calls_per_hour=10_000, rate_window_seconds=3600.0)
    limiter._observe_at(settings_, remaining=None, reset_seconds=None, limit=50, now=T0)
    grants = [limiter._acquire_at(settings_, kind="push", cost=1, now=T0 + 1) for _ in range(51)]
    assert sum(g.granted for g in grants) == 50
    span = 3600.0 + guard_seconds(settings_)
    assert grants[-1].wait_seconds == pytest.approx(span - 0.0, abs=1e-3)


def test_counts_tokens_and_reset(limiter: Limiter, unique: str) -> None:
    settings_ = tenant(f"count-{unique}", calls_per_hour=10_000, rate_window_seconds=3600.0)
    limiter.observe(settings_, remaining=None, reset_seconds=None)
    grants: list[Grant] = [limiter.acquire(settings_) for _ in range(5)]
    assert all(g.granted for g in grants)
    assert [round(g.tokens_left) for g in grants] == [9999, 9998, 9997, 9996, 9995]
    assert limiter.calls_in_window(settings_) == 5
    assert len(limiter.grant_times(settings_)) == 5
    with pytest.raises(ValueError):
        limiter.acquire(settings_, cost=10_001)
    limiter.reset(settings_.name)
    assert limiter.calls_in_window(settings_) == 0
    assert limiter.acquire(settings_).tokens_left == 9999


def test_keys_share_the_tenants_hash_tag(
    redis_client: redis.Redis, limiter: Limiter, unique: str
) -> None:
    settings_ = tenant(f"keys-{unique}")
    limiter.observe(settings_, remaining=None, reset_seconds=None)
    limiter.acquire(settings_)
    limiter.acquire(settings_, kind="lookup")
    keys = {k.decode() for k in redis_client.scan_iter(match=f"test-{unique}:limiter:*")}
    parts = ("state", "inflight", "calls", "lookups")
    assert keys == {f"test-{unique}:limiter:{{keys-{unique}}}:{part}" for part in parts}
