"""Benchmark 2: how much of the cap a backlog far above it gets, under every header reading.

One batch tenant and its sandbox organisation share a cap of ``CAP`` calls per ``WINDOW``
seconds ("an hour" compressed). For each reading of the rate-limit headers the sandbox offers
(no Reset; Reset when the rolling window empties; Reset when the next call frees up; a fixed
window with Reset at its end; and other integrations spending 30% of the cap), a backlog of
three windows' worth of full batches is published at once and drained by two worker
deployments sharing the limiter through Redis. While it drains, the sandbox's counts are
sampled every 50 ms in process and the limiter's call log every second.

Figures per reading: the share of what the other integrations leave that giftsync used while
the backlog lasted (the mean, over every rolling window between the first and the last call,
of giftsync's calls in it / (cap - the others' calls in it)), the 429s Virtuous served, the
busiest rolling window of all calls (exact, from the sandbox), and the gap from a token
freeing (a window after its call was answered, see workers/store/limiter.py) to the call that
took it.
Beside the table: ``cap-windows.png``, the calls in the rolling window over each run.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import publisher
from benchmarks.deployment import Deployment, make_config, org, tenant_table
from benchmarks.harness import (
    Result,
    bench_deployment,
    submitted,
    wait_for_consumers,
)
from giftsync.waiting import wait_for
from mapping.tenant import TenantSettings
from workers.store.limiter import Limiter, guard_seconds

NAME = "cap"
TITLE = "Use of the cap, compressed hour, backlog far above the cap, per header reading"
TENANT = "hope-shelter"
# (label, sandbox rate_limit_headers, share of the cap other integrations spend)
READINGS: tuple[tuple[str, str, float], ...] = (
    ("no Reset header", "no-reset", 0.0),
    ("Reset = rolling window empties", "reset-when-window-empties", 0.0),
    ("Reset = next call frees", "reset-when-next-call-frees", 0.0),
    ("fixed window, Reset at its end", "fixed-window", 0.0),
    ("others spend 30% (Reset = window empties)", "reset-when-window-empties", 0.3),
)
# --quick runs these two only.
QUICK_READINGS = (READINGS[1], READINGS[4])
FIGURES = tuple(
    f"{label}: {figure}"
    for label, _, _ in QUICK_READINGS
    for figure in ("share of the cap used", "429s", "busiest rolling window")
)
FIGURE = Path(__file__).resolve().parent / "cap-windows.png"


@dataclass
class Run:
    """What one reading's run recorded."""

    label: str
    cap: int
    others: int
    window: float
    # (monotonic time, giftsync's admitted calls so far, every call in the rolling window)
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    # call id -> (grant time, held-from time), Redis clock
    grants: dict[str, tuple[float, float]] = field(default_factory=dict)
    # The sandbox's stats for the organisation at the end.
    stats: dict[str, Any] = field(default_factory=dict)


def _windows(samples: Sequence[tuple[float, int]], window: float) -> Iterator[tuple[int, int]]:
    """The (first, last) sample indexes of every window ``[t, t + window]`` from a sample ``t``
    between the first and the last call (calls are counted at the samples, so each window is
    exact to one interval)."""
    first = next(t for t, n in samples if n > samples[0][1])
    total = samples[-1][1]
    last = next(t for t, n in samples if n >= total)
    j = 0
    for i, (t, _) in enumerate(samples):
        if t < first or t + window > last:
            continue
        while j < len(samples) - 1 and samples[j + 1][0] <= t + window:
            j += 1
        yield i, j


def rolling_shares(samples: list[tuple[float, int]], window: float, cap: int) -> list[float]:
    """calls / cap in every window ``[t, t + window]`` from a sample ``t`` between the first
    and the last call."""
    return [(samples[j][1] - samples[i][1]) / cap for i, j in _windows(samples, window)]


def shares_of_what_others_leave(
    samples: list[tuple[float, int, int]], window: float, cap: int
) -> list[float]:
    """giftsync's calls / (cap - the other integrations' calls) in the same windows as
    :func:`rolling_shares`.

    The others' calls in a window are every call the sandbox counts in it at its end, less
    giftsync's: what they leave is measured, not assumed from their nominal share (their
    calls refused while giftsync filled the window are calls they did not spend)."""
    shares = []
    for i, j in _windows([(t, n) for t, n, _ in samples], window):
        own = samples[j][1] - samples[i][1]
        left = cap - max(0, samples[j][2] - own)
        if left > 0:
            shares.append(own / left)
    return shares


def token_gaps(grants: dict[str, tuple[float, float]], span: float) -> list[float]:
    """Seconds from a token freeing (a span after its log entry: a window after its call was
    answered, see workers/store/limiter.py) to the call that took it: tokens are taken in the
    order they freed. Grants made while a token had been free since before the backlog (the
    opening burst) are not counted."""
    events = sorted(
        [(h + span, 0) for _, h in grants.values()] + [(g, 1) for g, _ in grants.values()]
    )
    waiting: list[float] = []
    gaps = []
    head = 0
    for t, kind in events:
        if kind == 0:
            waiting.append(t)
        elif head < len(waiting):
            gaps.append(t - waiting[head])
            head += 1
    return gaps


class Sampler:
    """Samples the sandbox's counts every 50 ms and the limiter's log every second."""

    def __init__(self, dep: Deployment, run: Run, tenant: TenantSettings) -> None:
        self._dep, self._run, self._tenant = dep, run, tenant
        self._limiter = Limiter(dep.redis, prefix=dep.prefix)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cap-sampler", daemon=True)

    def _loop(self) -> None:
        state = self._dep.sandbox.state
        tick = 0
        while not self._stop.is_set():
            with state.lock:
                counter = state.org(TENANT).limiter
                sample = (time.monotonic(), int(counter.admitted), counter.in_window())
            self._run.samples.append(sample)
            if tick % 20 == 0:
                self._read_log()
            tick += 1
            self._stop.wait(0.05)
        self._read_log()

    def _read_log(self) -> None:
        for call, granted, held in self._limiter.grant_times(self._tenant):
            self._run.grants[call] = (granted, held)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _one(label: str, mode: str, others_share: float, cap: int, window: float) -> Run:
    others = int(cap * others_share)
    run = Run(label, cap, others, window)
    calls = 3 * (cap - others)
    count = calls * 100
    config = make_config(
        org(
            TENANT,
            "demo-token-hope",
            calls_per_hour=cap,
            window_seconds=window,
            rate_limit_headers=mode,
            other_integrations_calls_per_hour=others,
        )
    )
    settings = TenantSettings(
        name=TENANT,
        virtuous_base_url="http://127.0.0.1:1",
        virtuous_token_env="VIRTUOUS_TOKEN_HOPE",
        timezone="UTC",
        calls_per_hour=cap,
        rate_window_seconds=window,
    )

    def tenants(url: str) -> str:
        return tenant_table(
            TENANT,
            url,
            "VIRTUOUS_TOKEN_HOPE",
            calls_per_hour=cap,
            rate_window_seconds=window,
            batch_max_wait_seconds=1,
        )

    with bench_deployment(tenants, config) as (dep, _server):
        dep.start_worker(processes=1, threads=8)
        dep.start_worker(processes=1, threads=8)
        wait_for_consumers(dep, 2)
        if others:
            # The other integrations have been spending for a window when the backlog comes.
            state = dep.sandbox.state

            def spent() -> bool:
                with state.lock:
                    return int(state.org(TENANT).limiter.in_window()) >= others

            wait_for(spent, timeout=window * 2 + 10, what="the others to fill their share")
        with Sampler(dep, run, settings):
            platform = publisher.start(dep.env, count, 1, (TENANT,))
            wait_for(
                lambda: submitted(dep, [TENANT]) >= count,
                timeout=window * 8 + 60,
                what="the backlog to drain",
            )
            publisher.seconds_taken(platform)
        run.stats = dep.admin("GET", "stats")["orgs"][TENANT]
    return run


def run(quick: bool) -> Result:
    """Run benchmark 2."""
    cap, window = (20, 4.0) if quick else (60, 20.0)
    readings = QUICK_READINGS if quick else READINGS
    result = Result(
        NAME,
        TITLE,
        params={
            "cap": cap,
            "window_seconds": window,
            "backlog": "3 windows of 100-gift batches",
            "workers": "2 x (1 process, 8 threads)",
        },
    )
    runs = []
    for label, mode, others_share in readings:
        one = _one(label, mode, others_share, cap, window)
        runs.append(one)
        stats = one.stats
        shares = shares_of_what_others_leave(one.samples, window, cap)
        mean = sum(shares) / len(shares)
        span = window + guard_seconds(
            TenantSettings(
                name=TENANT,
                virtuous_base_url="http://127.0.0.1:1",
                virtuous_token_env="X",
                timezone="UTC",
                calls_per_hour=cap,
                rate_window_seconds=window,
            )
        )
        gaps = token_gaps(one.grants, span)
        judged = None if quick else mean >= 0.98
        result.add(f"{label}: share of the cap used", 100 * mean, "%", ">= 98%", judged)
        rate_limited = int(stats["rate_limited"])
        result.add(f"{label}: 429s", rate_limited, "", "0", None if quick else rate_limited == 0)
        busiest = int(stats["max_calls_in_window"])
        result.add(
            f"{label}: busiest rolling window",
            busiest,
            f"calls (cap {cap})",
            f"<= {cap}",
            busiest <= cap,
        )
        if gaps:
            result.add(
                f"{label}: token freed to its call, p50", 1000 * statistics.median(gaps), "ms"
            )
            result.add(
                f"{label}: token freed to its call, p95",
                1000 * sorted(gaps)[int(0.95 * (len(gaps) - 1))],
                "ms",
            )
        result.notes.append(
            f"{label}: {stats['calls']:,} calls; others {stats['other_integrations_calls']:,} "
            f"calls, {stats['other_integrations_refused']:,} refused; emptiest window "
            f"{100 * min(shares):.1f}%; {len(gaps)} token gaps measured"
        )
    if not quick:
        draw(runs, FIGURE)
        result.notes.append(f"calls in the rolling window over each run: {FIGURE.name}")
    return result


def draw(runs: list[Run], path: Path) -> None:
    """One panel per reading: giftsync's and everyone's calls in the rolling window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 1, figsize=(9, 2.1 * len(runs)), sharex=True)
    for ax, one in zip(axes, runs, strict=True):
        start = one.samples[0][0]
        times = [t - start for t, _, _ in one.samples]
        counts = [n for _, n, _ in one.samples]
        own = []
        j = 0
        for i, (t, n, _) in enumerate(one.samples):
            while one.samples[j][0] < t - one.window:
                j += 1
            own.append(n - counts[j] if j <= i else 0)
        ax.plot(times, [a for _, _, a in one.samples], color="0.6", lw=1, label="all calls")
        ax.plot(times, own, color="tab:blue", lw=1.4, label="giftsync")
        ax.axhline(one.cap, color="tab:red", lw=1, ls="--", label="cap")
        if one.others:
            ax.axhline(one.cap - one.others, color="tab:orange", lw=1, ls=":", label="cap - others")
        ax.set_ylim(0, one.cap * 1.15)
        ax.set_ylabel("in window")
        ax.set_title(one.label, fontsize=9, loc="left")
        ax.legend(fontsize=7, loc="lower right", ncol=4)
    axes[-1].set_xlabel("seconds since the backlog was published")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
