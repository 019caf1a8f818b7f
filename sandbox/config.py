"""Sandbox configuration: organisations, fault rates and server-wide settings, as value objects.

A config is built in Python (tests), from the bundled demo (``demo_config()``) or from a TOML or
JSON file (``load_config``). Files are checked strictly: an unknown key or a bad value is an
error naming the key, so a typo never silently leaves a default in place.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from sandbox.ratelimit import HEADER_MODES, HeaderMode

DuplicateResponse = Literal["noop", "error"]

# The gift types as Virtuous returns them (virtuous-ts gift-constants.ts; taylorbrooks
# gift_designation_query_options.json). Requests may spell them as the samples do (EFT,
# NonCash, ...): sandbox.validation.GIFT_TYPE_ALIASES.
DEFAULT_GIFT_TYPES: tuple[str, ...] = (
    "Cash",
    "Check",
    "Credit",
    "Cryptocoin",
    "Electronic Funds Transfer",
    "Non-Cash",
    "Other",
    "Paypal",
    "Qualified Charitable Distribution",
    "Reversing Transaction",
    "Stock",
)


class ConfigError(ValueError):
    """A config file or mapping holds something the sandbox cannot run with."""


@dataclass(frozen=True)
class FaultConfig:
    """Shares (0..1) of /api calls that go wrong, and how. The four rates are exclusive draws."""

    # Answer 500 before the request is applied.
    fail_rate: float = 0.0
    # Answer normally, but only after ``slow_seconds``.
    slow_rate: float = 0.0
    slow_seconds: float = 1.0
    # Close the connection without a complete response (the client sees a transport error).
    drop_rate: float = 0.0
    # Of the dropped calls, the share that were applied before the connection dropped.
    drop_after_apply_share: float = 0.5
    # Apply the request, then stall ``stall_seconds`` before answering (past the client's timeout).
    timeout_after_apply_rate: float = 0.0
    stall_seconds: float = 30.0
    # The next N calls get 429 whatever the budget says, with this Retry-After.
    burst_429: int = 0
    burst_retry_after: int = 1
    # Share of webhook deliveries never sent (recorded as dropped), for reconciliation tests.
    webhook_drop_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "fail_rate",
            "slow_rate",
            "drop_rate",
            "timeout_after_apply_rate",
            "drop_after_apply_share",
            "webhook_drop_rate",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"faults.{name} must be between 0 and 1, not {value!r}")
        total = self.fail_rate + self.slow_rate + self.drop_rate + self.timeout_after_apply_rate
        if total > 1.0 + 1e-9:
            raise ConfigError("faults: fail, slow, drop and timeout-after-apply rates exceed 1")
        for name in ("slow_seconds", "stall_seconds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"faults.{name} must not be negative")
        if self.burst_429 < 0 or self.burst_retry_after < 1:
            raise ConfigError("faults.burst_429 must be >= 0 and burst_retry_after >= 1")


@dataclass(frozen=True)
class OrgConfig:
    """One Virtuous organisation: its tokens, its call budget and the records it starts with."""

    name: str
    tokens: list[str]
    calls_per_hour: int = 10_000
    # The length of "an hour" in real seconds: tests and benchmarks compress it.
    window_seconds: float = 3600.0
    # Calls other integrations of the organisation make, spread evenly over each window.
    other_integrations_calls_per_hour: int = 0
    # How the window counts and which moment X-RateLimit-Reset names (sandbox/ratelimit.py).
    rate_limit_headers: HeaderMode = "reset-when-window-empties"
    # Project id -> project code; designations to anything else are rejected.
    projects: dict[int, str] = field(default_factory=dict)
    # Segment id -> segment code (campaigns); gifts may name unknown segments.
    segments: dict[int, str] = field(default_factory=dict)
    gift_types: tuple[str, ...] = DEFAULT_GIFT_TYPES
    # Contacts that exist before any call (same input shape as POST /_admin/contacts).
    contacts: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("an organisation needs a name")
        if not self.tokens or not all(isinstance(t, str) and t for t in self.tokens):
            raise ConfigError(f"org {self.name!r}: tokens must be a non-empty list of strings")
        if self.calls_per_hour < 1 or self.window_seconds <= 0:
            raise ConfigError(f"org {self.name!r}: calls_per_hour and window_seconds must be > 0")
        if self.other_integrations_calls_per_hour < 0:
            raise ConfigError(f"org {self.name!r}: other_integrations_calls_per_hour < 0")
        if self.rate_limit_headers not in HEADER_MODES:
            raise ConfigError(
                f"org {self.name!r}: rate_limit_headers must be one of {', '.join(HEADER_MODES)}"
            )


@dataclass(frozen=True)
class SandboxConfig:
    """Everything one sandbox server runs with."""

    orgs: list[OrgConfig]
    # How a repeated (transactionSource, transactionId) is answered: 200 no-op or 400.
    duplicate_response: DuplicateResponse = "noop"
    faults: FaultConfig = field(default_factory=FaultConfig)
    # Per-organisation fault settings; they replace ``faults`` for that organisation.
    org_faults: dict[str, FaultConfig] = field(default_factory=dict)
    # Query endpoints answer 500 to a skip beyond this, like the live API, to force key paging.
    deep_skip_limit: int = 10_000
    max_take: int = 1000
    # Compare the "DateTime UTC" query parameters at day precision, as the live API may: a
    # client's paging must hold either way (docs/virtuous-contract.md, Queries).
    query_day_precision: bool = False
    # Deliver the gifts one run creates as one bulk webhook ({"models": [...]}) per subscription.
    webhook_bulk: bool = False
    webhook_max_attempts: int = 4
    webhook_timeout_seconds: float = 5.0
    # Seed 001 says an unmatched Gift Transaction creates a Contact; seed 003 says it waits in
    # needs-update. Needs-update by default (the harder case for clients).
    create_contact_for_unmatched_gifts: bool = False
    # Run the nightly batch every this many seconds (None: only on demand).
    nightly_every_seconds: float | None = None
    # Seed for the fault RNG, so a fault schedule can be replayed.
    seed: int | None = None

    def __post_init__(self) -> None:
        names = [org.name for org in self.orgs]
        if len(set(names)) != len(names):
            raise ConfigError("organisation names must be unique")
        tokens = [t for org in self.orgs for t in org.tokens]
        if len(set(tokens)) != len(tokens):
            raise ConfigError("a token may belong to one organisation only")
        if self.duplicate_response not in ("noop", "error"):
            raise ConfigError("duplicate_response must be 'noop' or 'error'")
        for name in self.org_faults:
            if name not in names:
                raise ConfigError(f"org_faults names an unknown organisation {name!r}")


_DEMO_PROJECTS: dict[int, str] = {
    88: "FEES",
    101: "GEN",
    102: "FOOD",
    103: "SHELTER",
    104: "YOUTH",
    105: "MEDICAL",
    106: "EDU",
    107: "ARTS",
    108: "WATER",
    109: "DISASTER",
    110: "CAPITAL",
}
_DEMO_SEGMENTS: dict[int, str] = {
    201: "GIVINGDAY",
    202: "YEAREND",
    203: "SPRING",
    204: "GALA",
    205: "MONTHLY",
}


def _demo_contacts(prefix: str) -> list[dict[str, Any]]:
    """A few existing donors per organisation so demo batches land in all three tabs."""
    return [
        {
            "firstName": "Ada",
            "lastName": "Lovelace",
            "email": f"ada@{prefix}.example.org",
            "phone": "555-010-0001",
            "referenceSource": "WeGive",
            "referenceId": "1001",
            "address": {
                "address1": "1 Analytical Way",
                "city": "Austin",
                "state": "TX",
                "postal": "78701",
            },
        },
        {
            "firstName": "Grace",
            "lastName": "Hopper",
            "email": f"grace@{prefix}.example.org",
            "phone": "555-010-0002",
            "address": {
                "address1": "2 Compiler Ct",
                "city": "Denver",
                "state": "CO",
                "postal": "80202",
            },
        },
        {
            "firstName": "Alan",
            "lastName": "Turing",
            "phone": "555-010-0003",
            "address": {
                "address1": "3 Enigma Rd",
                "city": "Portland",
                "state": "OR",
                "postal": "97201",
            },
        },
        {
            "name": "Acme Foundation",
            "contactType": "Organization",
            "email": f"giving@acme-{prefix}.example.org",
            "referenceSource": "WeGive",
            "referenceId": "2001",
        },
    ]


def demo_config(**overrides: Any) -> SandboxConfig:
    """The demo's three organisations, matching examples/tenants.toml."""
    orgs = [
        OrgConfig(
            name=name,
            tokens=[f"demo-token-{short}"],
            projects=dict(_DEMO_PROJECTS),
            segments=dict(_DEMO_SEGMENTS),
            contacts=_demo_contacts(short),
        )
        for name, short in (
            ("hope-shelter", "hope"),
            ("river-arts", "river"),
            ("north-food-bank", "north"),
        )
    ]
    return SandboxConfig(orgs=orgs, **overrides)


def load_config(path: str | Path) -> SandboxConfig:
    """Read a TOML (``.toml``) or JSON config file."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        document = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot parse: {exc}") from exc
    if not isinstance(document, Mapping):
        raise ConfigError(f"{path}: the document must be a table/object")
    return config_from_mapping(document)


def _typed(prefix: str, cls: type[Any], table: Mapping[str, Any]) -> dict[str, Any]:
    """Check a table's keys against a dataclass and convert the values to the field types."""
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"{prefix}: unknown key {key!r}")
        kind = str(known[key].type)
        try:
            if kind == "float":
                values[key] = float(value)
            elif kind == "int":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise TypeError
                values[key] = value
            elif kind == "bool":
                if not isinstance(value, bool):
                    raise TypeError
                values[key] = value
            else:
                values[key] = value
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{prefix}.{key}: expected {kind}, got {value!r}") from exc
    return values


def _id_map(prefix: str, table: Any) -> dict[int, str]:
    if not isinstance(table, Mapping):
        raise ConfigError(f'{prefix}: must be a table of id = "CODE"')
    try:
        return {int(key): str(code) for key, code in table.items()}
    except ValueError as exc:
        raise ConfigError(f"{prefix}: ids must be integers") from exc


def org_from_mapping(table: Mapping[str, Any]) -> OrgConfig:
    """Build an ``OrgConfig`` from a TOML/JSON table (also used by ``POST /_admin/orgs``)."""
    name = str(table.get("name", ""))
    values = _typed(f"orgs[{name or '?'}]", OrgConfig, table)
    for key in ("projects", "segments"):
        if key in values:
            values[key] = _id_map(f"orgs[{name}].{key}", values[key])
    if "gift_types" in values:
        values["gift_types"] = tuple(str(t) for t in values["gift_types"])
    if "tokens" in values:
        values["tokens"] = [str(t) for t in values["tokens"]]
    try:
        return OrgConfig(**values)
    except TypeError as exc:
        raise ConfigError(f"orgs[{name}]: {exc}") from exc


def faults_from_mapping(table: Mapping[str, Any], base: FaultConfig | None = None) -> FaultConfig:
    """A ``FaultConfig`` from a table; keys not given keep ``base``'s values."""
    return replace(base or FaultConfig(), **_typed("faults", FaultConfig, table))


def config_from_mapping(document: Mapping[str, Any]) -> SandboxConfig:
    """Build a ``SandboxConfig`` from a parsed TOML/JSON document."""
    rest = {k: v for k, v in document.items() if k not in ("orgs", "faults", "org_faults")}
    values = _typed("config", SandboxConfig, rest)
    orgs = document.get("orgs")
    if not isinstance(orgs, list) or not orgs:
        raise ConfigError("config: 'orgs' must be a non-empty list of organisations")
    values["orgs"] = [org_from_mapping(org) for org in orgs]
    values["faults"] = faults_from_mapping(document.get("faults", {}))
    org_faults = document.get("org_faults", {})
    values["org_faults"] = {
        name: faults_from_mapping(table, values["faults"]) for name, table in org_faults.items()
    }
    return SandboxConfig(**values)
