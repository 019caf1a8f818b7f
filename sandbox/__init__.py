"""A local stand-in for the Virtuous CRM API, for giftsync's demo, tests and benchmarks.

Production code never imports this package. Start one with ``start_sandbox(config)`` (a
background thread on a free port) or ``giftsync sandbox`` / ``python -m sandbox`` (``serve``).
See docs/sandbox.md for what it implements and how to inspect it.
"""

from sandbox.config import (
    ConfigError,
    FaultConfig,
    OrgConfig,
    SandboxConfig,
    demo_config,
    load_config,
)
from sandbox.server import RunningSandbox, serve, start_sandbox
from sandbox.state import SandboxState, token_fingerprint
from sandbox.webhooks import SIGNATURE_HEADER, sign

__all__ = [
    "SIGNATURE_HEADER",
    "ConfigError",
    "FaultConfig",
    "OrgConfig",
    "RunningSandbox",
    "SandboxConfig",
    "SandboxState",
    "demo_config",
    "load_config",
    "serve",
    "sign",
    "start_sandbox",
    "token_fingerprint",
]
