"""The ``/metrics`` endpoint of a worker deployment.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``giftsync worker`` sets it), the counters of every
worker process are merged into one scrape; the Redis-held gauges of
:mod:`workers.observe.state_metrics` are added at scrape time.

It is served like every giftsync HTTP role (:mod:`giftsync.serving`: head and body
deadlines, a connection cap) and binds ``GIFTSYNC_METRICS_HOST``, loopback by default: its
series name every tenant, so it is opened to a scraper only where a deployment says so.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from giftsync.serving import Limits, serve_forever
from workers.observe.process_files import process_registry
from workers.observe.state_metrics import StateCollector
from workers.queue.broker import namespace
from workers.runtime import runtime

# A scrape sends no body; a few scrapers at once are all that is expected.
LIMITS = Limits(max_body_bytes=0, max_connections=64)


def build_registry() -> CollectorRegistry:
    """A registry holding every process's metrics plus the Redis-held gauges."""
    rt = runtime()
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    registry = process_registry(directory) if directory else REGISTRY
    registry.register(StateCollector(rt, namespace(rt.settings)))
    return registry


def create_app(registry: CollectorRegistry) -> Starlette:
    """``GET /metrics`` over ``registry`` as an ASGI app."""

    async def scrape(request: Request) -> Response:
        # The scraper's Accept header picks the format (OpenMetrics or the text format).
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        # The Redis-held gauges block on Redis: off the event loop.
        text = await run_in_threadpool(encoder, registry)
        return Response(text, media_type=content_type)

    return Starlette(routes=[Route("/metrics", scrape, methods=["GET"])])


def run() -> None:
    """Entry point for ``dramatiq --fork-function workers.observe.metrics_server:run``."""
    settings = runtime().settings
    app = create_app(build_registry())
    serve_forever(app, settings.metrics_host, settings.metrics_port, LIMITS)
