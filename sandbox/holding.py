"""The holding state: Transactions accepted but not yet Gifts or Contacts (seed 003), and the
Import Tool's batches with their three tabs (seed 000).

Direct Gift and Contact Transactions wait in ``held`` until the nightly batch; Gift
Transactions it cannot match move to ``needs_update``. A ``createImport`` batch becomes an
``ImportBatch`` whose entries each sit in one tab: Ready for Import, Update Needed or Match
Needed, until imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sandbox.matching import ContactInput
from sandbox.validation import PendingGift

Tab = Literal["ready", "update", "match", "imported"]
TAB_TITLES: dict[str, str] = {
    "ready": "Ready for Import",
    "update": "Update Needed",
    "match": "Match Needed",
    "imported": "Imported",
}


def contact_json(inp: ContactInput | None) -> dict[str, Any] | None:
    """Incoming contact data as shown to people and tests (None when there was none)."""
    if inp is None:
        return None
    return {
        "id": inp.contact_id,
        "references": [list(r) for r in inp.references],
        "name": inp.display_name() or None,
        "firstName": inp.first_name,
        "lastName": inp.last_name,
        "email": inp.email,
        "phone": inp.phone,
        "address": None if inp.address.is_empty() else inp.address.to_json(),
    }


def pending_json(pending: PendingGift) -> dict[str, Any]:
    return {
        "transactionSource": pending.ref[0] if pending.ref else None,
        "transactionId": pending.ref[1] if pending.ref else None,
        "gift": pending.fields,
        "contact": contact_json(pending.contact),
    }


@dataclass
class HeldTransaction:
    """One Gift or Contact Transaction waiting for the nightly batch (or a person)."""

    id: int
    kind: Literal["gift", "contact"]
    received: str
    gift: PendingGift | None = None
    contact: ContactInput | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "received": self.received,
            "reason": self.reason,
        }
        if self.gift is not None:
            body.update(pending_json(self.gift))
        else:
            body["contact"] = contact_json(self.contact)
        return body


@dataclass
class ImportEntry:
    index: int
    pending: PendingGift
    tab: Tab = "match"
    contact_id: int | None = None
    reason: str = ""
    differences: list[str] = field(default_factory=list)
    gift_id: int | None = None
    # Set when a person picked (or created) the contact: sorting no longer changes it.
    resolved_by_hand: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "tab": self.tab,
            "tab_title": TAB_TITLES[self.tab],
            "contact_id": self.contact_id,
            "reason": self.reason,
            "differences": self.differences,
            "gift_id": self.gift_id,
            **pending_json(self.pending),
        }


@dataclass
class ImportBatch:
    id: int
    org: str
    name: str
    transaction_source: str | None
    created: str
    entries: list[ImportEntry]
    imported_at: str | None = None

    def counts(self) -> dict[str, int]:
        out = {"ready": 0, "update": 0, "match": 0, "imported": 0}
        for entry in self.entries:
            out[entry.tab] += 1
        return out

    @property
    def status(self) -> str:
        """ "Processed" until someone imports; then "Imported" or "Partially Imported"."""
        counts = self.counts()
        if not counts["imported"]:
            return "Processed"
        return "Imported" if counts["imported"] == len(self.entries) else "Partially Imported"

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "org": self.org,
            "name": self.name,
            "status": self.status,
            "transaction_source": self.transaction_source,
            "created": self.created,
            "imported_at": self.imported_at,
            "counts": self.counts(),
            "size": len(self.entries),
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.summary(), "entries": [e.to_json() for e in self.entries]}
