"""Tenant settings: one nonprofit's Virtuous organisation and how giftsync treats it.

A tenant is parsed from one table of the tenants TOML file. Parsing is pure: it takes the
already-loaded table, so the same rules serve the CLI, the workers and the tests. Every bad
key or value is reported with the tenant's name and the key, all at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mapping.errors import SettingsError as SettingsError

Mode = Literal["batch", "real_time"]
RefundMethod = Literal["zero", "reversing"]
PullBy = Literal["Last Modified Date", "Gift Date"]

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class TenantSettings:
    """Everything giftsync knows about one tenant. Secrets are held by env-var *name* only."""

    name: str
    virtuous_base_url: str
    virtuous_token_env: str
    timezone: str
    mode: Mode = "batch"
    batch_max_wait_seconds: float = 300.0
    calls_per_hour: int = 10_000
    rate_window_seconds: float = 3600.0
    # Accepted for older tenants files; the window-driven limiter has no burst to set.
    rate_burst: int = 20
    # Share of the organisation's cap the limiter leaves unused for other integrations.
    rate_reserve_share: float = 0.0
    # The limiter enforces the cap over window + this guard, to absorb the time between a
    # grant and the call reaching Virtuous (None: 0.5% of the window, within 0.25..5 s).
    rate_guard_seconds: float | None = None
    send_processing_ach_as_success: bool = False
    fund_allocations: bool = True
    fee_fund_virtuous_id: int | None = None
    fee_splitting: bool = True
    transaction_source: str = "WeGive"
    # referenceSource given to Virtuous for donors (Contact matching by external reference).
    reference_source: str = "WeGive"
    # A gift or schedule whose new donor's Contact Transaction is still pending waits for the
    # Contact id (False) or creates the Contact directly (True).
    create_contacts_directly: bool = False
    ingest_secret_env: str | None = None
    webhook_secret_env: str | None = None
    refund_method: RefundMethod = "zero"
    import_name_prefix: str = "WeGive Import"
    # Confirmation: look a submitted gift up once it is older than this...
    reconcile_after_seconds: float = 36 * 3600.0
    # ...and call it needs_review once it is older than this and still not found.
    review_deadline_seconds: float = 72 * 3600.0
    # Lookups and pulls may spend at most this share of the hourly budget.
    lookup_budget_share: float = 0.2
    pull_by: PullBy = "Last Modified Date"
    pull_interval_seconds: float = 900.0

    @property
    def zone(self) -> ZoneInfo:
        """The tenant's timezone; gift dates are calendar days there."""
        return ZoneInfo(self.timezone)


_KEYS = {f.name: f for f in fields(TenantSettings) if f.name != "name"}
_CHOICES: dict[str, tuple[str, ...]] = {
    "mode": ("batch", "real_time"),
    "refund_method": ("zero", "reversing"),
    "pull_by": ("Last Modified Date", "Gift Date"),
}
_REQUIRED = ("virtuous_base_url", "virtuous_token_env", "timezone")


def _check_type(key: str, value: Any, default: Any) -> str | None:
    if key in _CHOICES:
        allowed = _CHOICES[key]
        return None if value in allowed else f"must be one of {', '.join(map(repr, allowed))}"
    if key == "rate_reserve_share":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1
        return None if ok else "must be a share from 0 up to (not including) 1"
    if key == "rate_guard_seconds":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
        return None if ok else "must be a number of seconds (0 or more)"
    if key == "fee_fund_virtuous_id":
        ok = value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0)
        return None if ok else "must be a positive integer Project id"
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        return None if ok else "must be a positive integer"
    if isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
        return None if ok else "must be a positive number"
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    return None


def parse_tenant(name: str, table: Mapping[str, Any]) -> TenantSettings:
    """Build one tenant's settings from its TOML table, or raise naming every bad key."""
    problems: list[str] = []
    if not _TENANT_NAME.fullmatch(name):
        problems.append(f"tenant {name!r}: name must be lowercase letters, digits, '-' or '_'")
    for key in table:
        if key not in _KEYS:
            problems.append(f"tenant {name!r}: unknown key {key!r}")
    for key in _REQUIRED:
        if key not in table:
            problems.append(f"tenant {name!r}: missing required key {key!r}")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _KEYS:
            continue
        default = _KEYS[key].default
        if key in _REQUIRED:
            default = ""
        reason = _check_type(key, value, default)
        if reason is None:
            reason = _check_value(key, value)
        if reason is not None:
            problems.append(f"tenant {name!r}: {key} {reason}")
        else:
            as_float = isinstance(default, float) or key == "rate_guard_seconds"
            values[key] = float(value) if as_float else value
    if problems:
        raise SettingsError(problems)
    return TenantSettings(name=name, **values)


def _check_value(key: str, value: Any) -> str | None:
    if key.endswith("_env") and not _ENV_NAME.fullmatch(value):
        return "must name an environment variable (A-Z, 0-9, _), never hold the secret itself"
    if key == "virtuous_base_url" and not value.startswith(("http://", "https://")):
        return "must be an http:// or https:// URL"
    if key == "timezone":
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            return f"is not a known IANA timezone: {value!r}"
    if key == "lookup_budget_share" and not 0 < value < 1:
        return "must be between 0 and 1"
    return None


def parse_tenants(document: Mapping[str, Any]) -> dict[str, TenantSettings]:
    """Parse the whole tenants document (``[tenants.NAME]`` tables)."""
    problems: list[str] = []
    for key in document:
        if key != "tenants":
            problems.append(f"unknown top-level key {key!r} (tenants go under [tenants.NAME])")
    tables = document.get("tenants", {})
    if not isinstance(tables, Mapping) or not tables:
        problems.append("no tenants: add at least one [tenants.NAME] table")
        raise SettingsError(problems)
    tenants: dict[str, TenantSettings] = {}
    for name, table in tables.items():
        if not isinstance(table, Mapping):
            problems.append(f"tenant {name!r}: must be a table")
            continue
        try:
            tenants[name] = parse_tenant(name, table)
        except SettingsError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SettingsError(problems)
    return tenants
