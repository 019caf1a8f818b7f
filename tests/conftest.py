"""Shared fixtures: a real Redis for integration tests.

The suite uses ``GIFTSYNC_TEST_REDIS_URL`` (default: database 15 of the Redis on
127.0.0.1:6379). When nothing answers there and the variable was not set, it starts an
embedded redis-server for the session (see giftsync.embedded_redis), so ``pytest`` works on a
machine with no Redis installed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from workers.store.limiter import Limiter

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"


def _answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a real Redis server for tests."""
    url = os.environ.get("GIFTSYNC_TEST_REDIS_URL")
    if url:
        yield url
        return
    if _answers(DEFAULT_TEST_REDIS_URL):
        yield DEFAULT_TEST_REDIS_URL
        return
    from giftsync.embedded_redis import start_embedded_redis

    with start_embedded_redis() as server:
        yield server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.ping()
    yield client
    client.close()


@pytest.fixture
def unique() -> str:
    """A short unique token for key prefixes and tenant names, so tests never collide."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def limiter(redis_client: redis.Redis, unique: str) -> Iterator[Limiter]:
    """A limiter on a key prefix of its own, cleared afterwards."""
    lim = Limiter(redis_client, prefix=f"test-{unique}")
    yield lim
    for key in redis_client.scan_iter(match=f"test-{unique}:*"):
        redis_client.delete(key)
