"""The deploy files agree with the code: what Docker and Kubernetes cannot run here is parsed
and checked. Every command they start is a ``giftsync`` command line that parses; every env
var they set is one giftsync reads (or a secret a tenants file names); the image holds every
package; probes, grace periods, scaling and scraping point at things that exist.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import deploy_files as d
from workers.queue.queues import CHANGE_QUEUES, QUEUES


def parse_command(argv: tuple[str, ...]) -> str:
    """Parse ``giftsync ARGV`` as the CLI does; returns the subcommand or fails the test."""
    from giftsync.cli import _build_parser

    parser = _build_parser()
    try:
        args, unknown = parser.parse_known_args(list(argv))
        if args.command == "sandbox":
            from sandbox.cli import _parser as sandbox_parser

            sandbox_parser().parse_args([*unknown, *args.rest])
        else:
            assert not unknown, f"giftsync {' '.join(argv)}: unknown arguments {unknown}"
    except SystemExit as exc:
        pytest.fail(f"giftsync {' '.join(argv)} does not parse (exit {exc.code})")
    command: str = args.command
    return command


ROLES = list(d.roles())


@pytest.mark.parametrize("role", ROLES, ids=[r.source for r in ROLES])
def test_every_role_command_parses(role: d.Role) -> None:
    parse_command(role.argv)


def test_every_subcommand_the_deploy_files_use_answers_help_from_the_entrypoint() -> None:
    # The image's entrypoint is the ``giftsync`` console script; run it as the image would.
    entrypoint = Path(sys.executable).parent / "giftsync"
    assert entrypoint.exists(), "pyproject's [project.scripts] giftsync is not installed"
    for command in sorted({parse_command(role.argv) for role in ROLES}):
        done = subprocess.run(
            [str(entrypoint), command, "--help"], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"giftsync {command} --help: {done.stderr[-500:]}"
        assert "usage: giftsync" in done.stdout


@pytest.mark.parametrize("role", ROLES, ids=[r.source for r in ROLES])
def test_every_env_var_a_role_sets_is_read_by_giftsync(role: d.Role) -> None:
    secrets = d.tenant_secret_envs(role.tenants_file)
    known = d.settings_env_names() | set().union(*secrets.values())
    unknown = set(role.env) - known - set(d.RUNTIME_ENV)
    assert not unknown, f"{role.source} sets env vars nothing reads: {sorted(unknown)}"


@pytest.mark.parametrize("role", ROLES, ids=[r.source for r in ROLES])
def test_each_role_gets_the_secrets_its_tenants_file_names(role: d.Role) -> None:
    needs = {
        "worker": {"token"},
        "ingest": {"ingest"},
        "webhooks": {"webhook"},
        "console": set(),
        "sandbox": set(),
    }[role.argv[0]]
    secrets = d.tenant_secret_envs(role.tenants_file)
    for kind in needs:
        missing = secrets[kind] - set(role.env)
        assert not missing, f"{role.source} lacks the {kind} env vars {sorted(missing)}"
    if role.argv[0] != "sandbox":
        assert "GIFTSYNC_CONFIG" in role.env and "REDIS_URL" in role.env
    if role.argv[0] == "console" and "--host" in role.argv:
        assert "GIFTSYNC_CONSOLE_TOKEN" in role.env, "a console bound beyond loopback needs it"


def test_dockerfile_is_one_slim_non_root_image_entered_through_giftsync() -> None:
    steps = d.dockerfile()
    bases = [rest.split()[0] for word, rest in steps if word == "FROM"]
    assert bases and all(base.startswith("python:3.11-slim") for base in bases)
    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert ("ENTRYPOINT", '["giftsync"]') in final
    pyproject = tomllib.loads((d.REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["scripts"]["giftsync"] == "giftsync.cli:main"
    cmd = next(rest for word, rest in final if word == "CMD")
    assert cmd == '["--help"]'


def test_the_image_copies_every_package_and_the_build_context_lets_them_in() -> None:
    copied = set()
    for word, rest in d.dockerfile():
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _ = rest.split()
            for source in sources:
                assert (d.REPO / source).exists(), f"COPY {source}: no such file in the repo"
                copied.add(source.rstrip("/"))
    pyproject = tomllib.loads((d.REPO / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert packages <= copied, f"the image would lack {sorted(packages - copied)}"
    ignore = (d.DOCKERFILE.parent / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    allowed = {line[1:].rstrip("/") for line in ignore.splitlines() if line.startswith("!")}
    assert copied <= allowed, f"the build context excludes {sorted(copied - allowed)}"


def test_dockerfile_env_is_python_runtime_or_giftsync_settings() -> None:
    env = d.dockerfile_env()
    unknown = set(env) - set(d.RUNTIME_ENV) - d.settings_env_names()
    assert not unknown, f"the Dockerfile sets {sorted(unknown)}, which nothing reads"


def test_compose_runs_every_role_and_redis_with_aof() -> None:
    services = d.compose()["services"]
    for name in ("redis", "worker", "ingest", "webhooks", "sandbox", "prometheus", "grafana"):
        assert name in services, f"compose lacks {name}"
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    roles = {service["command"][0] for service in d.compose_services().values()}
    assert {"worker", "ingest", "webhooks", "sandbox", "console"} <= roles


def _seconds(value: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(value[:-1]) * units[value[-1]]


def _shutdown_seconds(argv: tuple[str, ...]) -> float:
    if "--shutdown-timeout-ms" in argv:
        return int(argv[argv.index("--shutdown-timeout-ms") + 1]) / 1000
    from giftsync.cli import _build_parser

    default: int = _build_parser().parse_args(["worker"]).shutdown_timeout_ms
    return default / 1000


def test_a_stopping_worker_has_time_to_finish_its_send() -> None:
    worker = d.compose()["services"]["worker"]
    assert _seconds(worker["stop_grace_period"]) > _shutdown_seconds(tuple(worker["command"]))
    deployment = d.k8s_named("Deployment", "giftsync-worker")
    pod = deployment["spec"]["template"]["spec"]
    argv = tuple(pod["containers"][0]["args"])
    assert pod["terminationGracePeriodSeconds"] > _shutdown_seconds(argv) + 5


def test_compose_mounts_files_that_exist_and_grafana_finds_the_dashboard() -> None:
    for name, service in d.compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (d.DEPLOY / source).exists(), f"{name} mounts missing {source}"
    grafana = d.compose()["services"]["grafana"]["volumes"]
    target = next(v.split(":")[1] for v in grafana if "dashboards" in v.split(":")[0])
    provider = yaml.safe_load(
        (d.DEPLOY / "grafana/provisioning/dashboards/giftsync.yml").read_text(encoding="utf-8")
    )
    assert provider["providers"][0]["options"]["path"] == target
    source = yaml.safe_load(
        (d.DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text(encoding="utf-8")
    )
    uid = source["datasources"][0]["uid"]
    board = json.loads(d.DASHBOARD.read_text(encoding="utf-8"))
    # Panels read the datasource variable, so the board imports into any Grafana; its
    # default is the datasource compose provisions.
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["datasource"]["current"]["value"] == uid
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            for target in panel.get("targets", []):
                assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    assert variables["tenant"]["datasource"]["uid"] == "${datasource}"


def test_dashboard_top_row_thresholds_and_links() -> None:
    board = json.loads(d.DASHBOARD.read_text(encoding="utf-8"))
    panels = board["panels"]
    assert panels[0]["type"] == "row" and panels[0]["title"] == "Right now"
    top = [p for p in panels if p["type"] == "stat" and p["gridPos"]["y"] == 1]
    titles = {p["title"] for p in top}
    assert {"Send backlog", "Needs review", "Dead letters", "Tenants paused"} <= titles
    assert all(p["gridPos"]["y"] > 1 for p in panels[1:] if p not in top)
    for title in ("Budget used", "Paused by 401"):
        panel = next(p for p in panels if p["title"] == title)
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert len(steps) >= 2 and steps[-1]["color"] == "red", title
    links = {link["title"]: link["url"] for link in board["links"]}
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert links["Runbook"] == "${runbook}"
    assert variables["runbook"]["query"].endswith("docs/operations.md")
    assert links["Operator console"] == "${console}"


def _pod(deployment: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


@pytest.mark.parametrize(
    "deployment", d.k8s("Deployment"), ids=[x["metadata"]["name"] for x in d.k8s("Deployment")]
)
def test_k8s_deployments_have_probes_resources_and_run_unprivileged(
    deployment: dict[str, Any],
) -> None:
    pod = _pod(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in pod["containers"]:
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        for probe in ("readinessProbe", "livenessProbe"):
            spec = container[probe]
            port = (spec.get("httpGet") or spec.get("tcpSocket"))["port"]
            assert port in ports or port in ports.values(), f"{probe} port {port} not exposed"
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["requests"]["memory"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                # The Secret's keys are the env var names the tenants file gives.
                assert ref["key"] == item["name"]
                secret = d.k8s_named("Secret", ref["name"])
                assert item["name"] in secret["stringData"]


def test_ingest_is_probed_on_healthz_and_readyz() -> None:
    container = _pod(d.k8s_named("Deployment", "giftsync-ingest"))["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_services_and_monitors_select_pods_and_ports_that_exist() -> None:
    deployments = d.k8s("Deployment")
    services = {s["metadata"]["name"]: s for s in d.k8s("Service")}
    for service in services.values():
        selector = service["spec"]["selector"]
        pods = [x for x in deployments if selector.items() <= _labels(x).items()]
        assert pods, f"Service {service['metadata']['name']} selects no Deployment"
        names = {p["name"] for c in _pod(pods[0])["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names
    rules = d.ALERTS.read_text(encoding="utf-8")
    for monitor in d.k8s("ServiceMonitor"):
        wanted = monitor["spec"]["selector"]["matchLabels"]
        matching = [
            s for s in services.values() if wanted.items() <= s["metadata"]["labels"].items()
        ]
        assert len(matching) == 1, monitor["metadata"]["name"]
        ports = {p["name"] for p in matching[0]["spec"]["ports"]}
        assert all(e["port"] in ports for e in monitor["spec"]["endpoints"])
        # The job label is the Service's name: the one the alerts and compose use.
        job = matching[0]["metadata"]["name"]
        compose_jobs = {j["job_name"] for j in _prometheus()["scrape_configs"]}
        assert job in compose_jobs
    assert 'job="giftsync-worker"' in rules


def _labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def _prometheus() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(d.PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    return data


def test_workers_scale_on_queue_depth() -> None:
    (scaled,) = d.k8s("ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "giftsync-worker"
    assert scaled["spec"]["minReplicaCount"] >= 1
    assert any("giftsync_queue_depth" in q for q in d.scaling_exprs())


def test_workers_scale_on_every_changes_queue() -> None:
    (query,) = d.scaling_exprs()
    (pattern,) = re.findall(r'queue=~"([^"]*)"', query)
    assert {q for q in QUEUES if re.fullmatch(pattern, q)} == set(CHANGE_QUEUES)


def test_kustomize_builds_the_manifests() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (optional: the manifests are parsed above)")
    done = subprocess.run(
        [kubectl, "kustomize", str(d.K8S)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(done.stdout) if doc}
    assert {"Deployment", "Service", "ServiceMonitor", "ScaledObject", "PrometheusRule"} <= kinds


def test_the_operations_guide_commands_parse() -> None:
    # Every `giftsync ...` line in the guide's code blocks is a command line that works.
    text = d.operations_guide()
    lines = [
        line.strip().removeprefix("$ ")
        for block in text.split("```")[1::2]
        for line in block.splitlines()
        if line.strip().removeprefix("$ ").startswith("giftsync ")
    ]
    assert lines, "the guide shows no giftsync command"
    for line in lines:
        argv = tuple(shlex.split(line.split("#")[0]))[1:]
        parse_command(argv)


def test_config_changes_roll_every_pod() -> None:
    docs = [doc for doc in yaml.safe_load_all((d.K8S / "config.yaml").read_text()) if doc]
    data = {doc["metadata"]["name"]: doc["data"] for doc in docs}
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    for deployment in d.k8s("Deployment"):
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        assert annotations.get("giftsync/config-checksum") == digest, (
            f"{deployment['metadata']['name']}: set giftsync/config-checksum to {digest!r}"
        )


def test_replicas_of_a_scaled_deployment_are_left_to_the_scaler() -> None:
    for scaled in d.k8s("ScaledObject"):
        target = d.k8s_named("Deployment", scaled["spec"]["scaleTargetRef"]["name"])
        assert "replicas" not in target["spec"], "KEDA owns the count: no fixed replicas"


def test_the_stop_outlasts_the_longest_send() -> None:
    # A send is one Virtuous call at most GIFTSYNC_VIRTUOUS_TIMEOUT_SECONDS long (a throttle
    # re-enqueues rather than waits): the shutdown timeout must let it finish.
    from giftsync.settings import Settings

    shared = d.k8s_named("ConfigMap", "giftsync-env")["data"]
    timeout = float(
        shared.get("GIFTSYNC_VIRTUOUS_TIMEOUT_SECONDS", Settings.virtuous_timeout_seconds)
    )
    pod = d.k8s_named("Deployment", "giftsync-worker")["spec"]["template"]["spec"]
    assert _shutdown_seconds(tuple(pod["containers"][0]["args"])) > timeout + 10


def test_the_subscribe_job_has_both_secrets_and_a_command_that_parses() -> None:
    (job,) = [doc for doc in d._docs(d.K8S / "webhooks-subscribe-job.yaml") if doc]
    assert job["kind"] == "Job"
    pod = job["spec"]["template"]["spec"]
    secrets = d.tenant_secret_envs(
        d.k8s_named("ConfigMap", "giftsync-tenants")["data"]["giftsync.toml"]
    )
    for container in [*pod["initContainers"], *pod["containers"]]:
        argv = tuple(container["args"])
        parse_command(argv)
        tenant = argv[argv.index("--tenant") + 1]
        from mapping.tenant import parse_tenants

        settings = parse_tenants(
            tomllib.loads(d.k8s_named("ConfigMap", "giftsync-tenants")["data"]["giftsync.toml"])
        )[tenant]
        env = {item["name"] for item in container["env"]}
        assert {settings.virtuous_token_env, settings.webhook_secret_env} <= env
        assert env <= secrets["token"] | secrets["webhook"]
    assert pod["initContainers"][0]["args"][:3] == ["doctor", "--role", "subscribe"]
    assert pod["containers"][0]["args"][:2] == ["webhooks", "subscribe"]


def test_dependencies_are_locked_once_for_ci_and_the_image_and_cached_apart() -> None:
    lock = (d.REPO / "constraints.txt").read_text(encoding="utf-8").splitlines()
    pins = [line for line in lock if line and not line.startswith("#")]
    assert pins and all("==" in line for line in pins)
    assert not any(line.lower().startswith("giftsync") for line in pins)
    steps = d.dockerfile()
    copies = [rest for word, rest in steps if word == "COPY" and not rest.startswith("--from")]
    first_install = next(i for i, (w, r) in enumerate(steps) if w == "RUN" and "pip wheel" in r)
    assert "--constraint constraints.txt" in steps[first_install][1]
    source_copy = next(i for i, (w, r) in enumerate(steps) if w == "COPY" and "workers" in r)
    assert first_install < source_copy, "dependencies must be a layer before the source"
    assert any("constraints.txt" in c for c in copies)
    assert "--constraint constraints.txt" in (d.REPO / ".ci" / "run").read_text(encoding="utf-8")
