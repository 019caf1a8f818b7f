"""Every exception the workers raise or decide on, in one module.

Talking to Virtuous (raised by :mod:`workers.virtuous.client`, which maps each non-2xx answer
onto the tree in :mod:`workers.virtuous.responses`)::

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
reason; never a header, so never the token.

Waiting, not failing (the retry middleware re-enqueues the message with the delay)::

    Throttled                  .delay_seconds, .reason: limiter, 429, paused tenant, busy record
    ContactPending             .donor_id: the donor's Contact is still in Virtuous's holding
                               state; the record is held until its id is learned

Redis, from the store (a connection error to redis-py, so retried like one)::

    redis.ConnectionError
     └─ NotReplicated          a write reached the primary but no replica confirmed it in time

Bad input, from the pure layer (:mod:`mapping.errors`, which imports nothing of the project)::

    ValueError
     ├─ MappingError           .path, .reason: a rule of the seeds cannot map this record
     ├─ EventValidationError   .errors: a change event breaks the contract (each FieldError)
     ├─ SettingsError          a tenants file or env var is wrong
     └─ InvalidEvents          some events of ``publish_many`` were invalid; the rest went on

Outside the workers, each beside the one module that raises it and never seen by a worker:
``producers.signing.Unauthorized`` (a signed request refused; producers import nothing of the
workers but the message builders), ``giftsync.waiting.WaitTimeout`` (a ``wait_for`` deadline)
and ``giftsync.embedded_redis.EmbeddedRedisError`` (the demo's redis-server did not start).
"""

from __future__ import annotations

import re

import dramatiq
import redis

from mapping.errors import EventValidationError, InvalidEvents, MappingError, SettingsError

__all__ = [
    "AmbiguousOutcomeError",
    "AuthError",
    "ContactPending",
    "EventValidationError",
    "InvalidEvents",
    "MappingError",
    "NotFoundError",
    "NotReplicated",
    "RejectedError",
    "SettingsError",
    "Throttled",
    "ThrottledError",
    "TransientError",
    "VirtuousError",
    "describe",
    "refusal_reason",
]

# Virtuous's ways of saying a transactionId is already there.
_ALREADY = re.compile(r"already been submitted|already exists|already submitted|duplicate", re.I)
# Longest reason kept in an error message; Virtuous's reasons are short, pages are not.
MAX_MESSAGE_CHARS = 500


class NotReplicated(redis.ConnectionError):
    """A write reached the primary but no replica confirmed it in time: not safe to acknowledge."""


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


def refusal_reason(exc: VirtuousError) -> str:
    """Why Virtuous refused a record, in one line: the one wording every quarantine uses."""
    if isinstance(exc, RejectedError):
        details = "; ".join(
            f"{field}: {', '.join(msgs)}" for field, msgs in exc.model_state.items()
        )
        message = exc.message
        text = f"{message} ({details})" if details and message else details or message
        return (text or "rejected by Virtuous (400)")[:MAX_MESSAGE_CHARS]
    if isinstance(exc, NotFoundError):
        return "the record this change points at no longer exists in Virtuous (404)"
    return str(exc)[:MAX_MESSAGE_CHARS]


def describe(endpoint: str, status: int | None, reason: str) -> str:
    """The one message format: ``"POST /api/Gift -> 400: reason"``, the reason cut short."""
    if len(reason) > MAX_MESSAGE_CHARS:
        reason = reason[:MAX_MESSAGE_CHARS] + "..."
    head = f"{endpoint} -> {status}" if status is not None else f"{endpoint} -> no answer"
    return f"{head}: {reason}" if reason else head


class Throttled(dramatiq.errors.Retry):
    """Raised by an actor that must wait: the message is re-enqueued after ``delay_seconds``.

    A ``dramatiq.Retry`` so that dramatiq's worker does not log it as a failure ("unhandled
    exception" at ERROR, with a traceback): a throttle is not an error. dramatiq's own Retries
    middleware, the only other reader of ``Retry``, is replaced by giftsync's
    (:mod:`workers.queue.retries`).
    """

    def __init__(
        self, delay_seconds: float, reason: str, *, ticket_at: float | None = None
    ) -> None:
        super().__init__(f"throttled for {delay_seconds:.3f}s: {reason}")
        self.delay_seconds = delay_seconds
        self.reason = reason
        # The limiter's wake-up ticket (Redis clock) the message holds when it comes back.
        self.ticket_at = ticket_at


class ContactPending(Exception):
    """The donor's Contact Transaction is still in Virtuous's holding state: no id yet."""

    def __init__(self, donor_id: str) -> None:
        super().__init__(f"donor {donor_id}: Contact Transaction still pending in Virtuous")
        self.donor_id = donor_id
