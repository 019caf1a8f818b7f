"""Prometheus metrics that worker processes update as things happen.

Names follow Prometheus conventions: ``giftsync_`` prefix, base units, counters ending in
``_total``, labels of bounded cardinality (tenant, endpoint template, status class, reason
code, actor) and never a record id. Gauges that describe Redis state (queue depth, buffer
age, gifts by state) are not here: :mod:`workers.observe.state_metrics` reads them from Redis at
scrape time, so every process agrees. With several worker processes, prometheus-client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) merges these into one scrape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

EVENTS_RECEIVED = Counter(
    "giftsync_events_received_total", "Change events taken from the queue.", ["tenant", "kind"]
)
EVENTS_INVALID = Counter(
    "giftsync_events_invalid_total", "Change events rejected by validation.", ["tenant"]
)
EVENTS_SKIPPED = Counter(
    "giftsync_events_skipped_total", "Changes the send decision did not send.", ["tenant", "reason"]
)
EVENTS_STALE = Counter(
    "giftsync_events_stale_total", "Changes dropped as not newer than the ledger.", ["tenant"]
)
GIFTS_BUFFERED = Counter(
    "giftsync_gifts_buffered_total", "Gift entries placed in a tenant's buffer.", ["tenant"]
)
GIFTS_HELD = Counter(
    "giftsync_gifts_held_total", "Changes held until something is known.", ["tenant", "reason"]
)
GIFTS_BATCHED = Counter(
    "giftsync_gifts_batched_total", "Gift entries cut into batches.", ["tenant"]
)
GIFTS_SUBMITTED = Counter(
    "giftsync_gifts_submitted_total", "Gifts Virtuous accepted.", ["tenant", "path"]
)
GIFTS_QUARANTINED = Counter(
    "giftsync_gifts_quarantined_total", "Gift entries Virtuous rejected.", ["tenant"]
)
BATCH_SIZE = Histogram(
    "giftsync_batch_size",
    "Entries per batch sent to /api/v2/Gift/Transactions.",
    ["tenant"],
    buckets=(1, 5, 10, 25, 50, 75, 90, 99, 100),
)
BATCH_SPLITS = Counter(
    "giftsync_batch_splits_total", "Batches split to isolate rejected entries.", ["tenant"]
)
VIRTUOUS_CALLS = Counter(
    "giftsync_virtuous_calls_total",
    "Calls to Virtuous by endpoint template and status (status 'error' = no answer).",
    ["tenant", "endpoint", "status"],
)
VIRTUOUS_CALL_SECONDS = Histogram(
    "giftsync_virtuous_call_seconds",
    "Time for one call to Virtuous.",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
VIRTUOUS_THROTTLED = Counter(
    "giftsync_virtuous_429_total", "429 answers from Virtuous.", ["tenant"]
)
TENANT_PAUSES = Counter(
    "giftsync_tenant_pauses_total", "Times a tenant was paused by a 401.", ["tenant"]
)
THROTTLE_DELAYS = Counter(
    "giftsync_throttle_delays_total",
    "Messages re-enqueued with a delay instead of failing.",
    ["tenant", "actor", "reason"],
)
RETRIES = Counter(
    "giftsync_retries_total", "Failed attempts that will be retried.", ["tenant", "actor"]
)
DEAD_LETTERS = Counter(
    "giftsync_dead_letters_total", "Messages that failed every retry.", ["tenant", "actor"]
)
LIMITER_TOKENS = Gauge(
    "giftsync_limiter_tokens_left",
    "Calls the tenant's limiter could grant right now (last seen by any process).",
    ["tenant"],
    multiprocess_mode="mostrecent",
)
PUBLISH_TO_SUBMIT = Histogram(
    "giftsync_publish_to_submit_seconds",
    "Seconds from publish() to Virtuous accepting the gift.",
    ["tenant", "path"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
CONFIRMATIONS = Counter(
    "giftsync_confirmations_total",
    "Gifts whose real Virtuous Gift id was learned, by how (webhook, lookup).",
    ["tenant", "source"],
)
PUBLISH_TO_CONFIRM = Histogram(
    "giftsync_publish_to_confirm_seconds",
    "Seconds from publish() to the real Gift id being known.",
    ["tenant"],
    buckets=(1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 48 * 3600, 96 * 3600),
)
NEEDS_REVIEW = Counter(
    "giftsync_needs_review_total",
    "Gifts marked needs_review (no Gift in Virtuous after the review deadline).",
    ["tenant"],
)
WEBHOOKS_RECEIVED = Counter(
    "giftsync_webhooks_received_total",
    "Virtuous webhook deliveries, by event and outcome (accepted, rejected, duplicate).",
    ["tenant", "event", "outcome"],
)
PULL_RECORDS = Counter(
    "giftsync_pull_records_total",
    "Records read back from Virtuous, by kind and outcome (created, updated, echo, skipped).",
    ["tenant", "kind", "outcome"],
)
PULL_RUNS = Counter(
    "giftsync_pull_runs_total", "Pull runs finished.", ["tenant", "kind", "outcome"]
)

# Label values known up front, so dashboards and alerts see zeros, not missing series.
_PATHS = ("batch", "real_time", "recurring")
_ACTORS = ("map_changes", "map_bulk_changes", "send_batch", "send_gift", "send_recurring")
# The tenant label of a message that names none (a chunk of changes names its events').
NO_TENANT = "none"


def tenant_of(kwargs: Mapping[str, Any]) -> str:
    """The tenant a message works for: its ``tenant`` argument, else the one every event of
    a chunk of changes names, else :data:`NO_TENANT`."""
    tenant = kwargs.get("tenant")
    if isinstance(tenant, str) and tenant:
        return tenant
    events = kwargs.get("events")
    if isinstance(events, list):
        named = {e.get("tenant") for e in events if isinstance(e, dict)}
        if len(named) == 1:
            (only,) = named
            if isinstance(only, str) and only:
                return only
    return NO_TENANT


def initialise(tenants: list[str]) -> None:
    """Create every per-tenant series at zero (a counter that never moved still exists)."""
    for tenant in tenants:
        EVENTS_INVALID.labels(tenant)
        EVENTS_STALE.labels(tenant)
        GIFTS_BUFFERED.labels(tenant)
        GIFTS_BATCHED.labels(tenant)
        GIFTS_QUARANTINED.labels(tenant)
        VIRTUOUS_THROTTLED.labels(tenant)
        TENANT_PAUSES.labels(tenant)
        NEEDS_REVIEW.labels(tenant)
        for kind in ("transaction", "scheduled_donation"):
            EVENTS_RECEIVED.labels(tenant, kind)
        for path in _PATHS:
            GIFTS_SUBMITTED.labels(tenant, path)
        for source in ("webhook", "lookup"):
            CONFIRMATIONS.labels(tenant, source)
        for kind in ("gift", "recurring"):
            for outcome in ("created", "updated", "echo", "skipped"):
                PULL_RECORDS.labels(tenant, kind, outcome)
            for outcome in ("done", "failed"):
                PULL_RUNS.labels(tenant, kind, outcome)
        for actor in _ACTORS:
            RETRIES.labels(tenant, actor)
            DEAD_LETTERS.labels(tenant, actor)
