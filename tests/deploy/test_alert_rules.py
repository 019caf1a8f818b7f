"""The alert rules and the queries of the dashboard, checked by promtool.

``promtool check rules`` parses the rules, ``promtool test rules`` runs alerts_test.yml (each
alert fires on synthetic series and stays quiet on healthy ones), and every dashboard and
scaling query is parsed the same way. promtool comes from Debian's ``prometheus`` package,
installed by the test setup when missing (see tests/deploy/system_tools.py).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy import deploy_files as d
from tests.deploy.system_tools import require_promtool


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_promtool()


def run(promtool: str, *args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def test_promtool_checks_the_rules(promtool: str) -> None:
    output = run(promtool, "check", "rules", str(d.ALERTS))
    assert f"SUCCESS: {len(d.alert_rules())} rules found" in output


def test_promtool_unit_tests_fire_each_alert(promtool: str) -> None:
    run(promtool, "test", "rules", d.ALERT_TESTS.name, cwd=d.ALERT_TESTS.parent)


def test_every_alert_is_fired_by_a_unit_test_and_has_a_runbook_entry() -> None:
    tests = yaml.safe_load(d.ALERT_TESTS.read_text(encoding="utf-8"))
    fired = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    names = {rule["alert"] for rule in d.alert_rules()}
    assert names == fired, f"alerts no unit test fires: {sorted(names - fired)}"
    headings = {
        re.sub(r"[^a-z0-9-]", "", line.lstrip("#").strip().lower().replace(" ", "-"))
        for line in d.operations_guide().splitlines()
        if line.startswith("#")
    }
    for rule in d.alert_rules():
        url = rule["annotations"]["runbook_url"]
        found = RUNBOOK_URL.fullmatch(url)
        assert found, f"{rule['alert']}: runbook_url {url} is not {RUNBOOK_URL.pattern}"
        assert found["anchor"] == rule["alert"].lower()
        assert found["anchor"] in headings, f"{rule['alert']}: no runbook heading"


# Every runbook_url: the external label runbook_base (where the repository's files are
# served), or a placeholder base when it is unset, then the entry's path: always absolute.
RUNBOOK_URL = re.compile(
    r"\{\{ with \$externalLabels\.runbook_base \}\}\{\{ \. \}\}\{\{ else \}\}"
    r"(?P<fallback>https://[^{}\s]+)\{\{ end \}\}/docs/operations\.md#(?P<anchor>[a-z0-9-]+)"
)


def test_runbook_links_have_one_base_set_where_prometheus_runs() -> None:
    fallbacks = {
        found["fallback"]
        for rule in d.alert_rules()
        if (found := RUNBOOK_URL.fullmatch(rule["annotations"]["runbook_url"]))
    }
    board = json.loads(d.DASHBOARD.read_text(encoding="utf-8"))
    runbook = next(v for v in board["templating"]["list"] if v["name"] == "runbook")
    # The placeholder is the dashboard's: one place to look for both links.
    assert fallbacks == {runbook["query"].removesuffix("/docs/operations.md")}
    config = yaml.safe_load(d.PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    assert config["global"]["external_labels"]["runbook_base"].startswith("https://")
    tests = yaml.safe_load(d.ALERT_TESTS.read_text(encoding="utf-8"))["tests"]
    bases = [test.get("external_labels", {}).get("runbook_base") for test in tests]
    # promtool renders both: with the label set, and without it.
    assert None in bases and any(bases)


def test_the_required_alerts_exist() -> None:
    exprs = {rule["alert"]: str(rule["expr"]) for rule in d.alert_rules()}
    wanted = {
        "giftsync_calls_in_window": "tenant near or at its cap",
        "giftsync_virtuous_429_total": "any 429",
        "giftsync_tenant_paused": "a tenant paused by 401",
        "giftsync_dead_letters_kept": "dead letters growing",
        'state="quarantined"': "quarantined gifts",
        'up{job="giftsync-ingest"}': "ingest down",
        'up{job="giftsync-webhooks"}': "webhooks down",
        'outcome="rejected"': "rejected webhook deliveries",
        'giftsync_queue_depth{queue=~"send|batches"}': "a send backlog that grows",
        'status=~"5.."': "Virtuous 5xx",
        "giftsync_redis_up": "Redis unreachable",
        "giftsync_buffer_oldest_age_seconds": "oldest buffered entry far past its max wait",
        "giftsync_oldest_unconfirmed_seconds": "unconfirmed past the review deadline",
        'state="needs_review"': "gifts marked needs_review",
        "giftsync_pull_cursor_lag_seconds": "a pull cursor lagging",
        "up{": "workers down",
    }
    for needle, what in wanted.items():
        assert any(needle in expr for expr in exprs.values()), f"no alert for {what}"


def test_dead_letters_growing_keeps_the_tenant() -> None:
    rule = next(r for r in d.alert_rules() if r["alert"] == "GiftsyncDeadLettersGrowing")
    assert "tenant" in d.grouping_labels(str(rule["expr"]))
    assert "$labels.tenant" in rule["annotations"]["summary"]


def test_prometheus_config_checks_with_the_rules(promtool: str, tmp_path: Path) -> None:
    config = yaml.safe_load(d.PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    # compose mounts the rules at /etc/prometheus; point at the file in the repository.
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    config["rule_files"] = [str(d.ALERTS)]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    run(promtool, "check", "config", str(path))


def test_the_prometheusrule_for_the_operator_holds_the_same_rules() -> None:
    rule = d.k8s_named("PrometheusRule", "giftsync")
    ours = yaml.safe_load(d.ALERTS.read_text(encoding="utf-8"))
    assert rule["spec"]["groups"] == ours["groups"], (
        "deploy/k8s/prometheusrule.yaml differs from deploy/prometheus/alerts.yml"
    )


def test_dashboard_and_scaling_queries_parse(promtool: str, tmp_path: Path) -> None:
    exprs = d.dashboard_exprs() + d.scaling_exprs()
    rules = [
        {"record": f"giftsync:check:{i}", "expr": d.for_promtool(expr)}
        for i, expr in enumerate(exprs)
    ]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}))
    output = run(promtool, "check", "rules", str(path))
    assert f"SUCCESS: {len(rules)} rules found" in output
