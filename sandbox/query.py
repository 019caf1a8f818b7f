"""The Query endpoints' filter language: groups of conditions, a sort, skip and take.

A body is ``{"groups": [{"conditions": [{"parameter", "operator", "value"}]}], "sortBy",
"descending"}``. Conditions within a group must all hold; a record matches when any group does
(no groups: every record). Date parameters compare calendar days when the value is a bare
date ("2026-11-20") and instants when it carries a time. Ties in the sort fall back to the id,
so (sort key, id) is a total order a client can page by.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.matching import lower_keys
from sandbox.timefmt import parse_timestamp
from sandbox.validation import Problems

# Parameter name (lower case) -> (record field, value kind).
GIFT_PARAMETERS: dict[str, tuple[str, str]] = {
    "last modified date": ("modifiedDateTimeUtc", "date"),
    "modified date": ("modifiedDateTimeUtc", "date"),
    "create date": ("createDateTimeUtc", "date"),
    "create date time": ("createDateTimeUtc", "date"),
    "created date": ("createDateTimeUtc", "date"),
    "gift date": ("giftDate", "date"),
    "gift id": ("id", "int"),
    "id": ("id", "int"),
    "contact id": ("contactId", "int"),
    "amount": ("amount", "money"),
    "gift type": ("giftType", "text"),
    "batch": ("batch", "text"),
    "transaction source": ("transactionSource", "text"),
    "transaction id": ("transactionId", "text"),
}
RECURRING_PARAMETERS: dict[str, tuple[str, str]] = {
    "last modified date": ("modifiedDateTimeUtc", "date"),
    "modified date": ("modifiedDateTimeUtc", "date"),
    "create date": ("createDateTimeUtc", "date"),
    "create date time": ("createDateTimeUtc", "date"),
    "created date": ("createDateTimeUtc", "date"),
    "recurring gift id": ("id", "int"),
    "gift id": ("id", "int"),
    "id": ("id", "int"),
    "start date": ("startDate", "date"),
    "next expected payment date": ("nextExpectedPaymentDate", "date"),
    "cancel date": ("cancelDateTimeUtc", "date"),
    "cancel date time": ("cancelDateTimeUtc", "date"),
    "contact id": ("contactId", "int"),
    "amount": ("amount", "money"),
    "frequency": ("frequency", "text"),
    "status": ("status", "text"),
}

_OPERATORS = {
    "is": "eq",
    "equals": "eq",
    "equal": "eq",
    "isnot": "ne",
    "notequal": "ne",
    "greaterthan": "gt",
    "after": "gt",
    "onorafter": "ge",
    "greaterthanorequal": "ge",
    "greaterthanorequalto": "ge",
    "atleast": "ge",
    "lessthan": "lt",
    "before": "lt",
    "onorbefore": "le",
    "lessthanorequal": "le",
    "lessthanorequalto": "le",
    "atmost": "le",
    "isknown": "known",
    "isnotknown": "unknown",
}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}

Predicate = Callable[[Mapping[str, Any]], bool]


def _stamp(value: str) -> str:
    """Stored dates have 19 (gift dates) or 26 characters; compare them at 26."""
    return value + ".000000" if len(value) == 19 else value


def _condition(
    cond: Any, path: str, problems: Problems, parameters: Mapping[str, tuple[str, str]]
) -> Predicate | None:
    if not isinstance(cond, Mapping):
        problems.add(path, "A condition must be an object.")
        return None
    low = lower_keys(cond)
    name = str(low.get("parameter") or "").strip().lower()
    if name not in parameters:
        problems.add(
            f"{path}.parameter",
            f"Unknown parameter '{low.get('parameter')}'. Known: {', '.join(sorted(parameters))}.",
        )
        return None
    op = _OPERATORS.get(str(low.get("operator") or "").replace(" ", "").lower())
    if op is None:
        problems.add(f"{path}.operator", f"Unknown operator '{low.get('operator')}'.")
        return None
    field, kind = parameters[name]
    if op in ("known", "unknown"):
        want = op == "known"
        return lambda r: (r.get(field) is not None) == want
    raw = low.get("value")
    value: Any
    get: Callable[[Any], Any] = lambda v: v  # noqa: E731
    if kind == "date":
        parsed = parse_timestamp(str(raw)) if raw is not None else None
        if parsed is None:
            problems.add(f"{path}.value", f"'{raw}' is not a valid date.")
            return None
        stamp, has_time = parsed
        value = stamp if has_time else stamp[:10]
        get = _stamp if has_time else (lambda v: v[:10])
    elif kind == "int":
        try:
            value = int(str(raw))
        except ValueError:
            problems.add(f"{path}.value", f"'{raw}' is not a valid integer.")
            return None
    elif kind == "money":
        try:
            value = Decimal(str(raw))
        except InvalidOperation:
            problems.add(f"{path}.value", f"'{raw}' is not a valid amount.")
            return None
    else:
        value = str(raw).lower()
        get = lambda v: str(v).lower()  # noqa: E731
    compare = _COMPARE[op]

    def predicate(record: Mapping[str, Any]) -> bool:
        have = record.get(field)
        return have is not None and compare(get(have), value)

    return predicate


def compile_filter(
    body: Mapping[str, Any], problems: Problems, parameters: Mapping[str, tuple[str, str]]
) -> Predicate:
    """A predicate for the body's groups (conditions AND-ed, groups OR-ed)."""
    groups = lower_keys(body).get("groups") or []
    if not isinstance(groups, list):
        problems.add("groups", "Must be a list.")
        return lambda r: False
    compiled: list[list[Predicate]] = []
    for g, group in enumerate(groups):
        conds = lower_keys(group).get("conditions") if isinstance(group, Mapping) else None
        if not isinstance(conds, list):
            problems.add(f"groups[{g}].conditions", "Must be a list.")
            continue
        preds = [
            _condition(c, f"groups[{g}].conditions[{i}]", problems, parameters)
            for i, c in enumerate(conds)
        ]
        compiled.append([p for p in preds if p is not None])
    if not compiled:
        return lambda r: True
    return lambda r: any(all(p(r) for p in group) for group in compiled)


def sort_key(
    body: Mapping[str, Any], problems: Problems, parameters: Mapping[str, tuple[str, str]]
) -> tuple[Callable[[Any], Any], bool]:
    """The key function for the body's ``sortBy`` (id when absent) and whether descending."""
    low = lower_keys(body)
    name = str(low.get("sortby") or "id").strip().lower()
    descending = bool(low.get("descending"))
    if name not in parameters:
        problems.add("sortBy", f"Unknown sortBy '{low.get('sortby')}'.")
        return (lambda r: r["id"]), descending
    field, kind = parameters[name]

    def key(record: Mapping[str, Any]) -> tuple[Any, ...]:
        value = record.get(field)
        if value is None:
            return (0, "", record["id"])
        return (1, _stamp(value) if kind == "date" else value, record["id"])

    return key, descending


def run_query(
    records: Iterable[Mapping[str, Any]],
    body: Mapping[str, Any],
    skip: int,
    take: int,
    parameters: Mapping[str, tuple[str, str]],
) -> tuple[list[Mapping[str, Any]], int]:
    """(the page of matching records, how many match in all); raises the 400 on a bad body."""
    problems = Problems()
    predicate = compile_filter(body, problems, parameters)
    key, descending = sort_key(body, problems, parameters)
    problems.check()
    matched = sorted((r for r in records if predicate(r)), key=key, reverse=descending)
    return matched[skip : skip + take], len(matched)
