"""What can go wrong talking to Virtuous, as one small hierarchy the workers decide on.

::

    VirtuousError              any failed call; .status (None without an answer), .endpoint
     ├─ AuthError              401/403: the token is bad or expired; pause the tenant
     ├─ ThrottledError         429: .retry_after seconds; block the tenant that long
     ├─ RejectedError          400/409/422: .message, .model_state; the request is wrong
     │    └─ .already_submitted  the transactionId was already submitted: it is there already
     ├─ NotFoundError          404 (the body may be empty)
     ├─ TransientError         5xx, 408, connect errors, connect/pool timeouts: the request
     │                         did not take effect, or is safe to send again
     └─ AmbiguousOutcomeError  read/write timeout or connection dropped once the request was
                               on its way: it MAY have been applied; look before resending

Messages carry the endpoint label (a template, never an id), the status and Virtuous's own
reason; never a header, so never the token. :func:`error_for` maps one non-2xx answer onto
the hierarchy, reading Virtuous's error body tolerantly (JSON ``{"message", "modelState"}``,
plain text, or nothing).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx

from workers.virtuous.ratelimit import EPOCH_THRESHOLD, parse_rate_limit, parse_retry_after

# Virtuous's ways of saying a transactionId is already there.
_ALREADY = re.compile(r"already been submitted|already exists|already submitted|duplicate", re.I)
# Longest reason kept in an error message; Virtuous's reasons are short, pages are not.
MAX_MESSAGE_CHARS = 500
# Wait this long after a 429 that names neither a Retry-After nor a reset.
DEFAULT_RETRY_AFTER_SECONDS = 60.0
# Statuses that mean "this request is wrong": fix it, or quarantine what it carries.
_REJECTED = frozenset({400, 409, 422})
# Where a JSON error body keeps its reason and its per-field reasons (keys compared lowercased).
_MESSAGE_KEYS = ("message", "error_description", "error", "title", "detail")
_MODEL_STATE_KEYS = ("modelstate", "errors")


class VirtuousError(Exception):
    """A call to Virtuous failed. ``status`` is None when no answer came back."""

    def __init__(self, message: str, *, status: int | None = None, endpoint: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.endpoint = endpoint

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, status={self.status!r})"


class AuthError(VirtuousError):
    """401 (or 403): the tenant's token is bad, expired or lacks rights; pause the tenant."""


class ThrottledError(VirtuousError):
    """429: Virtuous's budget is spent; nothing was applied. Wait ``retry_after`` seconds."""

    def __init__(
        self, message: str, *, retry_after: float, status: int | None = 429, endpoint: str = ""
    ) -> None:
        super().__init__(message, status=status, endpoint=endpoint)
        self.retry_after = retry_after


class RejectedError(VirtuousError):
    """400: Virtuous refused the request as invalid; ``model_state`` maps fields to reasons."""

    def __init__(
        self,
        message: str,
        *,
        model_state: dict[str, list[str]] | None = None,
        status: int | None = 400,
        endpoint: str = "",
    ) -> None:
        self.message = message
        self.model_state = dict(model_state or {})
        super().__init__(describe(endpoint, status, message), status=status, endpoint=endpoint)

    @property
    def already_submitted(self) -> bool:
        """True when Virtuous says the transactionId was already submitted (the gift is there)."""
        texts = [self.message, *(m for msgs in self.model_state.values() for m in msgs)]
        return any(_ALREADY.search(text) for text in texts)


class NotFoundError(VirtuousError):
    """404: no such record (yet: a Transaction waits in the holding state until the import)."""


class TransientError(VirtuousError):
    """5xx, 408 or a failure before the request left: sending it again is safe."""


class AmbiguousOutcomeError(VirtuousError):
    """The request was (maybe partly) sent and no answer came: it may have been applied."""


def describe(endpoint: str, status: int | None, reason: str) -> str:
    """The one message format: ``"POST /api/Gift -> 400: reason"``, the reason cut short."""
    if len(reason) > MAX_MESSAGE_CHARS:
        reason = reason[:MAX_MESSAGE_CHARS] + "..."
    head = f"{endpoint} -> {status}" if status is not None else f"{endpoint} -> no answer"
    return f"{head}: {reason}" if reason else head


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
