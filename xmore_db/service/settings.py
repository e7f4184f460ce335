"""The service's limits and batching knobs."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class ServiceSettings:
    """Limits per request and the micro-batcher's knobs.

    max_upload_bytes: a request body larger than this gets 413 (Content-Length, and the uploads as read).
    max_images: images in one classify or retrieve request; more gets 413.
    max_pixels: width x height of one decoded image; more gets 413 (Pillow's decompression-bomb limit by default).
    max_batch: images gathered into one encoder batch; max_wait_ms: how long the first request waits for more.
    """

    max_upload_bytes: int = 32 * 1024 * 1024
    max_images: int = 64
    max_pixels: int = Image.MAX_IMAGE_PIXELS or 89_478_485
    max_batch: int = 64
    max_wait_ms: float = 5.0
