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
import time

__all__ = [
    "SIGNATURE_HEADER",
    "SIGNATURE_PREFIX",
    "TENANT_HEADER",
    "TIMESTAMP_HEADER",
    "TOLERANCE_SECONDS",
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
