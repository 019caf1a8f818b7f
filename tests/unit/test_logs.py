"""giftsync.logs: every logger of the process (giftsync's structlog loggers and the standard
library loggers dramatiq, httpx and uvicorn use) writes one JSON object per line, at the
configured level, with the bound context and without secrets."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest
import structlog

from giftsync.logs import REDACTED, configure_logging


class Stderr:
    """What the process wrote to ``sys.stderr`` (pytest swaps it in per test phase, so the
    handler, which writes to whatever ``sys.stderr`` is at the time, is read through capsys)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys
        self._seen = ""

    def getvalue(self) -> str:
        self._seen += self._capsys.readouterr().err
        return self._seen


@pytest.fixture
def stderr(capsys: pytest.CaptureFixture[str]) -> Iterator[Stderr]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield Stderr(capsys)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def lines(buffer: Stderr) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_library_loggers_write_json_even_after_another_basic_config(stderr: Stderr) -> None:
    # dramatiq's CLI calls basicConfig before giftsync gets a say.
    logging.basicConfig(format="%(levelname)s %(message)s", stream=sys.stderr)
    configure_logging("INFO")
    for name in ("dramatiq.worker.WorkerThread", "httpx", "uvicorn.error"):
        logging.getLogger(name).info("hello %s", "there")
    structlog.get_logger("giftsync.test").info("ours", count=3)
    got = lines(stderr)
    assert [line["logger"] for line in got] == [
        "dramatiq.worker.WorkerThread",
        "httpx",
        "uvicorn.error",
        "giftsync.test",
    ]
    assert got[0]["event"] == "hello there" and got[0]["level"] == "info"
    assert got[3]["count"] == 3 and "timestamp" in got[3]


def test_the_configured_level_applies_to_every_logger(stderr: Stderr) -> None:
    configure_logging("WARNING")
    logging.getLogger("dramatiq").info("quiet")
    logging.getLogger("httpx").info("quiet")
    structlog.get_logger("giftsync.x").info("quiet")
    logging.getLogger("dramatiq").warning("loud")
    structlog.get_logger("giftsync.x").warning("loud")
    assert [line["event"] for line in lines(stderr)] == ["loud", "loud"]
    configure_logging("DEBUG")
    logging.getLogger("dramatiq").debug("now heard")
    assert lines(stderr)[-1]["event"] == "now heard"


def test_context_tenant_and_message_id_reach_library_lines(stderr: Stderr) -> None:
    configure_logging("INFO")
    structlog.contextvars.bind_contextvars(tenant="hope-shelter", message_id="m-1")
    logging.getLogger("dramatiq.worker").error("Failed to process message %s", "x")
    (line,) = lines(stderr)
    assert line["tenant"] == "hope-shelter" and line["message_id"] == "m-1"


def test_a_traceback_stays_inside_one_json_line(stderr: Stderr) -> None:
    configure_logging("INFO")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("dramatiq.worker").exception("failed")
        structlog.get_logger("giftsync.x").exception("failed too")
    got = lines(stderr)
    assert len(got) == 2
    assert all("ValueError: boom" in str(line["exception"]) for line in got)


def test_secrets_and_message_bodies_never_reach_the_line(stderr: Stderr) -> None:
    configure_logging("INFO")

    class Message:
        actor_name = "map_changes"
        message_id = "abc"

        def __str__(self) -> str:
            return "map_changes(email='ada@example.org')"

    logging.getLogger("dramatiq.worker").error("Failed %s", Message())
    structlog.get_logger("giftsync.x").info("sent", token="s3cret", email="ada@example.org")
    text = stderr.getvalue()
    assert "ada@example.org" not in text and "s3cret" not in text
    first, second = lines(stderr)
    assert first["event"] == "Failed map_changes[abc]"
    assert second["token"] == REDACTED


def test_configuring_twice_keeps_one_handler(stderr: Stderr) -> None:
    configure_logging("INFO")
    configure_logging("INFO")
    logging.getLogger("httpx").info("once")
    assert len(lines(stderr)) == 1


SCRIPT = """
import threading, warnings
from giftsync.logs import configure_logging
configure_logging("INFO")
warnings.warn("deprecated thing", UserWarning, stacklevel=1)
thread = threading.Thread(target=lambda: 1 / 0, name="doomed")
thread.start()
thread.join()
raise RuntimeError("the end")
"""


def test_warnings_and_uncaught_exceptions_become_json_lines() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    got = [json.loads(line) for line in done.stderr.splitlines()]
    assert "deprecated thing" in str(got[0]["event"])
    assert got[1]["event"] == "uncaught_exception_in_thread" and got[1]["thread"] == "doomed"
    assert "ZeroDivisionError" in str(got[1]["exception"])
    assert got[2]["event"] == "uncaught_exception" and "the end" in str(got[2]["exception"])
