"""Running the sandbox: in a background thread for tests (``start_sandbox``) or in the
foreground for the CLI (``serve``), with the webhook workers and the optional nightly timer."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from sandbox.app import build_app
from sandbox.config import SandboxConfig
from sandbox.gate import install_log_filter
from sandbox.state import SandboxState


def _uvicorn_config(state: SandboxState) -> uvicorn.Config:
    # No access log and warnings only: per-request logging would cost more than the handlers.
    # A short graceful shutdown: stalled (timeout-after-apply) answers must not hold a stop.
    return uvicorn.Config(
        build_app(state),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        backlog=4096,
    )


class _NightlyTimer:
    """Runs the nightly batch every ``every`` seconds until stopped."""

    def __init__(self, state: SandboxState, every: float) -> None:
        self._state = state
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-nightly", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self._state.run_nightly()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class RunningSandbox:
    """A sandbox serving on ``url`` from a background thread. ``stop()`` (or leaving the
    ``with`` block) shuts it down."""

    def __init__(
        self,
        state: SandboxState,
        server: uvicorn.Server,
        thread: threading.Thread,
        host: str,
        port: int,
        timer: _NightlyTimer | None,
    ) -> None:
        self.state = state
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        self._server = server
        self._thread = thread
        self._timer = timer

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self.state.webhooks.stop()

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_sandbox(
    config: SandboxConfig, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 10.0
) -> RunningSandbox:
    """Start a sandbox in a background thread (port 0: a free port) and wait until it serves."""
    install_log_filter()
    state = SandboxState(config)
    # proto must say TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto does,
    # and without it Nagle + delayed ACKs cost 40 ms per answer.
    sock = socket.socket(
        socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
    )
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(_uvicorn_config(state))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{bound_port}", daemon=True
    )
    state.webhooks.start()
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            state.webhooks.stop()
            raise RuntimeError("the sandbox did not start")
        time.sleep(0.005)
    timer = None
    if config.nightly_every_seconds:
        timer = _NightlyTimer(state, config.nightly_every_seconds)
        timer.start()
    return RunningSandbox(state, server, thread, host, bound_port, timer)


def serve(config: SandboxConfig, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve in the foreground until interrupted (Ctrl-C / SIGTERM)."""
    install_log_filter()
    state = SandboxState(config)
    config_ = _uvicorn_config(state)
    config_.host, config_.port = host, port
    server = uvicorn.Server(config_)
    state.webhooks.start()
    timer = (
        _NightlyTimer(state, config.nightly_every_seconds) if config.nightly_every_seconds else None
    )
    if timer is not None:
        timer.start()
    try:
        server.run()
    finally:
        if timer is not None:
            timer.stop()
        state.webhooks.stop()
