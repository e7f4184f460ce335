"""`UnitLedger`: the ingest work units of each corpus, in the history database.

Claiming differs by database:
- PostgreSQL: `claim()` selects a pending unit, or a running one whose worker
  is gone, with SELECT ... FOR UPDATE SKIP LOCKED, and commits it as running
  (worker, attempts + 1: the attempt is on record even if the worker dies); it
  then locks the row again, in a transaction that stays open while the unit is
  processed and records its outcome before committing. Workers on any machine
  skip the locked row; a worker killed mid-unit drops its connection, its lock
  goes with it, and the unit, still running, is claimed by the next worker.
  Should two workers take the same row between the two steps, the second lock
  (which also checks the worker) lets only one of them keep it. No lease timers.
- SQLite: one writer at a time. `writer_lock()` takes an exclusive OS lock on a
  file beside the database for the whole ingest (a second ingest gets
  IngestLockedError); units are marked running in their own transaction, and
  `prepare_run()` resets units left running by a killed process.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Row

from ..errors import BadInputError, IngestLockedError, UnknownCorpusError
from ..sources.base import natural_key
from .database import Database
from .schema import ingest_units
from .store import _utc

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
STATUSES = (PENDING, RUNNING, DONE, FAILED)
# PostgreSQL: the advisory-lock key space of unit claims ("xmor"), and how many candidates one look takes.
ADVISORY_SPACE = 0x786D6F72
CLAIM_CANDIDATES = 16


@dataclass(frozen=True)
class UnitRecord:
    corpus: str
    unit: str
    kind: str
    source: str
    status: str
    rows: int | None
    ingested: int | None
    skipped: int
    skip_reasons: dict[str, int]
    error: str | None
    worker: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    seconds: float | None
    source_size: int | None = None  # bytes of the unit's files when it was last done
    source_mtime: float | None = None  # their latest modification time (seconds since the epoch)
    note: str | None = None  # a partial shard taken, a changed source read again


@dataclass(frozen=True)
class CorpusRecord:
    corpus: str
    kind: str
    source: str
    units: dict[str, int]  # status -> count
    rows: int
    ingested: int
    skipped: int
    skip_reasons: dict[str, int]


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


class Claim:
    """A unit held by this worker until `done()`, `failed()` or `release()`.

    `attempts` counts this one (1: no earlier attempt can have written any of its
    rows); `recorded` is the (size, mtime) of its files when it was last done, or None.
    """

    def __init__(self, ledger: UnitLedger, conn: Connection | None, row: Row, held: bool):
        self.ledger, self._conn, self._held = ledger, conn, held
        self.id, self.unit, self.attempts = row.id, row.unit, row.attempts
        self.recorded = None if row.source_size is None else (int(row.source_size), float(row.source_mtime or 0.0))
        self._open = True

    def done(self, *, rows: int, ingested: int, skip_reasons: dict[str, int], seconds: float,
             source: tuple[int, float] | None = None, note: str | None = None) -> None:
        """Record the unit done; `source` is the (size, mtime) of its files as read, kept to tell a change."""
        extra = {} if source is None else dict(source_size=int(source[0]), source_mtime=float(source[1]))
        self._finish(DONE, rows=rows, ingested=ingested, skip_reasons=skip_reasons, seconds=seconds, error=None,
                     note=note, **extra)

    def failed(self, error: str, *, rows: int, ingested: int, skip_reasons: dict[str, int], seconds: float,
               note: str | None = None) -> None:
        self._finish(FAILED, rows=rows, ingested=ingested, skip_reasons=skip_reasons, seconds=seconds, error=error,
                     note=note)

    def release(self) -> None:
        """Give the unit back as pending (an interrupted or crashed worker)."""
        if not self._open:
            return
        self._open = False
        with self.ledger.database.errors():
            statement = update(ingest_units).where(ingest_units.c.id == self.id).values(status=PENDING, worker=None)
            if self._held:
                try:
                    self._conn.rollback()
                    self._conn.execute(statement)
                    self._conn.commit()
                finally:
                    self._close_held()
                return
            with self.ledger.database.transaction(write=True) as conn:
                conn.execute(statement)

    def _close_held(self) -> None:
        """Drop the claim's advisory lock (a pooled connection would keep it) and the connection."""
        try:
            self._conn.execute(select(func.pg_advisory_unlock(ADVISORY_SPACE, self.id)))
            self._conn.commit()
        finally:
            self._conn.close()

    def _finish(self, status: str, *, rows, ingested, skip_reasons, seconds, error, note, **extra) -> None:
        values = dict(
            status=status, rows=rows, ingested=ingested, skipped=int(sum(skip_reasons.values())),
            skip_reasons=dict(sorted(skip_reasons.items())), error=error, seconds=float(seconds),
            finished_at=datetime.now(timezone.utc), note=note, **extra,
        )
        statement = update(ingest_units).where(ingest_units.c.id == self.id).values(**values)
        self._open = False
        with self.ledger.database.errors():
            if self._held:
                try:
                    self._conn.execute(statement)
                    self._conn.commit()
                finally:
                    self._close_held()
                return
            with self.ledger.database.transaction(write=True) as conn:
                conn.execute(statement)


class UnitLedger:
    """Work units of each corpus, in the history `Database` (the confidence history's own)."""

    def __init__(self, database: Database):
        self.database = database

    @property
    def dialect(self) -> str:
        return self.database.dialect

    # -- the single-writer lock (SQLite) ------------------------------------

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        """On SQLite, the exclusive ingest lock for the duration; on PostgreSQL nothing."""
        path = self.database.sqlite_file
        if path is None:
            yield
            return
        import fcntl

        lock_path = Path(f"{path}.ingest-lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a+")  # noqa: SIM115 - held for the whole block
        try:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise IngestLockedError(
                    f"another xmore ingest is writing to {self.database.masked_url}; SQLite allows one "
                    "writer at a time: wait for it to finish, or use PostgreSQL (XMORE_DATABASE_URL) "
                    "for concurrent workers"
                ) from None
            yield
        finally:
            handle.close()  # closing the file releases the lock

    # -- registering and preparing a run ------------------------------------

    def register(self, corpus: str, kind: str, source: str, units: list[str]) -> None:
        """Record the source's units as pending (those not known yet)."""
        now = datetime.now(timezone.utc)
        with self.database.transaction(write=True) as conn:
            known = conn.execute(
                select(ingest_units.c.kind, ingest_units.c.source).where(ingest_units.c.corpus == corpus).limit(1)
            ).first()
            if known is not None and known.kind != kind:
                raise BadInputError(
                    f"corpus {corpus!r} was ingested from {known.source} ({known.kind} source), "
                    f"not from a {kind} source: use another corpus name"
                )
            insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            for start in range(0, len(units), 1000):
                rows = [dict(corpus=corpus, unit=unit, kind=kind, source=source, status=PENDING, skipped=0,
                             attempts=0, created_at=now) for unit in units[start:start + 1000]]
                conn.execute(insert(ingest_units).values(rows).on_conflict_do_nothing(
                    index_elements=["corpus", "unit"]))

    def prepare_run(self, corpus: str) -> None:
        """Failed units become pending again (a rerun retries them); on SQLite, so do running ones."""
        retry = [FAILED] if self.dialect == "postgresql" else [FAILED, RUNNING]
        with self.database.transaction(write=True) as conn:
            conn.execute(update(ingest_units)
                         .where(ingest_units.c.corpus == corpus, ingest_units.c.status.in_(retry))
                         .values(status=PENDING))

    # -- claiming -----------------------------------------------------------

    def claim(self, corpus: str, worker: str) -> Claim | None:
        """The next unit to do (in registration order), held for this worker; None when none is left."""
        u = ingest_units.c
        now = datetime.now(timezone.utc)
        mark = dict(status=RUNNING, worker=worker, started_at=now, attempts=u.attempts + 1)
        held = select(u.id, u.unit, u.attempts, u.source_size, u.source_mtime)
        if self.dialect == "postgresql":
            pick = (select(u.id).where(u.corpus == corpus, u.status.in_([PENDING, RUNNING]))
                    .order_by(u.id).limit(CLAIM_CANDIDATES).with_for_update(skip_locked=True))
            conn = self.database.connect()
            # Out of the pool: closing it ends the session, and with it the claim's advisory lock.
            conn.detach()
            with self.database.errors():
                try:
                    while True:
                        conn.begin()
                        rows = conn.execute(pick).all()
                        if not rows:
                            conn.rollback()
                            conn.close()
                            return None
                        # A unit whose claim is committed but whose row is not locked again yet is held by
                        # its worker's session-level advisory lock: skip it. A killed worker's lock goes
                        # with its connection, so its unit is claimed again (attempts counts real tries).
                        chosen = next((row for row in rows if conn.execute(
                            select(func.pg_try_advisory_lock(ADVISORY_SPACE, row.id))).scalar()), None)
                        if chosen is None:
                            conn.rollback()
                            time.sleep(0.05)  # every candidate is between its two steps: a moment
                            continue
                        conn.execute(update(ingest_units).where(u.id == chosen.id).values(**mark))
                        conn.commit()  # the attempt is on record; the row lock is taken again below
                        conn.begin()
                        mine = conn.execute(held.where(u.id == chosen.id).with_for_update()).first()
                        return Claim(self, conn, mine, held=True)
                except BaseException:
                    conn.close()
                    raise
        pick = select(u.id).where(u.corpus == corpus, u.status == PENDING).order_by(u.id).limit(1)
        with self.database.transaction(write=True) as conn:
            row = conn.execute(pick).first()
            if row is None:
                return None
            conn.execute(update(ingest_units).where(u.id == row.id).values(**mark))
            mine = conn.execute(held.where(u.id == row.id)).first()
        return Claim(self, None, mine, held=False)

    def reopen(self, corpus: str, units: list[str], note: str) -> None:
        """Make done units pending again (their files changed), keeping what they recorded about those files."""
        u = ingest_units.c
        with self.database.transaction(write=True) as conn:
            for start in range(0, len(units), 1000):
                conn.execute(update(ingest_units)
                             .where(u.corpus == corpus, u.unit.in_(units[start:start + 1000]), u.status == DONE)
                             .values(status=PENDING, note=note))

    def record_sources(self, corpus: str, sources: dict[str, tuple[int, float]]) -> None:
        """Record the files' (size, mtime) of done units that have none on record (done before revision 0003)."""
        u = ingest_units.c
        with self.database.transaction(write=True) as conn:
            for unit, (size, mtime) in sources.items():
                conn.execute(update(ingest_units)
                             .where(u.corpus == corpus, u.unit == unit, u.source_size.is_(None))
                             .values(source_size=int(size), source_mtime=float(mtime)))

    # -- reading and deleting -------------------------------------------------

    def units(self, corpus: str) -> list[UnitRecord]:
        with self.database.transaction() as conn:
            rows = conn.execute(select(ingest_units).where(ingest_units.c.corpus == corpus)).all()
        if not rows:
            raise _unknown(corpus)
        return sorted((_record(row) for row in rows), key=lambda record: natural_key(record.unit))

    def corpora(self) -> list[CorpusRecord]:
        u = ingest_units.c
        with self.database.transaction() as conn:
            rows = conn.execute(select(u.corpus, u.kind, u.source, u.status, u.rows, u.ingested, u.skipped,
                                       u.skip_reasons).order_by(u.corpus, u.unit)).all()
        out: dict[str, dict] = {}
        for row in rows:
            entry = out.setdefault(row.corpus, dict(corpus=row.corpus, kind=row.kind, source=row.source,
                                                    units=dict.fromkeys(STATUSES, 0), rows=0, ingested=0,
                                                    skipped=0, skip_reasons={}))
            entry["units"][row.status] = entry["units"].get(row.status, 0) + 1
            entry["rows"] += row.rows or 0
            entry["ingested"] += row.ingested or 0
            entry["skipped"] += row.skipped or 0
            for reason, count in (row.skip_reasons or {}).items():
                entry["skip_reasons"][reason] = entry["skip_reasons"].get(reason, 0) + count
        return [CorpusRecord(**entry) for entry in out.values()]

    def delete(self, corpus: str) -> int:
        with self.database.transaction(write=True) as conn:
            removed = conn.execute(delete(ingest_units).where(ingest_units.c.corpus == corpus)).rowcount
        if not removed:
            raise _unknown(corpus)
        return removed

    def done_units(self, corpus: str) -> set[str]:
        """The corpus' units recorded as done; none for a corpus not registered yet."""
        u = ingest_units.c
        with self.database.transaction() as conn:
            return set(conn.execute(select(u.unit).where(u.corpus == corpus, u.status == DONE)).scalars())

    def exists(self, corpus: str) -> bool:
        with self.database.transaction() as conn:
            return bool(conn.execute(select(func.count()).select_from(ingest_units)
                                     .where(ingest_units.c.corpus == corpus)).scalar())


def _unknown(corpus: str) -> UnknownCorpusError:
    return UnknownCorpusError(f"no corpus named {corpus!r} (xmore corpora list shows the corpora)")


def _record(row: Row) -> UnitRecord:
    return UnitRecord(
        corpus=row.corpus, unit=row.unit, kind=row.kind, source=row.source, status=row.status, rows=row.rows,
        ingested=row.ingested, skipped=row.skipped, skip_reasons=dict(row.skip_reasons or {}), error=row.error,
        worker=row.worker, attempts=row.attempts, created_at=_utc(row.created_at),
        started_at=None if row.started_at is None else _utc(row.started_at),
        finished_at=None if row.finished_at is None else _utc(row.finished_at),
        seconds=None if row.seconds is None else float(row.seconds),
        source_size=row.source_size, source_mtime=None if row.source_mtime is None else float(row.source_mtime),
        note=row.note,
    )
