"""The house rules, checked on the source: who may import whom, and where Redis keys and Lua live.

Imports are read from the syntax tree, function-level imports included, so a lazy import
cannot hide a cycle or a forbidden edge.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from workers.store.keys import Keys

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("giftsync", "mapping", "producers", "workers", "sandbox")
# The most function-level imports of project modules the project keeps, each with its reason
# in a comment on the line before it.
MAX_LAZY_IMPORTS = 5


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    lazy: bool
    path: Path
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module an import names (a ``from a.b import c`` may name module a.b.c)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _edges(module: str, path: Path) -> Iterator[Edge]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{alias.name}" for alias in node.names]
        for target in targets:
            resolved = _resolve(target)
            if resolved is not None and resolved != module:
                lazy = id(node) not in top_level and not _under_type_checking(tree, node)
                yield Edge(module, resolved, lazy, path, node.lineno)


def _under_type_checking(tree: ast.Module, node: ast.AST) -> bool:
    for block in tree.body:
        if (
            isinstance(block, ast.If)
            and "TYPE_CHECKING" in ast.unparse(block.test)
            and any(child is node for child in ast.walk(block))
        ):
            return True
    return False


EDGES = [edge for module, path in MODULES.items() for edge in _edges(module, path)]


def _package_of(module: str) -> str:
    return module.split(".")[0]


def test_there_is_no_import_cycle_counting_function_level_imports() -> None:
    graph: dict[str, set[str]] = {}
    for edge in EDGES:
        graph.setdefault(edge.source, set()).add(edge.target)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_mapping_imports_nothing_of_the_project_but_itself() -> None:
    for edge in EDGES:
        if _package_of(edge.source) == "mapping":
            assert _package_of(edge.target) == "mapping", f"{edge.path.name}:{edge.line}"


def test_producers_import_only_the_message_builders_and_queue_names_of_the_workers() -> None:
    for edge in EDGES:
        if _package_of(edge.source) == "producers" and _package_of(edge.target) == "workers":
            assert edge.target in (
                "workers",
                "workers.queue",
                "workers.queue.messages",
                "workers.queue.queues",
            ), f"{edge.path.relative_to(ROOT)}:{edge.line} imports {edge.target}"


def test_nothing_imports_the_actors_module() -> None:
    # Tests and benchmarks too: they run workers through the entry point like production.
    sources = dict(MODULES)
    for folder in ("tests", "benchmarks"):
        sources |= {_module_name(path): path for path in (ROOT / folder).rglob("*.py")}
    importers = [
        f"{e.path.relative_to(ROOT)}:{e.line}"
        for module, path in sources.items()
        for e in _edges(module, path)
        if e.target == "workers.queue.actors"
    ]
    assert importers == []


def test_few_function_level_imports_and_each_says_why() -> None:
    lazy = [e for e in EDGES if e.lazy]
    assert len(lazy) <= MAX_LAZY_IMPORTS, [f"{e.path.relative_to(ROOT)}:{e.line}" for e in lazy]
    for edge in lazy:
        lines = edge.path.read_text(encoding="utf-8").splitlines()
        before = lines[edge.line - 2].strip()
        assert before.startswith("#"), (
            f"{edge.path.relative_to(ROOT)}:{edge.line}: say why this import is function-level"
        )


def test_the_workers_root_holds_only_a_few_modules() -> None:
    root = sorted(p.name for p in (ROOT / "workers").glob("*.py"))
    assert root == ["__init__.py", "errors.py", "runtime.py"]
    assert not list((ROOT / "workers").glob("*.lua"))


def test_every_lua_script_lives_in_the_store_beside_the_module_that_runs_it() -> None:
    store = ROOT / "workers" / "store"
    runners: dict[str, set[str]] = {}
    python = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    for path in python:
        for name in re.findall(r"[\"']([a-z_]+\.lua)[\"']", path.read_text(encoding="utf-8")):
            runners.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    for script in (ROOT / "workers").rglob("*.lua"):
        assert script.parent == store, script
        if script.name == "state_prelude.lua":
            continue
        assert script.name in runners, f"{script.name} is run by nothing"
        for runner in runners[script.name]:
            assert runner.startswith("workers/store/"), f"{script.name} is run from {runner}"
        stem = script.name.split("_")[0].removesuffix(".lua")
        assert any(Path(r).stem.startswith(stem) for r in runners[script.name]), script.name


# A key built from giftsync's prefix or dramatiq's namespace (``f"{prefix}:..."``).
KEY_SPELLING = re.compile(r"f[\"'][^\"']*\{[^}]*(prefix|namespace)[^}]*\}:")


def test_no_redis_key_is_spelled_outside_the_store() -> None:
    for package in ("giftsync", "producers", "workers"):
        for path in (ROOT / package).rglob("*.py"):
            if path.is_relative_to(ROOT / "workers" / "store"):
                continue
            text = path.read_text(encoding="utf-8")
            assert not KEY_SPELLING.search(text), f"{path.relative_to(ROOT)} spells a Redis key"


def test_importing_producers_loads_no_metrics_no_broker_and_reads_no_settings() -> None:
    # A fresh interpreter: what a platform's process gets from ``import producers``, with no
    # tenants file to read.
    probe = (
        "import sys, producers, dramatiq.broker, giftsync.settings\n"
        "assert 'prometheus_client' not in sys.modules, 'metrics'\n"
        "assert dramatiq.broker.global_broker is None, 'broker'\n"
        "assert giftsync.settings.get_settings.cache_info().currsize == 0, 'settings'\n"
        "assert not [m for m in sys.modules if m.startswith('workers.')\n"
        "            and m not in ('workers.queue', 'workers.queue.messages',\n"
        "                          'workers.queue.queues')], 'workers'\n"
    )
    env = {**os.environ, "GIFTSYNC_CONFIG": str(ROOT / "no-such-tenants-file.toml")}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


# A script learns some keys only as it runs (a batch's members, a split's new halves), so it
# builds them from the prefix; each such spelling must be the one keys.py writes.
LUA_BUILT_KEY = re.compile(r"\b(prefix|batch|child|counts) \.\. '(:[a-z_-]+:?)'")


def test_the_keys_lua_scripts_build_are_spelled_as_keys_py_spells_them() -> None:
    keys = Keys("P")
    spelled = {
        ("prefix", ":rec:"): (keys.record("T", "M"), "P:rec:T:M"),
        ("prefix", ":batch:"): (keys.batch("B"), "P:batch:B"),
        ("batch", ":entries"): (keys.batch_entries("B"), "P:batch:B:entries"),
        ("batch", ":members"): (keys.batch_members("B"), "P:batch:B:members"),
        ("counts", ":terminal"): (keys.terminal("T"), keys.state_counts("T") + ":terminal"),
    }
    for ours, lua in spelled.values():
        assert ours == lua
    for script in (ROOT / "workers" / "store").glob("*.lua"):
        for base, segment in LUA_BUILT_KEY.findall(script.read_text(encoding="utf-8")):
            base = "batch" if base == "child" else base  # a split's half is a batch too
            assert (base, segment) in spelled, f"{script.name} builds a {base} .. {segment} key"
