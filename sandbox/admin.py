"""Admin endpoints under ``/_admin/``: inspect, control and reset the sandbox.

No authentication (they are a test harness, not part of the Virtuous API), JSON in and out,
snake_case wrappers around Virtuous-shaped records. Listing endpoints answer
``{org_name: [...]}`` for every organisation, or only the one named by ``?org=``. Actions that
the Import Tool page posts as HTML forms answer 303 back to the page instead of JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from sandbox import nightly
from sandbox.config import ConfigError, org_from_mapping
from sandbox.responses import json_response
from sandbox.state import SandboxState, token_fingerprint
from sandbox.store import OrgStore
from sandbox.validation import Problems, ValidationFailed, parse_body, parse_bool, parse_int

Handler = Callable[[Request], Awaitable[Response]]


def _is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")


async def read_json(request: Request) -> dict[str, Any]:
    """The JSON body, ``{}`` when empty; the page's form posts are url-encoded fields (parsed
    here: Starlette's form parser would need python-multipart)."""
    raw = await request.body()
    if _is_form(request):
        return dict(parse_qsl(raw.decode("utf-8", "replace")))
    if not raw.strip():
        return {}
    return parse_body(raw)


def guarded(handler: Handler) -> Handler:
    """400 for ValidationFailed/ConfigError, 404 for an unknown organisation or record."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except (ValidationFailed, ConfigError, ValueError) as exc:
            body = exc.body() if isinstance(exc, ValidationFailed) else {"message": str(exc)}
            return json_response(body, 400)
        except KeyError as exc:
            return json_response({"message": f"not found: {exc.args[0]}"}, 404)

    endpoint.__name__ = handler.__name__
    return endpoint


class AdminApi:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        def r(path: str, handler: Handler, method: str = "GET") -> Route:
            return Route(path, guarded(handler), methods=[method])

        lists = {
            "gifts": "gifts",
            "contacts": "contacts",
            "recurring-gifts": "recurring_gifts",
            "held": "held",
            "needs-update": "needs_update",
        }
        return [
            *(r(f"/_admin/{path}", self._lister(key)) for path, key in lists.items()),
            r("/_admin/state", self.snapshot),
            r("/_admin/stats", self.stats),
            r("/_admin/imports", self.imports),
            r("/_admin/imports/{id:int}", self.one_import),
            r("/_admin/webhooks", self.webhooks),
            r("/_admin/faults", self.faults),
            r("/_admin/faults", self.set_faults, "POST"),
            r("/_admin/orgs", self.orgs),
            r("/_admin/orgs", self.put_org, "POST"),
            r("/_admin/settings", self.settings, "POST"),
            r("/_admin/reset", self.reset, "POST"),
            r("/_admin/nightly", self.run_nightly, "POST"),
            r("/_admin/imports/{id:int}/import", self.import_batch, "POST"),
            r("/_admin/imports/{id:int}/entries/{index:int}/resolve", self.resolve_entry, "POST"),
            r("/_admin/needs-update/{id:int}/resolve", self.resolve_needs_update, "POST"),
        ]

    def _org(self, request: Request, body: dict[str, Any] | None = None) -> str | None:
        return (body or {}).get("org") or request.query_params.get("org") or None

    def _lister(self, key: str) -> Handler:
        async def lister(request: Request) -> Response:
            snap = self.state.snapshot(self._org(request), (key,))
            return json_response({name: data[key] for name, data in snap.items()})

        lister.__name__ = f"list_{key}"
        return lister

    async def snapshot(self, request: Request) -> Response:
        return json_response(self.state.snapshot(self._org(request)))

    async def stats(self, request: Request) -> Response:
        stats = self.state.stats()
        if org := self._org(request):
            stats["orgs"] = {org: stats["orgs"][org]}
        return json_response(stats)

    async def imports(self, request: Request) -> Response:
        full = request.query_params.get("entries", "1") != "0"
        with self.state.lock:
            return json_response(
                {
                    s.name: [b.to_json() if full else b.summary() for b in s.imports.values()]
                    for s in self.state.orgs_named(self._org(request))
                }
            )

    def _batch(self, batch_id: int) -> tuple[OrgStore, Any]:
        for store in self.state.orgs.values():
            if batch_id in store.imports:
                return store, store.imports[batch_id]
        raise KeyError(f"import batch {batch_id}")

    async def one_import(self, request: Request) -> Response:
        with self.state.lock:
            _, batch = self._batch(request.path_params["id"])
            return json_response(batch.to_json())

    async def webhooks(self, request: Request) -> Response:
        org = self._org(request)
        with_body = request.query_params.get("body") == "1"
        with self.state.lock:
            subs = {
                s.name: [w.to_json() for w in s.webhooks.values()]
                for s in self.state.orgs_named(org)
            }
        return json_response(
            {"subscriptions": subs, "deliveries": self.state.webhooks.listing(org, with_body)}
        )

    async def faults(self, request: Request) -> Response:
        return json_response(self.state.faults.snapshot())

    async def set_faults(self, request: Request) -> Response:
        """``{"org"?: name, "clear"?: bool, <FaultConfig field>: value, ...}``."""
        body = await read_json(request)
        org = body.pop("org", None)
        clear = bool(body.pop("clear", False))
        if org is not None and org not in self.state.orgs:
            raise KeyError(f"organisation {org}")
        self.state.faults.update(body, org, clear)
        return json_response(self.state.faults.snapshot())

    async def orgs(self, request: Request) -> Response:
        with self.state.lock:
            return json_response([self._org_json(s) for s in self.state.orgs.values()])

    def _org_json(self, store: OrgStore) -> dict[str, Any]:
        config = asdict(store.config)
        config["tokens"] = [token_fingerprint(t) for t in store.config.tokens]
        config.pop("contacts")
        return config

    async def put_org(self, request: Request) -> Response:
        """Add an organisation (an ``OrgConfig`` table), or change one: keys not given keep
        their values, and its records stay."""
        body = await read_json(request)
        with self.state.lock:
            existing = self.state.orgs.get(str(body.get("name")))
            table = {**asdict(existing.config), **body} if existing is not None else body
            store = self.state.add_org(org_from_mapping(table))
            return json_response(self._org_json(store))

    async def settings(self, request: Request) -> Response:
        """``{"duplicate_response"?: "noop"|"error", "webhook_bulk"?: bool}``."""
        body = await read_json(request)
        problems = Problems()
        with self.state.lock:
            if "duplicate_response" in body:
                if body["duplicate_response"] not in ("noop", "error"):
                    problems.add("duplicate_response", "Must be 'noop' or 'error'.")
                else:
                    self.state.duplicate_response = body["duplicate_response"]
            if "webhook_bulk" in body:
                self.state.webhook_bulk = parse_bool(
                    body["webhook_bulk"], "webhook_bulk", problems, self.state.webhook_bulk
                )
            problems.check()
            return json_response(
                {
                    "duplicate_response": self.state.duplicate_response,
                    "webhook_bulk": self.state.webhook_bulk,
                }
            )

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return json_response({"reset": True})

    async def run_nightly(self, request: Request) -> Response:
        result = self.state.run_nightly(self._org(request, await read_json(request)))
        if _is_form(request):
            return RedirectResponse("/", status_code=303)
        return json_response(result)

    async def import_batch(self, request: Request) -> Response:
        """The Import button: commit the batch's Ready and Update Needed gifts."""
        with self.state.lock:
            store, batch = self._batch(request.path_params["id"])
            with self.state.mutate(store):
                result = nightly.import_batch(store, batch)
        if _is_form(request):
            return RedirectResponse(f"/#batch-{batch.id}", status_code=303)
        return json_response(result)

    def _choice(self, body: dict[str, Any]) -> tuple[int | None, bool]:
        problems = Problems()
        contact_id = parse_int(body.get("contactId", body.get("contact_id")), "contactId", problems)
        create = parse_bool(
            body.get("createContact", body.get("create_contact")), "createContact", problems, False
        )
        problems.check()
        return contact_id, create

    async def resolve_entry(self, request: Request) -> Response:
        """``{"contactId": n}`` or ``{"createContact": true}``: the entry becomes Ready."""
        body = await read_json(request)
        contact_id, create = self._choice(body)
        with self.state.lock:
            store, batch = self._batch(request.path_params["id"])
            with self.state.mutate(store):
                entry = nightly.resolve_entry(
                    store, batch, request.path_params["index"], contact_id, create
                )
                if _is_form(request):
                    return RedirectResponse(f"/#batch-{batch.id}", status_code=303)
                return json_response(entry.to_json())

    async def resolve_needs_update(self, request: Request) -> Response:
        """``{"contactId": n}``, ``{"createContact": true}`` or ``{"discard": true}``."""
        body = await read_json(request)
        contact_id, create = self._choice(body)
        discard = bool(body.get("discard"))
        held_id = request.path_params["id"]
        with self.state.lock:
            store = next((s for s in self.state.orgs.values() if held_id in s.needs_update), None)
            if store is None:
                raise KeyError(f"needs-update transaction {held_id}")
            with self.state.mutate(store):
                return json_response(
                    nightly.resolve_needs_update(store, held_id, contact_id, create, discard)
                )
