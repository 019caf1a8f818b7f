"""Answer helpers shared by the route modules, with the live API's uneven bodies: JSON for
200 and 400, an empty 404, and a JSON 500 for deep skips."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.gate import ORG_KEY
from sandbox.jsonio import dumps
from sandbox.state import SandboxState
from sandbox.store import OrgStore
from sandbox.validation import ValidationFailed

Endpoint = Callable[[Request], Awaitable[Response]]
OrgHandler = Callable[[Request, OrgStore], Awaitable[Response]]


def json_response(data: Any, status: int = 200) -> Response:
    return Response(dumps(data), status_code=status, media_type="application/json")


def empty(status: int = 200) -> Response:
    """An empty body (the Transaction endpoints' 200, every 404)."""
    return Response(b"", status_code=status)


def not_found() -> Response:
    return empty(404)


def server_error(message: str = "An error has occurred.") -> Response:
    return json_response({"message": message}, 500)


def org_endpoint(state: SandboxState, handler: OrgHandler) -> Endpoint:
    """Wrap a handler: give it the calling organisation's store; turn ValidationFailed into 400."""

    async def endpoint(request: Request) -> Response:
        store = state.orgs[request.scope[ORG_KEY]]
        try:
            return await handler(request, store)
        except ValidationFailed as exc:
            return json_response(exc.body(), 400)

    endpoint.__name__ = handler.__name__
    return endpoint


def query_int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValidationFailed(
            f"'{raw}' is not a valid {name}.", {name: [f"'{raw}' is not a valid integer."]}
        ) from exc
    if value < 0:
        raise ValidationFailed(f"{name} must not be negative.", {name: ["Must be 0 or more."]})
    return value
