"""The writer thread: upserts batches in order while the workers read and encode the next ones.

Batches are written in groups of at least `flush_rows` rows: the texts of the
whole group, then its images, each collection made durable once per group
(`VectorStore.begin_pair_batches`). A flush of Qdrant Edge costs tens of
milliseconds however little it holds, and keeps the GIL meanwhile: made for
every 1024-row batch, flushes took more of an ingest's time than any other stage.
While more batches wait, a group is begun before the one before it is finished,
so that an embedded store's second process writes the texts of the one while this
process writes the images of the other. A caller that must wait for its batches
now calls `seal()`, and what is gathered is written and finished at once (the ingest's
workers do not: the run's completer thread waits for a unit's batches instead).
The queue holds a group's worth of batches, so that the workers read the next group
while this one is written.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager

from ..store import PairBatch, VectorStore

MIN_QUEUE_DEPTH = 2  # batches waiting for the writer, at least: keeps it busy
DEFAULT_FLUSH_ROWS = 16384  # about 85 MB of float32 vectors at 512 + 768 dimensions, gathered and queued each

AfterWrite = Callable[[int], None]

_SEAL = object()  # write the gathered group now


class Writer:
    """One thread upserting the submitted batches in order, a group at a time.

    `submit()` returns a future that holds the batch's row count once the batch
    is durable, or the store's error. A batch becomes durable with its group:
    once `flush_rows` rows are gathered, or at the next `seal()` or `close()`.
    `after_write`, when given, is called on the writer thread after each batch is
    durable with the number of batches written so far: a test hook (tests slow the
    writer down, or stop it to kill the process mid-unit); the run passes None.
    """

    def __init__(self, store: VectorStore, lock: AbstractContextManager, after_write: AfterWrite | None = None,
                 *, flush_rows: int = DEFAULT_FLUSH_ROWS, batch_rows: int = DEFAULT_FLUSH_ROWS):
        """`batch_rows`: the rows of a submitted batch (at most), which sizes the queue."""
        self.store, self.lock, self.after_write, self.flush_rows = store, lock, after_write, flush_rows
        self.writes = 0
        self._queue: queue.Queue = queue.Queue(maxsize=max(MIN_QUEUE_DEPTH, -(-flush_rows // batch_rows)))
        self._thread = threading.Thread(target=self._run, name="xmore-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: PairBatch) -> Future:
        future: Future = Future()
        self._queue.put((batch, future))
        return future

    def seal(self) -> None:
        """Write the batches submitted so far without waiting for a full group."""
        self._queue.put(_SEAL)

    def close(self) -> None:
        """Write what is left, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        group: list[tuple[PairBatch, Future]] = []
        rows = 0
        begun = None  # a group begun and not finished yet: its texts may be in flight
        while True:
            item = self._queue.get()
            if item is not None and item is not _SEAL:
                group.append(item)
                rows += len(item[0].keys)
                if rows < self.flush_rows:
                    continue
            # The next group is begun before the last one is finished: an embedded store writes its
            # texts from another process meanwhile (VectorStore.begin_pair_batches).
            started = self._begin(group)
            if begun is not None:
                self._finish(*begun)
            begun = started
            # Held open only while more batches wait, to overlap with their group: else finished now.
            if begun is not None and (item is None or item is _SEAL or self._queue.empty()):
                self._finish(*begun)
                begun = None
            group, rows = [], 0
            if item is None:
                return

    def _begin(self, group: list[tuple[PairBatch, Future]]):
        if not group:
            return None
        try:
            with self.lock:
                finish = self.store.begin_pair_batches([batch for batch, _ in group])
        except BaseException as error:  # noqa: BLE001 - handed to the workers waiting on it
            _fail(group, error)
            return None
        return finish, group

    def _finish(self, finish, group: list[tuple[PairBatch, Future]]) -> None:
        try:
            with self.lock:
                finish()
        except BaseException as error:  # noqa: BLE001 - handed to the workers waiting on it
            _fail(group, error)
            return
        for batch, future in group:
            future.set_result(len(batch.keys))
            self.writes += 1
            if self.after_write is not None:
                self.after_write(self.writes)


def _fail(group: list[tuple[PairBatch, Future]], error: BaseException) -> None:
    for _, future in group:
        future.set_exception(error)


def raise_failed_writes(futures: list[Future]) -> None:
    """Raise the error of the first finished write that failed, if any (the others may still run)."""
    for future in futures:
        if future.done() and future.exception() is not None:
            raise future.exception()
