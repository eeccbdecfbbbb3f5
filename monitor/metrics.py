"""In-process figures for /metrics (Prometheus); the stored totals are read from the database
at each scrape (``ops``). Any stage may count here without importing the HTTP endpoint."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry()
POLLS = Counter("monitor_feed_polls", "Feed polls by result (ok, unchanged, failed).",
                ["result"], registry=REGISTRY)
STAGE_SECONDS = Histogram(
    "monitor_stage_seconds", "Time spent per pipeline stage.", ["stage"], registry=REGISTRY,
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
CYCLES = Counter("monitor_cycles", "Daemon cycles run.", registry=REGISTRY)
