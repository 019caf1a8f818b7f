"""A whole giftsync deployment for the benchmarks and the integration tests: the sandbox over
loopback, a tenants file pointing at it, a key prefix of its own in a real Redis, and real
worker processes started with ``giftsync worker``.

The calling process itself plays the platform: it publishes with ``producers.publish_many`` and
reads the ledger and the writeback stream. Its cached settings, broker and runtime are reset
for every deployment, so each run gets its own prefix and configuration.

It lives beside the benchmarks, not in ``tests/``, because the benchmarks must not import the
tests; the tests import it from here, so both measure and prove the same deployment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from giftsync.settings import load_settings
from sandbox import OrgConfig, SandboxConfig, start_sandbox
from sandbox.config import demo_config
from workers.queue.queues import CHANGE_QUEUES
from workers.store.connection import connect

REPO = Path(__file__).resolve().parent.parent


def text(value: bytes | str | None) -> str:
    """A Redis reply as text; fails when the key or field it came from is missing."""
    if value is None:
        raise AssertionError("expected a value in Redis, found none")
    return value.decode() if isinstance(value, bytes) else value


def tenant_table(name: str, url: str, token_env: str, **settings: Any) -> str:
    """One [tenants.NAME] table of a tenants TOML file."""
    values: dict[str, Any] = {
        "virtuous_base_url": url,
        "virtuous_token_env": token_env,
        "timezone": "America/Chicago",
        "mode": "batch",
        "batch_max_wait_seconds": 1,
        **settings,
    }
    lines = [f"[tenants.{name}]"]
    for key, value in values.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, str):
            lines.append(f'{key} = "{value}"')
        else:
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


@dataclass
class Deployment:
    """One test's giftsync: sandbox, settings, Redis prefix and worker processes."""

    sandbox: Any
    env: dict[str, str]
    prefix: str
    redis: redis.Redis
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    log_dir: Path | None = None

    def start_worker(
        self,
        *,
        processes: int = 1,
        threads: int = 4,
        extra: Mapping[str, str] | None = None,
        wrapper: Sequence[str] = (),
    ) -> subprocess.Popen[bytes]:
        """Start ``giftsync worker`` in its own process group; its output goes to a log file.

        ``wrapper`` comes before the command: ``ip netns exec NS`` runs it on another "host"
        (it execs the command, so the process group is still the worker's)."""
        assert self.log_dir is not None
        log = (self.log_dir / f"worker-{len(self.workers)}.log").open("wb")
        env = {**self.env, **(extra or {})}
        proc = subprocess.Popen(
            [
                *wrapper,
                sys.executable,
                "-m",
                "giftsync.cli",
                "worker",
                "--processes",
                str(processes),
                "--threads",
                str(threads),
                "--no-metrics",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(proc)
        return proc

    def kill_worker(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        """Kill a worker's whole process group (the dramatiq main and its children)."""
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                self.kill_worker(proc, signal.SIGTERM if False else signal.SIGKILL)
        self.workers.clear()

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def changes_waiting(self) -> int:
        """Messages of change events not yet taken off either changes queue."""
        return sum(int(self.redis.hlen(self.key("dramatiq", f"{q}.msgs"))) for q in CHANGE_QUEUES)

    def state_counts(self, tenant: str) -> dict[str, int]:
        raw = self.redis.hgetall(self.key("states", tenant))
        return {text(k): int(v) for k, v in raw.items() if int(v)}

    def writeback(self) -> list[dict[str, str]]:
        entries = self.redis.xrange(self.key("writeback")) or []
        return [{text(k): text(v) for k, v in (fields or {}).items()} for _, fields in entries]

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        response = httpx.request(method, f"{self.sandbox.url}/_admin/{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None


def _reset_process_wiring() -> None:
    from giftsync.settings import get_settings
    from workers.queue.broker import reset_broker
    from workers.runtime import reset_runtime

    reset_runtime()
    reset_broker()
    get_settings.cache_clear()


@contextmanager
def deployment(
    tmp_path: Path,
    redis_url: str,
    *,
    tenants: Callable[[str], str],
    sandbox_config: SandboxConfig | None = None,
    env: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
) -> Iterator[Deployment]:
    """Start a sandbox on ``host``, write the tenants file ``tenants(sandbox_url)`` and wire
    this process."""
    config = sandbox_config or demo_config()
    prefix = f"gs-test-{uuid.uuid4().hex[:8]}"
    with start_sandbox(config, host=host) as sandbox:
        config_path = tmp_path / "tenants.toml"
        config_path.write_text(tenants(sandbox.url), encoding="utf-8")
        full_env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "GIFTSYNC_CONFIG": str(config_path),
            "GIFTSYNC_PREFIX": prefix,
            "GIFTSYNC_LOG_LEVEL": "INFO",
            "GIFTSYNC_HEARTBEAT_TIMEOUT_MS": "5000",
            "GIFTSYNC_MIN_BACKOFF_MS": "100",
            "GIFTSYNC_MAX_BACKOFF_MS": "2000",
            "GIFTSYNC_VIRTUOUS_TIMEOUT_SECONDS": "5",
            "VIRTUOUS_TOKEN_HOPE": "demo-token-hope",
            "VIRTUOUS_TOKEN_RIVER": "demo-token-river",
            "VIRTUOUS_TOKEN_NORTH": "demo-token-north",
            "VIRTUOUS_TOKEN_BAD": "not-a-real-token",
            **(env or {}),
        }
        saved = dict(os.environ)
        os.environ.update(full_env)
        _reset_process_wiring()
        # Built as every client of the project is, so it follows a Sentinel failover too.
        client = connect(load_settings())
        log_dir = tmp_path / "logs"
        log_dir.mkdir(exist_ok=True)
        deployed = Deployment(sandbox, full_env, prefix, client, log_dir=log_dir)
        try:
            yield deployed
        finally:
            deployed.stop()
            for key in client.scan_iter(f"{prefix}:*", count=1000):
                client.delete(key)
            client.close()
            os.environ.clear()
            os.environ.update(saved)
            _reset_process_wiring()


def org(name: str, token: str, **kwargs: Any) -> OrgConfig:
    """An organisation with the demo's projects and segments."""
    base = demo_config().orgs[0]
    return OrgConfig(
        name=name,
        tokens=[token],
        projects=dict(base.projects),
        segments=dict(base.segments),
        **kwargs,
    )


def make_config(*orgs: OrgConfig, **kwargs: Any) -> SandboxConfig:
    return SandboxConfig(orgs=list(orgs), **kwargs)
