"""The change-event contract: what a producer sends when a donation changes.

One event is ``{"tenant", "kind", "version", "record"}``; ``kind`` picks the record's shape
(:class:`Transaction` or :class:`ScheduledDonation`, defined in :mod:`mapping.records` and
re-exported here). :class:`ChangeEvent` is the typed form and the source of the JSON Schema in
``mapping/schema/change-event.schema.json``.

Invariant: an event that :func:`parse_event` returns is safe to map. Every amount is integer
cents in range, allocations balance to their record's amount, every moment carries an offset,
and text carries no control characters. An event that fails gets *every* problem at once, each
named by its dotted path (``record.allocations.1.amount``) with a reason.

Regenerate the committed schema after changing a model (a unit test fails until you do)::

    .venv/bin/python -c "import mapping.events as e; print(e.change_event_schema_text(), end='')" \\
        > mapping/schema/change-event.schema.json
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StrictStr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic_core import PydanticCustomError

from mapping.errors import EventValidationError as EventValidationError
from mapping.errors import FieldError as FieldError
from mapping.fields import Moment
from mapping.records import (
    Address,
    Allocation,
    Campaign,
    Fund,
    Owner,
    ScheduledDonation,
    ScheduledDonationRef,
    Transaction,
)

__all__ = [
    "SCHEMA_FILE",
    "Address",
    "Allocation",
    "Campaign",
    "ChangeEvent",
    "EventValidationError",
    "FieldError",
    "Fund",
    "Owner",
    "ScheduledDonation",
    "ScheduledDonationRef",
    "Transaction",
    "change_event_json_schema",
    "change_event_schema_text",
    "is_batch_id",
    "parse_event",
    "parse_event_json",
    "real_gift_id",
]

# Where the committed JSON Schema lives (a path, not a read: mapping/ does no I/O).
SCHEMA_FILE = Path(__file__).with_name("schema") / "change-event.schema.json"

_TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_BATCH_PREFIX = "btch_"


def _check_tenant(value: str) -> str:
    if not _TENANT.fullmatch(value):
        raise PydanticCustomError(
            "tenant_name", "must be a tenant name: lowercase letters, digits, '-' and '_'"
        )
    return value


_RECORD_MODELS: dict[str, type[Transaction] | type[ScheduledDonation] | type[Owner]] = {
    "transaction": Transaction,
    "scheduled_donation": ScheduledDonation,
    # A donor change without a gift: the record is the donor itself (the owner shape).
    "donor": Owner,
}


class ChangeEvent(BaseModel):
    """One change to one record, as a producer sends it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    tenant: Annotated[StrictStr, AfterValidator(_check_tenant)]
    kind: Literal["transaction", "scheduled_donation", "donor"]
    version: Moment
    record: Transaction | ScheduledDonation | Owner

    @field_validator("record", mode="wrap")
    @classmethod
    def _record_for_kind(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        # The record's shape follows the sibling "kind", so errors read record.owner.email
        # rather than pydantic's record.Transaction.owner.email union trail.
        model = _RECORD_MODELS.get(info.data.get("kind", ""))
        if model is None:
            return value  # kind itself failed and is reported; there is no shape to check
        if isinstance(value, BaseModel) and not isinstance(value, model):
            raise PydanticCustomError(
                "record_kind", "is not a {kind} record", {"kind": info.data["kind"]}
            )
        return model.model_validate(value)


_REASONS = {"missing": "is required", "extra_forbidden": "is not a field of the contract"}


def _field_errors(exc: ValidationError) -> list[FieldError]:
    found: list[FieldError] = []
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"]) or "$"
        found.append(FieldError(path, _REASONS.get(error["type"], error["msg"])))
    return list(dict.fromkeys(found))


def parse_event(data: object, *, tenants: Collection[str] | None = None) -> ChangeEvent:
    """Validate an already-decoded event; raise EventValidationError listing every problem.

    With ``tenants``, a tenant not in it is reported at path ``tenant``.
    """
    if not isinstance(data, dict):
        raise EventValidationError([FieldError("$", f"must be a JSON object, got {_kind(data)}")])
    errors: list[FieldError] = []
    event: ChangeEvent | None = None
    try:
        event = ChangeEvent.model_validate(data)
    except ValidationError as exc:
        errors = _field_errors(exc)
    tenant = data.get("tenant")
    unknown = tenants is not None and isinstance(tenant, str) and tenant not in tenants
    if unknown and not any(error.path == "tenant" for error in errors):
        errors.insert(0, FieldError("tenant", f"unknown tenant {tenant!r}"))
    if errors or event is None:
        raise EventValidationError(errors)
    return event


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def parse_event_json(raw: str | bytes, *, tenants: Collection[str] | None = None) -> ChangeEvent:
    """Decode one JSON text and validate it as :func:`parse_event` does."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        data = json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise EventValidationError([FieldError("$", f"not UTF-8 text: {exc.reason}")]) from None
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        raise EventValidationError([FieldError("$", reason)]) from None
    except ValueError as exc:
        raise EventValidationError([FieldError("$", f"invalid JSON: {exc}")]) from None
    return parse_event(data, tenants=tenants)


def _kind(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    fallback = "a number" if isinstance(value, int | float) else type(value).__name__
    return names.get(type(value), fallback)


def real_gift_id(virtuous_id: int | str | None) -> int | None:
    """The real Virtuous Gift id in a correlation value, or None (``btch_...``, null, other)."""
    if isinstance(virtuous_id, bool):
        return None
    if isinstance(virtuous_id, int):
        return virtuous_id if virtuous_id > 0 else None
    if isinstance(virtuous_id, str) and virtuous_id.isascii() and virtuous_id.isdigit():
        return int(virtuous_id) or None
    return None


def is_batch_id(virtuous_id: int | str | None) -> bool:
    """Whether a correlation value is a synthetic batch id (``btch_...``), not a Gift id."""
    return isinstance(virtuous_id, str) and virtuous_id.startswith(_BATCH_PREFIX)


def change_event_json_schema() -> dict[str, Any]:
    """The JSON Schema of a change event, generated from :class:`ChangeEvent`.

    pydantic states ``record`` as "either shape"; the ``allOf`` added here ties the shape to
    ``kind``, as :func:`parse_event` does.
    """
    schema = ChangeEvent.model_json_schema()
    schema["allOf"] = [
        {
            "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
            "then": {"properties": {"record": {"$ref": f"#/$defs/{model.__name__}"}}},
        }
        for kind, model in _RECORD_MODELS.items()
    ]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def change_event_schema_text() -> str:
    """The schema as the committed file holds it: 2-space JSON plus a final newline."""
    return json.dumps(change_event_json_schema(), indent=2, ensure_ascii=False) + "\n"
