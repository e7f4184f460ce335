"""The writer thread: upserts batches in order while the workers read and encode the next ones."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

from ..store import PairBatch, VectorStore

WRITE_QUEUE_DEPTH = 2  # batches waiting for the writer: bounds memory, keeps it busy

AfterWrite = Callable[[int], None]


class Writer:
    """One thread upserting the submitted batches in order.

    `submit()` returns a future that holds the batch's row count once the batch
    is durable, or the store's error. `after_write`, when given, is called on the
    writer thread after each durable write with the number of writes so far:
    a test hook (tests slow the writer down, or stop it to kill the process
    mid-unit); the run passes None.
    """

    def __init__(self, store: VectorStore, lock: threading.Lock, after_write: AfterWrite | None = None):
        self.store, self.lock, self.after_write = store, lock, after_write
        self.writes = 0
        self._queue: queue.Queue = queue.Queue(maxsize=WRITE_QUEUE_DEPTH)
        self._thread = threading.Thread(target=self._run, name="xmore-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: PairBatch) -> Future:
        future: Future = Future()
        self._queue.put((batch, future))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch, future = item
            try:
                with self.lock:
                    self.store.upsert_pairs(batch)
            except BaseException as error:  # noqa: BLE001 - handed to the worker waiting on it
                future.set_exception(error)
                continue
            future.set_result(len(batch.keys))
            self.writes += 1
            if self.after_write is not None:
                self.after_write(self.writes)


def raise_failed_writes(futures: list[Future]) -> None:
    """Raise the error of the first finished write that failed, if any (the others may still run)."""
    for future in futures:
        if future.done() and future.exception() is not None:
            raise future.exception()
