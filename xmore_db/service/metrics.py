"""Prometheus metrics, one registry per app (so that several apps in one process do not collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("xmore_requests", "HTTP requests by route and status", ["route", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("xmore_request_seconds", "Request latency by route", ["route"],
                                 registry=self.registry)
        self.batch_images = Histogram("xmore_batch_images", "Images per encoder batch of the micro-batcher",
                                      buckets=SIZES, registry=self.registry)
        self.batch_requests = Histogram("xmore_batch_requests", "Classify requests per batch the micro-batcher "
                                        "takes", buckets=SIZES, registry=self.registry)
        self.queue_depth = Gauge("xmore_queue_depth", "Classify requests waiting for the micro-batcher",
                                 registry=self.registry)
        self.queue_images = Gauge("xmore_queue_images", "Images waiting for the micro-batcher (429 above "
                                  "--max-queue)", registry=self.registry)
        self.rejected = Counter("xmore_rejected_requests", "Requests refused before any work: queue_full (429), "
                                "timeout (503, waited past --request-timeout)", ["reason"], registry=self.registry)
