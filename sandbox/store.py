"""One organisation's records: Contacts, Gifts, RecurringGifts, Projects, Segments, webhook
subscriptions, the holding state, its call budget and its counters.

The store is the only place records change, so it keeps the indexes (contacts for matching,
gifts by reference pair) in step and queues the webhook events each change makes. It is not
thread-safe by itself: ``SandboxState`` serialises every call under one lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from sandbox import contacts as ct
from sandbox.config import OrgConfig
from sandbox.gifts import build_gift
from sandbox.gifttypes import gift_type_catalog
from sandbox.holding import HeldTransaction, ImportBatch
from sandbox.matching import ContactIndex, ContactInput
from sandbox.ratelimit import RollingWindow
from sandbox.timefmt import Clock
from sandbox.validation import Catalog, PendingGift
from sandbox.webhooks import Event, Subscription

NewId = Callable[[str], int]
Ref = tuple[str, str]


@dataclass
class OrgCounters:
    """What tests assert on: repeats and duplicates above all."""

    gift_transactions: int = 0
    contact_transactions: int = 0
    duplicates_noop: int = 0
    duplicates_refused: int = 0
    # Gifts POST /api/Gift created for a (transactionSource, transactionId) a Gift already had.
    duplicate_gifts_created: int = 0
    # Contacts created with an external reference another Contact already had.
    duplicate_contacts_created: int = 0
    rate_limited: int = 0
    nightly_runs: int = 0

    def to_json(self) -> dict[str, int]:
        return asdict(self)


class OrgStore:
    """Everything one Virtuous organisation holds."""

    def __init__(self, config: OrgConfig, new_id: NewId, clock: Clock) -> None:
        self.new_id = new_id
        self.clock = clock
        self.contacts: dict[int, dict[str, Any]] = {}
        self.gifts: dict[int, dict[str, Any]] = {}
        self.recurring_gifts: dict[int, dict[str, Any]] = {}
        self.projects: dict[int, dict[str, Any]] = {}
        self.segments: dict[int, dict[str, Any]] = {}
        self.webhooks: dict[int, Subscription] = {}
        self.held: dict[int, HeldTransaction] = {}
        self.needs_update: dict[int, HeldTransaction] = {}
        self.imports: dict[int, ImportBatch] = {}
        self.gift_refs: dict[Ref, int] = {}
        # Every (transactionSource, transactionId) ever accepted: held, in an import, or a Gift.
        self.seen_refs: set[Ref] = set()
        self.index = ContactIndex()
        self.counters = OrgCounters()
        self.events: list[Event] = []
        self._project_codes: dict[str, int] = {}
        self._segment_codes: dict[str, int] = {}
        self._segment_map: dict[int, str] = {}
        self._project_map: dict[int, str] = {}
        self._project_names: dict[str, int] = {}
        self.config = config
        self.limiter = self._limiter()
        self.catalog = Catalog(
            self._project_map,
            self._project_codes,
            self._segment_map,
            self._segment_codes,
            {},
            self.contacts,
            self.recurring_gifts,
            self._project_names,
        )
        self.configure(config)
        for raw in config.contacts:
            self.create_contact(ContactInput.parse(raw), fire=False)

    @property
    def name(self) -> str:
        return self.config.name

    def _limiter(self) -> RollingWindow:
        c = self.config
        # "Per hour" means per window: a compressed hour keeps the same counts.
        return RollingWindow(
            c.calls_per_hour,
            c.window_seconds,
            c.other_integrations_calls_per_hour,
            headers=c.rate_limit_headers,
        )

    def configure(self, config: OrgConfig) -> None:
        """Apply (new) settings; the budget restarts only if its shape changed."""
        old = self.config
        self.config = config
        shape = (
            "calls_per_hour",
            "window_seconds",
            "other_integrations_calls_per_hour",
            "rate_limit_headers",
        )
        if any(getattr(old, k) != getattr(config, k) for k in shape):
            self.limiter = self._limiter()
        for pid, code in config.projects.items():
            if pid not in self.projects:
                self.add_project({"id": pid, "name": code, "projectCode": code, "isActive": True})
        for sid, code in config.segments.items():
            if sid not in self.segments:
                self.add_segment({"id": sid, "name": code, "code": code})
        self.catalog.gift_types = gift_type_catalog(config.gift_types)

    # --- projects and segments -------------------------------------------------------------

    def add_project(self, record: dict[str, Any]) -> dict[str, Any]:
        self.projects[record["id"]] = record
        self._project_map[record["id"]] = record["projectCode"]
        self._project_codes[str(record["projectCode"]).lower()] = record["id"]
        if record.get("name"):
            self._project_names.setdefault(str(record["name"]).strip().lower(), record["id"])
        return record

    def add_segment(self, record: dict[str, Any]) -> dict[str, Any]:
        self.segments[record["id"]] = record
        self._segment_map[record["id"]] = record["code"]
        self._segment_codes[str(record["code"]).lower()] = record["id"]
        return record

    # --- contacts ----------------------------------------------------------------------------

    def _reindex(self, contact: dict[str, Any]) -> None:
        self.index.add(
            contact["id"], ct.references(contact), ct.names(contact), ct.profile(contact)
        )

    def create_contact(self, inp: ContactInput, fire: bool = True) -> dict[str, Any]:
        """A new Contact (no matching: callers decide); fires ContactCreate."""
        if any(self.index.ref_owner(s, r) for s, r in inp.references):
            self.counters.duplicate_contacts_created += 1
        contact = ct.build_contact(self.new_id("contact"), inp, self.new_id, self.clock.now())
        self.contacts[contact["id"]] = contact
        self._reindex(contact)
        if fire:
            self.events.append(Event("ContactCreate", contact))
        return contact

    def merge_contact(self, contact_id: int, inp: ContactInput) -> bool:
        """Merge incoming data into a Contact; fires ContactUpdate when something changed."""
        contact = self.contacts[contact_id]
        # A reference another Contact holds stays with that Contact.
        refs = tuple(r for r in inp.references if not (self.index.ref_owner(*r) - {contact_id}))
        inp = ContactInput(**{**inp.__dict__, "references": refs})
        changed = ct.merge_into(contact, inp, self.new_id, self.clock.now())
        if changed:
            self._reindex(contact)
            self.events.append(Event("ContactUpdate", contact))
        return changed

    def attach_references(self, contact_id: int, inp: ContactInput | None) -> None:
        """Record a matched donor's external reference on the Contact, so later lookups by
        reference find it (only references no other Contact holds)."""
        if inp is None or not inp.references:
            return
        contact = self.contacts[contact_id]
        fresh = [r for r in inp.references if not self.index.ref_owner(*r)]
        if fresh:
            contact["contactReferences"].extend({"source": s, "id": i} for s, i in fresh)
            contact["modifiedDateTimeUtc"] = self.clock.now()
            self._reindex(contact)
            self.events.append(Event("ContactUpdate", contact))

    def contact_by_reference(self, source: str, ref_id: str) -> dict[str, Any] | None:
        owners = self.index.ref_owner(source, ref_id)
        return self.contacts[min(owners)] if owners else None

    # --- gifts -------------------------------------------------------------------------------

    def add_gift(self, gift: dict[str, Any], fire: bool = True) -> dict[str, Any]:
        """Store a built Gift, index its reference pair, fire GiftCreate."""
        ref = (gift["transactionSource"], gift["transactionId"])
        if ref[0] and ref[1]:
            if ref in self.gift_refs:
                self.counters.duplicate_gifts_created += 1
            else:
                self.gift_refs[ref] = gift["id"]
            self.seen_refs.add(ref)
        self.gifts[gift["id"]] = gift
        if fire:
            self.events.append(Event("GiftCreate", gift))
        return gift

    def create_gift(
        self, contact_id: int, fields: dict[str, Any], ref: Ref | None, batch: str | None = None
    ) -> dict[str, Any]:
        """A Gift from validated fields; a recurringGiftTransactionId naming an existing
        RecurringGift (by id or transactionId) links the gift as a payment of it."""
        gift = build_gift(
            self.new_id("gift"), contact_id, fields, ref, self.clock.now(), self.new_id, batch
        )
        link = fields.get("recurringGiftTransactionId")
        if link and not gift["recurringGiftPayments"]:
            recurring = self._recurring_by_link(str(link))
            if recurring is not None:
                gift["recurringGiftPayments"] = [{"id": recurring["id"], "amount": gift["amount"]}]
        return self.add_gift(gift)

    def _recurring_by_link(self, link: str) -> dict[str, Any] | None:
        if link.isdigit() and int(link) in self.recurring_gifts:
            return self.recurring_gifts[int(link)]
        for record in self.recurring_gifts.values():
            if record.get("transactionId") == link:
                return record
        return None

    def delete_gift(self, gift_id: int) -> dict[str, Any] | None:
        """Remove a Gift (its reference pair stays seen); fires GiftDelete. None if unknown."""
        gift = self.gifts.pop(gift_id, None)
        if gift is None:
            return None
        ref = (gift["transactionSource"], gift["transactionId"])
        if self.gift_refs.get(ref) == gift_id:
            del self.gift_refs[ref]
        self.events.append(Event("GiftDelete", gift))
        return gift

    def gift_by_ref(self, source: str, transaction_id: str) -> dict[str, Any] | None:
        gift_id = self.gift_refs.get((source, transaction_id))
        return self.gifts.get(gift_id) if gift_id is not None else None

    def gift_from_pending(
        self, pending: PendingGift, contact_id: int, batch: str | None = None
    ) -> dict[str, Any]:
        self.attach_references(contact_id, pending.contact)
        return self.create_gift(contact_id, pending.fields, pending.ref, batch)

    # --- holding state -----------------------------------------------------------------------

    def hold_gift(self, pending: PendingGift) -> HeldTransaction:
        held = HeldTransaction(self.new_id("held"), "gift", self.clock.now(), gift=pending)
        self.held[held.id] = held
        if pending.ref:
            self.seen_refs.add(pending.ref)
        return held

    def hold_contact(self, inp: ContactInput) -> HeldTransaction:
        held = HeldTransaction(self.new_id("held"), "contact", self.clock.now(), contact=inp)
        self.held[held.id] = held
        return held

    # --- views -------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Counts of everything, for stats and the page."""
        tabs = {"ready": 0, "update": 0, "match": 0, "imported": 0}
        for batch in self.imports.values():
            for tab, n in batch.counts().items():
                tabs[tab] += n
        total = sum((g["amount"] for g in self.gifts.values()), Decimal("0.00"))
        return {
            "gifts": len(self.gifts),
            "gift_total": total,
            "contacts": len(self.contacts),
            "recurring_gifts": len(self.recurring_gifts),
            "held": len(self.held),
            "needs_update": len(self.needs_update),
            "imports": len(self.imports),
            "import_entries": tabs,
            "projects": len(self.projects),
            "segments": len(self.segments),
            "webhooks": len(self.webhooks),
        }
