"""``giftsync publish FILE|-`` against a real Redis: what is enqueued, what is reported, exit codes.

Most tests call the CLI in-process (``giftsync.cli.main``) with this process wired to a key
prefix of the test's own; two run it as a real subprocess, one of them on a pseudo-terminal
to see the progress bar.
"""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from giftsync.cli import main
from giftsync.examples import transaction
from producers import backfill
from workers.queue.queues import CHANGE_QUEUES

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TENANTS = """
[tenants.alpha]
virtuous_base_url = "http://127.0.0.1:1"
virtuous_token_env = "VIRTUOUS_TOKEN_ALPHA"
timezone = "America/Chicago"

[tenants.beta]
virtuous_base_url = "http://127.0.0.1:1"
virtuous_token_env = "VIRTUOUS_TOKEN_BETA"
timezone = "UTC"
"""


def _reset_wiring() -> None:
    from giftsync.settings import get_settings
    from workers.queue.broker import reset_broker

    reset_broker()
    get_settings.cache_clear()


class Wired:
    """This process's settings pointed at a fresh prefix; reads back the changes queue."""

    def __init__(self, env: dict[str, str], client: redis.Redis) -> None:
        self.env = env
        self.prefix = env["GIFTSYNC_PREFIX"]
        self.redis = client

    def queued(self) -> list[list[dict[str, Any]]]:
        raw = [
            m for q in CHANGE_QUEUES for m in self.redis.hvals(f"{self.prefix}:dramatiq:{q}.msgs")
        ]
        return [json.loads(message)["kwargs"]["events"] for message in raw]

    def queued_ids(self) -> list[int]:
        return sorted(event["record"]["id"] for chunk in self.queued() for event in chunk)


@pytest.fixture
def wired(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Wired]:
    config = tmp_path / "tenants.toml"
    config.write_text(TENANTS, encoding="utf-8")
    env = {
        "GIFTSYNC_CONFIG": str(config),
        "REDIS_URL": redis_url,
        "GIFTSYNC_PREFIX": f"gs-backfill-{uuid.uuid4().hex[:8]}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _reset_wiring()
    client = redis.Redis.from_url(redis_url)
    yield Wired(env, client)
    for key in client.scan_iter(f"{env['GIFTSYNC_PREFIX']}:*", count=1000):
        client.delete(key)
    client.close()
    _reset_wiring()


def lines_of(*items: Any) -> str:
    return "".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in items)


def test_invalid_lines_are_reported_by_number_and_the_rest_go_on(
    wired: Wired, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        lines_of(
            transaction("alpha", 1),
            '{"tenant": "alpha", "kind": ',  # 2: not JSON
            "",  # 3: blank, skipped
            transaction("alpha", 4, amount=-1),  # 4: breaks the contract
            transaction("nobody", 5),  # 5: unknown tenant
            transaction("beta", 6),
            "[1, 2]",  # 7: not an object
            transaction("alpha", 8, allocations=[{"fund": {"id": 1, "name": "A"}, "amount": 1}]),
            transaction("alpha", 9),
        ),
        encoding="utf-8",
    )
    assert main(["publish", str(path)]) == 1
    err = capsys.readouterr().err
    assert "line 2: $: invalid JSON" in err
    assert "line 4: record.amount: " in err
    assert "line 5: tenant: unknown tenant 'nobody'" in err
    assert "line 7: $: must be a JSON object" in err
    assert "line 8: record.allocations: allocations sum to 1 cents" in err
    assert not any(f"line {n}:" in err for n in (1, 3, 6, 9))
    assert "read 8, enqueued 3, invalid 5" in err
    assert wired.queued_ids() == [1, 6, 9]


def test_an_all_valid_file_exits_0_and_is_enqueued_in_chunks_of_100(
    wired: Wired, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "good.jsonl"
    path.write_text(lines_of(*(transaction("alpha", i) for i in range(1, 251))), encoding="utf-8")
    assert main(["publish", str(path)]) == 0
    err = capsys.readouterr().err
    assert "read 250, enqueued 250, invalid 0" in err and "events/s" in err
    assert sorted(len(chunk) for chunk in wired.queued()) == [50, 100, 100]
    assert wired.queued_ids() == list(range(1, 251))


def test_stdin_a_byte_order_mark_and_crlf_line_ends_are_fine(
    wired: Wired, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = b"\xef\xbb\xbf" + lines_of(transaction("alpha", 1), transaction("beta", 2)).replace(
        "\n", "\r\n"
    ).encode("utf-8")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["publish", "-"]) == 0, capsys.readouterr().err
    assert wired.queued_ids() == [1, 2]


def test_an_overlong_line_is_reported_and_skipped_whole(
    wired: Wired,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(backfill, "MAX_LINE_BYTES", 1000)
    path = tmp_path / "long.jsonl"
    path.write_text(
        lines_of(transaction("alpha", 1), "x" * 5000, transaction("alpha", 3)), encoding="utf-8"
    )
    assert main(["publish", str(path)]) == 1
    err = capsys.readouterr().err
    assert "line 2: $: line longer than 1000 bytes" in err
    assert "read 3, enqueued 2, invalid 1" in err
    assert wired.queued_ids() == [1, 3]


def test_configuration_errors_and_unreadable_files_exit_2(
    wired: Wired,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["publish", str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err
    monkeypatch.setenv("GIFTSYNC_CONFIG", str(tmp_path / "nope.toml"))
    _reset_wiring()
    path = tmp_path / "one.jsonl"
    path.write_text(lines_of(transaction("alpha", 1)), encoding="utf-8")
    assert main(["--config", str(tmp_path / "nope.toml"), "publish", str(path)]) == 2
    assert "configuration error" in capsys.readouterr().err
    assert wired.queued() == []


def test_redis_down_exits_3_and_says_where_it_stopped(
    wired: Wired,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    _reset_wiring()
    path = tmp_path / "one.jsonl"
    path.write_text(lines_of(transaction("alpha", 1)), encoding="utf-8")
    assert main(["publish", str(path)]) == 3
    assert "stopped at line 1, Redis failed" in capsys.readouterr().err


def _run_cli(env: dict[str, str], path: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "giftsync.cli", "publish", str(path)],
        cwd=REPO,
        env={**os.environ, **env},
        **kwargs,
    )


def test_the_real_command_shows_no_bar_off_a_terminal(wired: Wired, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(lines_of(transaction("alpha", 1), "nope"), encoding="utf-8")
    proc = _run_cli(wired.env, path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert out == b""
    assert err.decode().splitlines()[0].startswith("line 2: $: invalid JSON")
    assert b"\x1b[K" not in err
    assert wired.queued_ids() == [1]


def test_the_real_command_draws_a_progress_bar_on_a_terminal(wired: Wired, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(lines_of(*(transaction("alpha", i) for i in range(1, 301))), encoding="utf-8")
    leader, follower = pty.openpty()
    proc = _run_cli(wired.env, path, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    assert proc.wait(timeout=60) == 0
    text = screen.decode()
    assert "\r\x1b[K[" in text and "lines/s" in text
    assert text.rstrip().endswith("events/s")  # the bar is cleared before the summary
    assert wired.queued_ids() == list(range(1, 301))
