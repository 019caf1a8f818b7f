"""Whether a transaction goes to Virtuous at all (seed 002, "Which transactions are sent").

=================  ===============================================================  ==========
status             sent?                                                            amount
=================  ===============================================================  ==========
success            always                                                           amount
processing         yes, unless the payment type is unknown (no source_type), or     amount
                   it is ACH (``bank``) and send_processing_ach_as_success is off
failed / refunded  only with a real Gift id, never a ``btch_`` batch id             0
anything else      no                                                               --
=================  ===============================================================  ==========

Every decision carries a short machine-friendly reason, the same string a log line, a metric
label (the set is small and fixed, except ``status_not_sent:<status>``) and the preview show.
A failed/refunded gift whose correlation is still a ``btch_`` id is not sent *yet*: its reason
says it waits for the real Gift id, which confirmation learns later (``waits_for_real_id``).
"""

from __future__ import annotations

from dataclasses import dataclass

from mapping.events import Transaction, is_batch_id, real_gift_id
from mapping.tenant import TenantSettings

# Statuses whose send zeroes the existing Virtuous gift instead of recording money.
ZEROING_STATUSES = frozenset({"failed", "refunded"})
# source_type of an ACH debit.
BANK = "bank"

# The reasons, one per row and sub-case of the table.
SUCCESS = "success"
PROCESSING = "processing"
PROCESSING_ACH_AS_SUCCESS = "processing_ach_as_success"
PROCESSING_UNKNOWN_PAYMENT_TYPE = "processing_unknown_payment_type"
PROCESSING_ACH_NOT_SENT = "processing_ach_not_sent"
REFUND_OF_REAL_GIFT = "refund_of_real_gift"
FAILED_WITH_REAL_GIFT_ID = "failed_with_real_gift_id"
REFUND_OF_BATCH_GIFT_WAITS = "refund_of_batch_gift_waits_for_real_id"
FAILED_BATCH_GIFT_WAITS = "failed_batch_gift_waits_for_real_id"
REFUNDED_WITHOUT_REAL_GIFT_ID = "refunded_without_real_gift_id"
FAILED_WITHOUT_REAL_GIFT_ID = "failed_without_real_gift_id"
STATUS_NOT_SENT = "status_not_sent"

WAITING_REASONS = frozenset({REFUND_OF_BATCH_GIFT_WAITS, FAILED_BATCH_GIFT_WAITS})


@dataclass(frozen=True)
class SendDecision:
    """The outcome of :func:`decide`.

    ``zero_amount`` is true for every failed/refunded transaction, sent or not: whenever such
    a gift reaches Virtuous it goes as 0.00, zeroing the gift recorded earlier.
    """

    send: bool
    reason: str
    zero_amount: bool

    @property
    def waits_for_real_id(self) -> bool:
        """Not sent now, but to be sent once confirmation learns the real Gift id."""
        return self.reason in WAITING_REASONS


def decide(tx: Transaction, tenant: TenantSettings) -> SendDecision:
    """Decide whether ``tx`` is sent to Virtuous for ``tenant``, and why."""
    status = tx.status
    if status == "success":
        return SendDecision(True, SUCCESS, zero_amount=False)
    if status == "processing":
        return _processing(tx, tenant)
    if status in ZEROING_STATUSES:
        return _zeroing(tx)
    return SendDecision(False, f"{STATUS_NOT_SENT}:{status}", zero_amount=False)


def _processing(tx: Transaction, tenant: TenantSettings) -> SendDecision:
    # A pending payment of unknown type may never settle; a pending ACH debit bounces often
    # enough that sending it is the tenant's call.
    if tx.source_type is None:
        return SendDecision(False, PROCESSING_UNKNOWN_PAYMENT_TYPE, zero_amount=False)
    if tx.source_type == BANK:
        if tenant.send_processing_ach_as_success:
            return SendDecision(True, PROCESSING_ACH_AS_SUCCESS, zero_amount=False)
        return SendDecision(False, PROCESSING_ACH_NOT_SENT, zero_amount=False)
    return SendDecision(True, PROCESSING, zero_amount=False)


def _zeroing(tx: Transaction) -> SendDecision:
    refunded = tx.status == "refunded"
    if real_gift_id(tx.virtuous_id) is not None:
        reason = REFUND_OF_REAL_GIFT if refunded else FAILED_WITH_REAL_GIFT_ID
        return SendDecision(True, reason, zero_amount=True)
    if is_batch_id(tx.virtuous_id):
        reason = REFUND_OF_BATCH_GIFT_WAITS if refunded else FAILED_BATCH_GIFT_WAITS
        return SendDecision(False, reason, zero_amount=True)
    # Never reached Virtuous (or the correlation is unusable): nothing there to zero.
    reason = REFUNDED_WITHOUT_REAL_GIFT_ID if refunded else FAILED_WITHOUT_REAL_GIFT_ID
    return SendDecision(False, reason, zero_amount=True)
