"""A model of Virtuous for the model-based tests: what it holds, and a client that drives it.

It keeps only what the exactly-once guarantee is about: Gifts by id and by transactionId, the
Gift Transactions waiting in the Import Tool, and the gift-created deliveries an import causes.
The Import Tool makes at most one Gift per transactionId (it matches an existing one instead),
which is what makes a batch safe to send twice. The client answers like the real one: a
refused entry is a 400 naming it, and a lost answer is an AmbiguousOutcomeError after the
request took effect.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workers.errors import AmbiguousOutcomeError, NotFoundError, RejectedError

# An amount Virtuous refuses: the model's stand-in for any invalid entry.
POISON_AMOUNT = "13.13"
SOURCE = "WeGive"


@dataclass
class Gift:
    id: int
    transaction_id: str
    amount: str


@dataclass
class VirtuousModel:
    """What Virtuous holds, and the answers it gives."""

    gifts: dict[int, Gift] = field(default_factory=dict)
    # Every Gift ever made per transactionId (more than one is a duplicate).
    made: dict[str, int] = field(default_factory=dict)
    waiting_import: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 9000
    # The next POST's answer is lost after it took effect.
    lose_next_answer: bool = False

    def _make(self, transaction_id: str, amount: str) -> Gift:
        self.next_id += 1
        gift = Gift(self.next_id, transaction_id, amount)
        self.gifts[gift.id] = gift
        self.made[transaction_id] = self.made.get(transaction_id, 0) + 1
        return gift

    def by_transaction(self, transaction_id: str) -> Gift | None:
        """The Gift made for ``transaction_id``, if any."""
        return next((g for g in self.gifts.values() if g.transaction_id == transaction_id), None)

    def run_import(self) -> int:
        """Staff run the Import Tool: each waiting entry becomes a Gift unless one exists."""
        imported = 0
        for entry in self.waiting_import:
            transaction_id = str(entry["transactionId"])
            if self.by_transaction(transaction_id) is not None:
                continue
            gift = self._make(transaction_id, str(entry["amount"]))
            self.deliveries.append(
                {
                    "event": "GiftCreate",
                    "gift": {
                        "id": gift.id,
                        "transactionSource": SOURCE,
                        "transactionId": transaction_id,
                    },
                }
            )
            imported += 1
        self.waiting_import.clear()
        return imported

    def _maybe_lose(self, endpoint: str) -> None:
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise AmbiguousOutcomeError(f"{endpoint} -> no answer: read timeout", endpoint=endpoint)


class ModelClient:
    """The slice of :class:`workers.virtuous.client.VirtuousClient` the gift flows call."""

    def __init__(self, model: VirtuousModel) -> None:
        self.model = model

    def post_gift_transactions(self, body: bytes) -> None:
        document = json.loads(body)
        refused = {
            f"transactions[{i}].amount": ["The amount is not valid."]
            for i, entry in enumerate(document["transactions"])
            if entry["amount"] == POISON_AMOUNT
        }
        if refused:
            raise RejectedError("The request is invalid.", model_state=refused, endpoint="POST")
        self.model.waiting_import.extend(document["transactions"])
        self.model._maybe_lose("POST /api/v2/Gift/Transactions")

    def create_gift(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        if payload["amount"] == POISON_AMOUNT:
            raise RejectedError("The request is invalid.", model_state={"amount": ["bad"]})
        gift = self.model._make(str(payload["transactionId"]), str(payload["amount"]))
        self.model._maybe_lose("POST /api/Gift")
        return {"id": gift.id}

    def get_gift(self, gift_id: int) -> dict[str, Any]:
        gift = self.model.gifts.get(gift_id)
        if gift is None:
            raise NotFoundError("GET /api/Gift/{id} -> 404", status=404)
        return {
            "id": gift.id,
            "transactionSource": SOURCE,
            "transactionId": gift.transaction_id,
            "amount": gift.amount,
            "giftDesignations": [],
            "customFields": [],
        }

    def update_gift(self, gift_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        gift = self.model.gifts.get(gift_id)
        if gift is None:
            raise NotFoundError("PUT /api/Gift/{id} -> 404", status=404)
        if body["amount"] == POISON_AMOUNT:
            raise RejectedError("The request is invalid.", model_state={"amount": ["bad"]})
        gift.amount = str(body["amount"])
        self.model._maybe_lose("PUT /api/Gift/{id}")
        return self.get_gift(gift_id)

    def find_gift(self, transaction_source: str, transaction_id: str) -> dict[str, Any] | None:
        gift = self.model.by_transaction(transaction_id)
        return None if gift is None else self.get_gift(gift.id)

    def close(self) -> None:
        """Nothing to close."""
