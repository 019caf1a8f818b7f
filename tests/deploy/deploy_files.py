"""Reading deploy/: the compose file, the Kubernetes manifests, the Dockerfile, the alert rules
and the dashboard, as plain data the deploy tests check against the code.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S = DEPLOY / "k8s"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "giftsync.json"
OPERATIONS = REPO / "docs" / "operations.md"
IMAGE_PREFIX = "giftsync"

# Env vars a deploy file may set that giftsync does not read: the Python runtime's own.
RUNTIME_ENV = {
    "PYTHONUNBUFFERED": "log lines reach the container's stdout at once",
    "PYTHONDONTWRITEBYTECODE": "no .pyc files written into a read-only root",
}
# Series Prometheus makes itself, not the code.
PROMETHEUS_SERIES = {"up"}


@dataclass(frozen=True)
class Role:
    """One process a deploy file starts from the giftsync image."""

    source: str  # "compose:worker", "k8s:giftsync-worker/worker", ...
    argv: tuple[str, ...]
    env: dict[str, str | None]  # name -> literal value (None: from a Secret or ConfigMap)
    tenants_file: str  # the TOML text of the tenants file it reads


def _docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


@cache
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


@cache
def k8s_documents() -> list[dict[str, Any]]:
    """Every manifest kustomization.yaml lists, plus the example Secret."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    docs: list[dict[str, Any]] = []
    for name in [*kustomization["resources"], "secret.example.yaml"]:
        docs.extend(_docs(K8S / name))
    return docs


def k8s(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in k8s_documents() if doc["kind"] == kind]


def k8s_named(kind: str, name: str) -> dict[str, Any]:
    return next(doc for doc in k8s(kind) if doc["metadata"]["name"] == name)


def compose_services() -> dict[str, dict[str, Any]]:
    """The services that run the giftsync image."""
    return {
        name: service
        for name, service in compose()["services"].items()
        if str(service.get("image", "")).startswith(IMAGE_PREFIX) or "build" in service
    }


def _compose_tenants(service: dict[str, Any]) -> str:
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if target == "/etc/giftsync/giftsync.toml":
            return (DEPLOY / source).read_text(encoding="utf-8")
    raise AssertionError("the service mounts no tenants file at /etc/giftsync/giftsync.toml")


def _k8s_tenants() -> str:
    data: str = k8s_named("ConfigMap", "giftsync-tenants")["data"]["giftsync.toml"]
    return data


def roles() -> Iterator[Role]:
    """Every giftsync process the compose file and the manifests start."""
    for name, service in sorted(compose_services().items()):
        compose_env = dict(service.get("environment") or {})
        yield Role(
            f"compose:{name}", tuple(service["command"]), compose_env, _compose_tenants(service)
        )
    shared = k8s_named("ConfigMap", "giftsync-env")["data"]
    for deployment in k8s("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if not container["image"].startswith(IMAGE_PREFIX):
                continue
            env: dict[str, str | None] = {}
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] == "giftsync-env"
                env.update(shared)
            for item in container.get("env", []):
                env[item["name"]] = item.get("value")
            where = f"k8s:{deployment['metadata']['name']}/{container['name']}"
            yield Role(where, tuple(container["args"]), env, _k8s_tenants())


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (INSTRUCTION, arguments), continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in dockerfile():
        if word == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


@cache
def settings_env_names() -> frozenset[str]:
    """The env var names giftsync/settings.py reads (the string constants passed to it)."""
    tree = ast.parse((REPO / "giftsync" / "settings.py").read_text(encoding="utf-8"))
    names = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"(REDIS_URL|GIFTSYNC_[A-Z0-9_]+)", node.value)
    }
    return frozenset(names)


def tenant_secret_envs(tenants_toml: str) -> dict[str, set[str]]:
    """The env var names a tenants file names, by kind (token, ingest, webhook)."""
    from mapping.tenant import parse_tenants

    tenants = parse_tenants(tomllib.loads(tenants_toml))
    found: dict[str, set[str]] = {"token": set(), "ingest": set(), "webhook": set()}
    for tenant in tenants.values():
        found["token"].add(tenant.virtuous_token_env)
        if tenant.ingest_secret_env:
            found["ingest"].add(tenant.ingest_secret_env)
        if tenant.webhook_secret_env:
            found["webhook"].add(tenant.webhook_secret_env)
    return found


# --- PromQL ------------------------------------------------------------------------------

_METRIC = re.compile(r"\b(giftsync_[a-z0-9_]+|up)\b(?!\s*\()")
_SELECTOR = re.compile(r"\b(giftsync_[a-z0-9_]+|up)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*\"")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def operations_guide() -> str:
    """The operations guide, docs/operations.md (the README links to it)."""
    path = OPERATIONS
    return path.read_text(encoding="utf-8")


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    """Every query of every dashboard panel, and the template variables' queries."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [
        target["expr"]
        for panel in board["panels"]
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
    for variable in board.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", str(query or ""))
        if match:
            exprs.append(f"group by ({match.group(2)}) ({match.group(1)})")
    return exprs


def scaling_exprs() -> list[str]:
    return [
        trigger["metadata"]["query"]
        for scaled in k8s("ScaledObject")
        for trigger in scaled["spec"]["triggers"]
        if trigger["type"] == "prometheus"
    ]


def all_exprs() -> dict[str, str]:
    """Every PromQL expression deploy/ holds, keyed by where it is."""
    exprs = {f"alert {rule['alert']}": str(rule["expr"]) for rule in alert_rules()}
    exprs |= {f"dashboard query {i}": e for i, e in enumerate(dashboard_exprs())}
    exprs |= {f"scaling query {i}": e for i, e in enumerate(scaling_exprs())}
    return exprs


def metric_names(expr: str) -> set[str]:
    """The series names an expression reads (not functions, not label names)."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_groupings = _GROUPING.sub("", without_strings)
    return set(_METRIC.findall(without_groupings))


def selector_labels(expr: str) -> dict[str, set[str]]:
    """metric -> label names its {…} selectors match on."""
    found: dict[str, set[str]] = {}
    for metric, body in _SELECTOR.findall(expr):
        found.setdefault(metric, set()).update(m[0] for m in _MATCHER.findall(body))
    return found


def grouping_labels(expr: str) -> set[str]:
    """Label names of every ``by (...)`` / ``without (...)`` clause."""
    return {label.strip() for body in _GROUPING.findall(expr) for label in body.split(",") if label}


def for_promtool(expr: str) -> str:
    """A dashboard query with Grafana's variables replaced, so promtool can parse it."""
    return expr.replace("$__rate_interval", "5m").replace("$tenant", ".*")
