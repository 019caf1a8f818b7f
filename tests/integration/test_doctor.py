"""``giftsync doctor`` against a real Redis and the sandbox: it names exactly what is wrong
(bad token, missing env var, bad settings, Redis down, clock skew), exits non-zero when
anything is, and never prints a secret.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import redis

from benchmarks.deployment import REPO, Deployment, deployment, tenant_table
from giftsync.doctor import check_clock

pytestmark = pytest.mark.integration

SECRETS = ("demo-token-hope", "not-a-real-token", "ingest-secret-hope")


def tenants(url: str) -> str:
    return (
        tenant_table(
            "hope-shelter", url, "VIRTUOUS_TOKEN_HOPE", ingest_secret_env="INGEST_SECRET_HOPE"
        )
        + tenant_table("river-arts", url, "VIRTUOUS_TOKEN_BAD")
        + tenant_table(
            "north-food-bank", url, "VIRTUOUS_TOKEN_UNSET", ingest_secret_env="INGEST_UNSET"
        )
    )


@pytest.fixture
def dep(tmp_path: Path, redis_url: str) -> Iterator[Deployment]:
    env = {"INGEST_SECRET_HOPE": "ingest-secret-hope"}
    with deployment(tmp_path, redis_url, tenants=tenants, env=env) as dep:
        yield dep


def doctor(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "giftsync.cli", "doctor", *args],
        cwd=REPO,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def lines(out: str, status: str, check: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(status) and f" {check}:" in line]


def test_names_each_bad_token_and_missing_env_var_and_prints_no_secret(
    dep: Deployment,
) -> None:
    done = doctor(dep.env)
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert lines(out, "ok", "redis") and lines(out, "ok", "clock")
    assert lines(out, "ok", "token hope-shelter")
    [refused] = lines(out, "FAIL", "token river-arts")
    assert "refused the token in VIRTUOUS_TOKEN_BAD" in refused and "401" in refused
    [unset] = lines(out, "FAIL", "token north-food-bank")
    assert "VIRTUOUS_TOKEN_UNSET is not set" in unset
    [ingest] = lines(out, "FAIL", "tenant north-food-bank")
    assert "INGEST_UNSET is not set" in ingest
    assert out.splitlines()[-1].startswith("3 problem(s) found")
    for value in SECRETS:
        assert value not in out + done.stderr
    # The probes went through the tenants' shared limiters, like any other call.
    # (The limiter logs each granted call in a sorted set.)
    calls = [
        dep.redis.zcard(dep.key("limiter", "{" + t + "}", "calls"))
        for t in ("hope-shelter", "river-arts")
    ]
    assert calls == [1, 1]


def test_all_good_exits_zero_and_json_lists_every_finding(dep: Deployment) -> None:
    done = doctor(dep.env, "--tenant", "hope-shelter", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    findings = json.loads(done.stdout)
    checks = {f["check"]: f["status"] for f in findings if f["status"] != "warn"}
    assert checks["token hope-shelter"] == "ok" and checks["redis"] == "ok"
    # Only the chosen tenant was looked at: the others' problems are not reported.
    assert not any("river" in f["check"] or "north" in f["check"] for f in findings)


def test_every_settings_problem_is_listed(dep: Deployment, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[tenants.x]\nvirtuous_base_url = "ftp://nope"\ntimezone = "Mars/Olympus"\ncolour = 1\n'
    )
    env = {
        **dep.env,
        "GIFTSYNC_CONFIG": str(bad),
        "GIFTSYNC_LOG_LEVEL": "LOUD",
        "GIFTSYNC_MAX_RETRIES": "many",
    }
    done = doctor({**dep.env, "GIFTSYNC_CONSOLE_TOKEN": "short"}, "--tenant", "hope-shelter")
    assert done.returncode == 1
    assert "GIFTSYNC_CONSOLE_TOKEN is shorter than 16" in done.stdout
    assert "short" not in done.stdout.replace("shorter", "")
    done = doctor(env)
    assert done.returncode == 1
    problems = lines(done.stdout, "FAIL", "settings")
    text = "\n".join(problems)
    for needle in (
        "GIFTSYNC_LOG_LEVEL",
        "GIFTSYNC_MAX_RETRIES",
        "colour",
        "virtuous_token_env",
        "virtuous_base_url",
        "Mars/Olympus",
    ):
        assert needle in text, f"{needle} not reported:\n{done.stdout}"


def test_redis_down_is_named_without_its_password(dep: Deployment) -> None:
    env = {**dep.env, "REDIS_URL": "redis://:sekrit-password@127.0.0.1:1/0"}
    done = doctor(env, "--tenant", "hope-shelter")
    assert done.returncode == 1
    [down] = lines(done.stdout, "FAIL", "redis")
    assert "redis://:***@127.0.0.1:1/0 does not answer" in down
    assert "sekrit-password" not in done.stdout + done.stderr
    # Without Redis the token is still probed (no limiter to ask).
    assert lines(done.stdout, "ok", "token hope-shelter")


def test_clock_skew_against_redis_time(redis_client: redis.Redis) -> None:
    assert check_clock(redis_client).status == "ok"
    ahead = check_clock(redis_client, clock=lambda: time.time() + 30)
    assert ahead.status == "fail" and "30." in ahead.detail and "ahead of Redis" in ahead.detail
    behind = check_clock(redis_client, clock=lambda: time.time() - 2)
    assert behind.status == "warn" and "behind Redis" in behind.detail


def test_each_role_checks_only_what_it_needs(dep: Deployment) -> None:
    # The worker pod holds the tokens but no ingest or webhook secrets.
    worker_env = {k: v for k, v in dep.env.items() if k != "INGEST_SECRET_HOPE"}
    worker = doctor(worker_env, "--role", "worker", "--tenant", "hope-shelter")
    assert worker.returncode == 0, worker.stdout + worker.stderr
    assert "ingest secret" not in worker.stdout and lines(worker.stdout, "ok", "redis")
    # The ingest pod holds no Virtuous token: no token is probed, its ingest secrets are.
    ingest_env = {k: v for k, v in dep.env.items() if not k.startswith("VIRTUOUS_TOKEN")}
    ingest = doctor(ingest_env, "--role", "ingest")
    assert "token" not in ingest.stdout
    [missing] = lines(ingest.stdout, "FAIL", "tenant north-food-bank")
    assert "INGEST_UNSET is not set" in missing
    assert ingest.returncode == 1
    # The same pod, all checks: it would fail on every token it does not hold.
    everything = doctor(worker_env, "--tenant", "hope-shelter")
    assert everything.returncode == 1 and "INGEST_SECRET_HOPE is not set" in everything.stdout


@pytest.mark.parametrize(
    ("policy", "status"),
    [
        ("allkeys-lru", "fail"),
        ("allkeys-random", "fail"),
        ("volatile-lru", "fail"),
        ("volatile-ttl", "fail"),
        ("noeviction", None),
    ],
)
def test_any_eviction_policy_but_noeviction_fails(
    policy: str, status: str | None, tmp_path: Path
) -> None:
    from giftsync.doctor import check_redis
    from giftsync.embedded_redis import start_embedded_redis
    from giftsync.settings import load_settings

    config = tmp_path / "giftsync.toml"
    config.write_text(tenant_table("hope-shelter", "http://127.0.0.1:1", "T"))
    with start_embedded_redis() as server:
        redis.Redis.from_url(server.url).config_set("maxmemory-policy", policy)
        settings = load_settings({"REDIS_URL": server.url, "GIFTSYNC_CONFIG": str(config)})
        client, found = check_redis(settings)
        assert client is not None
        client.close()
    about = [f for f in found if "maxmemory-policy" in f.detail]
    if status is None:
        assert not about
    else:
        assert [f.status for f in about] == [status]
