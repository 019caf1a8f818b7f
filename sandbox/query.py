"""The Query endpoints' filter language: groups of conditions, a sort, skip and take.

A body is ``{"groups": [{"conditions": [{"parameter", "operator", "value"}]}], "sortBy",
"descending"}``. Conditions within a group must all hold; a record matches when any group does
(no groups: every record). "Date" parameters ("Gift Date", "Last Modified Date") compare calendar
days; the "DateTime UTC" ones compare instants when the value carries a time, or days when the
sandbox's ``query_day_precision`` is set (so clients prove their paging holds either way). Ties
in the sort fall back to the id, so (sort key, id) is a total order a client can page by.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.matching import lower_keys
from sandbox.timefmt import parse_timestamp
from sandbox.validation import Problems

# Parameter name (lower case) -> (record field, value kind), as Virtuous's QueryOptions spell
# them (taylorbrooks/virtuous gift_designation_query_options.json; virtuous-ts
# build-gift-query.ts, build-recurring-gift-query.ts). A name not listed is a 400.
_DATES = {
    "create date": ("createDateTimeUtc", "day"),
    "last modified date": ("modifiedDateTimeUtc", "day"),
    "create datetime utc": ("createDateTimeUtc", "date"),
    "last modified datetime utc": ("modifiedDateTimeUtc", "date"),
}
GIFT_PARAMETERS: dict[str, tuple[str, str]] = {
    **_DATES,
    "gift date": ("giftDate", "day"),
    "gift id": ("id", "int"),
    "contact id": ("contactId", "int"),
    "amount": ("amount", "money"),
    "gift type": ("giftType", "text"),
    "batch": ("batch", "text"),
    "transaction source": ("transactionSource", "text"),
    "transaction id": ("transactionId", "text"),
}
RECURRING_PARAMETERS: dict[str, tuple[str, str]] = {
    **_DATES,
    "recurring gift id": ("id", "int"),
    "start date": ("startDate", "day"),
    "contact id": ("contactId", "int"),
    "amount": ("amount", "money"),
    "frequency": ("frequency", "text"),
    "transaction source": ("transactionSource", "text"),
    "transaction id": ("transactionId", "text"),
}
# sortBy names a property of the record (taylorbrooks gift.rb: Id, GiftDate, Amount, Batch,
# CreatedDateTime; inaturalist virtuous_donation_sync.rb: Id) or, leniently, a parameter.
SORT_PROPERTIES: dict[str, tuple[str, str]] = {
    "id": ("id", "int"),
    "giftdate": ("giftDate", "date"),
    "amount": ("amount", "money"),
    "batch": ("batch", "text"),
    "createddatetime": ("createDateTimeUtc", "date"),
    "createdatetimeutc": ("createDateTimeUtc", "date"),
    "modifieddatetimeutc": ("modifiedDateTimeUtc", "date"),
    "startdate": ("startDate", "date"),
}

# The operators of QueryOptions' operatorOptions, spelled as listed (case-insensitively; no
# spaces). Which apply to which parameter kind, as its operatorOptions list them.
_OPERATORS = {
    "is": "eq",
    "isnot": "ne",
    "greaterthan": "gt",
    "after": "gt",
    "greaterthanorequal": "ge",
    "onorafter": "ge",
    "lessthan": "lt",
    "before": "lt",
    "lessthanorequal": "le",
    "onorbefore": "le",
    "isknown": "known",
    "isnotknown": "unknown",
    "between": "between",
}
_ORDERED = {"eq", "gt", "ge", "lt", "le", "between"}
_KIND_OPERATORS = {
    "int": _ORDERED,
    "money": _ORDERED,
    "day": _ORDERED,
    "date": _ORDERED,
    "text": {"eq", "ne", "known", "unknown"},
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


def _value(raw: Any, kind: str, day: bool, where: str, problems: Problems) -> Any:
    """A condition value as the kind compares it, or None after naming the problem."""
    if kind in ("day", "date"):
        parsed = parse_timestamp(str(raw)) if raw not in (None, "") else None
        if parsed is None:
            problems.add(where, f"'{raw}' is not a valid date.")
            return None
        stamp, has_time = parsed
        return _stamp(stamp) if has_time and not day else stamp[:10]
    if kind in ("int", "money"):
        try:
            return int(str(raw)) if kind == "int" else Decimal(str(raw))
        except (ValueError, InvalidOperation):
            problems.add(
                where, f"'{raw}' is not a valid {'integer' if kind == 'int' else 'amount'}."
            )
            return None
    return str(raw).lower()


def _condition(
    cond: Any,
    path: str,
    problems: Problems,
    parameters: Mapping[str, tuple[str, str]],
    day_precision: bool = False,
) -> Predicate | None:
    if not isinstance(cond, Mapping):
        problems.add(path, "A condition must be an object.")
        return None
    low = lower_keys(cond)
    name = str(low.get("parameter") or "").strip().lower()
    if name not in parameters:
        problems.add(f"{path}.parameter", f"'{low.get('parameter')}' is not a valid parameter.")
        return None
    field, kind = parameters[name]
    op = _OPERATORS.get(str(low.get("operator") or "").lower())
    if op is None or op not in _KIND_OPERATORS[kind]:
        problems.add(
            f"{path}.operator",
            f"'{low.get('operator')}' is not a valid operator for '{low.get('parameter')}'.",
        )
        return None
    if op in ("known", "unknown"):
        want = op == "known"
        return lambda r: (r.get(field) not in (None, "")) == want
    day = kind == "day" or (kind == "date" and day_precision)
    listed = low.get("values")
    raws: list[Any] = listed if isinstance(listed, list) else [low.get("value")]
    wanted = [_value(raw, kind, day, f"{path}.value", problems) for raw in raws]
    if any(w is None for w in wanted):
        return None
    high = None
    if op == "between":
        high = _value(low.get("secondaryvalue"), kind, day, f"{path}.secondaryValue", problems)
        if high is None:
            return None

    def get(have: Any) -> Any:
        if kind in ("day", "date"):
            return str(have)[:10] if day else _stamp(str(have))
        if kind == "int":
            return int(have)
        if kind == "money":
            return Decimal(str(have))
        return str(have).lower()

    def predicate(record: Mapping[str, Any]) -> bool:
        have = record.get(field)
        if have is None:
            return False
        mine = get(have)
        if op == "between":
            return bool(wanted[0] <= mine <= high)
        if op == "ne":
            return all(mine != w for w in wanted)
        return any(_COMPARE[op](mine, w) for w in wanted)

    return predicate


def compile_filter(
    body: Mapping[str, Any],
    problems: Problems,
    parameters: Mapping[str, tuple[str, str]],
    day_precision: bool = False,
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
            _condition(c, f"groups[{g}].conditions[{i}]", problems, parameters, day_precision)
            for i, c in enumerate(conds)
        ]
        compiled.append([p for p in preds if p is not None])
    if not compiled:
        return lambda r: True
    return lambda r: any(all(p(r) for p in group) for group in compiled)


def _descending(value: Any) -> bool:
    # inaturalist's sync sends "descending": "false" as a string.
    return value.strip().lower() == "true" if isinstance(value, str) else bool(value)


def sort_key(
    body: Mapping[str, Any], problems: Problems, parameters: Mapping[str, tuple[str, str]]
) -> tuple[Callable[[Any], Any], bool]:
    """The key function for the body's ``sortBy`` (id when absent) and whether descending."""
    low = lower_keys(body)
    raw = str(low.get("sortby") or "Id").strip()
    descending = _descending(low.get("descending"))
    found = SORT_PROPERTIES.get(raw.replace(" ", "").lower()) or parameters.get(raw.lower())
    if found is None:
        problems.add("sortBy", f"'{low.get('sortby')}' is not a property to sort by.")
        return (lambda r: r["id"]), descending
    field, kind = found

    def key(record: Mapping[str, Any]) -> tuple[Any, ...]:
        value = record.get(field)
        if value is None:
            return (0, "", record["id"])
        return (1, _stamp(value) if kind in ("date", "day") else value, record["id"])

    return key, descending


def run_query(
    records: Iterable[Mapping[str, Any]],
    body: Mapping[str, Any],
    skip: int,
    take: int,
    parameters: Mapping[str, tuple[str, str]],
    day_precision: bool = False,
) -> tuple[list[Mapping[str, Any]], int]:
    """(the page of matching records, how many match in all); raises the 400 on a bad body."""
    problems = Problems()
    predicate = compile_filter(body, problems, parameters, day_precision)
    key, descending = sort_key(body, problems, parameters)
    problems.check()
    matched = sorted((r for r in records if predicate(r)), key=key, reverse=descending)
    return matched[skip : skip + take], len(matched)
