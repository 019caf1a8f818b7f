"""The ``/metrics`` endpoint of a worker deployment.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``giftsync worker`` sets it), the counters of every
worker process are merged into one scrape; the Redis-held gauges of
:mod:`workers.observe.state_metrics` are added at scrape time.
"""

from __future__ import annotations

import os
import threading

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from workers.observe.state_metrics import StateCollector
from workers.queue.broker import namespace
from workers.runtime import runtime


def build_registry() -> CollectorRegistry:
    """A registry holding every process's metrics plus the Redis-held gauges."""
    rt = runtime()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    registry.register(StateCollector(rt, namespace(rt.settings)))
    return registry


def serve(port: int, addr: str = "0.0.0.0") -> None:
    """Serve /metrics on ``port`` in a background thread."""
    start_http_server(port, addr=addr, registry=build_registry())


def run() -> None:
    """Entry point for ``dramatiq --fork-function workers.observe.metrics_server:run``."""
    serve(runtime().settings.metrics_port)
    threading.Event().wait()
