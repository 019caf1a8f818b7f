"""CPU cost per event of intake and the batch send, in Python and in Redis, without the network.

Not a benchmark of the suite: a profiling aid for the throughput target. The worker's two hot
paths run in this process against a ``redis-server`` of its own (so Redis's CPU figures are
this run's alone): ``workers.flows.intake.run`` on chunks of 100 published events over three
batch tenants, then ``workers.flows.batch_send.run`` on every batch that intake cut, with the
HTTP POST answered 200 in this process (the sandbox's cost is not giftsync's). Each phase reports
process CPU (``time.process_time``) and Redis CPU (``INFO`` used_cpu_user + used_cpu_sys) per
1,000 events, and Redis's commands by time spent (``INFO commandstats``).

```
python -m benchmarks.profile_intake                  # 20,000 events
python -m benchmarks.profile_intake --events 5000 --profile intake   # cProfile of one phase
python -m benchmarks.profile_intake --scripts       # and Redis's time by script (slow log)
```
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import hashlib
import logging
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import redis
import structlog

from benchmarks.publisher import events
from giftsync.embedded_redis import start_embedded_redis
from giftsync.settings import Settings
from mapping.tenant import TenantSettings
from producers.publish import as_json
from workers.flows import batch_send, intake
from workers.queue import messages
from workers.runtime import Runtime
from workers.virtuous.client import VirtuousClient

TENANTS = ("hope-shelter", "river-arts", "north-food-bank")
CHUNK = 100


def _tenant(name: str) -> TenantSettings:
    return TenantSettings(
        name=name,
        virtuous_base_url="http://127.0.0.1:9",
        virtuous_token_env="PROFILE_TOKEN",
        timezone="America/Chicago",
        mode="batch",
        batch_max_wait_seconds=1,
        calls_per_hour=100_000_000,
    )


def _redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _commandstats(client: redis.Redis) -> dict[str, tuple[int, int]]:
    stats = client.info("commandstats")
    return {name: (int(v["calls"]), int(v["usec"])) for name, v in stats.items()}


def _script_names() -> dict[str, str]:
    """The SHA1 of every script as loaded (with and without the state prelude) -> its file."""
    names: dict[str, str] = {}
    folder = resources.files("workers.store")
    prelude = folder.joinpath("state_prelude.lua").read_text(encoding="utf-8")
    for path in folder.iterdir():
        if path.name.endswith(".lua"):
            text = path.read_text(encoding="utf-8")
            for source in (text, prelude + "\n" + text):
                names[hashlib.sha1(source.encode()).hexdigest()] = path.name
    return names


def _script_times(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """Calls and microseconds by script, from the slow log (every command is logged)."""
    names = _script_names()
    times: dict[str, tuple[int, int]] = {}
    for entry in client.slowlog_get(1_000_000):
        command = entry["command"]
        words = command.split() if isinstance(command, bytes) else str(command).split()
        if not words or words[0].upper() not in (b"EVALSHA", "EVALSHA"):
            continue
        sha = words[1].decode() if isinstance(words[1], bytes) else words[1]
        name = names.get(sha, sha[:8])
        calls, usec = times.get(name, (0, 0))
        times[name] = (calls + 1, usec + int(entry["duration"]))
    client.slowlog_reset()
    return times


@contextmanager
def _phase(name: str, client: redis.Redis, count: int, profile: str | None) -> Iterator[None]:
    client.slowlog_reset()
    stats_before = _commandstats(client)
    redis_before = _redis_cpu(client)
    profiler = cProfile.Profile() if profile == name else None
    cpu_before = time.process_time()
    wall_before = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    yield
    if profiler is not None:
        profiler.disable()
    wall = time.perf_counter() - wall_before
    cpu = time.process_time() - cpu_before
    redis_cpu = _redis_cpu(client) - redis_before
    stats_after = _commandstats(client)
    per = 1000 / count
    print(
        f"{name}: python {cpu * per * 1000:.1f} ms / 1,000 events, "
        f"redis {redis_cpu * per * 1000:.1f} ms / 1,000 events, wall {wall:.2f} s"
    )
    rows = []
    for command, (calls, usec) in stats_after.items():
        calls0, usec0 = stats_before.get(command, (0, 0))
        if calls > calls0:
            rows.append((usec - usec0, calls - calls0, command))
    for usec, calls, command in sorted(rows, reverse=True)[:8]:
        print(
            f"    {command:28} {calls * per:8.1f} calls / 1,000 events, "
            f"{usec * per / 1000:7.1f} ms / 1,000 events"
        )
    for script, (calls, usec) in sorted(_script_times(client).items(), key=lambda kv: -kv[1][1]):
        print(
            f"    {script:28} {calls * per:8.1f} calls / 1,000 events, "
            f"{usec * per / 1000:7.1f} ms / 1,000 events"
        )
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def run(count: int, profile: str | None, scripts: bool = False) -> None:
    """Intake then send ``count`` events; print the CPU figures of each phase."""
    server = start_embedded_redis()
    sent: list[messages.Message] = []
    real_enqueue: Callable[[messages.Message], Any] = messages.enqueue
    messages.enqueue = sent.append  # type: ignore[assignment]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    tenants = {name: _tenant(name) for name in TENANTS}
    rt = Runtime(
        Settings(
            redis_url=server.url,
            config_path=Path("tenants.toml"),
            tenants=tenants,
            key_prefix="profile",
            env={"PROFILE_TOKEN": "token"},
        )
    )
    for tenant in tenants.values():
        # Every call answered 200 at once, with the hooks a real client has.
        rt._clients[tenant.name] = VirtuousClient(
            tenant.virtuous_base_url,
            "token",
            transport=httpx.MockTransport(lambda request: httpx.Response(200, json={})),
            on_rate_limit=functools.partial(rt._observe, tenant),
        )
    try:
        client = rt.redis
        if scripts:
            # Every command in the slow log: its durations by script are the figures per
            # script (logging them costs Redis CPU of its own, so only when asked).
            client.config_set("slowlog-log-slower-than", 0)
            client.config_set("slowlog-max-len", 1_000_000)
        chunks = [
            [as_json(e) for e in events(CHUNK, start, TENANTS)]
            for start in range(1, count + 1, CHUNK)
        ]
        published = int(time.time() * 1000)
        with _phase("intake", client, count, profile):
            for chunk in chunks:
                intake.run(rt, chunk, published)
        batches = [m for m in sent if m.actor_name == "send_batch"]
        entries = 0
        with _phase("batch_send", client, count, profile):
            for message in batches:
                kwargs = message.kwargs
                outcome = batch_send.run(
                    rt, tenants[kwargs["tenant"]], kwargs["batch_id"], message.message_id
                )
                if outcome == "submitted":
                    entries += CHUNK
        counts = {t: rt.ledger.state_counts(t) for t in TENANTS}
        print(f"{len(batches)} batches sent; states: {counts}")
    finally:
        messages.enqueue = real_enqueue  # type: ignore[assignment]
        rt.close()
        server.stop()


def main() -> None:
    """Command line: ``--events N``, ``--profile intake|batch_send``, ``--scripts``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--profile", choices=("intake", "batch_send"), default=None)
    parser.add_argument("--scripts", action="store_true", help="Redis time by script")
    args = parser.parse_args()
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # As in `giftsync worker`: the counters live in files shared by the worker processes,
        # and they must be set up before the metrics module is imported.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="giftsync-profile-")
        os.execv(sys.executable, [sys.executable, "-m", "benchmarks.profile_intake", *sys.argv[1:]])
    run(args.events, args.profile, args.scripts)


if __name__ == "__main__":
    main()
