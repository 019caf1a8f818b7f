"""Request signing for the ingest service: HMAC-SHA256 over a timestamp and the raw body.

The scheme, for whoever sends changes to ``POST /v1/changes``:

* Each tenant has its own shared secret. giftsync reads it from the environment variable the
  tenant's ``ingest_secret_env`` names; the platform holds the same value.
* The sender takes the current Unix time in whole seconds, ``T``, written in decimal without
  leading zeros, and the exact bytes of the request body, ``B``.
* The signature is the lowercase hex HMAC-SHA256, keyed with the tenant's secret (its UTF-8
  bytes), of ``T`` + ``"."`` + ``B``.
* The request carries three headers::

      X-Giftsync-Tenant: hope-shelter
      X-Giftsync-Timestamp: 1795000000
      X-Giftsync-Signature: sha256=5d41402abc4b2a76b9719d911017c592...

giftsync accepts a request only when the signature matches (compared in constant time), ``T``
is within ``TOLERANCE_SECONDS`` of its own clock, and the same signature was not accepted
before. Signing the timestamp with the body is what makes a captured request useless after
the tolerance window, and remembering signatures for that window is what makes it useless
inside it. Because the body is signed byte for byte, it must be sent exactly as signed (no
re-serialising a parsed JSON object after signing).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "SIGNATURE_HEADER",
    "SIGNATURE_PREFIX",
    "TENANT_HEADER",
    "TIMESTAMP_HEADER",
    "TOLERANCE_SECONDS",
    "SignedRequest",
    "Unauthorized",
    "check_headers",
    "is_fresh",
    "parse_timestamp",
    "sign",
    "signed_headers",
    "verify",
]

TENANT_HEADER = "X-Giftsync-Tenant"
TIMESTAMP_HEADER = "X-Giftsync-Timestamp"
SIGNATURE_HEADER = "X-Giftsync-Signature"
# The signature header's value is this prefix and the hex digest, as GitHub and Stripe do.
SIGNATURE_PREFIX = "sha256="
# How far a request's timestamp may be from giftsync's clock, either way, in seconds.
TOLERANCE_SECONDS = 300

# Decimal seconds, no sign, no leading zero: one spelling per instant, so the signed text is
# unambiguous. Fifteen digits reach far past any real clock.
_TIMESTAMP = re.compile(r"[1-9][0-9]{0,14}")


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Giftsync-Signature`` value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    message = str(timestamp).encode("ascii") + b"." + body
    return SIGNATURE_PREFIX + hmac.new(secret, message, hashlib.sha256).hexdigest()


def is_fresh(
    timestamp: int, *, now: float | None = None, tolerance: int = TOLERANCE_SECONDS
) -> bool:
    """Whether ``timestamp`` lies within ``tolerance`` seconds of ``now`` (default: the clock)."""
    current = time.time() if now is None else now
    return abs(current - timestamp) <= tolerance


def verify(
    secret: bytes,
    timestamp: int,
    body: bytes,
    signature: str,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> bool:
    """Whether ``signature`` signs ``body`` at ``timestamp`` with ``secret``, and is fresh.

    Replays are not detected here: that needs memory, which the ingest service keeps in Redis.
    """
    expected = sign(secret, timestamp, body).encode("ascii")
    # Compare bytes: compare_digest refuses non-ASCII str, and a header can hold anything.
    provided = signature.encode("utf-8", "replace")
    matches = hmac.compare_digest(expected, provided)
    return matches and is_fresh(timestamp, now=now, tolerance=tolerance)


def parse_timestamp(text: str | None) -> int | None:
    """The timestamp header as an int, or None when it is missing or not canonical decimal."""
    if text is None or not _TIMESTAMP.fullmatch(text):
        return None
    return int(text)


def signed_headers(
    tenant: str, secret: bytes, body: bytes, *, now: float | None = None
) -> dict[str, str]:
    """The three headers that sign ``body`` for ``tenant`` (for clients, tests and benchmarks)."""
    timestamp = int(time.time() if now is None else now)
    return {
        TENANT_HEADER: tenant,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }


class Unauthorized(Exception):
    """A request not provably from its tenant. ``reason`` names the failed check, for the log
    only: the caller is told nothing but 401."""

    def __init__(self, reason: str, tenant: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tenant = tenant


# Checked against when the tenant is unknown, so an unknown tenant costs what a known one
# does and its refusal comes at the same point: nobody learns which tenants exist.
_DECOY = secrets.token_bytes(32)


@dataclass(frozen=True)
class SignedRequest:
    """What a request's headers claim: who signed, when, and the signature to check."""

    tenant: str
    secret: bytes = field(repr=False)
    timestamp: int
    signature: str
    # False when the tenant is unknown (or has no secret): then nothing can pass.
    known: bool = True

    def check_body(self, body: bytes, *, now: float | None = None) -> None:
        """Raise Unauthorized unless the signature signs ``body`` and is still fresh."""
        matches = verify(self.secret, self.timestamp, body, self.signature, now=now)
        if not self.known:
            raise Unauthorized("unknown_tenant")  # the name is the caller's: not logged
        if not matches:
            raise Unauthorized("bad_signature", self.tenant)


def check_headers(
    headers: Mapping[str, str],
    secret_of: Callable[[str], bytes | None],
    *,
    now: float | None = None,
) -> SignedRequest:
    """The first half of verifying a request: what its headers claim.

    ``secret_of(tenant)`` returns the tenant's secret, or None when there is none (unknown
    tenant, no secret configured): such a request goes through the same checks as any other
    and is refused by :meth:`SignedRequest.check_body`, so it looks no different from a bad
    signature. ``secret_of`` may also raise Unauthorized. Raises Unauthorized for missing
    headers or a stale or malformed timestamp.
    """
    tenant = headers.get(TENANT_HEADER)
    raw_timestamp = headers.get(TIMESTAMP_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    if not tenant or raw_timestamp is None or not signature:
        raise Unauthorized("missing_headers")
    secret = secret_of(tenant)
    timestamp = parse_timestamp(raw_timestamp)
    if timestamp is None or not is_fresh(timestamp, now=now):
        raise Unauthorized("stale_or_bad_timestamp", tenant if secret is not None else None)
    if secret is None:
        return SignedRequest(tenant, _DECOY, timestamp, signature, known=False)
    return SignedRequest(tenant, secret, timestamp, signature)
