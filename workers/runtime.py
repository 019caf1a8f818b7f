"""The process's wiring: one Redis client, ledger, batcher, limiter and Virtuous client per
tenant, built lazily from the settings and shared by every actor thread.

Actors call :func:`runtime` instead of building their own connections, so a worker process
holds one Redis connection pool and one HTTP connection pool per tenant.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from functools import cached_property

import redis

from giftsync.settings import Settings, get_settings, secret
from mapping.tenant import TenantSettings
from workers.observe import metrics
from workers.store.batches import Batcher
from workers.store.connection import Durability, connect
from workers.store.cursor import PullCursors
from workers.store.keys import Keys
from workers.store.ledger import Ledger
from workers.store.limiter import Limiter, calls_in_hand
from workers.store.marks import Marks
from workers.store.related import RelatedRecords
from workers.store.retention import DAY_MS, Retention
from workers.virtuous.client import RateLimitInfo, VirtuousClient


@dataclass
class Runtime:
    """Lazily built I/O objects for one process."""

    settings: Settings
    _clients: dict[str, VirtuousClient] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @cached_property
    def redis(self) -> redis.Redis:
        return connect(self.settings)

    @cached_property
    def durability(self) -> Durability:
        return Durability(self.settings, self.redis)

    @cached_property
    def keys(self) -> Keys:
        return Keys(self.settings.key_prefix)

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.redis, self.keys, durability=self.durability)

    @cached_property
    def batcher(self) -> Batcher:
        return Batcher(self.redis, self.keys)

    @cached_property
    def related(self) -> RelatedRecords:
        return RelatedRecords(self.redis, self.keys)

    @cached_property
    def cursors(self) -> PullCursors:
        return PullCursors(self.redis, self.keys)

    @cached_property
    def retention(self) -> Retention:
        return Retention(self.redis, self.keys, round(self.settings.retention_days * DAY_MS))

    @cached_property
    def marks(self) -> Marks:
        return Marks(self.redis, self.keys)

    @cached_property
    def limiter(self) -> Limiter:
        return Limiter(self.redis, prefix=self.settings.key_prefix)

    def client(self, tenant: TenantSettings) -> VirtuousClient:
        """The tenant's Virtuous client; its token is read from the env var the tenant names."""
        with self._lock:
            client = self._clients.get(tenant.name)
            if client is None:
                token = secret(
                    self.settings, tenant.virtuous_token_env, what=f"tenant {tenant.name!r} token"
                )
                client = VirtuousClient(
                    tenant.virtuous_base_url,
                    token,
                    timeout=self.settings.virtuous_timeout_seconds,
                    on_rate_limit=functools.partial(self._observe, tenant),
                    on_call=functools.partial(_count_call, tenant.name),
                )
                self._clients[tenant.name] = client
            return client

    def _observe(self, tenant: TenantSettings, info: RateLimitInfo) -> None:
        # The answer belongs to the oldest call the gate granted this thread and not answered.
        in_hand = calls_in_hand.get()
        call = in_hand.pop(0) if in_hand else None
        self.limiter.observe(
            tenant,
            remaining=info.remaining,
            reset_seconds=info.reset_seconds,
            limit=info.limit,
            call=call,
        )

    def close(self) -> None:
        """Close every HTTP client (for tests and clean shutdown)."""
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
        if "durability" in self.__dict__:
            self.durability.close()


def _count_call(tenant: str, endpoint: str, status: int | None, seconds: float) -> None:
    metrics.VIRTUOUS_CALLS.labels(tenant, endpoint, str(status) if status else "error").inc()
    metrics.VIRTUOUS_CALL_SECONDS.labels(endpoint).observe(seconds)


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    """The process's runtime, built on first use."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime(get_settings())
        return _runtime


def reset_runtime() -> None:
    """Forget the process's runtime (after the settings changed: tests, config reloads)."""
    global _runtime
    with _runtime_lock:
        if _runtime is not None:
            _runtime.close()
        _runtime = None
