"""Logging: structlog JSON lines, one configuration entry point, and a redaction processor.

Every line of every role is one JSON object, whoever wrote it: giftsync's structlog loggers and
the standard library loggers of dramatiq, httpx and uvicorn all end at one root handler whose
formatter is structlog's ``ProcessorFormatter``. Context (tenant, message id, record id, batch
id, attempt) is bound by the dramatiq middleware, so actors log only what happened, and
dramatiq's own lines about a message carry it too. :func:`redact` runs last before
rendering and removes any value under a key that names personal data or a secret, so a
careless ``log.info(..., email=owner.email)`` still never reaches the output.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any

import structlog
from structlog.typing import Processor

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


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Write to whatever ``sys.stderr`` is at the moment of each line.

    dramatiq points a worker process's ``sys.stderr`` at a pipe its main process reads, so a
    handler holding the stream it was created with would bypass that pipe and interleave.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        """The stream is always the current ``sys.stderr``; nothing to store."""


def _level_of(level: str) -> int:
    numeric = logging.getLevelName(level.upper())
    return numeric if isinstance(numeric, int) else logging.INFO


def _shared_processors() -> list[Processor]:
    """What every line gets, whether structlog or a standard library logger wrote it."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def json_formatter() -> logging.Formatter:
    """The formatter turning any ``LogRecord`` (giftsync's, dramatiq's, httpx's, uvicorn's) into
    one JSON object, with the bound context (tenant, message id) and secrets redacted."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
    )


def configure_logging(level: str = "INFO") -> None:
    """Make every log line of this process one JSON object on stderr, at ``level``.

    The root logger's handlers are replaced rather than added to (``basicConfig`` would do
    nothing once dramatiq has configured logging), so the standard library loggers of dramatiq,
    httpx and uvicorn go through the same structlog formatter as giftsync's own lines. Safe to
    call more than once.
    """
    numeric = _level_of(level)
    handler = _StderrHandler()
    handler.setFormatter(json_formatter())
    handler.addFilter(HideMessageBodies())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # Library loggers inherit the root level unless one was set on them: unset it, so
    # GIFTSYNC_LOG_LEVEL alone decides.
    for name in ("dramatiq", "httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.access"):
        lib = logging.getLogger(name)
        lib.setLevel(logging.NOTSET)
        lib.handlers.clear()
        lib.propagate = True
    # httpcore's DEBUG lines describe every socket read: noise even at DEBUG.
    logging.getLogger("httpcore").setLevel(max(numeric, logging.INFO))
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )


def _log_uncaught(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger("giftsync").critical("uncaught_exception", exc_info=(kind, value, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or isinstance(args.exc_value, SystemExit):
        return
    structlog.get_logger("giftsync").error(
        "uncaught_exception_in_thread",
        thread=getattr(args.thread, "name", None),
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
