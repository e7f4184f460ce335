"""The service's limits and batching knobs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..errors import ConfigError


@dataclass(frozen=True)
class ServiceSettings:
    """Limits per request and the micro-batcher's knobs.

    max_upload_bytes: a request body larger than this gets 413 (Content-Length, and the uploads as read).
    max_images: images in one classify or retrieve request; more gets 413.
    max_pixels: width x height of one decoded image; more gets 413 (Pillow's decompression-bomb limit by default).
    max_batch: images gathered into one encoder batch; max_wait_ms: how long the first request waits for more.
    max_queue: images waiting for the micro-batcher; a classify request that would pass it gets 429 at once.
    request_timeout: seconds a request may wait for its turn (a classify request in the batcher's queue,
        a retrieve or search request for the index); past it, 503 and nothing is done. A classify request
        the batcher has started is never cut short: it is scored, recorded and answered in full.
    ingest_roots: the directories (resolved) that ingest over HTTP may read; none: it is off.
    """

    max_upload_bytes: int = 32 * 1024 * 1024
    max_images: int = 64
    max_pixels: int = Image.MAX_IMAGE_PIXELS or 89_478_485
    max_batch: int = 64
    max_wait_ms: float = 5.0
    max_queue: int = 256
    request_timeout: float = 60.0
    ingest_roots: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if self.max_queue < self.max_images:
            raise ConfigError(f"the queue limit ({self.max_queue} images) is below the images per request "
                              f"({self.max_images}), so the largest request could never be queued: raise "
                              "--max-queue or lower --max-images")
        if not self.request_timeout > 0:
            raise ConfigError(f"the request timeout must be above 0 seconds, got {self.request_timeout:g}")
