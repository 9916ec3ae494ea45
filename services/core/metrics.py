"""Prometheus metrics: one registry per app, HTTP request instrumentation.

Every app owns a fresh :class:`CollectorRegistry` (never the global default) so
that apps built in tests do not share or duplicate series.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

# From 5 ms routes up to multi-minute LLM generations.
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)

UNMATCHED_ROUTE = "<unmatched>"
# Paths that are probes or the scrape itself: counting them would drown real traffic.
EXCLUDED_PATHS = frozenset({"/metrics", "/health", "/ready"})


def new_registry() -> CollectorRegistry:
    """A fresh registry with process and platform metrics."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


class HttpMetrics:
    """The HTTP request metrics every service exposes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests handled, by route template and status code.",
            ["service", "method", "route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time to handle an HTTP request, until the response body is complete.",
            ["service", "method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )


# prometheus_client's own switch, read when it is imported: with it set, every process
# writes its counters, histograms and gauges to files there (services/core/server.py
# sets it for worker processes, e.g. GATEWAY_WORKERS).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class AllProcesses(Collector):
    """The metrics of every worker process: counters and histograms summed over the
    processes' files, gauges with a ``pid`` label per process; then the families only
    this process knows (collectors computed at scrape time, process_* and python_*)."""

    def __init__(self, registry: CollectorRegistry, path: str) -> None:
        self.registry = registry
        self.summed = MultiProcessCollector(None, path)

    def collect(self) -> Iterator[Metric]:
        seen = set()
        for family in self.summed.collect():
            seen.add(family.name)
            yield family
        for family in self.registry.collect():
            if family.name not in seen:
                yield family


def metrics_endpoint(registry: CollectorRegistry):
    exposed = registry
    multiproc_dir = os.environ.get(MULTIPROC_ENV)
    if multiproc_dir:
        exposed = CollectorRegistry()
        exposed.register(AllProcesses(registry, multiproc_dir))

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(exposed), media_type=CONTENT_TYPE_LATEST)

    return metrics
