"""Ingesting a corpus, unit by unit, resumably, into the two collections.

A source (`xmore_db.sources`) splits the corpus into work units; the unit ledger
(`history.units`) records each unit's status in the SQL database. A worker
claims a pending unit, reads it in batches, drops and counts bad rows, computes
the embeddings the source does not bring, and hands each batch to one writer
thread that upserts while the next batch is read and encoded. The unit is marked
done only once all its batches are durable, so a process killed mid-unit leaves
that unit pending: the next run writes it again under the same deterministic
pair ids (no duplicate), texts before images, and a caption written without its
image is completed then (no orphan).

Images are decoded by a thread pool one batch ahead of the encoder, so the
model does not wait on JPEG decoding. `workers` threads claim units in this
process; more processes (on more machines) need PostgreSQL and a Qdrant server.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BadInputError, ImageError, UnitReadError
from .sources import open_source
from .sources.base import UNDECODABLE_IMAGE, RowBatch, caption_problems, vector_problems
from .store import PairBatch, pair_id

if TYPE_CHECKING:
    from .history.units import Claim, UnitLedger
    from .sources import Source
    from .store import VectorStore
    from .workspace import Workspace

log = logging.getLogger(__name__)

DEFAULT_WRITE_BATCH = 1024
DEFAULT_MAX_CAPTION_CHARS = 1000
WRITE_QUEUE_DEPTH = 2  # batches waiting for the writer: bounds memory, keeps it busy


@dataclass(frozen=True)
class IngestOptions:
    workers: int = 1  # threads claiming units in this process
    write_batch: int = DEFAULT_WRITE_BATCH  # rows per read and per upsert
    max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS
    decode_threads: int = 4
    optimize: bool = True  # build the graph at the end (benchmarks time the writes without it)

    def __post_init__(self) -> None:
        for name in ("workers", "write_batch", "max_caption_chars", "decode_threads"):
            if getattr(self, name) < 1:
                raise BadInputError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class UnitOutcome:
    unit: str
    status: str  # done | failed
    rows: int
    ingested: int
    already_present: int
    skipped: int
    skip_reasons: dict[str, int]
    error: str | None
    seconds: float
    worker: str

    @property
    def pairs_per_second(self) -> float:
        return self.ingested / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class IngestReport:
    corpus: str
    kind: str
    source: str
    units: int
    units_done: int
    units_failed: int
    units_pending: int
    processed: list[UnitOutcome]
    rows: int
    ingested: int
    already_present: int
    skipped: int
    skip_reasons: dict[str, int]
    seconds: float
    optimize_seconds: float
    collections: dict[str, int]
    failures: dict[str, str] = field(default_factory=dict)
    caption_cache: str = "off"  # "filled with MODEL", "off", or why it was not filled

    @property
    def pairs_per_second(self) -> float:
        return self.ingested / self.seconds if self.seconds > 0 else 0.0


def ingest(
    workspace: Workspace,
    path: str | Path,
    *,
    corpus: str,
    kind: str | None = None,
    captions: str | Path | None = None,
    text_emb: str | Path | None = None,
    options: IngestOptions = IngestOptions(),
    on_start: Callable[[int | None], None] = lambda total: None,
    on_progress: Callable[[int], None] = lambda n: None,
    on_unit: Callable[[UnitOutcome], None] = lambda outcome: None,
) -> IngestReport:
    """Ingest the pending units of `path` into `corpus`; see the module docstring."""
    from .history.units import DONE, FAILED, PENDING, UnitLedger

    if not corpus.strip():
        raise BadInputError("corpus name is empty: pass --corpus NAME")
    pair_id(corpus, "")  # refuses a reserved character before anything else
    started = time.perf_counter()
    source = open_source(path, kind=kind, captions=captions, text_emb=text_emb)
    workspace.history.check()
    ledger = UnitLedger(workspace.history)
    with ledger.writer_lock():
        store = workspace.store()
        provenance = workspace.provenance()
        source.check(provenance.coarse_dim, provenance.fine_dim)
        units = source.units()
        ledger.register(corpus, source.kind, str(Path(path).resolve()), units)
        ledger.prepare_run(corpus)
        before = {record.unit: record for record in ledger.units(corpus)}
        pending = [u for u in units if before[u].status == PENDING]
        present_before = sum(before[u].ingested or 0 for u in units if before[u].status == DONE)
        on_start(_estimate(source, pending))

        cache_note, cache_on = _caption_cache(workspace, store)
        run = _Run(workspace, store, source, ledger, corpus, options, on_progress, on_unit, cache_on)
        optimize_seconds = 0.0
        if pending:
            with store.bulk_load() if options.optimize else _no_bulk_load():
                run.work()
                finishing = time.perf_counter()
            optimize_seconds = time.perf_counter() - finishing if options.optimize else 0.0
        after = ledger.units(corpus)
        collections = store.counts()

    processed = run.outcomes
    reasons: Counter = Counter()
    for outcome in processed:
        reasons.update(outcome.skip_reasons)
    statuses = Counter(record.status for record in after)
    return IngestReport(
        corpus=corpus, kind=source.kind, source=str(Path(path)), units=len(after),
        units_done=statuses[DONE], units_failed=statuses[FAILED],
        units_pending=len(after) - statuses[DONE] - statuses[FAILED], processed=processed,
        rows=sum(o.rows for o in processed), ingested=sum(o.ingested for o in processed),
        already_present=present_before + sum(o.already_present for o in processed),
        skipped=sum(reasons.values()), skip_reasons=dict(sorted(reasons.items())),
        seconds=time.perf_counter() - started, optimize_seconds=optimize_seconds, collections=collections,
        failures={o.unit: o.error for o in processed if o.error}, caption_cache=cache_note,
    )


def _caption_cache(workspace: Workspace, store: VectorStore) -> tuple[str, bool]:
    """Whether this run fills the caption cache, and a note saying so (or why not).

    A store without a cache gets one for the configured classifier. A cache that
    holds another classifier's embeddings is left alone: `xmore captions cache
    --rebuild` replaces it.
    """
    if not workspace.settings.caption_cache:
        return "off", False
    wanted = workspace.caption_cache()
    current = store.caption_cache()
    if current is None:
        store.set_caption_cache(wanted)
    elif current != wanted:
        return (f"not filled: the cache holds {current.model}, the classifier is {wanted.model} "
                "(`xmore captions cache --rebuild` replaces it)"), False
    return f"filled with {wanted.model}", True


def _estimate(source: Source, pending: list[str]) -> int | None:
    """Rows still to read, for the progress bar's ETA; extrapolated from the first shard for tar shards."""
    if not pending:
        return 0
    if source.kind == "webdataset":
        first = source.estimate_rows(pending[0])
        return None if first is None else first * len(pending)
    estimates = [source.estimate_rows(unit) for unit in pending]
    return None if any(e is None for e in estimates) else sum(estimates)


class _no_bulk_load:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class _Stopped(Exception):
    """Another worker failed: give the unit back."""


class _Run:
    """One ingest run: worker threads, the decode pool, the writer thread."""

    def __init__(self, workspace, store: VectorStore, source: Source, ledger: UnitLedger, corpus: str,
                 options: IngestOptions, on_progress, on_unit, caption_cache: bool = False):
        self.workspace, self.store, self.source, self.ledger = workspace, store, source, ledger
        self.caption_cache = caption_cache
        self.corpus, self.options = corpus, options
        self.on_progress, self.on_unit = on_progress, on_unit
        self.outcomes: list[UnitOutcome] = []
        self.stop = threading.Event()
        self.store_lock = threading.Lock()  # qdrant-client's local mode is not thread-safe
        self.encode_lock = threading.Lock()  # one encoder call at a time; torch already uses every core
        self._encoders: dict[str, object] = {}
        self._lock = threading.Lock()

    # -- threads ------------------------------------------------------------

    def work(self) -> None:
        self.writer = _Writer(self.store, self.store_lock, _TestHooks.from_env())
        self.decoder = ThreadPoolExecutor(self.options.decode_threads, thread_name_prefix="xmore-decode")
        try:
            if self.options.workers == 1:
                self._worker()
                return
            errors: list[BaseException] = []

            def guarded() -> None:
                try:
                    self._worker()
                except BaseException as error:  # noqa: BLE001 - handed to the main thread
                    errors.append(error)
                    self.stop.set()

            threads = [threading.Thread(target=guarded, name=f"xmore-worker-{i}", daemon=True)
                       for i in range(self.options.workers)]
            for thread in threads:
                thread.start()
            try:
                for thread in threads:
                    while thread.is_alive():
                        thread.join(0.2)
            except BaseException:
                self.stop.set()
                raise
            if errors:
                raise errors[0]
        finally:
            self.decoder.shutdown(wait=False, cancel_futures=True)
            self.writer.close()

    def _worker(self) -> None:
        from .history.units import worker_id

        while not self.stop.is_set():
            claim = self.ledger.claim(self.corpus, worker_id())
            if claim is None:
                return
            try:
                outcome = self._unit(claim)
            except BaseException:
                claim.release()
                self.stop.set()
                raise
            with self._lock:
                self.outcomes.append(outcome)
            log.info("unit %s: %s, %d rows, %d ingested, %d skipped in %.1f s (%.0f pairs/s)", outcome.unit,
                     outcome.status, outcome.rows, outcome.ingested, outcome.skipped, outcome.seconds,
                     outcome.pairs_per_second)
            self.on_unit(outcome)

    # -- one unit -----------------------------------------------------------

    def _unit(self, claim: Claim) -> UnitOutcome:
        from .history.units import worker_id

        started = time.perf_counter()
        rows = ingested = present = 0
        reasons: Counter = Counter()
        futures: list[Future] = []
        error = None
        try:
            for batch in self._prepared(self.source.read(claim.unit, self.options.write_batch)):
                if self.stop.is_set():
                    raise _Stopped()
                rows += batch.rows
                present += batch.already_present
                reasons.update(batch.skipped)
                if len(batch):
                    futures.append(self.writer.submit(PairBatch(
                        corpus=self.corpus, keys=batch.keys, captions=batch.captions,
                        image_vectors=batch.image_vectors, text_vectors=batch.text_vectors,
                        caption_vectors=self._caption_vectors(batch.captions))))
                    ingested += len(batch)
                self.on_progress(batch.rows)
                _raise_failed_writes(futures)
        except UnitReadError as exc:
            error = str(exc)
        for future in futures:  # the unit is done only once every batch of it is durable
            future.result()
        seconds = time.perf_counter() - started
        outcome = UnitOutcome(
            unit=claim.unit, status="failed" if error else "done", rows=rows, ingested=ingested,
            already_present=present, skipped=sum(reasons.values()), skip_reasons=dict(sorted(reasons.items())),
            error=error, seconds=seconds, worker=worker_id(),
        )
        if error:
            claim.failed(error, rows=rows, ingested=ingested, skip_reasons=outcome.skip_reasons, seconds=seconds)
        else:
            claim.done(rows=rows, ingested=ingested, skip_reasons=outcome.skip_reasons, seconds=seconds)
        return outcome

    def _prepared(self, batches: Iterator[RowBatch]) -> Iterator[RowBatch]:
        """Checked and embedded batches; the next batch's images decode while this one encodes."""
        ahead: deque = deque()
        for batch in batches:
            batch = self._checked(batch)
            decoding = None
            if batch.images is not None:
                decoding = [self.decoder.submit(ref.decode) for ref in batch.images]
            ahead.append((batch, decoding))
            if len(ahead) > 1:
                yield self._embedded(*ahead.popleft())
        while ahead:
            yield self._embedded(*ahead.popleft())

    def _checked(self, batch: RowBatch) -> RowBatch:
        if not len(batch):
            return batch
        problems = caption_problems(batch.captions, self.options.max_caption_chars)
        for vectors in (batch.image_vectors, batch.text_vectors):
            if vectors is not None:
                problems = [p or q for p, q in zip(problems, vector_problems(vectors), strict=True)]
        if any(problems):
            batch = batch.keep([p is None for p in problems], problems)
        if batch.images is not None and len(batch):
            # Pairs stored whole already are not decoded or encoded again (a resumed unit).
            ids = [pair_id(self.corpus, key) for key in batch.keys]
            with self.store_lock:
                stored = self.store.existing_ids(ids)
            if stored:
                batch = batch.keep([i not in stored for i in ids])
                batch.already_present += len(ids) - len(batch)
        return batch

    def _embedded(self, batch: RowBatch, decoding: list[Future] | None) -> RowBatch:
        if decoding is not None:
            images, ok = [], []
            for future in decoding:
                try:
                    images.append(future.result())
                    ok.append(True)
                except ImageError:
                    ok.append(False)
            if not all(ok):
                batch = batch.keep(ok, [None if good else UNDECODABLE_IMAGE for good in ok])
            try:
                with self.encode_lock:
                    batch.image_vectors = self._encoder("coarse").encode_images(images) if images else None
            finally:
                for image in images:
                    image.close()
            batch.images = None
        if self.source.computes_texts and len(batch):
            with self.encode_lock:
                batch.text_vectors = self._encoder("fine").encode_texts(batch.captions)
        return batch

    def _caption_vectors(self, captions: list[str]):
        if not self.caption_cache:
            return None
        with self.encode_lock:
            return self._encoder("classifier").encode_texts(captions)

    def _encoder(self, role: str):
        with self._lock:
            if role not in self._encoders:
                self._encoders[role] = self.workspace.encoder(role)
            return self._encoders[role]


def _raise_failed_writes(futures: list[Future]) -> None:
    for future in futures:
        if future.done() and future.exception() is not None:
            raise future.exception()


class _Writer:
    """One thread upserting batches in order while the workers read and encode the next ones."""

    def __init__(self, store: VectorStore, lock: threading.Lock, hooks: _TestHooks):
        self.store, self.lock, self.hooks = store, lock, hooks
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
            self.hooks.after_write()


@dataclass
class _TestHooks:
    """Test-only: slow the writer down, or hang it after N writes (so a test can kill -9 mid-unit)."""

    delay: float = 0.0
    hang_after: int = 0
    marker: str | None = None
    writes: int = 0

    @classmethod
    def from_env(cls) -> _TestHooks:
        return cls(delay=float(os.environ.get("XMORE_TEST_WRITE_DELAY") or 0),
                   hang_after=int(os.environ.get("XMORE_TEST_HANG_AFTER_WRITES") or 0),
                   marker=os.environ.get("XMORE_TEST_HANG_MARKER"))

    def after_write(self) -> None:
        self.writes += 1
        if self.delay:
            time.sleep(self.delay)
        if self.hang_after and self.writes == self.hang_after:
            if self.marker:
                Path(self.marker).write_text(str(os.getpid()))
            while True:
                time.sleep(60)


__all__ = ["IngestOptions", "IngestReport", "UnitOutcome", "ingest"]
