"""Request validation with the live API's 400 body: ``{"message", "modelState": {path: [...]}}``.

Every check appends to a ``Problems`` under a field path (``amount``,
``transactions[3].designations[0].projectId``) so a client can see which entry of a batch is at
fault and bisect. Money is parsed as ``Decimal`` (JSON numbers arrive as Decimal too: the body
is parsed with ``parse_float=Decimal``), so "designations sum to the amount" is exact.

Both designation shapes are accepted wherever a gift is: the batch path's ``designations``
[{id | projectId | projectCode | code | name, amountDesignated}] and the real-time
``giftDesignations`` [{projectId, amount}]. In an entry that names no projectId or projectCode,
``id`` is the project id (seed 002's batch shape, Virtuous's own samples); otherwise ``id`` is
the designation's own id. A Gift Transaction needs no designation (Virtuous's own sample sends
none); when it has some, they sum to its amount.

Gift types are read through :mod:`sandbox.gifttypes` (the samples' spellings and the returned
names both bind).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.gifttypes import gift_type_key
from sandbox.matching import ContactInput, lower_keys
from sandbox.timefmt import parse_gift_date

_MONEY = re.compile(r"^-?\d+(\.\d+)?$")
_CENT = Decimal("0.01")
_STATES = {
    "add": "Add",
    "added": "Add",
    "update": "Update",
    "updated": "Update",
    "delete": "Delete",
    "deleted": "Delete",
}


class ValidationFailed(Exception):
    """A 400: ``message`` plus ``model_state`` (field path -> reasons)."""

    def __init__(self, message: str, model_state: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.model_state = model_state or {}

    def body(self) -> dict[str, Any]:
        return {"message": self.message, "modelState": self.model_state}


class Problems:
    """Collects reasons per field path; ``check()`` raises them all at once."""

    def __init__(self) -> None:
        self.state: dict[str, list[str]] = {}

    def add(self, path: str, reason: str) -> None:
        self.state.setdefault(path, []).append(reason)

    def __bool__(self) -> bool:
        return bool(self.state)

    def check(self) -> None:
        if self.state:
            reasons = [r for rs in self.state.values() for r in rs]
            message = reasons[0] if len(reasons) == 1 else "The request is invalid."
            raise ValidationFailed(message, self.state)


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body, or a 400 naming why not."""
    if not raw.strip():
        raise ValidationFailed("The request body is empty.", {"body": ["A JSON body is required."]})
    try:
        body = json.loads(raw, parse_float=Decimal)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationFailed(
            "The request is invalid.", {"body": [f"Malformed JSON: {exc}"]}
        ) from exc
    if not isinstance(body, dict):
        raise ValidationFailed("The request is invalid.", {"body": ["Expected a JSON object."]})
    return body


@dataclass
class Catalog:
    """What one organisation knows exists: projects, segments, gift types, contacts."""

    projects: Mapping[int, str]
    project_codes: Mapping[str, int]
    segments: Mapping[int, str]
    segment_codes: Mapping[str, int]
    gift_types: Mapping[str, str]
    contact_ids: Container[int]
    recurring_ids: Container[int]
    # Project name (lower case) -> id: designations may name their project.
    project_names: Mapping[str, int] = field(default_factory=dict)


@functools.lru_cache(maxsize=4096)
def _money_text(value: str) -> Decimal | None:
    """Amounts repeat a lot in a batch: parse each spelling once."""
    text = value.strip()
    return Decimal(text) if _MONEY.match(text) else None


def parse_money(
    value: Any, path: str, problems: Problems, negative: bool = False
) -> Decimal | None:
    """A money amount from a string or number; at most two decimals."""
    if isinstance(value, bool) or value is None:
        problems.add(
            path,
            f"The {path.rsplit('.', 1)[-1]} field is required."
            if value is None
            else "Must be a number or a numeric string.",
        )
        return None
    if isinstance(value, int | Decimal):
        amount = Decimal(value)
    elif isinstance(value, float):
        amount = Decimal(str(value))
    elif isinstance(value, str) and (parsed := _money_text(value)) is not None:
        amount = parsed
    else:
        problems.add(path, f"'{value}' is not a valid amount.")
        return None
    try:
        if not amount.is_finite() or amount != amount.quantize(_CENT):
            problems.add(path, f"'{value}' has more than two decimal places.")
            return None
    except InvalidOperation:
        problems.add(path, f"'{value}' is not a valid amount.")
        return None
    if amount < 0 and not negative:
        problems.add(path, "Must not be negative.")
        return None
    return amount.quantize(_CENT)


def parse_int(value: Any, path: str, problems: Problems) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    problems.add(path, f"'{value}' is not a valid integer.")
    return None


def parse_bool(value: Any, path: str, problems: Problems, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    problems.add(path, f"'{value}' is not a valid boolean.")
    return default


def parse_date(value: Any, path: str, problems: Problems) -> str | None:
    if value is None or value == "":
        problems.add(path, f"The {path.rsplit('.', 1)[-1]} field is required.")
        return None
    parsed = parse_gift_date(value) if isinstance(value, str) else None
    if parsed is None:
        problems.add(path, f"'{value}' is not a valid date.")
    return parsed


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


@dataclass
class DesignationInput:
    """One designation entry as sent: a project, an amount, and a diff-protocol state."""

    state: str | None
    designation_id: int | None
    project_id: int | None
    amount: Decimal | None


def parse_designations(
    items: Any, path: str, problems: Problems, catalog: Catalog, negative: bool = False
) -> list[DesignationInput]:
    """Parse and check each entry: a known project and an amount (Delete entries need an id)."""
    if items is None:
        return []
    if not isinstance(items, list):
        problems.add(path, "Must be a list of designations.")
        return []
    out = []
    for i, item in enumerate(items):
        here = f"{path}[{i}]"
        if not isinstance(item, Mapping):
            problems.add(here, "Must be an object.")
            continue
        low = lower_keys(item)
        state = _text(low.get("state"))
        if state is not None:
            # virtuous-ts spells the diff states Added/Updated/Deleted (shared/gift-state.ts).
            state = _STATES.get(state.strip().lower())
            if state is None:
                problems.add(f"{here}.state", f"'{low['state']}' is not Add, Delete or Update.")
                continue
        has_project = any(
            low.get(k) is not None for k in ("projectid", "projectcode", "externalaccountingcode")
        )
        designation_id = (
            parse_int(low.get("id"), f"{here}.id", problems)
            if has_project or state in ("Delete", "Update")
            else None
        )
        if state == "Delete":
            if designation_id is None:
                problems.add(f"{here}.id", "A designation marked Delete needs its id.")
            out.append(DesignationInput("Delete", designation_id, None, None))
            continue
        project_id = _project(low, here, problems, catalog)
        raw_amount = low.get("amountdesignated", low.get("amount"))
        amount = (
            parse_money(raw_amount, f"{here}.amountDesignated", problems, negative)
            if raw_amount is not None
            else None
        )
        if raw_amount is None:
            problems.add(f"{here}.amountDesignated", "The amountDesignated field is required.")
        out.append(DesignationInput(state, designation_id, project_id, amount))
    return out


def _project(low: dict[str, Any], here: str, problems: Problems, catalog: Catalog) -> int | None:
    """The project an entry names: by projectId, projectCode, externalAccountingCode, ``id``
    (when no project code is named), ``code``, or else ``name``."""
    project_code = _text(low.get("projectcode") or low.get("externalaccountingcode"))
    code = project_code or _text(low.get("code"))
    raw_id = low.get("projectid")
    if raw_id is None and project_code is None:
        raw_id = low.get("id")
    if raw_id is not None:
        project_id = parse_int(raw_id, f"{here}.projectId", problems)
        if project_id is None:
            return None
        if project_id not in catalog.projects:
            problems.add(f"{here}.projectId", f"Project {project_id} does not exist.")
            return None
        if code is not None and catalog.projects[project_id].lower() != code.lower():
            problems.add(
                f"{here}.projectCode",
                f"Project {project_id} has code '{catalog.projects[project_id]}', not '{code}'.",
            )
        return project_id
    if code is not None:
        found = catalog.project_codes.get(code.lower())
        if found is None:
            problems.add(f"{here}.projectCode", f"No project has the code '{code}'.")
        return found
    name = _text(low.get("name"))
    if name is not None:
        found = catalog.project_names.get(name.strip().lower())
        if found is None:
            problems.add(f"{here}.name", f"No project has the name '{name}'.")
        return found
    problems.add(f"{here}.projectId", "A designation needs a projectId, a code or a name.")
    return None


def check_sum(
    designations: list[dict[str, Any]],
    amount: Decimal | None,
    path: str,
    problems: Problems,
    required: bool = True,
) -> None:
    """Designation amounts must sum exactly to the gift amount; ``required``: there must be one."""
    if not designations:
        if required:
            problems.add(path, "At least one designation is required.")
        return
    if amount is None or any(d["amountDesignated"] is None for d in designations):
        return
    total = sum((d["amountDesignated"] for d in designations), Decimal("0.00"))
    if total != amount:
        problems.add(path, f"Designation amounts ({total}) must sum to the gift amount ({amount}).")


def plain_designations(inputs: list[DesignationInput], catalog: Catalog) -> list[dict[str, Any]]:
    """Entries without a Delete marker, as stored designations (ids are given on save)."""
    return [
        {
            "id": None,
            "projectId": d.project_id,
            "projectCode": catalog.projects.get(d.project_id or -1),
            "amountDesignated": d.amount,
        }
        for d in inputs
        if d.state != "Delete"
    ]


@dataclass
class PendingGift:
    """A validated Gift Transaction waiting for the nightly batch or the Import Tool."""

    ref: tuple[str, str] | None
    fields: dict[str, Any]
    contact: ContactInput | None


def gift_fields(
    body: Mapping[str, Any],
    prefix: str,
    problems: Problems,
    catalog: Catalog,
    negative: bool = False,
    lowered: bool = False,
) -> tuple[dict[str, Any], list[DesignationInput], str]:
    """The Gift fields a body sets, its designation entries and the key they came under
    (``lowered``: the body's keys are lower-cased already)."""
    low = body if lowered else lower_keys(body)
    amount = parse_money(low.get("amount"), f"{prefix}amount", problems, negative)
    gift_date = parse_date(low.get("giftdate"), f"{prefix}giftDate", problems)
    gift_type = None
    if low.get("gifttype") not in (None, ""):
        gift_type = catalog.gift_types.get(gift_type_key(str(low["gifttype"])))
        if gift_type is None:
            problems.add(
                f"{prefix}giftType",
                f"'{low['gifttype']}' is not a valid giftType. "
                f"Valid: {', '.join(dict.fromkeys(catalog.gift_types.values()))}.",
            )
    key = "giftDesignations" if "giftdesignations" in low else "designations"
    designations = parse_designations(
        low.get(key.lower()), f"{prefix}{key}", problems, catalog, negative
    )
    segment_id = parse_int(low.get("segmentid"), f"{prefix}segmentId", problems)
    segment_code = _text(low.get("segmentcode") or low.get("segment"))
    if segment_id is None and segment_code is not None:
        segment_id = catalog.segment_codes.get(segment_code.lower())
    if segment_id is not None and segment_id in catalog.segments:
        segment_code = catalog.segments[segment_id]
    payments = []
    for i, payment in enumerate(low.get("recurringgiftpayments") or []):
        p = lower_keys(payment) if isinstance(payment, Mapping) else {}
        rid = parse_int(p.get("id"), f"{prefix}recurringGiftPayments[{i}].id", problems)
        if rid is not None and rid not in catalog.recurring_ids:
            problems.add(
                f"{prefix}recurringGiftPayments[{i}].id", f"RecurringGift {rid} does not exist."
            )
        pay = parse_money(
            p.get("amount", amount), f"{prefix}recurringGiftPayments[{i}].amount", problems
        )
        payments.append({"id": rid, "amount": pay})
    fields = {
        "giftType": gift_type or "Other",
        "giftDate": gift_date,
        "amount": amount,
        "currencyCode": _text(low.get("currencycode")),
        "description": _text(low.get("description")),
        "notes": _text(low.get("notes")),
        "isTaxDeductible": parse_bool(
            low.get("istaxdeductible"), f"{prefix}isTaxDeductible", problems, True
        ),
        "isPrivate": parse_bool(low.get("isprivate"), f"{prefix}isPrivate", problems, False),
        "segmentId": segment_id,
        "segment": _text(low.get("segment")) or segment_code,
        "segmentCode": segment_code,
        "contactIndividualId": parse_int(
            low.get("contactindividualid"), f"{prefix}contactIndividualId", problems
        ),
        "recurringGiftTransactionId": _text(low.get("recurringgifttransactionid")),
        "pledgeTransactionId": _text(low.get("pledgetransactionid")),
        "recurringGiftPayments": payments,
        "customFields": custom_fields(low.get("customfields"), f"{prefix}customFields", problems),
    }
    if low.get("batch") is not None:
        fields["batch"] = _text(low.get("batch"))
    return fields, designations, key


def custom_fields(value: Any, path: str, problems: Problems) -> list[dict[str, Any]]:
    """Custom fields as stored: the array form [{name, value}]; the batch path's object form
    {name: value} converted."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [{"name": str(k), "value": v} for k, v in value.items()]
    if isinstance(value, list):
        out = []
        for i, item in enumerate(value):
            low = lower_keys(item) if isinstance(item, Mapping) else {}
            if not low.get("name"):
                problems.add(f"{path}[{i}].name", "A custom field needs a name.")
                continue
            out.append({"name": str(low["name"]), "value": low.get("value")})
        return out
    problems.add(path, "Must be an object or a list of {name, value}.")
    return []


def transaction(
    entry: Any, prefix: str, problems: Problems, catalog: Catalog, default_source: str | None
) -> PendingGift | None:
    """Validate one Gift Transaction (a ``/Transaction`` body or one ``transactions[]`` entry)."""
    if not isinstance(entry, Mapping):
        problems.add(prefix.rstrip(".") or "body", "Each transaction must be an object.")
        return None
    low = lower_keys(entry)
    fields, designations, key = gift_fields(low, prefix, problems, catalog, lowered=True)
    stored = plain_designations(designations, catalog)
    check_sum(stored, fields["amount"], f"{prefix}{key}", problems, required=False)
    fields["giftDesignations"] = stored
    source = _text(low.get("transactionsource")) or default_source
    tid = _text(low.get("transactionid"))
    raw_contact = low.get("contact")
    contact = None
    if isinstance(raw_contact, Mapping):
        contact = ContactInput.parse(raw_contact, default_source=source)
    elif raw_contact is not None:
        problems.add(f"{prefix}contact", "Must be an object.")
    contact_id = parse_int(low.get("contactid"), f"{prefix}contactId", problems)
    if contact_id is not None and (contact is None or contact.contact_id is None):
        contact = (
            ContactInput(contact_id=contact_id)
            if contact is None
            else ContactInput(**{**contact.__dict__, "contact_id": contact_id})
        )
    ref = (source, tid) if source and tid else None
    return PendingGift(ref=ref, fields=fields, contact=contact)
