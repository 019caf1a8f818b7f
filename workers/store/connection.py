"""Every Redis client of the project, and writes that return only once a replica has them.

:func:`connect` is the one place a Redis client is built. With ``REDIS_SENTINELS`` set it asks
the Sentinels for the service's primary (redis-py's ``master_for``) every time it opens a
socket: a connection that finds the primary gone, or finds it demoted (``READONLY``), asks
again before its retry, so a failover needs no restart. Either way every command retries
connection errors with backoff for about ``GIFTSYNC_REDIS_FAILOVER_SECONDS``, which is how long
a failover may take to surface a new primary.

:class:`Durability` makes a write safe to acknowledge: the write and a ``WAIT`` travel on one
connection (``WAIT`` counts the replicas holding *that connection's* writes, so it must follow
the write on the same socket), and the write is repeated on another connection if that one
breaks before the replicas answer. A write handed to it must therefore be safe to repeat.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
import structlog
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.connection import parse_url
from redis.exceptions import ReadOnlyError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

from giftsync.settings import Settings
from workers.errors import NotReplicated

log = structlog.get_logger("giftsync.redis")

T = TypeVar("T")

# Backoff between attempts: 50 ms doubling up to this cap, so a failover is noticed within a
# second of the new primary answering.
_BACKOFF_CAP_SECONDS = 1.0
_BACKOFF_BASE_SECONDS = 0.05
# Env var holding the Sentinels' own password, if they require one (read at connect time).
SENTINEL_PASSWORD_ENV = "REDIS_SENTINEL_PASSWORD"


_disturbances = 0
_disturbances_lock = threading.Lock()


def disturbances() -> int:
    """How many times a Redis command of this process met a broken connection.

    After one, writes this process made may have gone to a primary that died before its
    replica had them; the broker uses this to stop trusting its acknowledgements.
    """
    return _disturbances


def note_disturbance() -> None:
    """Count one broken connection (see :func:`disturbances`)."""
    global _disturbances
    with _disturbances_lock:
        _disturbances += 1


class _NoticingRetry(Retry):
    """redis-py's retry, counting every failure it sees as a disturbance."""

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        def noticing(error: Exception, *count: int) -> Any:
            note_disturbance()
            return fail(error, *count)

        return super().call_with_retry(do, noticing, is_retryable, with_failure_count)


class _PrimaryConnection(SentinelManagedConnection):
    """A connection to the service's primary that asks the Sentinels where it is every time it
    opens a socket.

    redis-py asks only when the pool hands a connection out: a command retried after its
    connection broke reopens the socket at the address it had, the dead primary's. The
    operator brings that node back empty, and it serves reads and writes as a primary until
    Sentinel demotes it seconds later; a retry landing there would read nothing (an actor would
    find nothing to send and its message would be acknowledged) and write what the node's
    resync then wipes.
    """

    def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self._sock is None and self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        super().connect_check_health(
            check_health=check_health, retry_socket_connect=retry_socket_connect
        )


class _PrimarySSLConnection(_PrimaryConnection, redis.SSLConnection):
    """:class:`_PrimaryConnection` over TLS."""


def _retry(settings: Settings, retry: bool) -> Retry:
    if not retry or settings.redis_failover_seconds <= 0:
        return _NoticingRetry(NoBackoff(), 0)
    # 50 ms, 100 ms, ... 800 ms sum to about 1.5 s; then one attempt a second.
    ramp = 5
    attempts = ramp + math.ceil(
        max(settings.redis_failover_seconds - 1.55, 0) / _BACKOFF_CAP_SECONDS
    )
    backoff = ExponentialBackoff(cap=_BACKOFF_CAP_SECONDS, base=_BACKOFF_BASE_SECONDS)
    return _NoticingRetry(backoff, attempts)


def connect(
    settings: Settings,
    *,
    socket_timeout: float | None = 30.0,
    connect_timeout: float | None = 5.0,
    retry: bool = True,
    decode_responses: bool = False,
    health_check_interval: int = 0,
) -> redis.Redis:
    """A Redis client for the settings' Redis: through Sentinel when Sentinels are configured,
    else by ``REDIS_URL``. ``retry=False`` fails at once (probes that must answer quickly)."""
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "socket_keepalive": True,
        "retry": _retry(settings, retry),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError, ReadOnlyError],
        "decode_responses": decode_responses,
        "health_check_interval": health_check_interval,
    }
    if not settings.redis_sentinels:
        return redis.Redis.from_url(settings.redis_url, **options)
    target = parse_url(settings.redis_url)  # type: ignore[no-untyped-call]
    for name in ("db", "username", "password"):
        if name in target:
            options[name] = target[name]
    ssl = target.get("connection_class") is redis.SSLConnection
    options["connection_class"] = _PrimarySSLConnection if ssl else _PrimaryConnection
    sentinel_options: dict[str, Any] = {
        "socket_timeout": connect_timeout,
        "socket_connect_timeout": connect_timeout,
    }
    sentinel_password = settings.env.get(SENTINEL_PASSWORD_ENV)
    if sentinel_password:
        sentinel_options["password"] = sentinel_password
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(settings.redis_sentinels), sentinel_kwargs=sentinel_options
    )
    master = settings.redis_sentinel_master or ""
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        master, redis_class=redis.Redis, connection_pool_class=SentinelConnectionPool, **options
    )
    return client


def where(settings: Settings) -> str:
    """Where the settings' Redis is, for messages: no password."""
    if settings.redis_sentinels:
        hosts = ",".join(f"{host}:{port}" for host, port in settings.redis_sentinels)
        return f"Sentinel service {settings.redis_sentinel_master!r} via {hosts}"
    parts = parse_url(settings.redis_url)  # type: ignore[no-untyped-call]
    host = parts.get("path") or f"{parts.get('host', '127.0.0.1')}:{parts.get('port', 6379)}"
    return f"redis at {host} db {parts.get('db', 0)}"


class Durability:
    """Runs writes so that they return only once ``min_replicas`` replicas hold them.

    With ``min_replicas`` 0 (a single Redis) a write runs as any other. Otherwise it runs on a
    connection of its own pool that never retries by itself: after a broken connection the
    fate of a write is unknown, so the whole write is repeated rather than only the ``WAIT``
    (a ``WAIT`` on a fresh connection would count replicas holding nothing of ours).
    """

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.settings = settings
        self._client = client
        self._pinned_pool: redis.ConnectionPool | None = None
        self._pool_lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.settings.min_replicas > 0

    def _pool(self) -> redis.ConnectionPool:
        with self._pool_lock:
            if self._pinned_pool is None:
                self._pinned_pool = connect(self.settings, retry=False).connection_pool
            return self._pinned_pool

    def run(self, write: Callable[[redis.Redis], T]) -> T:
        """``write(client)``, then wait for the replicas; repeats the write after a broken
        connection, until ``GIFTSYNC_REDIS_FAILOVER_SECONDS`` have passed."""
        if not self.enabled:
            return write(self._client)
        deadline = time.monotonic() + self.settings.redis_failover_seconds
        backoff = _BACKOFF_BASE_SECONDS
        while True:
            pinned: redis.Redis | None = None
            try:
                pinned = redis.Redis(connection_pool=self._pool(), single_connection_client=True)
                result = write(pinned)
                self._wait(pinned, deadline)
                return result
            except (redis.ConnectionError, redis.TimeoutError, ReadOnlyError) as exc:
                note_disturbance()
                if time.monotonic() >= deadline:
                    raise
                log.warning("redis_write_retried", error=type(exc).__name__)
            finally:
                if pinned is not None:
                    pinned.close()
            time.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_CAP_SECONDS)

    def once(self, write: Callable[[redis.Redis], T]) -> T:
        """``write(client)`` on a connection that never retries by itself: a broken
        connection raises, for a write whose repetition on a new primary would be wrong."""
        pinned = redis.Redis(connection_pool=self._pool(), single_connection_client=True)
        try:
            return write(pinned)
        finally:
            pinned.close()

    def _wait(self, pinned: redis.Redis, deadline: float) -> None:
        wanted = self.settings.min_replicas
        while True:
            acked = int(pinned.wait(wanted, self.settings.replica_wait_ms))
            if acked >= wanted:
                return
            if time.monotonic() >= deadline:
                raise NotReplicated(
                    f"{acked} of {wanted} replicas confirmed the write within "
                    f"{self.settings.redis_failover_seconds:g} s (GIFTSYNC_MIN_REPLICAS)"
                )
            log.warning("redis_replicas_behind", acked=acked, wanted=wanted)

    def close(self) -> None:
        """Close the pinned pool's connections."""
        if self._pinned_pool is not None:
            self._pinned_pool.disconnect()
