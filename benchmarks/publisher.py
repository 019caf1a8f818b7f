"""The platform side of a benchmark: a process of its own that builds events and publishes them.

The platform is not the sandbox (Virtuous) and not the benchmark's driver, so it does not
share their interpreter lock: ``python -m benchmarks.publisher COUNT START TENANT...`` calls
``publish_many`` on ``COUNT`` synthetic transactions (ids from ``START``, round-robin over the
tenants) with the environment of the deployment it is started in, and prints the seconds it
took. :func:`start` runs it in the background.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from giftsync.examples import transaction, version_at

REPO = Path(__file__).resolve().parent.parent


def events(
    count: int, start: int, tenants: tuple[str, ...], contact_id: int | None = 5000
) -> Iterator[dict[str, Any]]:
    """``count`` successful card transactions spread over ``tenants``, ids from ``start``."""
    for i in range(count):
        yield transaction(
            tenants[i % len(tenants)],
            start + i,
            amount=1000 + i % 9000,
            version=version_at(i % 100_000),
            contact_id=contact_id,
        )


def start(
    env: Mapping[str, str], count: int, first_id: int, tenants: tuple[str, ...]
) -> subprocess.Popen[str]:
    """Start publishing in a child process; ``wait()`` on it, its stdout says how long it took."""
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.publisher", str(count), str(first_id), *tenants],
        cwd=REPO,
        env=dict(env),
        stdout=subprocess.PIPE,
        text=True,
    )


def seconds_taken(proc: subprocess.Popen[str]) -> float:
    """Wait for a publisher; the seconds it spent publishing."""
    out, _ = proc.communicate(timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"the publisher failed with status {proc.returncode}")
    return float(out.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    """Publish ``COUNT`` events from id ``START`` over ``TENANT...``; print the seconds taken."""
    from producers.publish import publish_many

    count, first_id, tenants = int(argv[0]), int(argv[1]), tuple(argv[2:])
    started = time.monotonic()
    publish_many(events(count, first_id, tenants))
    print(f"{time.monotonic() - started:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
