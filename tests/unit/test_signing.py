"""The ingest signing scheme: what signs, what does not, and the timestamp window."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from producers import signing
from producers.signing import parse_timestamp, sign, signed_headers, verify

SECRET = b"s3cret-for-tests"
BODY = b'{"tenant":"hope-shelter","kind":"transaction"}'
NOW = 1_800_000_000


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET, b"1800000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == "sha256=" + expected


def test_a_fresh_signature_verifies() -> None:
    assert verify(SECRET, NOW, BODY, sign(SECRET, NOW, BODY), now=NOW)


@pytest.mark.parametrize(
    "body",
    [BODY + b" ", BODY.replace(b"hope", b"Hope"), b"", BODY[:-1]],
    ids=["trailing-space", "one-letter", "empty", "truncated"],
)
def test_a_tampered_body_fails(body: bytes) -> None:
    assert not verify(SECRET, NOW, body, sign(SECRET, NOW, BODY), now=NOW)


def test_the_wrong_secret_fails() -> None:
    assert not verify(SECRET, NOW, BODY, sign(b"another-secret", NOW, BODY), now=NOW)


def test_a_signature_for_another_timestamp_fails() -> None:
    assert not verify(SECRET, NOW, BODY, sign(SECRET, NOW - 1, BODY), now=NOW)


@pytest.mark.parametrize("skew", [301, -301, 86_400])
def test_a_stale_or_future_timestamp_fails_even_when_correctly_signed(skew: int) -> None:
    timestamp = NOW - skew
    assert not verify(SECRET, timestamp, BODY, sign(SECRET, timestamp, BODY), now=NOW)


@pytest.mark.parametrize("skew", [300, -300, 0])
def test_the_window_is_inclusive(skew: int) -> None:
    timestamp = NOW - skew
    assert verify(SECRET, timestamp, BODY, sign(SECRET, timestamp, BODY), now=NOW)


@pytest.mark.parametrize(
    "signature",
    ["", "sha256=", "sha256=zz", "SHA256=" + "0" * 64, "sha256=é" + "0" * 63, "\x00"],
)
def test_malformed_signatures_fail_without_raising(signature: str) -> None:
    assert not verify(SECRET, NOW, BODY, signature, now=NOW)


def test_the_hex_is_compared_exactly() -> None:
    good = sign(SECRET, NOW, BODY)
    assert not verify(SECRET, NOW, BODY, good.upper().replace("SHA256=", "sha256="), now=NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1800000000", 1_800_000_000),
        (None, None),
        ("", None),
        ("01800000000", None),
        ("-1", None),
        ("1.5", None),
        ("1800000000\n", None),
        (" 1800000000", None),
        ("١٢٣", None),  # Arabic-Indic digits: int() would take them, the scheme does not
        ("9" * 16, None),
    ],
)
def test_timestamps_must_be_canonical_decimal(text: str | None, expected: int | None) -> None:
    assert parse_timestamp(text) == expected


def test_signed_headers_carry_tenant_timestamp_and_signature() -> None:
    headers = signed_headers("hope-shelter", SECRET, BODY, now=NOW + 0.9)
    assert headers[signing.TENANT_HEADER] == "hope-shelter"
    assert headers[signing.TIMESTAMP_HEADER] == str(NOW)
    assert verify(SECRET, NOW, BODY, headers[signing.SIGNATURE_HEADER], now=NOW)


def _secret_of(tenant: str) -> bytes:
    if tenant != "hope-shelter":
        raise signing.Unauthorized("unknown_tenant")
    return SECRET


def test_headers_then_body_verify_a_good_request() -> None:
    headers = signed_headers("hope-shelter", SECRET, BODY, now=NOW)
    request = signing.check_headers(headers, _secret_of, now=NOW)
    assert request.tenant == "hope-shelter" and request.timestamp == NOW
    assert SECRET.decode() not in repr(request)
    request.check_body(BODY, now=NOW)  # does not raise


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({signing.TENANT_HEADER: None}, "missing_headers"),
        ({signing.SIGNATURE_HEADER: ""}, "missing_headers"),
        ({signing.TIMESTAMP_HEADER: None}, "missing_headers"),
        ({signing.TENANT_HEADER: "river-arts"}, "unknown_tenant"),
        ({signing.TIMESTAMP_HEADER: str(NOW - 301)}, "stale_or_bad_timestamp"),
        ({signing.TIMESTAMP_HEADER: "soon"}, "stale_or_bad_timestamp"),
    ],
)
def test_headers_that_cannot_be_from_the_tenant_are_refused_before_the_body(
    change: dict[str, str | None], reason: str
) -> None:
    headers: dict[str, str | None] = {**signed_headers("hope-shelter", SECRET, BODY, now=NOW)}
    headers.update(change)
    present = {k: v for k, v in headers.items() if v is not None}
    with pytest.raises(signing.Unauthorized) as caught:
        signing.check_headers(present, _secret_of, now=NOW)
    assert caught.value.reason == reason


def test_a_tampered_body_fails_the_second_half() -> None:
    headers = signed_headers("hope-shelter", SECRET, BODY, now=NOW)
    request = signing.check_headers(headers, _secret_of, now=NOW)
    with pytest.raises(signing.Unauthorized) as caught:
        request.check_body(BODY + b" ", now=NOW)
    assert caught.value.reason == "bad_signature"
