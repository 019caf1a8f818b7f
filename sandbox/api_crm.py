"""Contact, RecurringGift, Segment, Project and Webhook endpoints.

Enough of each for giftsync's dependency-first push of recurring gifts (seed 004), contact sync
(Contact Transactions, lookups by reference) and webhook subscription. ``POST /api/Contact``
is a direct create: no matching, like the live API (a second Contact with a reference another
already holds is created, and counted).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox import recurring
from sandbox.api_gifts import run_paged_query
from sandbox.matching import ContactInput, lower_keys
from sandbox.query import RECURRING_PARAMETERS
from sandbox.responses import empty, json_response, not_found, org_endpoint
from sandbox.state import SandboxState
from sandbox.store import OrgStore
from sandbox.validation import Problems, ValidationFailed, parse_body, parse_bool
from sandbox.webhooks import EVENT_FLAGS, Subscription

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _contact_input(body: dict[str, Any], need_identity: bool) -> ContactInput:
    """Parse contact data; 400 when it names nobody or carries a malformed email."""
    inp = ContactInput.parse(body)
    problems = Problems()
    if inp.email and not _EMAIL.match(inp.email):
        problems.add("email", f"'{inp.email}' is not a valid email address.")
    if need_identity and not inp.has_identity():
        problems.add("lastName", "A contact needs a name, a last name or an email.")
    elif not inp.has_identity() and not inp.references:
        problems.add("lastName", "A contact transaction needs a name, an email or a reference.")
    problems.check()
    return inp


class CrmApi:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        def r(path: str, handler: Any, method: str) -> Route:
            return Route(path, org_endpoint(self.state, handler), methods=[method])

        return [
            r("/api/Contact/Transaction", self.contact_transaction, "POST"),
            r("/api/Contact", self.create_contact, "POST"),
            r("/api/Contact/Find", self.find_contact, "GET"),
            r("/api/Contact/{id:int}", self.get_contact, "GET"),
            r("/api/Contact/{source}/{reference_id}", self.contact_by_reference, "GET"),
            r("/api/RecurringGift/Query", self.query_recurring, "POST"),
            r("/api/RecurringGift", self.create_recurring, "POST"),
            r("/api/RecurringGift/{id:int}", self.get_recurring, "GET"),
            r("/api/RecurringGift/{id:int}", self.replace_recurring, "PUT"),
            r("/api/RecurringGift/Cancel/{id:int}", self.cancel_recurring, "PUT"),
            r("/api/Segment", self.create_segment, "POST"),
            r("/api/Segment/Code/{code}", self.segment_by_code, "GET"),
            r("/api/Segment/{id:int}", self.get_segment, "GET"),
            r("/api/Project", self.create_project, "POST"),
            r("/api/Project/{id:int}", self.get_project, "GET"),
            r("/api/Webhook", self.subscribe, "POST"),
            r("/api/Webhook", self.list_webhooks, "GET"),
            r("/api/Webhook/{id:int}", self.unsubscribe, "DELETE"),
        ]

    # --- contacts ----------------------------------------------------------------------------

    async def contact_transaction(self, request: Request, store: OrgStore) -> Response:
        inp = _contact_input(parse_body(await request.body()), need_identity=False)
        with self.state.mutate(store):
            store.counters.contact_transactions += 1
            store.hold_contact(inp)
        return empty()

    async def create_contact(self, request: Request, store: OrgStore) -> Response:
        inp = _contact_input(parse_body(await request.body()), need_identity=True)
        with self.state.mutate(store):
            return json_response(store.create_contact(inp))

    async def get_contact(self, request: Request, store: OrgStore) -> Response:
        with self.state.lock:
            contact = store.contacts.get(request.path_params["id"])
            return json_response(contact) if contact is not None else not_found()

    async def find_contact(self, request: Request, store: OrgStore) -> Response:
        """``?referenceSource=&referenceId=`` and/or ``?email=``: the Contact holding them
        (both must agree when both are given), else 404."""
        q = {k.lower(): v for k, v in request.query_params.items()}
        with self.state.lock:
            found: set[int] | None = None
            if q.get("referenceid"):
                found = store.index.ref_owner(q.get("referencesource") or "", q["referenceid"])
            if q.get("email"):
                owners = store.index.email_owners(q["email"])
                found = owners if found is None else found & owners
            if not found:
                return not_found()
            return json_response(store.contacts[min(found)])

    async def contact_by_reference(self, request: Request, store: OrgStore) -> Response:
        with self.state.lock:
            contact = store.contact_by_reference(
                request.path_params["source"], request.path_params["reference_id"]
            )
            return json_response(contact) if contact is not None else not_found()

    # --- recurring gifts ---------------------------------------------------------------------

    async def create_recurring(self, request: Request, store: OrgStore) -> Response:
        body = parse_body(await request.body())
        with self.state.mutate(store):
            problems = Problems()
            now = store.clock.now()
            fields = recurring.recurring_fields(body, problems, store.catalog, [], now)
            problems.check()
            record = recurring.build_recurring(store.new_id("recurring"), fields, now, store.new_id)
            store.recurring_gifts[record["id"]] = record
            return json_response(record)

    async def get_recurring(self, request: Request, store: OrgStore) -> Response:
        with self.state.lock:
            record = store.recurring_gifts.get(request.path_params["id"])
            return json_response(record) if record is not None else not_found()

    async def replace_recurring(self, request: Request, store: OrgStore) -> Response:
        body = parse_body(await request.body())
        with self.state.mutate(store):
            record = store.recurring_gifts.get(request.path_params["id"])
            if record is None:
                return not_found()
            if "contactid" not in lower_keys(body):
                # virtuous-ts's full-replacement PUT leaves the donor out: it stays.
                body = {**body, "contactId": record["contactId"]}
            problems = Problems()
            now = store.clock.now()
            fields = recurring.recurring_fields(
                body, problems, store.catalog, record["designations"], now
            )
            problems.check()
            recurring.replace_recurring(record, fields, now, store.new_id)
            return json_response(record)

    async def cancel_recurring(self, request: Request, store: OrgStore) -> Response:
        # The body (virtuous-ts: cancelReason, categoryId; nucleus-engine: {}) is optional.
        await request.body()
        with self.state.mutate(store):
            record = store.recurring_gifts.get(request.path_params["id"])
            if record is None:
                return not_found()
            recurring.cancel_recurring(record, store.clock.now())
            return json_response(record)

    async def query_recurring(self, request: Request, store: OrgStore) -> Response:
        return await run_paged_query(self.state, request, store, "recurring", RECURRING_PARAMETERS)

    # --- segments and projects ---------------------------------------------------------------

    def _free_id(self, kind: str, taken: dict[int, Any]) -> int:
        while (new := self.state.new_id(kind) + 1000) in taken:
            pass
        return new

    async def create_segment(self, request: Request, store: OrgStore) -> Response:
        low = lower_keys(parse_body(await request.body()))
        code = str(low.get("code") or low.get("segmentcode") or "").strip()
        name = str(low.get("name") or code).strip()
        with self.state.mutate(store):
            if not code:
                raise ValidationFailed(
                    "The code field is required.", {"code": ["The code field is required."]}
                )
            if code.lower() in store.catalog.segment_codes:
                raise ValidationFailed(
                    f"A segment with code '{code}' already exists.",
                    {"code": [f"'{code}' is already in use."]},
                )
            record = store.add_segment(
                {
                    "id": self._free_id("segment", store.segments),
                    "name": name,
                    "code": code,
                    "description": low.get("description"),
                    "campaignId": low.get("campaignid"),
                    "createDateTimeUtc": store.clock.now(),
                }
            )
            return json_response(record)

    async def get_segment(self, request: Request, store: OrgStore) -> Response:
        with self.state.lock:
            record = store.segments.get(request.path_params["id"])
            return json_response(record) if record is not None else not_found()

    async def segment_by_code(self, request: Request, store: OrgStore) -> Response:
        with self.state.lock:
            sid = store.catalog.segment_codes.get(request.path_params["code"].lower())
            return json_response(store.segments[sid]) if sid is not None else not_found()

    async def create_project(self, request: Request, store: OrgStore) -> Response:
        low = lower_keys(parse_body(await request.body()))
        code = str(low.get("projectcode") or low.get("code") or "").strip()
        name = str(low.get("name") or code).strip()
        problems = Problems()
        is_active = parse_bool(low.get("isactive"), "isActive", problems, True)
        problems.check()
        with self.state.mutate(store):
            if not code:
                raise ValidationFailed(
                    "The projectCode field is required.",
                    {"projectCode": ["The projectCode field is required."]},
                )
            if code.lower() in store.catalog.project_codes:
                raise ValidationFailed(
                    f"A project with code '{code}' already exists.",
                    {"projectCode": [f"'{code}' is already in use."]},
                )
            record = store.add_project(
                {
                    "id": self._free_id("project", store.projects),
                    "name": name,
                    "projectCode": code,
                    "description": low.get("description"),
                    "externalAccountingCode": low.get("externalaccountingcode"),
                    "isActive": is_active,
                    "createDateTimeUtc": store.clock.now(),
                }
            )
            return json_response(record)

    async def get_project(self, request: Request, store: OrgStore) -> Response:
        with self.state.lock:
            record = store.projects.get(request.path_params["id"])
            return json_response(record) if record is not None else not_found()

    # --- webhooks ----------------------------------------------------------------------------

    async def subscribe(self, request: Request, store: OrgStore) -> Response:
        """``{"payloadUrl", "secret"?, "giftCreate"?, ...}``: no event flag at all means every
        event. The secret is generated when not given; the answer carries it."""
        low = lower_keys(parse_body(await request.body()))
        problems = Problems()
        url = str(low.get("payloadurl") or low.get("url") or "")
        if not url.startswith(("http://", "https://")):
            problems.add("payloadUrl", "An http(s) payloadUrl is required.")
        flags = {
            flag: parse_bool(low.get(flag.lower()), flag, problems, False)
            for flag in EVENT_FLAGS
            if flag.lower() in low
        }
        active = parse_bool(low.get("active"), "active", problems, True)
        problems.check()
        events = (
            frozenset(EVENT_FLAGS[f] for f, on in flags.items() if on)
            if flags
            else frozenset(EVENT_FLAGS.values())
        )
        with self.state.mutate(store):
            sub = Subscription(
                store.new_id("webhook"),
                store.name,
                url,
                str(low.get("secret") or secrets.token_urlsafe(24)),
                events,
                active,
                None if low.get("name") is None else str(low["name"]),
                store.clock.now(),
            )
            store.webhooks[sub.id] = sub
            return json_response(sub.to_json())

    async def list_webhooks(self, request: Request, store: OrgStore) -> Response:
        with self.state.lock:
            return json_response([w.to_json() for w in store.webhooks.values()])

    async def unsubscribe(self, request: Request, store: OrgStore) -> Response:
        with self.state.mutate(store):
            if store.webhooks.pop(request.path_params["id"], None) is None:
                return not_found()
            return empty()
