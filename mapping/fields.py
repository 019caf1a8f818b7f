"""The constrained field types of the change-event contract.

Each type here validates one kind of value the same way wherever it appears, with one clear
error per bad value (no pydantic union noise such as ``id.int`` / ``id.str``), and states
itself in the JSON Schema. Validation is strict: a JSON string never becomes a number, a
boolean never becomes an int, and a datetime must say which offset it is in.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field, PlainValidator, StrictInt, StrictStr, WithJsonSchema
from pydantic_core import PydanticCustomError

# An absurd bound: a billion dollars in one gift is a bug, not a donation.
MAX_CENTS = 100_000_000_000
# Caps on free text, generous for real data and small enough to keep a batch of 100 sane.
SHORT_TEXT = 255
LONG_TEXT = 4000
MAX_INT_ID = 2**63 - 1

_ID_TEXT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
# C0 controls, DEL and the C1 block; long text may keep newlines (\n, \r) and tabs.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_EXCEPT_NEWLINE_TAB = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _is_positive_int(value: object) -> bool:
    # bool is an int subclass; True is never an id.
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_INT_ID


def _check_id(value: object) -> int | str:
    if isinstance(value, int) and _is_positive_int(value):
        return value
    if isinstance(value, str) and _ID_TEXT.fullmatch(value):
        return value
    raise PydanticCustomError(
        "record_id",
        "must be a positive integer or a non-empty string of letters, digits and _.:- "
        "(at most 64 characters)",
    )


def _check_virtuous_ref(value: object) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, int) and _is_positive_int(value):
        return value
    if isinstance(value, str) and 0 < len(value) <= 100 and not _CONTROL.search(value):
        return value
    raise PydanticCustomError(
        "virtuous_ref",
        "must be null, a positive integer Gift id, or a string such as a btch_ id "
        "(at most 100 characters)",
    )


def _check_moment(value: object) -> datetime:
    # Only ISO 8601 text (or a datetime handed over in Python) is a moment; pydantic's lax
    # mode would also take a bare number as a Unix time.
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError(
                "datetime_format", "must be an ISO 8601 date-time with an offset"
            ) from None
    elif isinstance(value, datetime):
        moment = value
    else:
        raise PydanticCustomError("datetime_type", "must be an ISO 8601 date-time string")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise PydanticCustomError(
            "datetime_offset",
            "must carry a UTC offset such as Z or -06:00 (a bare local time is ambiguous)",
        )
    # Every moment is read in UTC and in a tenant's timezone: a year of margin on each side
    # keeps both within the years a datetime can hold.
    if not (_EARLIEST <= moment.replace(tzinfo=None) <= _LATEST):
        raise PydanticCustomError("datetime_range", "must fall between the years 2 and 9998")
    return moment


_EARLIEST = datetime(2, 1, 1)
_LATEST = datetime(9998, 12, 31, 23, 59, 59, 999999)


def _check_day(value: object) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _DAY.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise PydanticCustomError("date_format", "must be a calendar date written Y-m-d")


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise PydanticCustomError("control_chars", "must not contain control characters")
    return value


def _no_control_except_newline_tab(value: str) -> str:
    if _CONTROL_EXCEPT_NEWLINE_TAB.search(value):
        raise PydanticCustomError(
            "control_chars", "must not contain control characters other than newline and tab"
        )
    return value


_ID_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": MAX_INT_ID},
        {"type": "string", "pattern": _ID_TEXT.pattern},
    ]
}

# A WeGive record id: WeGive uses integers; strings are accepted for other producers.
RecordId = Annotated[int | str, PlainValidator(_check_id), WithJsonSchema(_ID_SCHEMA)]
# A transaction's correlation with Virtuous: null, a real Gift id, or a btch_ batch id.
VirtuousRef = Annotated[
    int | str | None,
    PlainValidator(_check_virtuous_ref),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "minLength": 1, "maxLength": 100},
                {"type": "null"},
            ]
        }
    ),
]
# A Virtuous id we already know (Contact, Individual, Project, Segment, RecurringGift).
VirtuousId = Annotated[StrictInt, Field(ge=1, le=MAX_INT_ID)]
# Integer cents, never negative, never absurd.
Cents = Annotated[StrictInt, Field(ge=0, lt=MAX_CENTS)]
Moment = Annotated[
    datetime,
    PlainValidator(_check_moment),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Day = Annotated[
    date,
    PlainValidator(_check_day),
    WithJsonSchema({"type": "string", "format": "date", "pattern": _DAY.pattern}),
]
# A short non-empty token: a status, a payment type, a Project or Segment code.
Word = Annotated[StrictStr, Field(min_length=1, max_length=SHORT_TEXT), AfterValidator(_no_control)]
# One line of text: names, emails, phones, address parts. Empty means "not given".
Text = Annotated[StrictStr, Field(max_length=SHORT_TEXT), AfterValidator(_no_control)]
# A one-line description, longer than a name.
Description = Annotated[StrictStr, Field(max_length=1000), AfterValidator(_no_control)]
# Free text a supporter typed: may span lines.
LongText = Annotated[
    StrictStr, Field(max_length=LONG_TEXT), AfterValidator(_no_control_except_newline_tab)
]
