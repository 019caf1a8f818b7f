"""The admin routes (inspect, reset, add organisations, settings), config files, and the CLI
(as ``python -m sandbox``, what ``giftsync sandbox`` runs)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from giftsync.waiting import wait_for
from sandbox import ConfigError, RunningSandbox, demo_config, load_config, token_fingerprint
from sandbox.cli import _parser, build_config, main
from tests.sandbox_fixtures import gift_transaction, org_stats, seed_contacts

pytest_plugins = ["tests.sandbox_fixtures"]
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_state_lists_every_kind_of_record(api: httpx.Client, admin: httpx.Client) -> None:
    (donor,) = seed_contacts(
        admin, "alpha", {"lastName": "Lovelace", "referenceSource": "WeGive", "referenceId": "d1"}
    )
    api.post("/api/v2/Gift/Transaction", json=gift_transaction("h1", contact={"id": donor}))
    api.post("/api/v2/Gift/Transaction", json=gift_transaction("n1"))
    admin.post("/_admin/nightly")
    api.post("/api/v2/Gift/Transaction", json=gift_transaction("h2", contact={"id": donor}))
    api.post(
        "/api/v2/Gift/Transactions",
        json={"createImport": True, "importName": "I", "transactions": [gift_transaction("i1")]},
    )
    api.post("/api/Webhook", json={"payloadUrl": "http://127.0.0.1:9/hook"})
    state = admin.get("/_admin/state", params={"org": "alpha"}).json()
    assert list(state) == ["alpha"]
    alpha = state["alpha"]
    assert [g["transactionId"] for g in alpha["gifts"]] == ["h1"]
    assert [c["id"] for c in alpha["contacts"]] == [donor]
    assert [h["transactionId"] for h in alpha["held"]] == ["h2"]
    assert [h["transactionId"] for h in alpha["needs_update"]] == ["n1"]
    assert [i["name"] for i in alpha["imports"]] == ["I"]
    assert len(alpha["webhooks"]) == 1
    assert {p["projectCode"] for p in alpha["projects"]} == {"GEN", "FOOD", "SHELTER", "FEES"}
    assert set(admin.get("/_admin/state").json()) == {"alpha", "beta"}
    for path in ("gifts", "contacts", "recurring-gifts", "held", "needs-update", "imports"):
        listing = admin.get(f"/_admin/{path}").json()
        assert set(listing) == {"alpha", "beta"}, path
    assert admin.get("/_admin/gifts", params={"org": "nobody"}).status_code == 404


def test_reset_empties_everything(
    sandbox: RunningSandbox, api: httpx.Client, admin: httpx.Client
) -> None:
    api.post("/api/v2/Gift/Transaction", json=gift_transaction("t1"))
    api.post("/api/v2/Gift/Transaction", json=gift_transaction("t1"))
    assert org_stats(admin)["duplicates_noop"] == 1
    assert admin.post("/_admin/reset").json() == {"reset": True}
    stats = admin.get("/_admin/stats").json()
    assert stats["requests"]["total"] == 0
    assert (
        stats["orgs"]["alpha"]["held"],
        stats["orgs"]["alpha"]["calls"],
        stats["orgs"]["alpha"]["duplicates_noop"],
    ) == (0, 0, 0)
    # The same reference pair is new again.
    api.post("/api/v2/Gift/Transaction", json=gift_transaction("t1"))
    assert org_stats(admin)["held"] == 1


def test_organisations_are_added_and_changed_at_run_time(
    sandbox: RunningSandbox, admin: httpx.Client
) -> None:
    r = admin.post(
        "/_admin/orgs",
        json={
            "name": "gamma",
            "tokens": ["token-gamma"],
            "calls_per_hour": 2,
            "window_seconds": 60,
            "projects": {"7": "SEVEN"},
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["tokens"] == [token_fingerprint("token-gamma")]
    gamma = httpx.Client(base_url=sandbox.url, headers={"Authorization": "Bearer token-gamma"})
    body = gift_transaction("g1", designations=[{"id": 7, "amountDesignated": "10.00"}])
    assert gamma.post("/api/v2/Gift/Transaction", json=body).status_code == 200
    assert gamma.get("/api/Gift/1").headers["X-RateLimit-Limit"] == "2"
    assert gamma.get("/api/Gift/1").status_code == 429
    # Changing the org keeps its records; a new token replaces the old one.
    admin.post(
        "/_admin/orgs", json={"name": "gamma", "tokens": ["token-gamma-2"], "calls_per_hour": 100}
    )
    assert gamma.get("/api/Gift/1").status_code == 401
    gamma.headers["Authorization"] = "Bearer token-gamma-2"
    assert gamma.get("/api/Gift/1").headers["X-RateLimit-Limit"] == "100"
    assert org_stats(admin, "gamma")["held"] == 1
    # Keys not given keep their values.
    admin.post("/_admin/orgs", json={"name": "gamma", "window_seconds": 5})
    assert gamma.get("/api/Gift/1").headers["X-RateLimit-Limit"] == "100"
    assert "." in gamma.get("/api/Gift/1").headers["X-RateLimit-Reset"]
    listed = {o["name"]: o for o in admin.get("/_admin/orgs").json()}
    assert "token-gamma-2" not in json.dumps(listed)
    bad = admin.post("/_admin/orgs", json={"name": "delta", "tokens": ["token-alpha-1"]})
    assert bad.status_code == 400
    assert (
        admin.post("/_admin/orgs", json={"name": "x", "tokens": ["t"], "bogus": 1}).status_code
        == 400
    )


def test_settings_are_checked(admin: httpx.Client) -> None:
    assert admin.post("/_admin/settings", json={"duplicate_response": "maybe"}).status_code == 400
    assert admin.post("/_admin/settings", json={}).json() == {
        "duplicate_response": "noop",
        "webhook_bulk": False,
    }


def test_staff_edits_change_a_gift_and_its_modified_time(
    api: httpx.Client, admin: httpx.Client
) -> None:
    (donor,) = seed_contacts(admin, "alpha", {"lastName": "Lovelace"})
    seeded = admin.post(
        "/_admin/gifts",
        json={
            "org": "alpha",
            "gifts": [
                {
                    "contactId": donor,
                    "giftDate": "2026-10-01",
                    "amount": "5.00",
                    "giftDesignations": [{"projectId": 101, "amountDesignated": "5.00"}],
                    "modifiedDateTimeUtc": "2026-10-01T09:00:00",
                }
            ],
        },
    ).json()["gifts"][0]
    edited = admin.post(
        f"/_admin/gifts/{seeded['id']}",
        json={
            "notes": "Corrected by staff",
            "amount": "6.00",
            "giftDesignations": [{"projectId": 102, "amountDesignated": "6.00"}],
        },
    ).json()
    assert (edited["notes"], edited["amount"]) == ("Corrected by staff", 6.0)
    assert edited["modifiedDateTimeUtc"] > "2026-10-02"
    assert api.get(f"/api/Gift/{seeded['id']}").json() == edited
    bad = admin.post(f"/_admin/gifts/{seeded['id']}", json={"amount": "7.00"})
    assert bad.status_code == 400
    assert (
        admin.post(
            "/_admin/gifts",
            json={
                "org": "alpha",
                "gifts": [
                    {
                        "contactId": 424242,
                        "giftDate": "2026-10-01",
                        "amount": "1.00",
                        "giftDesignations": [{"projectId": 101, "amountDesignated": "1.00"}],
                    }
                ],
            },
        ).status_code
        == 400
    )


def test_config_files_in_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "sandbox.toml"
    toml.write_text(
        'duplicate_response = "error"\ndeep_skip_limit = 500\n'
        "[faults]\nfail_rate = 0.1\n"
        '[[orgs]]\nname = "hope"\ntokens = ["t1"]\nwindow_seconds = 2\n'
        '[orgs.projects]\n101 = "GEN"\n'
        "[org_faults.hope]\ndrop_rate = 0.2\n"
    )
    config = load_config(toml)
    assert (config.duplicate_response, config.deep_skip_limit) == ("error", 500)
    assert config.orgs[0].projects == {101: "GEN"}
    assert config.orgs[0].window_seconds == 2.0
    assert (config.org_faults["hope"].drop_rate, config.org_faults["hope"].fail_rate) == (0.2, 0.1)
    as_json = tmp_path / "sandbox.json"
    as_json.write_text(json.dumps({"orgs": [{"name": "a", "tokens": ["x"]}], "webhook_bulk": True}))
    assert load_config(as_json).webhook_bulk is True
    as_json.write_text(json.dumps({"orgs": [{"name": "a", "tokens": ["x"], "cap": 3}]}))
    with pytest.raises(ConfigError, match="unknown key 'cap'"):
        load_config(as_json)
    as_json.write_text(json.dumps({"orgs": []}))
    with pytest.raises(ConfigError):
        load_config(as_json)


def test_demo_config_has_the_three_demo_tokens() -> None:
    config = demo_config()
    assert [o.tokens for o in config.orgs] == [
        ["demo-token-hope"],
        ["demo-token-river"],
        ["demo-token-north"],
    ]
    for org in config.orgs:
        assert set(range(101, 111)) | {88} == set(org.projects)


def test_cli_options_override_the_config() -> None:
    args = _parser().parse_args(
        [
            "--hour-seconds",
            "2",
            "--calls-per-hour",
            "20",
            "--duplicate-response",
            "error",
            "--fail-rate",
            "0.05",
            "--drop-rate",
            "0.01",
            "--timeout-after-apply-rate",
            "0.02",
            "--nightly-every",
            "30",
            "--webhook-bulk",
            "--seed",
            "7",
        ]
    )
    config = build_config(args)
    assert {(o.window_seconds, o.calls_per_hour) for o in config.orgs} == {(2.0, 20)}
    assert (
        config.duplicate_response,
        config.nightly_every_seconds,
        config.webhook_bulk,
        config.seed,
    ) == ("error", 30.0, True, 7)
    assert (
        config.faults.fail_rate,
        config.faults.drop_rate,
        config.faults.timeout_after_apply_rate,
    ) == (0.05, 0.01, 0.02)


def test_cli_refuses_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["--config", str(bad)]) == 2
    assert "cannot parse" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.toml")]) == 2


def test_python_dash_m_sandbox_serves_the_demo_with_a_compressed_hour() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "--port",
            str(port),
            "--hour-seconds",
            "2",
            "--calls-per-hour",
            "5",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{url}/_admin/stats").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, timeout=15, interval=0.05, what="the CLI sandbox to serve")
        r = httpx.get(f"{url}/api/Gift/1", headers={"Authorization": "Bearer demo-token-hope"})
        assert (r.status_code, r.headers["X-RateLimit-Limit"]) == (404, "5")
        assert "." in r.headers["X-RateLimit-Reset"]
        assert "Import Tool" in httpx.get(url).text
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert b"Virtuous sandbox on http://127.0.0.1:" in out
