"""benchmarks/ imports nothing from tests/: the tests may use the benchmarks' deployment, never
the other way round, so a benchmark runs from a checkout without the test suite on its path."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
IMPORTERS = {"import_module", "__import__"}


def imports_of_tests(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import of ``tests`` in ``source``, at any depth: module level,
    inside functions, and by name through importlib."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.stmt | ast.expr):
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if node.level == 0 else []
        elif (
            isinstance(node, ast.Call)
            and _called(node) in IMPORTERS
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        else:
            names = []
        found += [(node.lineno, name) for name in names if name.split(".")[0] == "tests"]
    return found


def _called(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def test_the_scan_finds_every_kind_of_import() -> None:
    source = (
        "import tests.pipeline\n"
        "from tests.sandbox_fixtures import wait_for\n"
        "from testsuite import fine\n"
        "def run():\n"
        "    from tests import helpers\n"
        "    importlib.import_module('tests.deploy')\n"
    )
    assert imports_of_tests(source) == [
        (1, "tests.pipeline"),
        (2, "tests.sandbox_fixtures"),
        (5, "tests"),
        (6, "tests.deploy"),
    ]


def test_there_are_benchmarks_to_check() -> None:
    assert len(list(BENCHMARKS.rglob("*.py"))) >= 5


@pytest.mark.parametrize("source", sorted(BENCHMARKS.rglob("*.py")), ids=lambda p: p.name)
def test_benchmark_imports_nothing_from_tests(source: Path) -> None:
    found = imports_of_tests(source.read_text(encoding="utf-8"))
    assert not found, f"benchmarks/{source.relative_to(BENCHMARKS)} imports {found}"
