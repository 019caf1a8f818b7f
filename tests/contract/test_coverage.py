"""The contract covers every route: each one the sandbox serves is in the contract table, and
each endpoint of the table has its line (with evidence) in docs/virtuous-contract.md and is
described in docs/sandbox.md."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.routing import Route

from sandbox.api_crm import CrmApi
from sandbox.api_gifts import GiftApi
from sandbox.config import SandboxConfig
from sandbox.state import SandboxState
from tests.contract.table import ENDPOINTS

DOCS = Path(__file__).resolve().parents[2] / "docs"
METHODS = ("GET", "POST", "PUT", "DELETE")


def _shape(path: str) -> str:
    """A path with every parameter segment as ``{}``, compared case-insensitively."""
    return re.sub(r"\{[^}]*\}", "{}", path.split("?")[0].rstrip("/")).lower()


def _sandbox_routes() -> set[tuple[str, str]]:
    state = SandboxState(SandboxConfig(orgs=[]))
    routes = [*GiftApi(state).routes(), *CrmApi(state).routes()]
    return {
        (method, _shape(route.path))
        for route in routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method in METHODS
    }


def _table() -> set[tuple[str, str]]:
    return {(e.method, _shape(e.path)) for e in ENDPOINTS}


def test_every_route_the_sandbox_serves_is_in_the_contract_table() -> None:
    assert _sandbox_routes() == _table()


def test_every_contract_endpoint_has_its_line_in_the_contract_page() -> None:
    text = (DOCS / "virtuous-contract.md").read_text(encoding="utf-8")
    written = {
        (method, _shape(path))
        for method, path in re.findall(r"\b(GET|POST|PUT|DELETE) (/api/[^\s`|,]+)", text)
    }
    assert _table() - written == set()


def test_the_sandbox_page_describes_every_contract_endpoint() -> None:
    text = (DOCS / "sandbox.md").read_text(encoding="utf-8")
    described = {_shape(path) for path in re.findall(r"(/api/[^\s`|,)]+)", text)}
    assert {path for _, path in _table()} - described == set()


def test_the_readme_points_to_the_contract() -> None:
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    assert "(docs/virtuous-contract.md)" in readme
    assert "virtuous-contract.md" in (DOCS / "sandbox.md").read_text(encoding="utf-8")
