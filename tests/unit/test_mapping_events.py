"""The change-event contract: valid events parse, every bad input is named by path and reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from mapping.events import (
    SCHEMA_FILE,
    ChangeEvent,
    EventValidationError,
    FieldError,
    ScheduledDonation,
    Transaction,
    change_event_json_schema,
    change_event_schema_text,
    is_batch_id,
    parse_event,
    parse_event_json,
    real_gift_id,
)
from mapping.fields import MAX_CENTS
from tests.unit.test_mapping_factories import (
    GENERAL,
    SHELTER,
    allocation,
    event_data,
    owner_data,
    sd_data,
    tx_data,
)


def errors_of(data: object, **kwargs: Any) -> list[FieldError]:
    with pytest.raises(EventValidationError) as caught:
        parse_event(data, **kwargs)
    return caught.value.errors


def paths_of(data: object, **kwargs: Any) -> list[str]:
    return [error.path for error in errors_of(data, **kwargs)]


def test_a_transaction_event_parses_to_typed_models() -> None:
    event = parse_event(event_data(tx_data()), tenants={"test-tenant"})
    assert isinstance(event, ChangeEvent)
    assert isinstance(event.record, Transaction)
    assert event.version == datetime(2026, 11, 20, 15, 4, 6, 123000, tzinfo=UTC)
    assert event.record.owner.virtuous_contact_id == 501
    assert event.record.fund.virtuous_id == 4012


def test_kind_chooses_the_record_shape() -> None:
    event = parse_event(event_data(sd_data(), "scheduled_donation"))
    assert isinstance(event.record, ScheduledDonation)
    # A transaction record under kind scheduled_donation is checked as a scheduled donation.
    paths = paths_of(event_data(tx_data(), "scheduled_donation"))
    assert "record.start_date" in paths and "record.created_at" in paths


def test_string_ids_are_accepted_and_transaction_id_is_their_text() -> None:
    event = parse_event(event_data(tx_data(id="tx_8f2a", owner=owner_data(id="u-77"))))
    assert event.record.id == "tx_8f2a"


def test_optional_fields_take_their_documented_defaults() -> None:
    data = tx_data()
    for key in ("description", "supporter_inputted_notes", "source_type", "allocations"):
        del data[key]
    for key in ("campaign", "scheduled_donation", "virtuous_id", "is_tax_deductible", "anonymous"):
        del data[key]
    record = parse_event(event_data(data)).record
    assert isinstance(record, Transaction)
    assert record.description is None and record.source_type is None
    assert record.allocations == [] and record.campaign is None and record.virtuous_id is None
    assert record.is_tax_deductible is True and record.anonymous is False


@pytest.mark.parametrize(
    ("record", "path", "reason_part"),
    [
        (tx_data(amount="12"), "record.amount", "valid integer"),
        (tx_data(amount=12.0), "record.amount", "valid integer"),
        (tx_data(amount=True), "record.amount", "valid integer"),
        (tx_data(amount=-1), "record.amount", "greater than or equal to 0"),
        (tx_data(amount=MAX_CENTS), "record.amount", "less than"),
        (tx_data(id=True), "record.id", "positive integer"),
        (tx_data(id=""), "record.id", "positive integer"),
        (tx_data(id=0), "record.id", "positive integer"),
        (tx_data(status=""), "record.status", "at least 1"),
        (tx_data(created_at="2026-11-20T15:04:05"), "record.created_at", "UTC offset"),
        (tx_data(created_at="yesterday"), "record.created_at", "ISO 8601"),
        (tx_data(created_at=1763651045), "record.created_at", "ISO 8601"),
        (tx_data(is_tax_deductible="true"), "record.is_tax_deductible", "valid boolean"),
        (tx_data(anonymous=1), "record.anonymous", "valid boolean"),
        (tx_data(owner=owner_data(type="person")), "record.owner.type", "'individual'"),
        (tx_data(owner=owner_data(email="a\x00@b.org")), "record.owner.email", "control"),
        (tx_data(owner=owner_data(first_name="x" * 256)), "record.owner.first_name", "at most"),
        (
            tx_data(owner=owner_data(virtuous_contact_id="501")),
            "record.owner.virtuous_contact_id",
            "valid integer",
        ),
        (tx_data(owner=owner_data(nickname="Annie")), "record.owner.nickname", "not a field"),
        (tx_data(fund={"id": 12, "virtuous_id": 4012}), "record.fund.name", "required"),
        (tx_data(description="line\nbreak"), "record.description", "control"),
        (
            tx_data(supporter_inputted_notes="bell\x07"),
            "record.supporter_inputted_notes",
            "other than newline and tab",
        ),
        (tx_data(virtuous_id=False), "record.virtuous_id", "btch_"),
        (tx_data(virtuous_id=""), "record.virtuous_id", "btch_"),
        (
            tx_data(allocations=[allocation(GENERAL, "50")]),
            "record.allocations.0.amount",
            "valid integer",
        ),
        (
            tx_data(allocations=[allocation(GENERAL, 3000), allocation(SHELTER, 1000)]),
            "record.allocations",
            "sum to 4000 cents but the record's amount is 5000",
        ),
        (
            tx_data(campaign={"id": 9, "name": "X", "virtuous_segment_id": 0}),
            "record.campaign.virtuous_segment_id",
            "greater than or equal to 1",
        ),
        (sd_data(start_date="2026-12-01T00:00:00"), "record.start_date", "Y-m-d"),
        (sd_data(start_date="2026-02-30"), "record.start_date", "Y-m-d"),
        (sd_data(frequency="daily"), "record.frequency", "'weekly'"),
        (sd_data(status="paused"), "record.status", "'active'"),
        (sd_data(fee_amount=-5), "record.fee_amount", "greater than or equal to 0"),
        (
            sd_data(allocations=[allocation(GENERAL, 100)]),
            "record.allocations",
            "sum to 100 cents but the record's amount is 2500",
        ),
    ],
)
def test_each_bad_value_is_named_by_path_and_reason(
    record: dict[str, Any], path: str, reason_part: str
) -> None:
    kind = "scheduled_donation" if "start_date" in record else "transaction"
    errors = errors_of(event_data(record, kind))
    assert [error.path for error in errors] == [path]
    assert reason_part in errors[0].reason


@pytest.mark.parametrize(
    ("overrides", "path", "reason_part"),
    [
        ({"tenant": "Hope Shelter"}, "tenant", "tenant name"),
        ({"kind": "pledge"}, "kind", "'transaction'"),
        ({"version": "2026-11-20T15:04:05"}, "version", "UTC offset"),
        ({"extra": 1}, "extra", "not a field of the contract"),
    ],
)
def test_envelope_errors(overrides: dict[str, Any], path: str, reason_part: str) -> None:
    errors = errors_of(event_data(tx_data(), **overrides))
    assert [error.path for error in errors] == [path]
    assert reason_part in errors[0].reason


def test_missing_envelope_fields_are_each_required() -> None:
    errors = errors_of({})
    assert {(e.path, e.reason) for e in errors} == {
        ("tenant", "is required"),
        ("kind", "is required"),
        ("version", "is required"),
        ("record", "is required"),
    }


def test_several_errors_are_reported_together_in_order() -> None:
    record = tx_data(
        amount="25.00",
        owner=owner_data(type="robot", email="x\x01"),
        allocations=[allocation(GENERAL, 1), allocation(SHELTER, -1)],
    )
    data = event_data(record, tenant="nowhere")
    errors = errors_of(data, tenants={"test-tenant"})
    assert [e.path for e in errors] == [
        "tenant",
        "record.amount",
        "record.owner.type",
        "record.owner.email",
        "record.allocations.1.amount",
    ]
    assert errors[0].reason == "unknown tenant 'nowhere'"


def test_str_of_the_error_lists_every_problem() -> None:
    with pytest.raises(EventValidationError) as caught:
        parse_event(event_data(tx_data(amount="1", status="")))
    assert str(caught.value) == (
        "record.status: String should have at least 1 character; "
        "record.amount: Input should be a valid integer"
    )
    assert isinstance(caught.value, ValueError)


def test_unknown_tenant_is_only_checked_when_tenants_are_given() -> None:
    assert parse_event(event_data(tx_data(), tenant="elsewhere")).tenant == "elsewhere"
    assert paths_of(event_data(tx_data(), tenant="elsewhere"), tenants=["test-tenant"]) == [
        "tenant"
    ]


@pytest.mark.parametrize(
    ("data", "reason_part"),
    [([], "array"), ("event", "string"), (None, "null"), (3, "number")],
)
def test_a_non_object_is_reported_at_dollar(data: object, reason_part: str) -> None:
    errors = errors_of(data)
    assert errors[0].path == "$" and reason_part in errors[0].reason


@pytest.mark.parametrize(
    ("raw", "reason_part"),
    [
        ('{"tenant": ', "invalid JSON: Expecting value"),
        ("[1, 2", "invalid JSON"),
        ('{"x": NaN}', "NaN is not a JSON number"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_bad_json_is_reported_at_dollar(raw: str | bytes, reason_part: str) -> None:
    with pytest.raises(EventValidationError) as caught:
        parse_event_json(raw)
    [error] = caught.value.errors
    assert error.path == "$" and reason_part in error.reason


def test_json_text_and_bytes_parse_like_objects() -> None:
    raw = json.dumps(event_data(tx_data()))
    assert parse_event_json(raw) == parse_event_json(raw.encode()) == parse_event(json.loads(raw))
    with pytest.raises(EventValidationError) as caught:
        parse_event_json(raw, tenants=["other"])
    assert caught.value.errors == [FieldError("tenant", "unknown tenant 'test-tenant'")]


def test_records_are_frozen() -> None:
    record = parse_event(event_data(tx_data())).record
    assert isinstance(record, Transaction)
    with pytest.raises(ValueError):
        record.amount = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "gift_id", "batch"),
    [
        (90001, 90001, False),
        ("90001", 90001, False),
        ("btch_WeGive_Import", None, True),
        (None, None, False),
        ("abc", None, False),
        ("12a", None, False),
        (0, None, False),
        ("", None, False),
    ],
)
def test_real_gift_id_and_batch_id(
    value: int | str | None, gift_id: int | None, batch: bool
) -> None:
    assert real_gift_id(value) == gift_id
    assert is_batch_id(value) is batch


def test_the_committed_schema_is_the_generated_one() -> None:
    # Regenerate with the command in mapping/events.py's docstring.
    committed = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert committed == change_event_json_schema()
    assert SCHEMA_FILE.read_text(encoding="utf-8") == change_event_schema_text()


def test_the_schema_ties_the_record_shape_to_kind() -> None:
    schema = change_event_json_schema()
    assert schema["required"] == ["tenant", "kind", "version", "record"]
    assert {"Transaction", "ScheduledDonation", "Owner", "Fund"} <= set(schema["$defs"])
    thens = [rule["then"]["properties"]["record"]["$ref"] for rule in schema["allOf"]]
    assert thens == ["#/$defs/Transaction", "#/$defs/ScheduledDonation", "#/$defs/Owner"]
    amount = schema["$defs"]["Transaction"]["properties"]["amount"]
    assert amount["type"] == "integer" and amount["minimum"] == 0
