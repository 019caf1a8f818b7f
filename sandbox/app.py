"""The ASGI application: the Virtuous routes behind the gate, the admin routes, the page."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from sandbox import page
from sandbox.admin import AdminApi
from sandbox.api_crm import CrmApi
from sandbox.api_gifts import GiftApi
from sandbox.gate import Gate
from sandbox.seeding import SeedApi
from sandbox.state import SandboxState


def build_app(state: SandboxState) -> ASGIApp:
    """Every route, wrapped in the gate that authenticates, limits and breaks /api calls."""
    api: list[BaseRoute] = [*GiftApi(state).routes(), *CrmApi(state).routes()]
    admin: list[BaseRoute] = [*AdminApi(state).routes(), *SeedApi(state).routes()]
    app = Starlette(routes=[*api, *admin, *page.routes(state)])
    return Gate(app, state, api)
