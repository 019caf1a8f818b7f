"""``giftsync doctor``: can this deployment run? Every problem found, in plain words.

It checks, in order: the settings (every problem the env vars and the tenants file hold, and
each secret env var a tenant names but the environment lacks), Redis (reachable; a warning for
no AOF; a failure for any eviction policy but ``noeviction``), the clock (this machine against
Redis ``TIME``), and each tenant's Virtuous token with one cheap authenticated call:
``GET /api/Gift/{transactionSource}/giftsync-doctor-probe``, where 404 means the token was
accepted and 401/403 that it was refused. The probe takes a token from the tenant's shared
limiter like any other lookup, so it never pushes a tenant over its cap.

``--role`` narrows the checks to what one role needs, so the check passes inside that role's
pod: ``worker`` (Redis, clock, tokens), ``ingest`` (Redis, ingest secrets), ``webhooks``
(Redis, webhook secrets), ``console`` (Redis, the console token), ``subscribe`` (tokens and
webhook secrets: what ``giftsync webhooks subscribe`` needs). ``all`` (the default) checks
everything.

A finding is ``ok``, ``warn`` (works, but deserves a look) or ``fail``; the exit status is 1
when anything failed. Nothing printed ever holds a secret: tokens are named by their env
var, and a Redis URL's password is masked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import redis

from giftsync.console_access import MIN_TOKEN_CHARS
from giftsync.settings import Settings, SettingsError, load_settings, secret
from mapping.tenant import TenantSettings
from workers.errors import AuthError, ThrottledError, VirtuousError
from workers.store.connection import connect, where
from workers.store.keys import Keys
from workers.store.limiter import Limiter
from workers.store.scripts import decode
from workers.virtuous.client import VirtuousClient
from workers.virtuous.ratelimit import RateLimitInfo

Status = Literal["ok", "warn", "fail"]

# What each role needs checked (beyond the settings, which every role loads).
ROLE_NEEDS: dict[str, frozenset[str]] = {
    "all": frozenset({"redis", "tokens", "ingest", "webhook", "console"}),
    "worker": frozenset({"redis", "tokens"}),
    "ingest": frozenset({"redis", "ingest"}),
    "webhooks": frozenset({"redis", "webhook"}),
    "console": frozenset({"redis", "console"}),
    "subscribe": frozenset({"tokens", "webhook"}),
}
ROLES = tuple(ROLE_NEEDS)
# Eviction policies that may drop keys without a TTL: queued messages, the ledger, buffers.
# Every other policy but noeviction drops keys with one (locks, leases): it fails too.
LOSES_QUEUE_DATA = ("allkeys-lru", "allkeys-lfu", "allkeys-random")

# The transactionId the token probe asks for: one no gift will ever have.
PROBE_ID = "giftsync-doctor-probe"
# dramatiq compares heartbeats written by different machines' clocks, and the latency
# metrics subtract a publisher's clock from Redis's: skew past this is a fault...
MAX_SKEW_SECONDS = 5.0
# ...and past this worth fixing before it grows.
WARN_SKEW_SECONDS = 1.0
# Redis answers in milliseconds or not at all: do not hang a deploy check on it.
REDIS_TIMEOUT_SECONDS = 3.0
# The token probe's own limit (the tenant's call timeout when that is shorter).
PROBE_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Finding:
    """The outcome of one check."""

    check: str
    status: Status
    detail: str


def safe_url(url: str) -> str:
    """``url`` with any password masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redis_where(settings: Settings) -> str:
    """Where the settings' Redis is (its URL, or its Sentinels), without a password."""
    return where(settings) if settings.redis_sentinels else safe_url(settings.redis_url)


def check_settings(
    env: Mapping[str, str] | None = None, *, role: str = "all"
) -> tuple[Settings | None, list[Finding]]:
    """Load the settings; every problem is one failed finding (secrets: the role's only)."""
    needs = ROLE_NEEDS[role]
    try:
        settings = load_settings(env)
    except SettingsError as exc:
        return None, [Finding("settings", "fail", problem) for problem in exc.problems]
    found = [
        Finding(
            "settings",
            "ok",
            f"{settings.config_path}: {len(settings.tenants)} tenant(s), "
            f"Redis {redis_where(settings)}, key prefix {settings.key_prefix!r}",
        )
    ]
    if (
        "console" in needs
        and settings.console_token is not None
        and len(settings.console_token) < MIN_TOKEN_CHARS
    ):
        detail = f"GIFTSYNC_CONSOLE_TOKEN is shorter than {MIN_TOKEN_CHARS} characters"
        found.append(Finding("settings", "fail", detail + ": the console refuses it"))
    for tenant in sorted(settings.tenants.values(), key=lambda t: t.name):
        for what, env_name in (
            ("ingest secret", tenant.ingest_secret_env if "ingest" in needs else None),
            ("webhook secret", tenant.webhook_secret_env if "webhook" in needs else None),
        ):
            if env_name and not _present(settings, env_name):
                detail = f"{what}: env var {env_name} is not set (its requests will get 401)"
                found.append(Finding(f"tenant {tenant.name}", "fail", detail))
    return settings, found


def _present(settings: Settings, env_name: str) -> bool:
    try:
        secret(settings, env_name, what=env_name)
    except SettingsError:
        return False
    return True


def _config(client: redis.Redis, name: str) -> str | None:
    try:
        value = client.config_get(name).get(name)
    except redis.RedisError:  # managed Redis often refuses CONFIG: nothing to say then
        return None
    return None if value is None else str(value)


def _check_replicas(settings: Settings, client: redis.Redis) -> list[Finding]:
    if settings.min_replicas == 0:
        return []
    try:
        replicas = int(client.info("replication").get("connected_slaves", 0))
    except redis.RedisError:
        return []
    if replicas >= settings.min_replicas:
        return [Finding("redis", "ok", f"{replicas} replica(s) connected")]
    detail = (
        f"GIFTSYNC_MIN_REPLICAS is {settings.min_replicas} but {replicas} replica(s) are "
        "connected: every publish and direct create waits, then fails"
    )
    return [Finding("redis", "fail", detail)]


def check_redis(settings: Settings) -> tuple[redis.Redis | None, list[Finding]]:
    """Redis answers, and keeps what it is given."""
    client = connect(
        settings,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        connect_timeout=REDIS_TIMEOUT_SECONDS,
        retry=False,
        decode_responses=True,
    )
    where = redis_where(settings)
    try:
        client.ping()
        version = str(client.info("server").get("redis_version", "?"))
    except redis.RedisError as exc:
        client.close()
        return None, [Finding("redis", "fail", f"{where} does not answer: {exc}")]
    found = [Finding("redis", "ok", f"{where} answers (Redis {version})")]
    if _config(client, "appendonly") == "no":
        detail = "appendonly is off: a Redis restart loses queued work (run it with AOF)"
        found.append(Finding("redis", "warn", detail))
    found.extend(_check_replicas(settings, client))
    policy = _config(client, "maxmemory-policy")
    if policy in LOSES_QUEUE_DATA:
        detail = (
            f"maxmemory-policy is {policy}: under memory pressure Redis drops queued messages "
            "and ledger records (use noeviction)"
        )
        found.append(Finding("redis", "fail", detail))
    elif policy is not None and policy != "noeviction":
        detail = (
            f"maxmemory-policy is {policy}: under memory pressure Redis drops keys with a TTL "
            "early: a record's send lock (two workers could then create one gift twice), "
            "a 429 block or 401 pause, pull leases, replay protection (use noeviction)"
        )
        found.append(Finding("redis", "fail", detail))
    return client, found


def check_clock(client: redis.Redis, clock: Callable[[], float] = time.time) -> Finding:
    """This machine's clock against Redis ``TIME`` (the clock the limiter and ledger use)."""
    before = clock()
    seconds, micros = client.time()
    after = clock()
    skew = (before + after) / 2 - (int(seconds) + int(micros) / 1e6)
    side = "ahead of" if skew > 0 else "behind"
    detail = f"this machine is {abs(skew):.3f}s {side} Redis"
    if abs(skew) > MAX_SKEW_SECONDS:
        return Finding("clock", "fail", f"{detail} (limit {MAX_SKEW_SECONDS:g}s): fix NTP")
    if abs(skew) > WARN_SKEW_SECONDS:
        return Finding("clock", "warn", f"{detail}: check NTP")
    return Finding("clock", "ok", detail)


def check_token(
    settings: Settings, tenant: TenantSettings, client: redis.Redis | None
) -> list[Finding]:
    """One authenticated call with the tenant's token: accepted, refused, or not checkable."""

    name = f"token {tenant.name}"
    env_name = tenant.virtuous_token_env
    try:
        token = secret(settings, env_name, what=f"tenant {tenant.name!r} token")
    except SettingsError as exc:
        return [Finding(name, "fail", exc.problems[0])]
    limiter = Limiter(client, prefix=settings.key_prefix) if client is not None else None
    if limiter is not None:
        grant = limiter.acquire(tenant, kind="lookup")
        if not grant.granted:
            detail = f"not checked: the limiter asks to wait {grant.wait_seconds:.1f}s"
            return [Finding(name, "warn", detail + " (the budget is in use; try again later)")]

    def observe(info: RateLimitInfo) -> None:
        # Every answer is folded into the shared limiter, as the workers do.
        if limiter is not None:
            limiter.observe(
                tenant,
                remaining=info.remaining,
                reset_seconds=info.reset_seconds,
                limit=info.limit,
            )

    where = f"{tenant.virtuous_base_url} with {env_name}"
    timeout = min(settings.virtuous_timeout_seconds, PROBE_TIMEOUT_SECONDS)
    with VirtuousClient(
        tenant.virtuous_base_url, token, timeout=timeout, on_rate_limit=observe
    ) as virtuous:
        try:
            virtuous.find_gift(tenant.transaction_source, PROBE_ID)
        except AuthError as exc:
            return [Finding(name, "fail", f"Virtuous refused the token in {env_name} ({exc})")]
        except ThrottledError as exc:
            if limiter is not None:
                limiter.block(tenant.name, exc.retry_after)
            detail = f"not checked: Virtuous answered 429 (retry after {exc.retry_after:g}s)"
            return [Finding(name, "warn", detail)]
        except VirtuousError as exc:
            return [Finding(name, "fail", f"calling {tenant.virtuous_base_url} failed: {exc}")]
    found = [Finding(name, "ok", f"accepted by {where}")]
    paused = decode(client.get(Keys(settings.key_prefix).paused(tenant.name))) if client else None
    if paused:
        detail = (
            f"the tenant is paused ({paused}) but its token works now: "
            f"giftsync resume --tenant {tenant.name}"
        )
        found.append(Finding(name, "warn", detail))
    return found


def run(
    env: Mapping[str, str] | None = None, *, tenant: str | None = None, role: str = "all"
) -> list[Finding]:
    """Every check ``role`` needs, in order; later checks are skipped when what they need
    failed."""
    needs = ROLE_NEEDS[role]
    settings, found = check_settings(env, role=role)
    if settings is None:
        return found
    names = sorted(settings.tenants)
    if tenant is not None:
        if tenant not in settings.tenants:
            known = ", ".join(names)
            return [*found, Finding("settings", "fail", f"no tenant {tenant!r} ({known})")]
        names = [tenant]
        others = {f"tenant {name}" for name in settings.tenants if name != tenant}
        found = [f for f in found if f.check not in others]
    client: redis.Redis | None = None
    if "redis" in needs:
        client, redis_found = check_redis(settings)
        found += redis_found
        if client is not None:
            found.append(check_clock(client))
    try:
        for name in names if "tokens" in needs else []:
            found += check_token(settings, settings.tenants[name], client)
    finally:
        if client is not None:
            client.close()
    return found


def render(findings: list[Finding]) -> str:
    """The findings as text, with a closing verdict."""
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    lines = [f"{marks[f.status]}  {f.check}: {f.detail}" for f in findings]
    failed = sum(f.status == "fail" for f in findings)
    warned = sum(f.status == "warn" for f in findings)
    if failed:
        lines.append(f"{failed} problem(s) found, {warned} warning(s)")
    else:
        lines.append(f"all checks passed ({warned} warning(s))")
    return "\n".join(lines)


def main(*, tenant: str | None = None, as_json: bool = False, role: str = "all") -> int:
    """``giftsync doctor``: print the findings; 1 when anything failed."""
    findings = run(tenant=tenant, role=role)
    if as_json:
        print(json.dumps([asdict(f) for f in findings], indent=2))
    else:
        print(render(findings))
    return 1 if any(f.status == "fail" for f in findings) else 0
