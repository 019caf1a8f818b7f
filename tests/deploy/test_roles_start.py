"""The roles start, outside containers, with the very commands compose gives them.

Each HTTP role is run as ``giftsync <command from deploy/compose.yaml>`` (only the port is
swapped for a free one) against a test Redis prefix and the sandbox, and must answer its
health endpoint. The worker role is started the same way by
tests/integration/test_metrics_scrape.py, which scrapes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.deployment import Deployment, deployment, tenant_table
from tests.deploy import deploy_files as d
from tests.deploy.processes import answers, free_port, role, with_port

pytestmark = pytest.mark.integration

# role -> the path that says it is up.
HEALTH = {
    "ingest": "/readyz",
    "webhooks": "/healthz",
    "console": "/healthz",
    "sandbox": "/_admin/stats",
}
CONSOLE_TOKEN = "console-token-for-the-role-test"
# The roles giftsync's own code runs (the sandbox stands in for Virtuous and logs its own way).
GIFTSYNC_ROLES = {"ingest", "webhooks", "console"}


def tenants(url: str) -> str:
    return tenant_table(
        "hope-shelter",
        url,
        "VIRTUOUS_TOKEN_HOPE",
        ingest_secret_env="INGEST_SECRET_HOPE",
        webhook_secret_env="WEBHOOK_SECRET_HOPE",
    )


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Deployment]:
    env = {
        "INGEST_SECRET_HOPE": "ingest-secret",
        "WEBHOOK_SECRET_HOPE": "webhook-secret",
        "GIFTSYNC_CONSOLE_TOKEN": CONSOLE_TOKEN,
    }
    with deployment(tmp_path_factory.mktemp("roles"), redis_url, tenants=tenants, env=env) as dep:
        yield dep


@pytest.mark.parametrize("service", sorted(HEALTH))
def test_role_starts_with_its_compose_command(dep: Deployment, service: str) -> None:
    assert dep.log_dir is not None
    argv = tuple(d.compose()["services"][service]["command"])
    port = free_port()
    log = dep.log_dir / f"{service}.log"
    with role(with_port(argv, port), dep.env, log) as proc:
        answers(f"http://127.0.0.1:{port}{HEALTH[service]}", proc, log)
    if service in GIFTSYNC_ROLES:
        assert_json_lines(log)


def assert_json_lines(log: Path) -> None:
    """Every line the role wrote, from start to stop, is one JSON object."""
    lines = log.read_text().splitlines()
    assert lines, f"{log.name}: the role logged nothing"
    for number, line in enumerate(lines, 1):
        try:
            assert isinstance(json.loads(line), dict)
        except (ValueError, AssertionError):
            raise AssertionError(
                f"{log.name} line {number} is not a JSON object: {line!r}"
            ) from None


def test_a_console_bound_beyond_loopback_refuses_to_start_without_a_token(
    dep: Deployment, tmp_path: Path
) -> None:
    argv = with_port(tuple(d.compose()["services"]["console"]["command"]), free_port())
    env = {k: v for k, v in dep.env.items() if k != "GIFTSYNC_CONSOLE_TOKEN"}
    log = tmp_path / "console.log"
    with role(argv, env, log) as proc:
        assert proc.wait(timeout=60) == 2
    assert "needs GIFTSYNC_CONSOLE_TOKEN" in log.read_text()
