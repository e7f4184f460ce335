"""Prometheus metrics, one registry per app (so that several apps in one process do not collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("xmore_requests", "HTTP requests by route and status", ["route", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("xmore_request_seconds", "Request latency by route", ["route"],
                                 registry=self.registry)
        self.batch_images = Histogram("xmore_batch_images", "Images per encoder batch of the micro-batcher",
                                      buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=self.registry)
        self.queue_depth = Gauge("xmore_queue_depth", "Classify requests waiting for the micro-batcher",
                                 registry=self.registry)
