"""Process settings: one frozen object built once from env vars and the tenants TOML file.

Nothing else in giftsync reads ``os.environ`` for configuration. Secrets (Virtuous tokens,
ingest and webhook secrets) stay in the environment: the tenants file names the variable and
:func:`secret` reads it at the moment of use, so no settings object, log line or error message
ever holds one.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from mapping.tenant import SettingsError, TenantSettings, parse_tenants

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_CONFIG_PATH = "giftsync.toml"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

__all__ = [
    "Settings",
    "SettingsError",
    "get_settings",
    "load_settings",
    "load_tenants",
    "log_level",
    "secret",
]


@dataclass(frozen=True)
class Settings:
    """Process-wide settings plus every tenant."""

    redis_url: str
    config_path: Path
    tenants: Mapping[str, TenantSettings]
    key_prefix: str = "giftsync"
    metrics_port: int = 9464
    # The worker's /metrics binds here: loopback unless the deployment opens it (a pod IP).
    metrics_host: str = "127.0.0.1"
    log_level: str = "INFO"
    # dramatiq's Redis broker gives a dead worker's messages back after this long...
    heartbeat_timeout_ms: int = 15_000
    # ...but only when maintenance runs, which happens on this many commands per million.
    maintenance_chance: int = 20_000
    # Messages that failed every retry stay in dramatiq's dead-letter set this long
    # (the ledger keeps its own record forever).
    dead_message_ttl_ms: int = 7 * 86_400_000
    max_retries: int = 12
    min_backoff_ms: int = 1_000
    max_backoff_ms: int = 300_000
    virtuous_timeout_seconds: float = 30.0
    # The ingest service answers 413 to a request body larger than this.
    ingest_max_bytes: int = 5 * 1024 * 1024
    # Virtuous does not publish the name of its webhook signature header.
    webhook_signature_header: str = "X-Virtuous-Signature"
    # How often the scheduler runs each tenant's reconcile sweep.
    reconcile_every_seconds: float = 60.0
    # The operator console's access token (GIFTSYNC_CONSOLE_TOKEN). It names no tenant, so it
    # is read here rather than through secret(); repr=False keeps it out of every repr.
    console_token: str | None = field(default=None, repr=False, compare=False)
    # Addresses of the TLS-terminating proxies in front of the console whose X-Forwarded-For
    # and X-Forwarded-Proto are believed (GIFTSYNC_CONSOLE_TRUSTED_PROXIES, comma-separated).
    console_trusted_proxies: tuple[str, ...] = ()
    # Sentinel (REDIS_SENTINELS, REDIS_SENTINEL_MASTER): when set, every Redis client asks these
    # for the primary of the named service; REDIS_URL still gives the database and password.
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str | None = None
    # An acknowledged write waits until this many replicas have it (Redis WAIT); 0 waits for
    # none, which is what a single Redis needs.
    min_replicas: int = 0
    # How long one WAIT may take before the write is treated as not yet safe and tried again.
    replica_wait_ms: int = 1_000
    # How long a Redis command keeps retrying through a failover (connection lost, no primary
    # yet, a read-only former primary) before the error surfaces.
    redis_failover_seconds: float = 30.0
    # Records at rest, settled batches and writeback entries expire after this many days
    # (GIFTSYNC_RETENTION_DAYS; 0 keeps everything forever).
    retention_days: float = 30.0
    # Batch sends one worker process runs at once from each batch queue, fresh and throttled
    # (GIFTSYNC_BATCH_SENDS_PER_PROCESS). A backlog's refill wakes a whole window's calls
    # together; bounded, they leave the process's other threads, and its share of the cores,
    # to real-time work and other tenants' batches.
    batch_sends_per_process: int = 2
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def tenant(self, name: str) -> TenantSettings:
        """The named tenant, or a clear error naming the ones that exist."""
        try:
            return self.tenants[name]
        except KeyError:
            known = ", ".join(sorted(self.tenants)) or "none"
            raise SettingsError([f"unknown tenant {name!r} (known: {known})"]) from None


def load_tenants(path: Path) -> dict[str, TenantSettings]:
    """Read and validate the tenants TOML file."""
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(
            [f"tenants file {str(path)!r} not found (set GIFTSYNC_CONFIG to its path)"]
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError([f"tenants file {str(path)!r} is not valid TOML: {exc}"]) from None
    return parse_tenants(document)


def _int(env: Mapping[str, str], key: str, default: int, problems: list[str]) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        problems.append(f"{key} must be an integer, got {raw!r}")
        return default
    if value < 0:
        problems.append(f"{key} must not be negative")
    return value


def _float(env: Mapping[str, str], key: str, default: float, problems: list[str]) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        problems.append(f"{key} must be a number, got {raw!r}")
        return default


def _sentinels(env: Mapping[str, str], problems: list[str]) -> tuple[tuple[str, int], ...]:
    raw = env.get("REDIS_SENTINELS") or ""
    found: list[tuple[str, int]] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            problems.append(f"REDIS_SENTINELS must be comma-separated host:port, got {item!r}")
            continue
        found.append((host.strip("[]"), int(port)))
    master = env.get("REDIS_SENTINEL_MASTER") or ""
    if found and not master:
        problems.append(
            "REDIS_SENTINEL_MASTER must name the Sentinel service when REDIS_SENTINELS is set"
        )
    if master and not found:
        problems.append("REDIS_SENTINELS must list the Sentinels when REDIS_SENTINEL_MASTER is set")
    return tuple(found)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from ``env`` (default: the process environment)."""
    env = dict(os.environ if env is None else env)
    problems: list[str] = []
    config_path = Path(env.get("GIFTSYNC_CONFIG") or DEFAULT_CONFIG_PATH)
    level = (env.get("GIFTSYNC_LOG_LEVEL") or "INFO").upper()
    if level not in LOG_LEVELS:
        problems.append(f"GIFTSYNC_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    numbers = {
        "metrics_port": _int(env, "GIFTSYNC_METRICS_PORT", 9464, problems),
        "heartbeat_timeout_ms": _int(env, "GIFTSYNC_HEARTBEAT_TIMEOUT_MS", 15_000, problems),
        "maintenance_chance": _int(env, "GIFTSYNC_MAINTENANCE_CHANCE", 20_000, problems),
        "max_retries": _int(env, "GIFTSYNC_MAX_RETRIES", 12, problems),
        "min_backoff_ms": _int(env, "GIFTSYNC_MIN_BACKOFF_MS", 1_000, problems),
        "max_backoff_ms": _int(env, "GIFTSYNC_MAX_BACKOFF_MS", 300_000, problems),
        "ingest_max_bytes": _int(env, "GIFTSYNC_INGEST_MAX_BYTES", 5 * 1024 * 1024, problems),
        "min_replicas": _int(env, "GIFTSYNC_MIN_REPLICAS", 0, problems),
        "replica_wait_ms": _int(env, "GIFTSYNC_REPLICA_WAIT_MS", 1_000, problems),
        "batch_sends_per_process": _int(env, "GIFTSYNC_BATCH_SENDS_PER_PROCESS", 2, problems),
    }
    if numbers["batch_sends_per_process"] < 1:
        problems.append("GIFTSYNC_BATCH_SENDS_PER_PROCESS must be 1 or more")
    failover_seconds = _float(env, "GIFTSYNC_REDIS_FAILOVER_SECONDS", 30.0, problems)
    if failover_seconds < 0:
        problems.append("GIFTSYNC_REDIS_FAILOVER_SECONDS must not be negative")
    sentinels = _sentinels(env, problems)
    timeout = _float(env, "GIFTSYNC_VIRTUOUS_TIMEOUT_SECONDS", 30.0, problems)
    reconcile_every = _float(env, "GIFTSYNC_RECONCILE_EVERY_SECONDS", 60.0, problems)
    retention_days = _float(env, "GIFTSYNC_RETENTION_DAYS", 30.0, problems)
    if not math.isfinite(retention_days) or retention_days < 0:
        problems.append(
            "GIFTSYNC_RETENTION_DAYS must be a number of days, 0 or more (0 keeps everything)"
        )
    tenants: dict[str, TenantSettings] = {}
    try:
        tenants = load_tenants(config_path)
    except SettingsError as exc:
        problems.extend(exc.problems)
    if problems:
        raise SettingsError(problems)
    return Settings(
        redis_url=env.get("REDIS_URL") or DEFAULT_REDIS_URL,
        config_path=config_path,
        tenants=tenants,
        key_prefix=env.get("GIFTSYNC_PREFIX") or "giftsync",
        log_level=level,
        virtuous_timeout_seconds=timeout,
        reconcile_every_seconds=reconcile_every,
        webhook_signature_header=env.get("GIFTSYNC_WEBHOOK_SIGNATURE_HEADER")
        or "X-Virtuous-Signature",
        console_token=env.get("GIFTSYNC_CONSOLE_TOKEN") or None,
        console_trusted_proxies=tuple(
            part.strip()
            for part in (env.get("GIFTSYNC_CONSOLE_TRUSTED_PROXIES") or "").split(",")
            if part.strip()
        ),
        metrics_host=env.get("GIFTSYNC_METRICS_HOST") or "127.0.0.1",
        redis_sentinels=sentinels,
        redis_sentinel_master=(env.get("REDIS_SENTINEL_MASTER") or None) if sentinels else None,
        redis_failover_seconds=failover_seconds,
        retention_days=retention_days,
        env=env,
        **numbers,
    )


def log_level(env: Mapping[str, str] | None = None) -> str:
    """GIFTSYNC_LOG_LEVEL alone, for configuring logs before the settings can be loaded
    (INFO when unset or invalid; :func:`load_settings` reports an invalid one)."""
    level = ((os.environ if env is None else env).get("GIFTSYNC_LOG_LEVEL") or "INFO").upper()
    return level if level in LOG_LEVELS else "INFO"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, loaded on first use."""
    return load_settings()


def secret(settings: Settings, env_name: str | None, *, what: str) -> str:
    """Read a secret from the env var ``env_name``; the error names the variable, never a value."""
    if not env_name:
        raise SettingsError([f"{what}: no env var configured"])
    value = settings.env.get(env_name) or os.environ.get(env_name)
    if not value:
        raise SettingsError([f"{what}: env var {env_name} is not set"])
    return value
