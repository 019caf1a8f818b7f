"""Logging: structlog JSON lines, one configuration entry point, and a redaction processor.

Every line is a JSON object. Context (tenant, record id, batch id, attempt) is bound by the
dramatiq middleware, so actors log only what happened. :func:`redact` runs last before
rendering and removes any value under a key that names personal data or a secret, so a
careless ``log.info(..., email=owner.email)`` still never reaches the output.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Keys whose values never reach a log line, whatever their nesting.
SENSITIVE_KEYS = frozenset(
    {
        "token",
        "authorization",
        "secret",
        "password",
        "email",
        "emailaddress",
        "phone",
        "phonenumber",
        "address",
        "address1",
        "address2",
        "line1",
        "street",
        "contact",
        "owner",
        "source",
        "body",
    }
)
REDACTED = "[redacted]"


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: (REDACTED if key.lower() in SENSITIVE_KEYS else _scrub(item))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(item) for item in value]
    return value


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace values under sensitive keys with a marker."""
    for key in list(event_dict):
        if key.lower() in SENSITIVE_KEYS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


class HideMessageBodies(logging.Filter):
    """Keep message arguments out of other libraries' log lines.

    dramatiq logs a failed message as ``actor(kwargs...)``: for ``map_changes`` that is the
    donors' names, emails and addresses. This shows the actor and the message id instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_describe_message(arg) for arg in record.args)
        return True


def _describe_message(arg: Any) -> Any:
    actor = getattr(arg, "actor_name", None)
    message_id = getattr(arg, "message_id", None)
    if isinstance(actor, str) and isinstance(message_id, str):
        return f"{actor}[{message_id}]"
    return arg


def configure_logging(level: str = "INFO") -> None:
    """Send structlog JSON lines to stderr at ``level``; call once per process."""
    numeric = logging.getLevelName(level.upper())
    logging.basicConfig(stream=sys.stderr, level=numeric, format="%(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, HideMessageBodies) for f in handler.filters):
            handler.addFilter(HideMessageBodies())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
