"""A worker Runtime over the test Redis, on a key prefix of its own that is cleared afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from giftsync.settings import Settings
from mapping.tenant import TenantSettings
from workers.runtime import Runtime


@contextmanager
def isolated_runtime(
    redis_url: str,
    *tenants: TenantSettings,
    env: Mapping[str, str] | None = None,
    retention_days: int | None = None,
) -> Iterator[Runtime]:
    """A Runtime serving ``tenants``; every key it wrote is deleted when the block ends."""
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    settings = Settings(
        redis_url=redis_url,
        config_path=Path("tenants.toml"),
        tenants={tenant.name: tenant for tenant in tenants},
        key_prefix=prefix,
        env=dict(env or {}),
    )
    if retention_days is not None:
        settings = replace(settings, retention_days=retention_days)
    runtime = Runtime(settings)
    try:
        yield runtime
    finally:
        keys = list(runtime.redis.scan_iter(match=f"{prefix}:*"))
        if keys:
            runtime.redis.delete(*keys)
        runtime.close()
