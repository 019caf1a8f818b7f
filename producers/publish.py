"""``publish()``: how platform code hands giftsync a change.

Each event is validated against the change-event contract at the door, so nothing
half-formed reaches a queue. Valid events are enqueued in chunks (one message carries up to
``CHUNK_SIZE`` events, which is what lets a backfill of 200,000 events through in seconds);
each message is stamped with the publish time, for the publish-to-submission latency metric.

Real-time tenants' events go on the ``changes`` queue, batch-mode tenants' on
``changes_bulk``, which workers take after real-time work: one tenant's backfill then waits
behind the others' gifts instead of in front of them. A message carries events of one mode.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import dramatiq

from giftsync.settings import get_settings
from mapping.errors import EventValidationError, FieldError
from mapping.errors import InvalidEvents as InvalidEvents
from mapping.routing import check_change
from mapping.tenant import TenantSettings
from workers.queue import messages

# Events per message on a changes queue.
CHUNK_SIZE = 100

__all__ = [
    "CHUNK_SIZE",
    "InvalidEvents",
    "as_json",
    "decode_json",
    "enqueue_valid",
    "publish",
    "publish_many",
    "validate",
]


def validate(event: object) -> None:
    """Raise EventValidationError listing every problem of ``event``: the same rules the
    worker applies (:func:`mapping.routing.check_change`)."""
    check_change(event, get_settings().tenants)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A signature covers the raw bytes; if a key could appear twice, what was signed and
    # what is read (the last one) could differ between two readers of the same text.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


# One decoder for every call: json.loads builds a new one per call when given options.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_refuse_duplicates)
# Nesting far deeper than any event or delivery: refused, so no later recursive walk (the
# queue's JSON encoder, a worker) comes near the interpreter's recursion limit.
MAX_DEPTH = 512


def _depth_ok(value: object) -> bool:
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_DEPTH:
            return False
        if isinstance(item, dict):
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
    return True


def decode_json(raw: bytes) -> object:
    """Decode one JSON text from the outside; a bad one raises EventValidationError at ``$``.

    Strict where :func:`json.loads` is lenient: UTF-8 only (no guessing UTF-16), no NaN or
    Infinity, no key twice in one object, and at most ``MAX_DEPTH`` levels of nesting.
    """
    try:
        value = _DECODER.decode(raw.decode("utf-8"))
        if not _depth_ok(value):
            raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
        return value
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text: {exc.reason} at byte {exc.start}"
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    except RecursionError:
        reason = "invalid JSON: nested too deeply"
    except ValueError as exc:
        reason = f"invalid JSON: {exc}"
    raise EventValidationError([FieldError("$", reason)])


def _is_bulk(event: Mapping[str, Any], tenants: Mapping[str, TenantSettings]) -> bool:
    """Whether ``event`` belongs on the bulk queue: its tenant is in batch mode."""
    name = event.get("tenant")
    tenant = tenants.get(name) if isinstance(name, str) else None
    return tenant is not None and tenant.mode == "batch"


def _enqueue(events: list[Any], bulk: bool, broker: dramatiq.Broker | None = None) -> None:
    build = messages.map_bulk_changes if bulk else messages.map_changes
    messages.enqueue(build(events, int(time.time() * 1000)), broker)


def as_json(event: Mapping[str, Any]) -> dict[str, Any]:
    """A valid event as the contract's JSON has it, ready for the queue.

    The contract takes a ``datetime`` (``version``, ``record.created_at``) or a ``date``
    (``record.start_date``) handed over in Python as well as the ISO 8601 text; the queue
    carries JSON, so those become that text here. A valid event has no other non-JSON value.
    """
    out = dict(event)
    if isinstance(out.get("version"), date):
        out["version"] = out["version"].isoformat()
    record = out.get("record")
    if isinstance(record, Mapping):
        moments = {k: v.isoformat() for k, v in record.items() if isinstance(v, date)}
        if moments:
            out["record"] = {**record, **moments}
    return out


def publish(event: Mapping[str, Any]) -> None:
    """Validate one change event and enqueue it; an invalid event raises and enqueues nothing."""
    validate(event)
    _enqueue([as_json(event)], _is_bulk(event, get_settings().tenants))


def enqueue_valid(
    events: Iterable[Mapping[str, Any]],
    *,
    chunk_size: int = CHUNK_SIZE,
    broker: dramatiq.Broker | None = None,
    tenants: Mapping[str, TenantSettings] | None = None,
) -> int:
    """Enqueue events that already passed validation, ``chunk_size`` per message.

    Each event goes to its tenant's mode's queue (``tenants``: the process's settings by
    default). Consumes ``events`` lazily, holding at most one chunk per queue, so a generator
    over a huge file streams through. Returns how many events were enqueued.
    """
    known = get_settings().tenants if tenants is None else tenants
    # Chunks being filled, by whether they go to the bulk queue.
    chunks: dict[bool, list[Any]] = {False: [], True: []}
    accepted = 0
    for event in events:
        bulk = _is_bulk(event, known)
        chunk = chunks[bulk]
        chunk.append(event)
        if len(chunk) >= chunk_size:
            _enqueue(chunk, bulk, broker)
            accepted += len(chunk)
            chunks[bulk] = []
    for bulk, chunk in chunks.items():
        if chunk:
            _enqueue(chunk, bulk, broker)
            accepted += len(chunk)
    return accepted


def publish_many(events: Iterable[Mapping[str, Any]], *, chunk_size: int = CHUNK_SIZE) -> int:
    """Validate and enqueue many events; returns how many were enqueued.

    Every valid event is enqueued even when others are invalid; then, if any were invalid,
    :class:`InvalidEvents` is raised naming each by index with all its problems.
    """
    errors: dict[int, list[FieldError]] = {}

    def valid() -> Iterable[Mapping[str, Any]]:
        for index, event in enumerate(events):
            try:
                validate(event)
            except EventValidationError as exc:
                errors[index] = exc.errors
                continue
            yield as_json(event)

    accepted = enqueue_valid(valid(), chunk_size=chunk_size)
    if errors:
        raise InvalidEvents(errors, accepted)
    return accepted
