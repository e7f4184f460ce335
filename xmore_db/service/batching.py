"""The micro-batcher: concurrent classify requests gathered into one encoder batch and one batched search.

One worker thread takes requests in arrival order. It waits up to `max_wait_ms`
after the first for more, up to `max_batch` images; requests that share labels,
method and corpora are scored together (one `score_images` call), then each
request's history writes run in arrival order, so a stream's `seq` follows the
order the requests arrived. A request whose stream holds another method fails
alone, before any write.

Admission and the timeout rule. At most `max_queue` images wait: `submit` refuses
a request that would pass it (429, nothing queued). A request waiting in the queue
can be withdrawn (its timeout passed): it is then never started and nothing of it
is recorded. Once the worker has taken a request it can no longer be withdrawn:
it is scored and recorded like any other, and its caller gets the result. Taking
and withdrawing are decided under one lock, so a request is exactly one of the two.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import ApiError

if TYPE_CHECKING:
    from PIL import Image

    from ..api import Index
    from ..methods.inputs import MethodFiles
    from .metrics import Metrics

QUEUED, STARTED, WITHDRAWN = "queued", "started", "withdrawn"


@dataclass
class Job:
    images: list[Image.Image]
    queries: list[str]
    labels: list[str]
    stream: str
    method: str
    corpora: list[str] | None
    files: MethodFiles | None = None  # follows from method and labels, so one group shares them
    key_id: int | None = None  # the API key the request came with, recorded on each event
    future: Future = field(default_factory=Future)
    state: str = QUEUED  # QUEUED, then STARTED or WITHDRAWN: changed only under the Batcher's lock

    @property
    def group(self) -> tuple:
        return tuple(self.labels), self.method, tuple(self.corpora or ())


class Batcher:
    """Runs classify jobs for one Index; `lock` is held while the index is used, shared with the other routes.

    `on_batch` is called by the worker with each batch it has started, holding the index, before scoring
    (tests hold the worker there to fill the queue, or keep the index busy, deterministically).
    """

    def __init__(self, index: Index, lock: threading.Lock, *, max_batch: int, max_wait_ms: float,
                 max_queue: int = 256, metrics: Metrics | None = None,
                 on_batch: Callable[[list[Job]], None] | None = None):
        self.index, self.lock, self.metrics, self.on_batch = index, lock, metrics, on_batch
        self.max_batch, self.max_wait = max(1, max_batch), max(0.0, max_wait_ms) / 1000
        self.max_queue = max(1, max_queue)
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._admission = threading.Lock()
        self._waiting_images = self._waiting_jobs = 0
        self._seconds_per_image = 0.0  # moving average of recent batches, for Retry-After
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="xmore-batcher", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Future:
        """Queue a job; ApiError 429 with Retry-After when its images would pass `max_queue`."""
        n = len(job.images)
        with self._admission:
            if self._closed:
                raise ApiError(503, "the service is shutting down", headers={"Retry-After": "1"})
            if self._waiting_images + n > self.max_queue:
                waiting = self._waiting_images
                full = True
            else:
                full = False
                self._waiting_images += n
                self._waiting_jobs += 1
                self._queue.put(job)
        if full:
            self._count_rejected("queue_full")
            raise ApiError(429, f"the classify queue is full ({waiting} images waiting, limit {self.max_queue}); "
                                "nothing was recorded: retry later", headers={"Retry-After": self.retry_after()})
        self._gauge()
        return job.future

    def withdraw(self, job: Job) -> bool:
        """Take a job out of the queue if the worker has not started it; True when withdrawn (never recorded)."""
        with self._admission:
            if job.state != QUEUED:
                return False
            job.state = WITHDRAWN
            self._waiting_images -= len(job.images)
            self._waiting_jobs -= 1
        job.future.cancel()
        self._count_rejected("timeout")
        self._gauge()
        return True

    def retry_after(self) -> str:
        """Seconds until the queue has likely drained, by the recent time per image; at least 1."""
        with self._admission:
            estimate = self._waiting_images * self._seconds_per_image
        return str(max(1, math.ceil(estimate)))

    def close(self) -> None:
        with self._admission:
            self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _count_rejected(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.rejected.labels(reason).inc()

    def _gauge(self) -> None:
        if self.metrics is not None:
            with self._admission:
                jobs, images = self._waiting_jobs, self._waiting_images
            self.metrics.queue_depth.set(jobs)
            self.metrics.queue_images.set(images)

    def _take(self, job: Job) -> bool:
        """Start a job unless it was withdrawn; from here on it is scored and recorded."""
        with self._admission:
            if job.state == WITHDRAWN:
                return False
            job.state = STARTED
            self._waiting_images -= len(job.images)
            self._waiting_jobs -= 1
            return True

    def _next(self, timeout: float | None) -> Job | None:
        """The next job not withdrawn; None at close; queue.Empty when `timeout` (seconds, 0: now) passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if deadline is None:
                job = self._queue.get()
            else:
                left = deadline - time.monotonic()
                job = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            if job is None or self._take(job):
                return job

    def _gather(self) -> tuple[list[Job], bool]:
        """The next batch: the first job, then whatever arrives within max_wait, up to max_batch images."""
        first = self._next(None)
        if first is None:
            return [], True
        jobs, images = [first], len(first.images)
        deadline = time.monotonic() + self.max_wait
        while images < self.max_batch:
            try:
                job = self._next(max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)  # stop after this batch
                break
            jobs.append(job)
            images += len(job.images)
        self._gauge()
        if self.metrics is not None:
            self.metrics.batch_requests.observe(len(jobs))
        return jobs, False

    def _run(self) -> None:
        while True:
            jobs, stop = self._gather()
            if stop:
                return
            started = time.perf_counter()
            try:
                with self.lock:
                    if self.on_batch is not None:
                        self.on_batch(jobs)
                    self._batch(jobs)
            except BaseException as exc:  # noqa: BLE001 - every waiting request gets the failure
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
            per_image = (time.perf_counter() - started) / max(1, sum(len(job.images) for job in jobs))
            with self._admission:
                self._seconds_per_image = per_image if not self._seconds_per_image else (
                    0.8 * self._seconds_per_image + 0.2 * per_image)

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
                                    files=group[0].files, corpora=group[0].corpora)
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
                                                    method_name=job.method, key_id=job.key_id))
            except Exception as exc:  # noqa: BLE001
                job.future.set_exception(exc)
