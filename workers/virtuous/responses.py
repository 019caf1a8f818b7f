"""Reading Virtuous's non-2xx answers: which error of :mod:`workers.errors` each one means.

Virtuous's error body is read tolerantly: JSON ``{"message", "modelState"}``, plain text, or
nothing at all.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from workers.errors import (
    AuthError,
    NotFoundError,
    RejectedError,
    ThrottledError,
    TransientError,
    VirtuousError,
    describe,
)
from workers.virtuous.ratelimit import EPOCH_THRESHOLD, parse_rate_limit, parse_retry_after

# Wait this long after a 429 that names neither a Retry-After nor a reset.
DEFAULT_RETRY_AFTER_SECONDS = 60.0
# Statuses that mean "this request is wrong": fix it, or quarantine what it carries.
_REJECTED = frozenset({400, 409, 422})
# Where a JSON error body keeps its reason and its per-field reasons (keys compared lowercased).
_MESSAGE_KEYS = ("message", "error_description", "error", "title", "detail")
_MODEL_STATE_KEYS = ("modelstate", "errors")


def _as_messages(value: Any) -> list[str]:
    if isinstance(value, list):
        return [m if isinstance(m, str) else json.dumps(m) for m in value]
    return [value if isinstance(value, str) else json.dumps(value)]


def _error_body(response: httpx.Response) -> tuple[str, dict[str, list[str]]]:
    """Virtuous's reason and model state, from JSON, plain text or nothing at all."""
    text = response.text.strip()
    try:
        data: Any = json.loads(text) if text else None
    except ValueError:
        data, message = None, text
    else:
        message = data if isinstance(data, str) else ""
    model_state: dict[str, list[str]] = {}
    if isinstance(data, dict):
        lower = {str(k).lower(): v for k, v in data.items()}
        message = next((lower[k] for k in _MESSAGE_KEYS if isinstance(lower.get(k), str)), "")
        state: dict[Any, Any] = next(
            (lower[k] for k in _MODEL_STATE_KEYS if isinstance(lower.get(k), dict)), {}
        )
        model_state = {str(field): _as_messages(msgs) for field, msgs in state.items()}
        if not message and model_state:
            message = "; ".join(f"{f}: {' '.join(m)}" for f, m in model_state.items())
    elif isinstance(data, list):
        message = "; ".join(_as_messages(data))
    return message or response.reason_phrase, model_state


def _retry_after(response: httpx.Response) -> float:
    wait = parse_retry_after(response.headers, now=time.time())
    if wait is None:
        # No Retry-After: the window's reset says as much, when it is given in seconds.
        reset = parse_rate_limit(response.headers).reset_seconds
        if reset is not None and reset < EPOCH_THRESHOLD:
            wait = reset
    return DEFAULT_RETRY_AFTER_SECONDS if wait is None else wait


def error_for(endpoint: str, response: httpx.Response) -> VirtuousError:
    """The error a non-2xx answer means, labelled with the endpoint template."""
    status = response.status_code
    message, model_state = _error_body(response)
    if status in _REJECTED:
        return RejectedError(message, model_state=model_state, status=status, endpoint=endpoint)
    text = describe(endpoint, status, message)
    if status == 429:
        return ThrottledError(
            text, retry_after=_retry_after(response), status=status, endpoint=endpoint
        )
    if status in (401, 403):
        return AuthError(text, status=status, endpoint=endpoint)
    if status == 404:
        return NotFoundError(text, status=status, endpoint=endpoint)
    if status == 408 or status >= 500:
        return TransientError(text, status=status, endpoint=endpoint)
    return VirtuousError(text, status=status, endpoint=endpoint)
