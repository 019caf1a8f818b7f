"""Seed 002 "Which transactions are sent": every row and every processing sub-case."""

from __future__ import annotations

import pytest

from mapping.decision import SendDecision, decide
from mapping.tenant import TenantSettings
from tests.unit.test_mapping_factories import tenant, tx

ACH_OFF = tenant(send_processing_ach_as_success=False)
ACH_ON = tenant(send_processing_ach_as_success=True)


@pytest.mark.parametrize(
    ("status", "source_type", "virtuous_id", "settings", "send", "reason", "zero"),
    [
        # success: always, whatever the payment type or correlation
        ("success", "card", None, ACH_OFF, True, "success", False),
        ("success", "bank", None, ACH_OFF, True, "success", False),
        ("success", None, None, ACH_OFF, True, "success", False),
        ("success", "card", "btch_WeGive_Import", ACH_OFF, True, "success", False),
        ("success", "card", 90001, ACH_OFF, True, "success", False),
        # processing: unless the payment type is unknown ...
        ("processing", None, None, ACH_ON, False, "processing_unknown_payment_type", False),
        ("processing", None, None, ACH_OFF, False, "processing_unknown_payment_type", False),
        # ... or it is ACH and send_processing_ach_as_success is off
        ("processing", "bank", None, ACH_OFF, False, "processing_ach_not_sent", False),
        ("processing", "bank", None, ACH_ON, True, "processing_ach_as_success", False),
        ("processing", "card", None, ACH_OFF, True, "processing", False),
        ("processing", "card", None, ACH_ON, True, "processing", False),
        ("processing", "paypal", None, ACH_OFF, True, "processing", False),
        # failed / refunded: only with a real Gift id (not btch_), amount 0
        ("refunded", "card", 90001, ACH_OFF, True, "refund_of_real_gift", True),
        ("refunded", "card", "90001", ACH_OFF, True, "refund_of_real_gift", True),
        ("failed", "bank", 90001, ACH_OFF, True, "failed_with_real_gift_id", True),
        (
            "refunded",
            "card",
            "btch_WeGive_Import",
            ACH_OFF,
            False,
            "refund_of_batch_gift_waits_for_real_id",
            True,
        ),
        (
            "failed",
            "card",
            "btch_WeGive_Import",
            ACH_OFF,
            False,
            "failed_batch_gift_waits_for_real_id",
            True,
        ),
        ("refunded", "card", None, ACH_OFF, False, "refunded_without_real_gift_id", True),
        ("failed", "card", None, ACH_OFF, False, "failed_without_real_gift_id", True),
        ("failed", "card", "legacy-42", ACH_OFF, False, "failed_without_real_gift_id", True),
        # anything else: never
        ("pending", "card", None, ACH_OFF, False, "status_not_sent:pending", False),
        ("disputed", "card", 90001, ACH_ON, False, "status_not_sent:disputed", False),
        ("Success", "card", None, ACH_OFF, False, "status_not_sent:Success", False),
    ],
)
def test_send_decision_table(
    status: str,
    source_type: str | None,
    virtuous_id: int | str | None,
    settings: TenantSettings,
    send: bool,
    reason: str,
    zero: bool,
) -> None:
    record = tx(status=status, source_type=source_type, virtuous_id=virtuous_id)
    decision = decide(record, settings)
    assert decision == SendDecision(send=send, reason=reason, zero_amount=zero)


def test_only_a_batch_id_refund_waits_for_the_real_id() -> None:
    waiting = decide(tx(status="refunded", virtuous_id="btch_WeGive_Import"), ACH_OFF)
    assert waiting.waits_for_real_id and not waiting.send
    assert not decide(tx(status="refunded", virtuous_id=None), ACH_OFF).waits_for_real_id
    assert not decide(tx(status="refunded", virtuous_id=90001), ACH_OFF).waits_for_real_id


def test_decisions_are_frozen_values() -> None:
    decision = decide(tx(), ACH_OFF)
    with pytest.raises(AttributeError):
        decision.send = False  # type: ignore[misc]
