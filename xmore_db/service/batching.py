"""The micro-batcher: concurrent classify requests gathered into one encoder batch and one batched search.

One worker thread takes requests in arrival order. It waits up to `max_wait_ms`
after the first for more, up to `max_batch` images; requests that share labels,
method and corpora are scored together (one `score_images` call), then each
request's history writes run in arrival order, so a stream's `seq` follows the
order the requests arrived. A request whose stream holds another method fails
alone, before any write.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

    from ..api import Index
    from .metrics import Metrics


@dataclass
class Job:
    images: list[Image.Image]
    queries: list[str]
    labels: list[str]
    stream: str
    method: str
    corpora: list[str] | None
    future: Future = field(default_factory=Future)

    @property
    def group(self) -> tuple:
        return tuple(self.labels), self.method, tuple(self.corpora or ())


class Batcher:
    """Runs classify jobs for one Index; `lock` is held while the index is used, shared with the other routes."""

    def __init__(self, index: Index, lock: threading.Lock, *, max_batch: int, max_wait_ms: float,
                 metrics: Metrics | None = None):
        self.index, self.lock, self.metrics = index, lock, metrics
        self.max_batch, self.max_wait = max(1, max_batch), max(0.0, max_wait_ms) / 1000
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="xmore-batcher", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Future:
        self._queue.put(job)
        self._gauge()
        return job.future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(self._queue.qsize())

    def _gather(self) -> tuple[list[Job], bool]:
        """The next batch: the first job, then whatever arrives within max_wait, up to max_batch images."""
        first = self._queue.get()
        if first is None:
            return [], True
        jobs, images = [first], len(first.images)
        deadline = time.monotonic() + self.max_wait
        while images < self.max_batch:
            left = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)  # stop after this batch
                break
            jobs.append(job)
            images += len(job.images)
        self._gauge()
        return jobs, False

    def _run(self) -> None:
        while True:
            jobs, stop = self._gather()
            if stop:
                return
            try:
                with self.lock:
                    self._batch(jobs)
            except BaseException as exc:  # noqa: BLE001 - every waiting request gets the failure
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)

    def _batch(self, jobs: list[Job]) -> None:
        from ..classify import record_scored, score_images
        from ..errors import StreamMethodError, UnknownStreamError

        ws = self.index._workspace
        groups: dict[tuple, list[Job]] = {}
        for job in jobs:
            groups.setdefault(job.group, []).append(job)
        scored: dict[int, list] = {}
        for group in groups.values():
            images = [image for job in group for image in job.images]
            queries = [q for job in group for q in job.queries]
            if self.metrics is not None:
                self.metrics.batch_images.observe(len(images))
            try:
                ws.store()
                ws.history.check()
                rows = score_images(ws, images, queries, labels=group[0].labels, method_name=group[0].method,
                                    corpora=group[0].corpora)
            except Exception as exc:  # noqa: BLE001 - the group's requests fail, the others go on
                for job in group:
                    job.future.set_exception(exc)
                continue
            start = 0
            for job in group:
                scored[id(job)] = rows[start:start + len(job.images)]
                start += len(job.images)
        for job in jobs:  # history writes in arrival order
            if job.future.done():
                continue
            try:
                try:
                    held = ws.history.stream(job.stream).method
                except UnknownStreamError:
                    held = job.method
                if held != job.method:
                    raise StreamMethodError(f"stream holds {held} results; its confidence statistics would "
                                            f"mean nothing for {job.method}: use another stream name")
                job.future.set_result(record_scored(ws, scored[id(job)], labels=job.labels, stream=job.stream,
                                                    method_name=job.method))
            except Exception as exc:  # noqa: BLE001
                job.future.set_exception(exc)
