"""The README's first command: ``giftsync demo`` runs the whole flow on embedded defaults."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from benchmarks.deployment import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_demo_runs_end_to_end_on_an_embedded_redis() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "GIFTSYNC_"))}
    done = subprocess.run(
        [sys.executable, "-m", "giftsync.cli", "demo", "--exit", "--events", "150"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "started an embedded Redis" in out
    assert "all 150 events reached their end state" in out
    # Every tenant shows where its gifts went, and batch tenants sent batches.
    for tenant in ("hope-shelter", "river-arts", "north-food-bank"):
        assert re.search(rf"{tenant} \((batch|real_time)\): .*(submitted|sent) \d+", out), out
    assert out.count("batches sent:") == 2
    assert "the Import Tool page" in out and "/metrics" in out
    # The exact environment to read the same ledger with `giftsync status`.
    line = next(x.strip() for x in out.splitlines() if x.strip().endswith("giftsync status"))
    words = shlex.split(line)
    assert words[-2:] == ["giftsync", "status"]
    assigned = dict(word.split("=", 1) for word in words[:-2])
    assert set(assigned) == {"REDIS_URL", "GIFTSYNC_CONFIG", "GIFTSYNC_PREFIX"}
    assert assigned["REDIS_URL"].startswith("redis://")
    assert assigned["GIFTSYNC_PREFIX"].startswith("giftsync-demo-")
