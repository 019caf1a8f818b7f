"""What operators see: metrics, the metrics endpoint, state gauges and status reports."""
