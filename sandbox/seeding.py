"""Admin endpoints that put records in place without spending the API budget: existing
Contacts for matching tests, Gifts and RecurringGifts "entered by staff" (with the creation and
modification times a pull test needs), and staff edits of a Gift.

Records are validated like the API's (known projects, designations summing to the amount,
an existing contact), so a test cannot seed something Virtuous could not hold. Seeding fires no
webhooks unless the body says ``"webhooks": true``; a staff edit fires GiftUpdate by default.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox import gifts, recurring, validation
from sandbox.admin import guarded, read_json
from sandbox.matching import ContactInput
from sandbox.responses import json_response
from sandbox.state import SandboxState
from sandbox.store import OrgStore
from sandbox.timefmt import parse_timestamp
from sandbox.validation import Problems, ValidationFailed
from sandbox.webhooks import Event


def _stamp(body: dict[str, Any], key: str, path: str, problems: Problems) -> str | None:
    raw = body.get(key)
    if raw in (None, ""):
        return None
    parsed = parse_timestamp(str(raw))
    if parsed is None:
        problems.add(f"{path}{key}", f"'{raw}' is not a valid timestamp.")
        return None
    return parsed[0]


class SeedApi:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [
            Route("/_admin/contacts", guarded(self.contacts), methods=["POST"]),
            Route("/_admin/gifts", guarded(self.gifts), methods=["POST"]),
            Route("/_admin/gifts/{id:int}", guarded(self.edit_gift), methods=["POST"]),
            Route("/_admin/recurring-gifts", guarded(self.recurring_gifts), methods=["POST"]),
        ]

    def _store(self, body: dict[str, Any]) -> OrgStore:
        name = body.get("org")
        if name is None and len(self.state.orgs) == 1:
            name = next(iter(self.state.orgs))
        if name is None:
            raise ValidationFailed('Name the organisation: "org".', {"org": ["Required."]})
        return self.state.orgs[str(name)]

    @staticmethod
    def _items(body: dict[str, Any], key: str) -> list[Any]:
        items = body.get(key)
        if items is None:
            return [{k: v for k, v in body.items() if k not in ("org", "webhooks")}]
        if not isinstance(items, list):
            raise ValidationFailed(f"{key} must be a list.", {key: ["Must be a list."]})
        return items

    async def contacts(self, request: Request) -> Response:
        """``{"org", "contacts": [contact input, ...]}`` (or one contact's fields inline)."""
        body = await read_json(request)
        store = self._store(body)
        inputs = [
            ContactInput.parse(item)
            for item in self._items(body, "contacts")
            if isinstance(item, dict)
        ]
        problems = Problems()
        for i, inp in enumerate(inputs):
            if not inp.has_identity():
                problems.add(f"contacts[{i}]", "A contact needs a name, a last name or an email.")
        problems.check()
        with self.state.mutate(store):
            made = [store.create_contact(inp, fire=bool(body.get("webhooks"))) for inp in inputs]
            return json_response({"contacts": made})

    async def gifts(self, request: Request) -> Response:
        """``{"org", "gifts": [Gift JSON (createDateTimeUtc/modifiedDateTimeUtc optional)]}``."""
        body = await read_json(request)
        store = self._store(body)
        items = self._items(body, "gifts")
        problems = Problems()
        built = []
        with self.state.mutate(store):
            for i, item in enumerate(items):
                prefix = f"gifts[{i}]."
                if not isinstance(item, dict):
                    problems.add(f"gifts[{i}]", "Must be an object.")
                    continue
                fields, inputs, key = validation.gift_fields(
                    item, prefix, problems, store.catalog, negative=True
                )
                stored = validation.plain_designations(inputs, store.catalog)
                validation.check_sum(stored, fields["amount"], f"{prefix}{key}", problems)
                contact_id = validation.parse_int(
                    item.get("contactId"), f"{prefix}contactId", problems
                )
                if contact_id not in store.contacts:
                    problems.add(f"{prefix}contactId", f"Contact {contact_id} does not exist.")
                created = _stamp(item, "createDateTimeUtc", prefix, problems)
                modified = _stamp(item, "modifiedDateTimeUtc", prefix, problems)
                source, tid = item.get("transactionSource"), item.get("transactionId")
                ref = (str(source), str(tid)) if source and tid else None
                built.append(
                    (contact_id, {**fields, "giftDesignations": stored}, ref, created, modified)
                )
            problems.check()
            made = []
            for contact_id, fields, ref, created, modified in built:
                assert contact_id is not None
                gift = gifts.build_gift(
                    store.new_id("gift"), contact_id, fields, ref, store.clock.now(), store.new_id
                )
                gift["createDateTimeUtc"] = created or gift["createDateTimeUtc"]
                gift["modifiedDateTimeUtc"] = modified or created or gift["modifiedDateTimeUtc"]
                made.append(store.add_gift(gift, fire=bool(body.get("webhooks"))))
            return json_response({"gifts": made})

    async def edit_gift(self, request: Request) -> Response:
        """A staff edit: the body's fields replace the Gift's (others stay), designations by
        replacement or the diff protocol; ``modifiedDateTimeUtc`` is now unless given."""
        body = await read_json(request)
        gift_id = request.path_params["id"]
        with self.state.lock:
            store = next((s for s in self.state.orgs.values() if gift_id in s.gifts), None)
            if store is None:
                raise KeyError(f"gift {gift_id}")
            with self.state.mutate(store):
                gift = store.gifts[gift_id]
                merged = {**gift, **{k: v for k, v in body.items() if k != "webhooks"}}
                problems = Problems()
                fields, inputs, key = validation.gift_fields(
                    merged, "", problems, store.catalog, negative=True
                )
                final = gifts.resolve_designations(
                    gift["giftDesignations"], inputs, key, problems, store.catalog
                )
                validation.check_sum(final, fields["amount"], key, problems)
                modified = _stamp(body, "modifiedDateTimeUtc", "", problems)
                contact_id = validation.parse_int(merged.get("contactId"), "contactId", problems)
                if contact_id not in store.contacts:
                    problems.add("contactId", f"Contact {contact_id} does not exist.")
                problems.check()
                assert contact_id is not None
                gifts.replace_gift(
                    gift, contact_id, fields, final, None, store.clock.now(), store.new_id
                )
                if modified:
                    gift["modifiedDateTimeUtc"] = modified
                if body.get("webhooks", True):
                    store.events.append(Event("GiftUpdate", gift))
                return json_response(gift)

    async def recurring_gifts(self, request: Request) -> Response:
        """``{"org", "recurringGifts": [RecurringGift JSON, timestamps optional]}``."""
        body = await read_json(request)
        store = self._store(body)
        items = self._items(body, "recurringGifts")
        made = []
        with self.state.mutate(store):
            pending = []
            for i, item in enumerate(items):
                problems = Problems()
                if not isinstance(item, dict):
                    raise ValidationFailed(f"recurringGifts[{i}] must be an object.")
                now = store.clock.now()
                fields = recurring.recurring_fields(
                    item, problems, store.catalog, [], now, staff=True
                )
                created = _stamp(item, "createDateTimeUtc", "", problems)
                modified = _stamp(item, "modifiedDateTimeUtc", "", problems)
                if problems:
                    raise ValidationFailed(
                        "The request is invalid.",
                        {f"recurringGifts[{i}].{k}": v for k, v in problems.state.items()},
                    )
                pending.append((fields, created, modified, now))
            for fields, created, modified, now in pending:
                record = recurring.build_recurring(
                    store.new_id("recurring"), fields, now, store.new_id
                )
                record["createDateTimeUtc"] = created or now
                record["modifiedDateTimeUtc"] = modified or created or now
                store.recurring_gifts[record["id"]] = record
                made.append(record)
            return json_response({"recurringGifts": made})
