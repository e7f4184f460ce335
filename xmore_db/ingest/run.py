"""One ingest run: checks, unit registration, the worker threads and their stages.

A worker claims a pending unit and passes its batches through named stages:
`_checked` drops and counts bad rows and rows already stored whole, the decode
pool decodes the next batch's images while `_embedded` encodes this one, and
the writer thread (`writer.Writer`) upserts. The unit is marked done only once
all its batches are durable: by the completer thread, so that the worker goes on
to its next unit meanwhile and the writer never runs dry at a unit's end. What the
rows count as (new, already present, duplicate) is `accounting`'s.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..corpus import Columns
from ..errors import BadInputError, ImageError, UnitReadError
from ..history.units import DONE, PENDING, worker_id
from ..sources import open_source
from ..sources.base import UNDECODABLE_IMAGE, RowBatch, caption_problems, fingerprint, vector_problems
from ..store import PairBatch, pair_id
from ..store.types import pair_ids
from .accounting import CHANGED_NOTE, Attempt, InFlight, all_skipped, changed_units, counted
from .report import IngestReport, UnitOutcome, summarize
from .writer import DEFAULT_FLUSH_ROWS, AfterWrite, Writer, raise_failed_writes

if TYPE_CHECKING:
    from ..history.units import Claim, UnitLedger
    from ..models import ClipEncoder
    from ..sources import Source
    from ..store import CaptionCache, VectorStore
    from ..workspace import Workspace

log = logging.getLogger(__name__)

DEFAULT_WRITE_BATCH = 1024
DEFAULT_MAX_CAPTION_CHARS = 1000


@dataclass(frozen=True)
class IngestOptions:
    workers: int = 1  # threads claiming units in this process
    write_batch: int = DEFAULT_WRITE_BATCH  # rows per read and per upsert
    max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS
    decode_threads: int = 4
    optimize: bool = True  # build the graph at the end (benchmarks time the writes without it)
    flush_rows: int = DEFAULT_FLUSH_ROWS  # rows written between two flushes of the store (`writer`)

    def __post_init__(self) -> None:
        for name in ("workers", "write_batch", "max_caption_chars", "decode_threads", "flush_rows"):
            if getattr(self, name) < 1:
                raise BadInputError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")


def ingest(
    workspace: Workspace,
    path: str | Path,
    *,
    corpus: str,
    kind: str | None = None,
    captions: str | Path | None = None,
    text_emb: str | Path | None = None,
    columns: Columns = Columns(),
    allow_partial: bool = False,
    options: IngestOptions = IngestOptions(),
    on_start: Callable[[int | None], None] = lambda total: None,
    on_progress: Callable[[int], None] = lambda n: None,
    on_unit: Callable[[UnitOutcome], None] = lambda outcome: None,
    after_write: AfterWrite | None = None,
) -> IngestReport:
    """Ingest the pending units of `path` into `corpus`; see the package docstring.

    Everything that can be checked is checked before the first write: the
    database schema, the store against the configured models, the source's
    vector sizes, and the encoders the run needs (loaded, so missing or broken
    weights fail here and no unit is registered). `after_write` is a test hook,
    called on the writer thread after each durable write (see `writer.Writer`).
    """
    if not corpus.strip():
        raise BadInputError("corpus name is empty: pass --corpus NAME")
    pair_id(corpus, "")  # refuses a reserved character before anything else
    started = time.perf_counter()
    source = open_source(path, kind=kind, captions=captions, text_emb=text_emb, columns=columns,
                         allow_partial=allow_partial)
    workspace.database.check()
    ledger = workspace.ledger
    with ledger.writer_lock():
        store = workspace.store()
        provenance = workspace.provenance()
        check_models = getattr(source, "check_models", None)  # an embeddings folder's --text-emb space
        if check_models is not None:
            check_models(provenance)
        source.check(provenance.coarse_dim, provenance.fine_dim)
        check_writable = getattr(store, "check_writable", None)  # a Qdrant server's read-only key refuses writes
        if check_writable is not None:
            check_writable()
        units = source.units()
        cache_note, cache_on, declare_cache = _caption_cache(workspace, store)
        known = {record.unit: record for record in ledger.units(corpus)} if ledger.exists(corpus) else {}
        changed, unrecorded = changed_units(source, units, known)
        has_work = bool(changed) or not set(units) <= {u for u, r in known.items() if r.status == DONE}
        encoders = _load_encoders(workspace, source, cache_on) if has_work else {}
        # Nothing was written before this point.
        ledger.register(corpus, source.kind, str(Path(path).resolve()), units)
        if changed:
            ledger.reopen(corpus, changed, CHANGED_NOTE)
        if unrecorded:
            ledger.record_sources(corpus, unrecorded)
        ledger.prepare_run(corpus)
        if declare_cache is not None:
            store.set_caption_cache(declare_cache)
        before = {record.unit: record for record in ledger.units(corpus)}
        pending = [u for u in units if before[u].status == PENDING]
        present_before = sum(before[u].ingested or 0 for u in units if before[u].status == DONE)
        on_start(_estimate(source, pending))

        run = _Run(workspace, store, source, ledger, corpus, options, on_progress, on_unit, cache_on,
                   encoders, after_write)
        optimize_seconds = 0.0
        if pending:
            with store.bulk_load() if options.optimize else store.bulk_writes():
                run.work()
                finishing = time.perf_counter()
            optimize_seconds = time.perf_counter() - finishing if options.optimize else 0.0
        elif options.optimize:
            finishing = time.perf_counter()
            store.optimize_if_needed()  # nothing to write, but a killed run's graph build is finished now
            optimize_seconds = time.perf_counter() - finishing
        after = ledger.units(corpus)
        collections = store.counts()

    return summarize(
        corpus=corpus, kind=source.kind, source=str(Path(path).resolve()), processed=run.outcomes, after=after,
        present_before=present_before, seconds=time.perf_counter() - started,
        optimize_seconds=optimize_seconds, collections=collections, caption_cache=cache_note, changed=changed,
    )


def _caption_cache(workspace: Workspace, store: VectorStore) -> tuple[str, bool, CaptionCache | None]:
    """Whether this run fills the caption cache, a note saying so (or why not), and the cache to declare.

    A store without a cache gets one for the configured classifier (declared by
    the caller once the checks pass). A cache that holds another classifier's
    embeddings is left alone: `xmore cache-captions --rebuild` replaces it.
    """
    if not workspace.settings.caption_cache:
        return "off", False, None
    wanted = workspace.caption_cache()
    current = store.caption_cache()
    if current is not None and current != wanted:
        return (f"not filled: the cache holds {current.model}, the classifier is {wanted.model} "
                "(`xmore cache-captions --rebuild` replaces it)"), False, None
    return f"filled with {wanted.model}", True, wanted if current is None else None


def _load_encoders(workspace: Workspace, source: Source, caption_cache: bool) -> dict[str, ClipEncoder]:
    """The encoders this run needs, loaded: missing or unloadable weights fail before anything is written."""
    needed = {"coarse": source.computes_images, "fine": source.computes_texts, "classifier": caption_cache}
    return {role: workspace.encoder(role) for role, wanted in needed.items() if wanted}


def _estimate(source: Source, pending: list[str]) -> int | None:
    """Rows still to read, for the progress bar's ETA; extrapolated from the first shard for tar shards."""
    if not pending:
        return 0
    if source.kind == "webdataset":
        first = source.estimate_rows(pending[0])
        return None if first is None else first * len(pending)
    estimates = [source.estimate_rows(unit) for unit in pending]
    return None if any(e is None for e in estimates) else sum(estimates)


class _Stopped(Exception):
    """Another worker failed: give the unit back."""


class _Run:
    """One ingest run: worker threads, the decode pool, the writer thread."""

    def __init__(self, workspace: Workspace, store: VectorStore, source: Source, ledger: UnitLedger, corpus: str,
                 options: IngestOptions, on_progress, on_unit, caption_cache: bool,
                 encoders: dict[str, ClipEncoder], after_write: AfterWrite | None):
        self.workspace, self.store, self.source, self.ledger = workspace, store, source, ledger
        self.caption_cache, self.after_write = caption_cache, after_write
        self.corpus, self.options = corpus, options
        self.on_progress, self.on_unit = on_progress, on_unit
        self.outcomes: list[UnitOutcome] = []
        self.stop = threading.Event()
        # Ids are looked up while the writer writes, unless the engine takes one call at a time
        # (qdrant-client's local mode is not thread-safe).
        self.store_lock = nullcontext() if store.concurrent_calls else threading.Lock()
        self.encode_lock = threading.Lock()  # one encoder call at a time; torch already uses every core
        self._encoders = dict(encoders)
        self._lock = threading.Lock()
        self.in_flight = InFlight()
        self._completions: queue.Queue = queue.Queue()  # (claim, complete) in the order the units were read
        self._completion_errors: list[BaseException] = []

    # -- threads ------------------------------------------------------------

    def work(self) -> None:
        self.writer = Writer(self.store, self.store_lock, self.after_write, flush_rows=self.options.flush_rows,
                             batch_rows=self.options.write_batch)
        self.decoder = ThreadPoolExecutor(self.options.decode_threads, thread_name_prefix="xmore-decode")
        completer = threading.Thread(target=self._complete_units, name="xmore-completer", daemon=True)
        completer.start()
        try:
            self._work()
        except _Stopped:
            if not self._completion_errors:
                raise
        finally:
            self.decoder.shutdown(wait=False, cancel_futures=True)
            self.writer.close()  # what is left is written: every submitted batch's future is settled
            self._completions.put(None)
            completer.join()
        if self._completion_errors:
            raise self._completion_errors[0]

    def _work(self) -> None:
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

    def _worker(self) -> None:
        while not self.stop.is_set():
            claim = self.ledger.claim(self.corpus, worker_id())
            if claim is None:
                return
            try:
                complete = self._unit(claim)
            except BaseException:
                claim.release()
                self.stop.set()
                raise
            self._completions.put((claim, complete))

    def _complete_units(self) -> None:
        """The completer thread: each unit, once its batches are durable, recorded in the ledger and reported."""
        while (item := self._completions.get()) is not None:
            claim, complete = item
            try:
                outcome = complete()
            except BaseException as error:  # noqa: BLE001 - raised by work() once the run has stopped
                claim.release()
                self.stop.set()
                self._completion_errors.append(error)
                continue
            with self._lock:
                self.outcomes.append(outcome)
            log.info("unit %s: %s, %d rows, %d ingested, %d skipped in %.1f s (%.0f pairs/s)", outcome.unit,
                     outcome.status, outcome.rows, outcome.ingested, outcome.skipped, outcome.seconds,
                     outcome.pairs_per_second)
            self.on_unit(outcome)

    # -- one unit -----------------------------------------------------------

    def _unit(self, claim: Claim) -> Callable[[], UnitOutcome]:
        """Read the unit and hand its batches to the writer; the function returned waits until they are
        durable, then records the unit (run by the completer thread)."""
        started = time.perf_counter()
        files = fingerprint(self.source.files(claim.unit))  # before reading: a change while read shows next run
        attempt = Attempt.of(claim.unit, claim.attempts, claim.recorded, files)
        rows = ingested = present = 0
        reasons: Counter = Counter()
        futures: list[Future] = []
        error, partial, notes = None, False, [CHANGED_NOTE] if attempt.rewrite else []
        self.in_flight.start(claim.unit)
        try:
            try:
                for batch in self._prepared(self.source.read(claim.unit, self.options.write_batch), attempt):
                    if self.stop.is_set():
                        raise _Stopped()
                    rows += batch.rows
                    present += batch.already_present + batch.rewritten
                    reasons.update(batch.skipped)
                    partial = partial or batch.partial
                    notes += [batch.note] if batch.note else []
                    if len(batch):
                        futures.append(self.writer.submit(PairBatch(
                            corpus=self.corpus, keys=batch.keys, captions=batch.captions,
                            image_vectors=batch.image_vectors, text_vectors=batch.text_vectors,
                            caption_vectors=self._caption_vectors(batch.captions), extras=batch.extras)))
                        ingested += len(batch) - batch.rewritten
                    self.on_progress(batch.rows)
                    raise_failed_writes(futures)
            except UnitReadError as exc:
                error = str(exc)
        except BaseException:
            self.in_flight.finish(claim.unit)
            raise

        def complete() -> UnitOutcome:
            try:
                for future in futures:  # the unit is done only once every batch of it is durable
                    future.result()
            finally:
                self.in_flight.finish(claim.unit)
            return self._record(claim, started, rows, ingested, present, reasons, error, partial, notes, files)
        return complete

    def _record(self, claim: Claim, started: float, rows: int, ingested: int, present: int, reasons: Counter,
                error: str | None, partial: bool, notes: list[str], files) -> UnitOutcome:
        error = error or all_skipped(self.source, claim.unit, rows, ingested + present, reasons)
        seconds = time.perf_counter() - started
        note = "; ".join(notes) or None
        outcome = UnitOutcome(
            unit=claim.unit, status="failed" if error else "done", rows=rows, ingested=ingested,
            already_present=present, skipped=sum(reasons.values()), skip_reasons=dict(sorted(reasons.items())),
            error=error, seconds=seconds, worker=worker_id(), partial=partial and not error, note=note,
        )
        # The ledger counts the pairs the unit holds: written now, or found stored from an earlier attempt.
        held = ingested + present
        if error:
            claim.failed(error, rows=rows, ingested=held, skip_reasons=outcome.skip_reasons, seconds=seconds,
                         note=note)
        else:
            claim.done(rows=rows, ingested=held, skip_reasons=outcome.skip_reasons, seconds=seconds, source=files,
                       note=note)
        return outcome

    def _prepared(self, batches: Iterator[RowBatch], attempt: Attempt) -> Iterator[RowBatch]:
        """Checked and embedded batches; the next batch's images decode while this one encodes."""
        ahead: deque = deque()
        for batch in batches:
            batch = self._checked(batch, attempt)
            decoding = None
            if batch.images is not None:
                decoding = [self.decoder.submit(ref.decode) for ref in batch.images]
            ahead.append((batch, decoding))
            if len(ahead) > 1:
                yield self._embedded(*ahead.popleft())
        while ahead:
            yield self._embedded(*ahead.popleft())

    def _checked(self, batch: RowBatch, attempt: Attempt) -> RowBatch:
        if not len(batch):
            return batch
        problems = caption_problems(batch.captions, self.options.max_caption_chars)
        for vectors in (batch.image_vectors, batch.text_vectors):
            if vectors is not None:
                problems = [p or q for p, q in zip(problems, vector_problems(vectors), strict=True)]
        if any(problems):
            batch = batch.keep([p is None for p in problems], problems)
        if not len(batch):
            return batch
        ids = pair_ids(self.corpus, batch.keys)
        elsewhere = self.in_flight.take(attempt.unit, ids)  # keys of other units whose writes may not be durable
        with self.store_lock:
            stored = self.store.existing_ids(ids)
        return counted(batch, attempt, ids, elsewhere, stored)

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

    def _encoder(self, role: str) -> ClipEncoder:
        with self._lock:
            if role not in self._encoders:  # loaded up front; a unit left pending by a race loads it here
                self._encoders[role] = self.workspace.encoder(role)
            return self._encoders[role]
