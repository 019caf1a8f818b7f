"""The nightly batch and the Import Tool's actions: where held Transactions become records.

- Contact Transactions (processed first, so a donor sent before their gift is found): a match
  merges the incoming data into the Contact; no match creates one.
- Gift Transactions: a confident match becomes a Gift of that Contact; otherwise the
  transaction moves to the needs-update bucket with the reason (or, when the organisation is
  set so, a new Contact is made for it).
- Import batches: each entry is sorted into Ready for Import (confident match, nothing new),
  Update Needed (matched, but the incoming email/phone/address/name differ) or Match Needed.
  Importing commits Ready and Update Needed entries (accepting the updates); Match Needed
  entries wait until a person picks or creates the Contact.
"""

from __future__ import annotations

from typing import Any

from sandbox import contacts as ct
from sandbox.holding import HeldTransaction, ImportBatch, ImportEntry
from sandbox.store import OrgStore
from sandbox.validation import ValidationFailed


def run_nightly(store: OrgStore, create_contacts_for_gifts: bool = False) -> dict[str, Any]:
    """Resolve every held transaction of the organisation; re-sort pending import entries."""
    summary = {"contacts_created": 0, "contacts_updated": 0, "gifts_created": 0, "needs_update": 0}
    held = list(store.held.values())
    store.held.clear()
    for item in (h for h in held if h.kind == "contact"):
        assert item.contact is not None
        match = store.index.match(item.contact, store.contacts)
        target = match.contact_id or match.candidate_id
        if target is not None:
            summary["contacts_updated"] += int(store.merge_contact(target, item.contact))
        else:
            store.create_contact(item.contact)
            summary["contacts_created"] += 1
    for item in (h for h in held if h.kind == "gift"):
        assert item.gift is not None
        match = store.index.match(item.gift.contact, store.contacts)
        contact_id = match.contact_id
        inp = item.gift.contact
        if contact_id is None and create_contacts_for_gifts and inp and inp.has_identity():
            contact_id = store.create_contact(inp)["id"]
            summary["contacts_created"] += 1
        if contact_id is None:
            item.reason = match.reason
            store.needs_update[item.id] = item
            summary["needs_update"] += 1
        else:
            store.gift_from_pending(item.gift, contact_id)
            summary["gifts_created"] += 1
    for batch in store.imports.values():
        sort_batch(store, batch)
    store.counters.nightly_runs += 1
    return summary


def sort_entry(store: OrgStore, entry: ImportEntry) -> None:
    """Put one import entry in its tab by matching its contact data now."""
    if entry.tab == "imported" or entry.resolved_by_hand:
        return
    inp = entry.pending.contact
    match = store.index.match(inp, store.contacts)
    entry.contact_id = match.contact_id
    entry.reason = match.reason
    if match.contact_id is None:
        entry.tab, entry.differences = "match", []
        return
    entry.differences = ct.differences(store.index.profiles[match.contact_id], inp) if inp else []
    entry.tab = "update" if entry.differences else "ready"


def sort_batch(store: OrgStore, batch: ImportBatch) -> None:
    for entry in batch.entries:
        sort_entry(store, entry)


def import_batch(store: OrgStore, batch: ImportBatch) -> dict[str, Any]:
    """Commit the batch's resolvable gifts: Ready for Import, and Update Needed with its
    updates accepted. Match Needed entries stay."""
    sort_batch(store, batch)
    created = []
    for entry in batch.entries:
        if entry.tab not in ("ready", "update") or entry.contact_id is None:
            continue
        if entry.tab == "update" and entry.pending.contact is not None:
            store.merge_contact(entry.contact_id, entry.pending.contact)
        gift = store.gift_from_pending(entry.pending, entry.contact_id, batch=batch.name)
        entry.tab, entry.gift_id = "imported", gift["id"]
        created.append(gift["id"])
    if created:
        batch.imported_at = store.clock.now()
    return {
        "batch": batch.summary(),
        "imported": len(created),
        "gift_ids": created,
        "remaining": {"match": batch.counts()["match"]},
    }


def _chosen_contact(
    store: OrgStore, contact_id: int | None, create: bool, entry_contact: Any
) -> tuple[int, str]:
    if contact_id is not None:
        if contact_id not in store.contacts:
            raise ValidationFailed(
                f"Contact {contact_id} does not exist.",
                {"contactId": [f"Contact {contact_id} does not exist."]},
            )
        return contact_id, f"matched by hand to #{contact_id}"
    if create:
        if entry_contact is None or not entry_contact.has_identity():
            raise ValidationFailed(
                "Not enough contact data to create a contact.",
                {"createContact": ["The transaction has no name or email."]},
            )
        return store.create_contact(entry_contact)["id"], "new contact created by hand"
    raise ValidationFailed(
        "Say which contact: contactId, or createContact: true.",
        {"contactId": ["Required unless createContact is true."]},
    )


def resolve_entry(
    store: OrgStore, batch: ImportBatch, index: int, contact_id: int | None, create: bool
) -> ImportEntry:
    """A person picks (or creates) the Contact of a Match Needed entry: it becomes Ready."""
    if not 0 <= index < len(batch.entries):
        raise ValidationFailed(f"Batch {batch.id} has no entry {index}.")
    entry = batch.entries[index]
    if entry.tab == "imported":
        raise ValidationFailed(f"Entry {index} of batch {batch.id} is already imported.")
    entry.contact_id, entry.reason = _chosen_contact(
        store, contact_id, create, entry.pending.contact
    )
    entry.tab, entry.differences, entry.resolved_by_hand = "ready", [], True
    return entry


def resolve_needs_update(
    store: OrgStore, held_id: int, contact_id: int | None, create: bool, discard: bool
) -> dict[str, Any]:
    """A person resolves a needs-update transaction: pick a Contact, create one, or discard."""
    held: HeldTransaction | None = store.needs_update.get(held_id)
    if held is None or held.gift is None:
        raise ValidationFailed(f"No needs-update transaction {held_id}.")
    if discard:
        # Staff threw it away: a later resubmission of the same reference is new, not a repeat.
        del store.needs_update[held_id]
        if held.gift.ref:
            store.seen_refs.discard(held.gift.ref)
        return {"discarded": held_id}
    chosen, _ = _chosen_contact(store, contact_id, create, held.gift.contact)
    gift = store.gift_from_pending(held.gift, chosen)
    del store.needs_update[held_id]
    return {"gift": gift}
