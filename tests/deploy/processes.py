"""Starting giftsync roles as the deploy files do, outside containers: the image's entrypoint
(the ``giftsync`` console script) with the command a compose service or manifest gives.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

from benchmarks.deployment import REPO
from giftsync.waiting import wait_for

ENTRYPOINT = Path(sys.executable).parent / "giftsync"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def with_port(argv: tuple[str, ...], port: int) -> list[str]:
    """``argv`` with its ``--port`` value replaced (tests share the machine: no fixed ports)."""
    out = list(argv)
    if "--port" in out:
        out[out.index("--port") + 1] = str(port)
    return out


@contextmanager
def role(argv: list[str], env: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``giftsync ARGV`` in its own process group; stop it (SIGTERM, then SIGKILL) on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(ENTRYPOINT), *argv],
            cwd=REPO,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def answers(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    """Wait until ``url`` answers 200; fail with the process's output if it died first."""

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout=timeout, interval=0.1, what=f"{url} to answer")
