"""mapping/ stays pure: no I/O libraries, no clock reads, no file access."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MAPPING = Path(__file__).resolve().parents[2] / "mapping"
FORBIDDEN_MODULES = {
    "redis",
    "httpx",
    "dramatiq",
    "structlog",
    "requests",
    "socket",
    "subprocess",
    "os",
    "time",
    "random",
    "logging",
    "prometheus_client",
}
FORBIDDEN_CALLS = {"now", "utcnow", "today", "open", "print", "read_text", "write_text", "getenv"}


@pytest.mark.parametrize("source", sorted(MAPPING.glob("*.py")), ids=lambda p: p.name)
def test_module_is_pure(source: Path) -> None:
    tree = ast.parse(source.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN_MODULES, f"{source.name} imports {name}"
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            assert called not in FORBIDDEN_CALLS, f"{source.name} calls {called}()"


def test_every_module_has_a_docstring() -> None:
    for source in MAPPING.glob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), source.name
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                assert ast.get_docstring(node), f"{source.name}:{node.name}"
