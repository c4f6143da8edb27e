"""Prometheus metrics of the API process.

With several uvicorn workers, `podrec serve` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
temporary folder before the workers start; each worker then writes its counters there and
``/metrics`` (answered by any one worker) sums all of them. With one worker the process's own
registry is read.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

REQUESTS = Counter("podrec_http_requests", "HTTP requests answered, by route and status",
                   ["method", "route", "status"])
LATENCY = Histogram("podrec_http_request_duration_seconds",
                    "Time from request to the start of the response, by route and status",
                    ["method", "route", "status"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                             5.0, 10.0, 30.0))
EVENTS = Counter("podrec_events", "Events received through the API, by outcome "
                 "(accepted: stored; unchanged: already stored; rejected: invalid)",
                 ["outcome"])
RECOMMENDATIONS = Counter("podrec_recommendations",
                          "Recommendation lists served (recommendations, similar, search, "
                          "onboarding)", ["endpoint"])
RECOMMENDED_ITEMS = Counter("podrec_recommended_items", "Items in the lists served",
                            ["endpoint"])
CACHED = Counter("podrec_cached_lists", "Lists served from the worker's cache (a subset of "
                 "podrec_recommendations)", ["endpoint"])


def render() -> tuple[bytes, str]:
    """The text exposition of every metric (all workers' in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def served(endpoint: str, n: int, cached: bool = False) -> None:
    RECOMMENDATIONS.labels(endpoint).inc()
    RECOMMENDED_ITEMS.labels(endpoint).inc(n)
    if cached:
        CACHED.labels(endpoint).inc()
