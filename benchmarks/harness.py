"""What every benchmark shares: its results' shape, a deployment on a Redis of its own, and
samplers that read the sandbox and the worker processes while a run goes on.

Each benchmark gets its own embedded ``redis-server`` (``giftsync.embedded_redis``), so
Redis's memory figures and command load are the benchmark's alone, even on a machine where
other test runs share the Redis on 6379. The deployment itself (sandbox in this process,
tenants file, key prefix, ``giftsync worker`` processes) is the one the integration tests use,
``benchmarks.deployment.deployment``: the benchmarks measure what the tests prove.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.deployment import Deployment, deployment
from giftsync.embedded_redis import EmbeddedRedis, start_embedded_redis
from giftsync.waiting import wait_for
from sandbox import SandboxConfig

# Environment every benchmark's workers run with. INFO, because the harness waits for each
# worker process's "ready for action" line (dramatiq logs it at INFO).
QUIET_ENV = {"GIFTSYNC_LOG_LEVEL": "INFO"}


@dataclass(frozen=True)
class Figure:
    """One reported number, with the issue's target when it sets one."""

    label: str
    value: float | int | str
    unit: str = ""
    target: str = ""
    met: bool | None = None

    def text(self) -> str:
        """``label: value unit [target: ..., met]`` on one line."""
        value = f"{self.value:,.4g}" if isinstance(self.value, float) else str(self.value)
        if isinstance(self.value, int):
            value = f"{self.value:,}"
        if isinstance(self.value, float) and abs(self.value) >= 1000:
            value = f"{self.value:,.0f}"
        line = f"{self.label}: {value}{' ' + self.unit if self.unit else ''}"
        if self.target:
            verdict = {True: "met", False: "NOT met", None: "n/a"}[self.met]
            line += f"  (target {self.target}: {verdict})"
        return line


@dataclass
class Result:
    """What one benchmark reports."""

    name: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(
        self,
        label: str,
        value: float | int | str,
        unit: str = "",
        target: str = "",
        met: bool | None = None,
    ) -> None:
        """Append one figure."""
        self.figures.append(Figure(label, value, unit, target, met))


@contextmanager
def bench_deployment(
    tenants: Callable[[str], str],
    sandbox_config: SandboxConfig,
    *,
    env: dict[str, str] | None = None,
    appendonly: bool = False,
    host: str = "127.0.0.1",
) -> Iterator[tuple[Deployment, EmbeddedRedis]]:
    """A deployment on a fresh embedded redis-server; both are gone afterwards. Redis and
    the sandbox listen on ``host`` (loopback unless other network namespaces must reach them)."""
    workdir = Path(tempfile.mkdtemp(prefix="giftsync-bench-"))
    (workdir / "redis").mkdir()
    server = start_embedded_redis(appendonly=appendonly, directory=workdir / "redis", host=host)
    try:
        with deployment(
            workdir,
            server.url,
            tenants=tenants,
            sandbox_config=sandbox_config,
            env={**QUIET_ENV, **(env or {})},
            host=host,
        ) as dep:
            yield dep, server
    finally:
        server.stop()
    # Kept when the benchmark failed: its worker logs say why.
    shutil.rmtree(workdir, ignore_errors=True)


def wait_for_consumers(dep: Deployment, processes: int, timeout: float = 60.0) -> None:
    """Wait until ``processes`` worker processes (of every started deployment) said they are
    ready: dramatiq logs "Worker process is ready for action." once each has booted."""
    assert dep.log_dir is not None
    log_dir = dep.log_dir

    def ready() -> bool:
        lines = sum(
            path.read_bytes().count(b"Worker process is ready for action.")
            for path in log_dir.glob("worker-*.log")
        )
        return lines >= processes

    wait_for(ready, timeout=timeout, interval=0.05, what=f"{processes} worker processes")


def submitted(dep: Deployment, tenants: list[str], state: str = "submitted") -> int:
    """Records in ``state`` over ``tenants`` (one HGET per tenant)."""
    return sum(int(dep.redis.hget(dep.key("states", t), state) or 0) for t in tenants)


def sandbox_calls(dep: Deployment, org: str) -> int:
    """Calls the sandbox admitted for ``org`` so far, read in process (no HTTP request)."""
    state = dep.sandbox.state
    with state.lock:
        return int(state.org(org).limiter.admitted)


class CallSampler:
    """Samples an organisation's admitted-call count every ``interval`` seconds."""

    def __init__(self, dep: Deployment, org: str, interval: float = 0.05) -> None:
        self.samples: list[tuple[float, int]] = []
        self._dep, self._org, self._interval = dep, org, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="call-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), sandbox_calls(self._dep, self._org)))
            self._stop.wait(self._interval)

    def __enter__(self) -> CallSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _process_group(pgid: int) -> list[int]:
    """Pids whose process group is ``pgid`` (a worker deployment and its children)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            found.append(int(entry))
    return found


def rss_kib(pid: int) -> int:
    """A process's resident set size in KiB from /proc (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """Samples the resident memory of every process of some worker process groups."""

    def __init__(self, pgids: list[int], interval: float = 0.1) -> None:
        # (monotonic time, total KiB, largest single process KiB)
        self.samples: list[tuple[float, int, int]] = []
        self._pgids, self._interval = pgids, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            sizes = [rss_kib(pid) for pgid in self._pgids for pid in _process_group(pgid)]
            if sizes:
                self.samples.append((time.monotonic(), sum(sizes), max(sizes)))
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def quarter_peaks(self, start: float, end: float) -> list[tuple[int, int]]:
        """(peak total KiB, peak single-process KiB) in each quarter of ``[start, end]``."""
        span = (end - start) / 4
        peaks = []
        for q in range(4):
            low, high = start + q * span, start + (q + 1) * span
            inside = [(total, single) for t, total, single in self.samples if low <= t <= high]
            peaks.append(
                (max((s[0] for s in inside), default=0), max((s[1] for s in inside), default=0))
            )
        return peaks
