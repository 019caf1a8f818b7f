"""The ``giftsync`` command as an operator meets it when something is wrong: Redis down, the
tenants file missing, a tenant misspelt. Every command answers with one clear line on stderr
and a non-zero exit, never a traceback. Each case runs the installed entry point as a process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.deployment import REPO, tenant_table
from giftsync.cli import _build_parser
from giftsync.examples import transaction

pytestmark = pytest.mark.integration

ENTRYPOINT = Path(sys.executable).parent / "giftsync"
# A port nothing listens on: Redis "down" without stopping the shared one.
DEAD_REDIS = "redis://127.0.0.1:1/0"


def giftsync(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRYPOINT), *argv],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def operator_lines(stderr: str) -> list[str]:
    """stderr without the JSON log lines: what a person reads."""
    lines = []
    for line in stderr.splitlines():
        try:
            json.loads(line)
        except ValueError:
            lines.append(line)
    return lines


def assert_one_clear_line(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode != 0, done
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = operator_lines(done.stderr)
    assert len(lines) == 1, lines
    assert lines[0].startswith("giftsync"), lines
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "giftsync.toml"
    path.write_text(
        tenant_table(
            "hope-shelter",
            "http://127.0.0.1:1",
            "TOKEN_HOPE",
            webhook_secret_env="WEBHOOK_HOPE",
        )
    )
    return path


REDIS_COMMANDS = [
    ["status"],
    ["status", "--tenant", "hope-shelter"],
    ["dlq", "list"],
    ["dlq", "list", "--tenant", "hope-shelter"],
    ["dlq", "replay"],
    ["resume", "--tenant", "hope-shelter"],
    ["pull", "--tenant", "hope-shelter"],
    ["worker", "--processes", "1"],
    ["publish", "examples/events.jsonl"],
]


@pytest.mark.parametrize("argv", REDIS_COMMANDS, ids=" ".join)
def test_redis_down_is_one_line_and_exit_3(argv: list[str], config: Path) -> None:
    env = {"REDIS_URL": "redis://:hunter2@127.0.0.1:1/0", "TOKEN_HOPE": "t"}
    if argv[0] == "publish":
        valid = config.parent / "one.jsonl"
        valid.write_text(json.dumps(transaction("hope-shelter", 1)) + "\n")
        argv = ["publish", str(valid)]
    done = giftsync(*argv, "--config", str(config), env=env)
    assert done.returncode == 3, done
    assert "hunter2" not in done.stderr
    assert "Traceback" not in done.stderr
    assert len(operator_lines(done.stderr)) == 1, done.stderr


ALL_COMMANDS = [
    ["preview", "examples/events.jsonl"],
    ["publish", "examples/events.jsonl"],
    ["status"],
    ["dlq", "list"],
    ["resume", "--tenant", "hope-shelter"],
    ["pull", "--tenant", "hope-shelter"],
    ["worker"],
    ["ingest", "--port", "1"],
    ["webhooks", "--port", "1"],
    ["webhooks", "subscribe", "--tenant", "hope-shelter", "--url", "http://x"],
    ["console", "--port", "1"],
]


@pytest.mark.parametrize("argv", ALL_COMMANDS, ids=" ".join)
def test_a_missing_tenants_file_is_one_line_and_exit_2(argv: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    done = giftsync(*argv, "--config", str(missing), env={"REDIS_URL": DEAD_REDIS})
    assert done.returncode == 2, done
    assert_one_clear_line(done, str(missing), "not found")


UNKNOWN_TENANT = [
    ["status", "--tenant", "hope-shelterr"],
    ["dlq", "list", "--tenant", "hope-shelterr"],
    ["dlq", "replay", "--tenant", "hope-shelterr"],
    ["resume", "--tenant", "hope-shelterr"],
    ["pull", "--tenant", "hope-shelterr"],
    ["webhooks", "subscribe", "--tenant", "hope-shelterr", "--url", "http://x"],
]


@pytest.mark.parametrize("argv", UNKNOWN_TENANT, ids=" ".join)
def test_an_unknown_tenant_is_one_line_and_exit_2(
    argv: list[str], config: Path, redis_url: str
) -> None:
    done = giftsync(*argv, "--config", str(config), env={"REDIS_URL": redis_url})
    assert done.returncode == 2, done
    assert_one_clear_line(done, "unknown tenant 'hope-shelterr'", "known: hope-shelter")


def test_doctor_names_an_unknown_tenant(config: Path, redis_url: str) -> None:
    done = giftsync("doctor", "--tenant", "nope", "--config", str(config), env={})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert "no tenant 'nope'" in done.stdout


def test_config_is_accepted_before_or_after_the_subcommand() -> None:
    parser = _build_parser()
    assert parser.parse_args(["--config", "a.toml", "status"]).config == "a.toml"
    assert parser.parse_args(["status", "--config", "b.toml"]).config == "b.toml"
    assert parser.parse_args(["--config", "a.toml", "status", "--config", "b.toml"]).config == (
        "b.toml"
    )


def test_version_prints_and_exits_0() -> None:
    done = giftsync("--version", env={})
    assert done.returncode == 0
    assert done.stdout.startswith("giftsync ")


def test_every_option_of_every_command_has_help_text() -> None:
    parser = _build_parser()
    sub = next(a for a in parser._actions if isinstance(a.choices, dict))
    assert isinstance(sub.choices, dict)
    parsers: dict[str, argparse.ArgumentParser] = {"giftsync": parser, **sub.choices}
    for name, command in parsers.items():
        for action in command._actions:
            if action.dest in ("help", "command"):
                continue
            assert action.help, f"giftsync {name}: {action.option_strings or action.dest}"
