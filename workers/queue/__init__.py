"""dramatiq: queue names and message builders, broker, retries, dead letters, scheduler, actors."""
