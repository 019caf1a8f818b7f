"""Sentinel and durability settings: parsed, validated with the field named, and turned into
the right kind of Redis client."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis import SSLConnection
from redis.sentinel import SentinelConnectionPool

from benchmarks.deployment import tenant_table
from giftsync.settings import Settings, SettingsError, load_settings
from workers.store.connection import connect, where


def settings(tmp_path: Path, **env: str) -> Settings:
    config = tmp_path / "tenants.toml"
    config.write_text(tenant_table("t1", "http://127.0.0.1:9", "T1_TOKEN"), encoding="utf-8")
    return load_settings({"GIFTSYNC_CONFIG": str(config), **env})


def test_sentinels_are_parsed_and_the_client_asks_them_for_the_primary(tmp_path: Path) -> None:
    found = settings(
        tmp_path,
        REDIS_URL="redis://:pw@ignored:1/3",
        REDIS_SENTINELS="10.0.0.1:26379, sentinel-b:26380",
        REDIS_SENTINEL_MASTER="giftsync",
        GIFTSYNC_MIN_REPLICAS="1",
    )
    assert found.redis_sentinels == (("10.0.0.1", 26379), ("sentinel-b", 26380))
    assert found.min_replicas == 1
    client = connect(found)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "giftsync"
    assert pool.connection_kwargs["db"] == 3 and pool.connection_kwargs["password"] == "pw"
    assert "pw" not in where(found)
    client.close()


def test_through_sentinel_tls_is_kept(tmp_path: Path) -> None:
    found = settings(
        tmp_path,
        REDIS_URL="rediss://:pw@ignored:1/0",
        REDIS_SENTINELS="10.0.0.1:26379",
        REDIS_SENTINEL_MASTER="giftsync",
    )
    client = connect(found)
    assert issubclass(client.connection_pool.connection_class, SSLConnection)
    client.close()


def test_without_sentinels_the_url_is_used_and_nothing_waits(tmp_path: Path) -> None:
    found = settings(tmp_path, REDIS_URL="redis://127.0.0.1:6399/2")
    assert found.redis_sentinels == () and found.min_replicas == 0
    client = connect(found)
    assert client.connection_pool.connection_kwargs["port"] == 6399
    client.close()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"REDIS_SENTINELS": "host-without-port"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "a:1"}, "REDIS_SENTINEL_MASTER"),
        ({"REDIS_SENTINEL_MASTER": "gs"}, "REDIS_SENTINELS"),
        ({"GIFTSYNC_MIN_REPLICAS": "one"}, "GIFTSYNC_MIN_REPLICAS"),
        ({"GIFTSYNC_REDIS_FAILOVER_SECONDS": "-1"}, "GIFTSYNC_REDIS_FAILOVER_SECONDS"),
    ],
)
def test_bad_redis_settings_name_the_field(tmp_path: Path, env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings(tmp_path, **env)
    assert any(problem.startswith(named) for problem in caught.value.problems)
