"""``giftsync publish`` reports on a file that is not the operator's: field names and values
that would forge report lines or reach the terminal as escape sequences are shown escaped.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from giftsync.examples import transaction
from producers import backfill
from producers.progress import printable

pytestmark = pytest.mark.integration

TENANTS = """
[tenants.alpha]
virtuous_base_url = "http://127.0.0.1:1"
virtuous_token_env = "VIRTUOUS_TOKEN_ALPHA"
timezone = "UTC"
"""
# Anything a terminal would act on: C0 and C1 controls, DEL, bidi overrides, separators.
_ACTIVE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029]")


@pytest.fixture
def wired(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from giftsync.settings import get_settings
    from workers.queue.broker import reset_broker

    config = tmp_path / "tenants.toml"
    config.write_text(TENANTS, encoding="utf-8")
    monkeypatch.setenv("GIFTSYNC_CONFIG", str(config))
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("GIFTSYNC_PREFIX", f"gs-harden-publish-{uuid.uuid4().hex[:8]}")
    reset_broker()
    get_settings.cache_clear()
    yield
    reset_broker()
    get_settings.cache_clear()


def test_hostile_field_names_and_values_cannot_forge_lines_or_drive_the_terminal(
    wired: None, tmp_path: Path
) -> None:
    forged = "x\nline 999: $: all fine, nothing to see\ngiftsync publish: read 1, enqueued 1"
    hostile = [
        {**transaction("alpha", 1), forged: 1},
        {**transaction("alpha", 2), "\x1b]0;pwned\x07\x1b[2J": 1},
        {**transaction("alpha", 3), "\u202egnp.exe": 1},
        transaction("alpha\x1b[31m", 4),
        {**transaction("alpha", 5), "\x9b31m": 1},
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in hostile), encoding="utf-8")
    err = io.StringIO()
    assert backfill.run(str(path), stderr=err) == 1
    text = err.getvalue()
    lines = text.splitlines()
    # One line per problem and the summary: no forged line, no active character anywhere.
    assert all(re.match(r"line [1-5]: |giftsync publish: read 5,", line) for line in lines), text
    assert lines[-1].startswith("giftsync publish: read 5, enqueued 0, invalid 5")
    assert not _ACTIVE.search(text), repr(text)
    assert "line 999" not in [line[:8] for line in lines]
    assert "\\x1b" in text and "\\u202e" in text and "\\n" in text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain é ☃", "plain é ☃"),
        ("a\nb", "a\\nb"),
        ("\x1b[2J", "\\x1b[2J"),
        ("\u202e", "\\u202e"),
        ("\u2028", "\\u2028"),
        ("\x9b", "\\x9b"),
    ],
)
def test_printable_escapes_only_what_a_terminal_acts_on(raw: str, shown: str) -> None:
    assert printable(raw) == shown
