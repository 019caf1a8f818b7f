"""The ways changes get into giftsync: ``publish()``, the HTTP ingest service, the backfill
CLI, the Virtuous webhook receiver and the scheduler."""

from producers.publish import InvalidEvents, publish, publish_many

__all__ = ["InvalidEvents", "publish", "publish_many"]
