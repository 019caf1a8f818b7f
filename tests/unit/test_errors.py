"""The Virtuous error hierarchy: shape, messages, and reading answers into errors."""

from __future__ import annotations

import httpx
import pytest

from workers import errors
from workers.errors import (
    AmbiguousOutcomeError,
    AuthError,
    NotFoundError,
    RejectedError,
    ThrottledError,
    TransientError,
    VirtuousError,
)
from workers.virtuous.responses import error_for


@pytest.mark.parametrize(
    "cls",
    [
        AuthError,
        ThrottledError,
        RejectedError,
        NotFoundError,
        TransientError,
        AmbiguousOutcomeError,
    ],
)
def test_every_error_is_a_virtuous_error(cls: type[VirtuousError]) -> None:
    assert issubclass(cls, VirtuousError)


def test_ambiguous_and_transient_are_distinct() -> None:
    assert not issubclass(AmbiguousOutcomeError, TransientError)
    assert not issubclass(TransientError, AmbiguousOutcomeError)


def test_rejected_keeps_message_and_model_state() -> None:
    err = RejectedError("bad", model_state={"amount": ["must be positive"]}, endpoint="POST /x")
    assert (err.message, err.model_state, err.status) == (
        "bad",
        {"amount": ["must be positive"]},
        400,
    )
    assert str(err) == "POST /x -> 400: bad"
    assert repr(err) == "RejectedError('POST /x -> 400: bad', status=400)"
    assert not err.already_submitted
    assert RejectedError("x", model_state={"transactionId": ["DUPLICATE"]}).already_submitted


def test_throttled_has_retry_after() -> None:
    err = ThrottledError("slow down", retry_after=2.5)
    assert (err.retry_after, err.status) == (2.5, 429)


def test_long_reasons_are_cut() -> None:
    response = httpx.Response(500, content=b"x" * 10_000)
    assert len(str(error_for("GET /api/Gift/{id}", response))) < errors.MAX_MESSAGE_CHARS + 50


def test_error_for_reads_an_errors_object_like_problem_details() -> None:
    body = {
        "title": "One or more validation errors occurred.",
        "errors": {"giftDate": ["Required"]},
    }
    err = error_for("POST /api/Gift", httpx.Response(422, json=body))
    assert isinstance(err, RejectedError)
    assert err.message == "One or more validation errors occurred."
    assert err.model_state == {"giftDate": ["Required"]}
