"""Ingests started over HTTP: each on its own thread, beside classification, one at a time per corpus.

Why classify keeps answering during an ingest. The service lets one thread at a
time use the Index (the lock the micro-batcher holds per batch). An ingest
holding it for its whole run would stop classification for minutes, so an HTTP
ingest takes it only around each call into the vector store (`SharedStore`):
an upsert of one write batch, an existence check, a count. What is safe
without it, from the code and a measurement:

- reading, decoding and encoding a batch, the bulk of an ingest, run unlocked.
  The encoders are the service's own (one ClipEncoder per model in the
  process): their calls run under `torch.inference_mode()` and change no state
  of the model, so an ingest's forward pass and a classify batch's can run at
  once (they share the cores);
- the history database: SQLAlchemy's pool gives each thread its own
  connection; SQLite writers queue on BEGIN IMMEDIATE (30 s busy timeout),
  PostgreSQL on row locks;
- the vector store: qdrant-client's local mode is not thread-safe, hence the
  lock around each store call. Qdrant Edge is: a measurement with 2,000-point
  upserts in one thread and searches in another gave no error, with searches
  at their usual few milliseconds. But Edge's graph build at the end of an
  ingest (`optimize`) blocks searches until it is done, lock or no lock (a
  search waited 38 s while the graph of 60,000 64-d points was built on 2
  shared cores): classify waits for that one step.

One ingest per corpus at a time (409 for a second); on SQLite one at all, as
the unit ledger's single-writer lock allows. Closing the service stops running
ingests between two batches; their unfinished units stay pending, and the next
ingest of the corpus takes them.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ..corpus import Columns
from ..history.owners import CorpusOwners
from .errors import ApiError, status_and_message

if TYPE_CHECKING:
    from ..ingest import IngestOptions, IngestReport
    from ..store import VectorStore
    from ..workspace import Workspace

CLOSE_WAIT_S = 30.0


class SharedStore:
    """The service's store as an ingest uses it: every call takes the service's lock, and only for the call."""

    def __init__(self, store: VectorStore, lock: threading.Lock):
        self._store, self._lock = store, lock

    def __getattr__(self, name: str):
        value = getattr(self._store, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def locked(*args, **kwargs):
            with self._lock:
                return value(*args, **kwargs)

        return locked

    def bulk_writes(self) -> contextlib.AbstractContextManager[None]:
        """Nothing special: queries go on while the service ingests (an embedded store's bulk writes
        would take `texts` away from them)."""
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def bulk_load(self) -> Iterator[None]:
        """The store's bulk load, its setup and its closing graph build under the lock, the load itself not."""
        manager = self._store.bulk_load(exclusive=False)  # queries go on meanwhile
        with self._lock:
            manager.__enter__()
        try:
            yield
        except BaseException:
            with self._lock:
                if not manager.__exit__(*sys.exc_info()):
                    raise
        else:
            with self._lock:
                manager.__exit__(None, None, None)


class _IngestWorkspace:
    """The service's Workspace with its store behind the lock: the same database, ledger and encoders."""

    def __init__(self, workspace: Workspace, store: SharedStore):
        self._workspace, self._store = workspace, store

    def store(self) -> SharedStore:
        return self._store

    def raw_store(self) -> SharedStore:
        return self._store

    def __getattr__(self, name: str):
        return getattr(self._workspace, name)


@dataclass(frozen=True)
class IngestParams:
    """What `xmore ingest` takes, as an HTTP ingest request gives it (paths already checked)."""

    source: Path
    kind: str | None
    captions: Path | None
    text_emb: Path | None
    columns: Columns
    allow_partial: bool
    options: IngestOptions


@dataclass(eq=False)
class IngestJob:
    """One HTTP ingest: its progress while it runs, then its outcome."""

    corpus: str
    team: str | None
    source: str
    claimed: bool  # this ingest recorded the corpus' owner: forgotten again if no unit gets registered
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    rows: int = 0
    rows_expected: int | None = None
    registered: bool = False  # the checks passed and the units are in the ledger (on_start)
    finished_at: datetime | None = None
    error: str | None = None
    exception: BaseException | None = None
    report: IngestReport | None = None
    began: threading.Event = field(default_factory=threading.Event)  # registered, or finished
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.finished_at is None

    def to_dict(self) -> dict:
        """`status` running, idle (finished, with `last`) or failed (with `error`, one line)."""
        out: dict = {"status": "running" if self.running else "failed" if self.error else "idle",
                     "source": self.source, "started_at": self.started_at, "rows": self.rows}
        if self.running:
            return out | {"rows_expected": self.rows_expected}
        out["finished_at"] = self.finished_at
        if self.error:
            out["error"] = self.error
        if self.report is not None:
            r = self.report
            out["last"] = {"ingested": r.ingested, "already_present": r.already_present, "skipped": r.skipped,
                           "skip_reasons": r.skip_reasons, "units_done": r.units_done,
                           "units_failed": r.units_failed, "failures": r.failures, "seconds": round(r.seconds, 3)}
        return out


class _Stopped(Exception):
    """The service is closing: the ingest stops between two batches."""


class Ingests:
    """The HTTP ingests of one service. `after_write`: the ingest writer's test hook (see ingest.Writer)."""

    def __init__(self, workspace: Workspace, lock: threading.Lock, *, secrets: list[str] | tuple[str, ...] = (),
                 after_write: Callable[[int], None] | None = None):
        self.workspace, self.lock, self.secrets, self.after_write = workspace, lock, secrets, after_write
        self.owners = CorpusOwners(workspace.database)
        self._jobs: dict[str, IngestJob] = {}
        self._admission = threading.Lock()
        self._closing = threading.Event()

    @contextlib.contextmanager
    def admitting(self) -> Iterator[None]:
        """Held while a request checks that no ingest is in its way and starts one (or deletes a corpus)."""
        with self._admission:
            yield

    @property
    def closing(self) -> threading.Event:
        """Set once the service closes: running ingests stop between two batches."""
        return self._closing

    def job(self, corpus: str) -> IngestJob | None:
        return self._jobs.get(corpus)

    def check_free(self, corpus: str, doing: str) -> None:
        """ApiError 409 if an ingest of `corpus` runs, or on SQLite any ingest (one writer at a time)."""
        running = {name: job for name, job in self._jobs.items() if job.running}
        if corpus in running:
            raise ApiError(409, f"an ingest of corpus {corpus!r} is running ({running[corpus].rows} rows so far): "
                                f"{doing} once it is done (GET /v1/corpora/{corpus} shows its progress)")
        if running and self.workspace.database.sqlite_file is not None:
            other = next(iter(running))
            raise ApiError(409, f"an ingest of corpus {other!r} is running, and the SQLite database allows one "
                                f"writer at a time: {doing} once it is done, or run the service on PostgreSQL")

    def start(self, corpus: str, team: str | None, params: IngestParams, *, claimed: bool) -> IngestJob:
        """Start the ingest on its own thread (call while `admitting()`, after `check_free`)."""
        if self._closing.is_set():
            raise ApiError(503, "the service is shutting down: ingest again once it is back")
        job = IngestJob(corpus=corpus, team=team, source=str(params.source), claimed=claimed)
        job.thread = threading.Thread(target=self._run, args=(job, params), name=f"xmore-ingest-{corpus}",
                                      daemon=True)
        self._jobs[corpus] = job
        job.thread.start()
        return job

    def forget(self, job: IngestJob) -> None:
        """Drop a finished job that left nothing to show (it failed before registering a unit)."""
        with self._admission:
            if self._jobs.get(job.corpus) is job and not job.running:
                del self._jobs[job.corpus]

    def discard(self, corpus: str) -> None:
        """Drop the last ingest of a corpus that was deleted (call while `admitting()`)."""
        job = self._jobs.get(corpus)
        if job is not None and not job.running:
            del self._jobs[corpus]

    def close(self) -> None:
        """Stop running ingests between two batches, and wait for them (bounded)."""
        self._closing.set()
        deadline = time.monotonic() + CLOSE_WAIT_S
        for job in list(self._jobs.values()):
            if job.thread is not None:
                job.thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _run(self, job: IngestJob, params: IngestParams) -> None:
        from ..ingest import ingest

        def on_start(total: int | None) -> None:
            job.rows_expected, job.registered = total, True
            job.began.set()

        def on_progress(rows: int) -> None:
            job.rows += rows
            if self._closing.is_set():  # raised on the worker thread: its unit goes back to pending
                raise _Stopped()

        try:
            with self.lock:
                store = SharedStore(self.workspace.store(), self.lock)
            job.report = ingest(
                _IngestWorkspace(self.workspace, store), params.source, corpus=job.corpus, kind=params.kind,
                captions=params.captions, text_emb=params.text_emb, columns=params.columns,
                allow_partial=params.allow_partial, options=params.options, on_start=on_start,
                on_progress=on_progress, after_write=self.after_write)
            if job.report.failures:
                failed = job.report.failures
                job.error = (f"{len(failed)} unit(s) failed ({', '.join(failed)}): fix their files and ingest "
                             f"again to retry them (GET /v1/corpora/{job.corpus} lists the errors)")
        except _Stopped:
            job.error = "stopped: the service shut down; ingest again to finish the pending units"
        except BaseException as exc:  # noqa: BLE001 - kept for GET /v1/corpora/NAME, never raised on this thread
            job.exception = exc
            job.error = status_and_message(exc, self.secrets)[1]
        finally:
            if job.claimed and not job.registered:
                self._release_claim(job.corpus)
            job.finished_at = datetime.now(timezone.utc)
            job.began.set()

    def _release_claim(self, corpus: str) -> None:
        """The corpus never got a unit: it is nobody's, so another team may create it."""
        try:
            if not self.workspace.ledger.exists(corpus):
                self.owners.forget(corpus)
        except Exception:  # noqa: BLE001 - the ingest's own failure is what the caller needs to see
            pass
