"""Gift endpoints: the Transaction pattern, direct create, GET/PUT, lookups, reversals, queries.

- ``POST /api/v2/Gift/Transaction`` and ``POST /api/v2/Gift/Transactions`` validate now, answer
  200 with an empty body, and hold the gifts (or, with ``createImport``, make one Import batch).
  A batch with any invalid entry is refused whole, each problem under ``transactions[i]....``.
- A (transactionSource, transactionId) seen before is never a second Gift: it is a counted
  no-op or a 400 saying it "has already been submitted", as the organisation is set.
- ``POST /api/Gift`` creates at once (no idempotency, like the live API: duplicates are counted).
- A batch may carry shared fields (taylorbrooks gift.rb ``import_gifts``): ``batch``,
  ``defaultGiftDate`` and ``defaultGiftType`` fill entries that lack them; ``batchTotal`` must
  be an amount.
- ``DELETE /api/Gift/{id}`` (virtuous-ts ``deleteGift``, taylorbrooks ``delete_gift``) removes
  the Gift and fires GiftDelete with the Gift as it was.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox import gifts, nightly, validation
from sandbox.holding import ImportBatch, ImportEntry
from sandbox.matching import lower_keys
from sandbox.query import GIFT_PARAMETERS, run_query
from sandbox.responses import (
    empty,
    json_response,
    not_found,
    org_endpoint,
    query_int,
    server_error,
)
from sandbox.state import SandboxState
from sandbox.store import OrgStore
from sandbox.validation import Problems, ValidationFailed, parse_body
from sandbox.webhooks import Event

DUPLICATE = "Transaction {0}/{1} has already been submitted."


class GiftApi:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        def r(path: str, handler: Any, method: str) -> Route:
            return Route(path, org_endpoint(self.state, handler), methods=[method])

        return [
            r("/api/v2/Gift/Transaction", self.transaction, "POST"),
            r("/api/v2/Gift/Transactions", self.transactions, "POST"),
            r("/api/Gift/Query/FullGift", self.query, "POST"),
            # inaturalist and nucleus-engine post the same query to /api/Gift/Query.
            r("/api/Gift/Query", self.query, "POST"),
            r("/api/Gift/ByContact/{contact_id:int}", self.by_contact, "GET"),
            r("/api/Gift/ReversingTransaction", self.reverse, "POST"),
            r("/api/Gift", self.create, "POST"),
            r("/api/Gift/{id:int}", self.get, "GET"),
            r("/api/Gift/{id:int}", self.replace, "PUT"),
            r("/api/Gift/{id:int}", self.delete, "DELETE"),
            r("/api/Gift/{source}/{transaction_id}", self.by_reference, "GET"),
        ]

    def _duplicates(
        self,
        store: OrgStore,
        pendings: list[validation.PendingGift | None],
        problems: Problems,
        prefix: str,
    ) -> set[int]:
        """Indexes of entries whose reference pair was seen (before, or earlier in this body).
        In "error" mode each becomes a problem naming the entry."""
        seen_here: set[tuple[str, str]] = set()
        dups = set()
        for i, pending in enumerate(pendings):
            if pending is None or pending.ref is None:
                continue
            if pending.ref in store.seen_refs or pending.ref in seen_here:
                dups.add(i)
                if self.state.duplicate_response == "error":
                    problems.add(f"{prefix.format(i)}transactionId", DUPLICATE.format(*pending.ref))
            seen_here.add(pending.ref)
        return dups

    def _accept(self, store: OrgStore, dups: set[int], problems: Problems) -> None:
        """Count the repeats, then refuse the request if anything is wrong."""
        if problems:
            if self.state.duplicate_response == "error":
                store.counters.duplicates_refused += len(dups)
            problems.check()
        store.counters.duplicates_noop += len(dups)

    async def transaction(self, request: Request, store: OrgStore) -> Response:
        body = parse_body(await request.body())
        problems = Problems()
        pending = validation.transaction(body, "", problems, store.catalog, None)
        with self.state.mutate(store):
            store.counters.gift_transactions += 1
            dups = self._duplicates(store, [pending], problems, "") if not problems else set()
            self._accept(store, dups, problems)
            if pending is not None and not dups:
                store.hold_gift(pending)
        return empty()

    async def transactions(self, request: Request, store: OrgStore) -> Response:
        body = parse_body(await request.body())
        low = lower_keys(body)
        entries = low.get("transactions")
        if not isinstance(entries, list) or not entries:
            raise ValidationFailed(
                "At least one transaction is required.",
                {"transactions": ["At least one transaction is required."]},
            )
        problems = Problems()
        source = None if low.get("transactionsource") is None else str(low["transactionsource"])
        create_import = validation.parse_bool(
            low.get("createimport"), "createImport", problems, False
        )
        if low.get("batchtotal") is not None:
            validation.parse_money(low["batchtotal"], "batchTotal", problems)
        shared = {
            field: low[key]
            for field, key in (
                ("giftdate", "defaultgiftdate"),
                ("gifttype", "defaultgifttype"),
                ("batch", "batch"),
            )
            if low.get(key) not in (None, "")
        }
        catalog = store.catalog
        pendings = [
            validation.transaction(
                _with_defaults(entry, shared), f"transactions[{i}].", problems, catalog, source
            )
            for i, entry in enumerate(entries)
        ]
        with self.state.mutate(store):
            store.counters.gift_transactions += len(entries)
            dups = self._duplicates(store, pendings, problems, "transactions[{0}].")
            self._accept(store, dups, problems)
            fresh = [p for i, p in enumerate(pendings) if p is not None and i not in dups]
            if create_import and fresh:
                now = store.clock.now()
                name = str(low.get("importname") or f"{source or 'API'} Import {now[:19]}")
                batch = ImportBatch(
                    store.new_id("import"),
                    store.name,
                    name,
                    source,
                    now,
                    [ImportEntry(i, p) for i, p in enumerate(fresh)],
                )
                for p in fresh:
                    if p.ref:
                        store.seen_refs.add(p.ref)
                nightly.sort_batch(store, batch)
                store.imports[batch.id] = batch
            elif not create_import:
                for p in fresh:
                    store.hold_gift(p)
        return empty()

    async def create(self, request: Request, store: OrgStore) -> Response:
        body = parse_body(await request.body())
        problems = Problems()
        fields, inputs, key = validation.gift_fields(body, "", problems, store.catalog)
        stored = validation.plain_designations(inputs, store.catalog)
        validation.check_sum(stored, fields["amount"], key, problems)
        contact_id = self._contact_id(body, store, problems)
        ref = _ref(body)
        problems.check()
        assert contact_id is not None
        with self.state.mutate(store):
            gift = store.create_gift(contact_id, {**fields, "giftDesignations": stored}, ref)
            return json_response(gift)

    def _contact_id(self, body: dict[str, Any], store: OrgStore, problems: Problems) -> int | None:
        contact_id = validation.parse_int(lower_keys(body).get("contactid"), "contactId", problems)
        if contact_id is None:
            if "contactId" not in problems.state:
                problems.add("contactId", "The contactId field is required.")
        elif contact_id not in store.contacts:
            problems.add("contactId", f"Contact {contact_id} does not exist.")
        return contact_id

    async def get(self, request: Request, store: OrgStore) -> Response:
        with self.state.lock:
            gift = store.gifts.get(request.path_params["id"])
            return json_response(gift) if gift is not None else not_found()

    async def by_contact(self, request: Request, store: OrgStore) -> Response:
        """A Contact's Gifts, newest gift date first, ``?skip=&take=`` (taylorbrooks
        ``get_contact_gifts``, virtuous-ts ``getGiftsByContact``, nucleus-engine)."""
        skip, take = query_int(request, "skip", 0), query_int(request, "take", 100)
        with self.state.lock:
            contact_id = request.path_params["contact_id"]
            if contact_id not in store.contacts:
                return not_found()
            mine = [g for g in store.gifts.values() if g["contactId"] == contact_id]
            mine.sort(key=lambda g: (g["giftDate"] or "", g["id"]), reverse=True)
            return json_response({"list": mine[skip : skip + take], "total": len(mine)})

    async def by_reference(self, request: Request, store: OrgStore) -> Response:
        with self.state.lock:
            gift = store.gift_by_ref(
                request.path_params["source"], request.path_params["transaction_id"]
            )
            return json_response(gift) if gift is not None else not_found()

    async def replace(self, request: Request, store: OrgStore) -> Response:
        body = parse_body(await request.body())
        with self.state.mutate(store):
            gift = store.gifts.get(request.path_params["id"])
            if gift is None:
                return not_found()
            if "contactid" not in lower_keys(body):
                # virtuous-ts's full-replacement PUT leaves the donor out: it stays.
                body = {**body, "contactId": gift["contactId"]}
            problems = Problems()
            fields, inputs, key = validation.gift_fields(body, "", problems, store.catalog)
            final = gifts.resolve_designations(
                gift["giftDesignations"], inputs, key, problems, store.catalog
            )
            validation.check_sum(final, fields["amount"], key, problems)
            contact_id = self._contact_id(body, store, problems)
            problems.check()
            assert contact_id is not None
            ref = _ref(body)
            old_ref = (gift["transactionSource"], gift["transactionId"])
            gifts.replace_gift(
                gift, contact_id, fields, final, ref, store.clock.now(), store.new_id
            )
            if ref is not None and ref != old_ref:
                if store.gift_refs.get(old_ref) == gift["id"]:
                    del store.gift_refs[old_ref]
                store.gift_refs.setdefault(ref, gift["id"])
                store.seen_refs.add(ref)
            store.events.append(Event("GiftUpdate", gift))
            return json_response(gift)

    async def delete(self, request: Request, store: OrgStore) -> Response:
        with self.state.mutate(store):
            gift = store.delete_gift(request.path_params["id"])
            return empty() if gift is not None else not_found()

    async def reverse(self, request: Request, store: OrgStore) -> Response:
        body = parse_body(await request.body())
        low = lower_keys(body)
        problems = Problems()
        raw = next((low[k] for k in ("reversedgiftid", "giftid", "id") if k in low), None)
        gift_id = validation.parse_int(raw, "reversedGiftId", problems)
        gift_date = (
            validation.parse_date(low["giftdate"], "giftDate", problems)
            if low.get("giftdate")
            else None
        )
        with self.state.mutate(store):
            original = store.gifts.get(gift_id) if gift_id is not None else None
            if gift_id is None and not problems:
                problems.add("reversedGiftId", "The reversedGiftId field is required.")
            elif gift_id is not None and original is None:
                problems.add("reversedGiftId", f"Gift {gift_id} does not exist.")
            elif original is not None and original["reversedGiftId"] is not None:
                problems.add(
                    "reversedGiftId",
                    f"Gift {gift_id} is a reversing transaction and cannot be reversed.",
                )
            elif original is not None and original["reversingGiftId"] is not None:
                problems.add(
                    "reversedGiftId",
                    f"Gift {gift_id} has already been reversed "
                    f"(by gift {original['reversingGiftId']}).",
                )
            problems.check()
            assert original is not None
            now = store.clock.now()
            notes = None if low.get("notes") is None else str(low["notes"])
            reversal = gifts.reversing_gift(
                original, store.new_id("gift"), now, store.new_id, gift_date, notes, _ref(body)
            )
            store.add_gift(reversal)
            original["reversingGiftId"] = reversal["id"]
            original["modifiedDateTimeUtc"] = now
            store.events.append(Event("GiftUpdate", original))
            return json_response(reversal)

    async def query(self, request: Request, store: OrgStore) -> Response:
        return await run_paged_query(self.state, request, store, "gifts", GIFT_PARAMETERS)


def _with_defaults(entry: Any, shared: dict[str, Any]) -> Any:
    """An entry with the batch's shared fields filled in where the entry has none."""
    if not shared or not isinstance(entry, dict):
        return entry
    low = lower_keys(entry)
    missing = {k: v for k, v in shared.items() if low.get(k) in (None, "")}
    if not missing:
        return entry
    kept = {k: v for k, v in entry.items() if k.lower() not in missing}
    return {**kept, **missing}


def _ref(body: dict[str, Any]) -> tuple[str, str] | None:
    low = lower_keys(body)
    source, tid = low.get("transactionsource"), low.get("transactionid")
    return (str(source), str(tid)) if source not in (None, "") and tid not in (None, "") else None


async def run_paged_query(
    state: SandboxState,
    request: Request,
    store: OrgStore,
    table: str,
    parameters: dict[str, tuple[str, str]],
) -> Response:
    """A Query endpoint: ``?skip=&take=`` (take at most ``max_take``); a skip past the deep-skip
    limit is a 500, as the live API answers it, so clients must page by key."""
    skip = query_int(request, "skip", 0)
    take = query_int(request, "take", 100)
    if skip > state.config.deep_skip_limit:
        return server_error()
    if take > state.config.max_take or take < 1:
        raise ValidationFailed(
            f"take must be between 1 and {state.config.max_take}.",
            {"take": [f"Must be between 1 and {state.config.max_take}."]},
        )
    raw = await request.body()
    body = parse_body(raw) if raw.strip() else {}
    with state.lock:
        records = store.gifts if table == "gifts" else store.recurring_gifts
        day = state.config.query_day_precision
        page, total = run_query(records.values(), body, skip, take, parameters, day)
        return json_response({"list": page, "total": total})
