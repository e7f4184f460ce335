"""`UnitLedger`: the ingest work units of each corpus, in the history database.

Claiming differs by database:
- PostgreSQL: `claim()` selects a pending unit with SELECT ... FOR UPDATE SKIP
  LOCKED in a transaction that stays open while the unit is processed and
  records its outcome before committing. Workers on any machine skip the locked
  row; a worker killed mid-unit drops its connection, the server rolls back, and
  the unit is pending again for the next run. No lease timers.
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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Row

from ..errors import BadInputError, IngestLockedError, UnknownCorpusError
from .database import Database
from .schema import ingest_units
from .store import _utc

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
STATUSES = (PENDING, RUNNING, DONE, FAILED)


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
    """A unit held by this worker until `done()`, `failed()` or `release()`."""

    def __init__(self, ledger: UnitLedger, conn: Connection, unit_id: int, unit: str, held: bool):
        self.ledger, self._conn, self.id, self.unit, self._held = ledger, conn, unit_id, unit, held
        self._open = True

    def done(self, *, rows: int, ingested: int, skip_reasons: dict[str, int], seconds: float) -> None:
        self._finish(DONE, rows=rows, ingested=ingested, skip_reasons=skip_reasons, seconds=seconds, error=None)

    def failed(self, error: str, *, rows: int, ingested: int, skip_reasons: dict[str, int], seconds: float) -> None:
        self._finish(FAILED, rows=rows, ingested=ingested, skip_reasons=skip_reasons, seconds=seconds, error=error)

    def release(self) -> None:
        """Give the unit back as pending (an interrupted or crashed worker)."""
        if not self._open:
            return
        self._open = False
        with self.ledger.database.errors():
            if self._held:
                self._conn.rollback()
                self._conn.close()
                return
            with self.ledger.database.transaction(write=True) as conn:
                conn.execute(update(ingest_units).where(ingest_units.c.id == self.id)
                             .values(status=PENDING, worker=None))

    def _finish(self, status: str, *, rows, ingested, skip_reasons, seconds, error) -> None:
        values = dict(
            status=status, rows=rows, ingested=ingested, skipped=int(sum(skip_reasons.values())),
            skip_reasons=dict(sorted(skip_reasons.items())), error=error, seconds=float(seconds),
            finished_at=datetime.now(timezone.utc),
        )
        statement = update(ingest_units).where(ingest_units.c.id == self.id).values(**values)
        self._open = False
        with self.ledger.database.errors():
            if self._held:
                try:
                    self._conn.execute(statement)
                    self._conn.commit()
                finally:
                    self._conn.close()
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
        """The next pending unit, held for this worker; None when none is left."""
        now = datetime.now(timezone.utc)
        pick = (select(ingest_units.c.id, ingest_units.c.unit)
                .where(ingest_units.c.corpus == corpus, ingest_units.c.status == PENDING)
                .order_by(ingest_units.c.unit).limit(1))
        mark = dict(status=RUNNING, worker=worker, started_at=now, attempts=ingest_units.c.attempts + 1)
        if self.dialect == "postgresql":
            conn = self.database.connect()
            with self.database.errors():
                try:
                    conn.begin()
                    row = conn.execute(pick.with_for_update(skip_locked=True)).first()
                    if row is None:
                        conn.rollback()
                        conn.close()
                        return None
                    conn.execute(update(ingest_units).where(ingest_units.c.id == row.id).values(**mark))
                except BaseException:
                    conn.close()
                    raise
            return Claim(self, conn, row.id, row.unit, held=True)
        with self.database.transaction(write=True) as conn:
            row = conn.execute(pick).first()
            if row is None:
                return None
            conn.execute(update(ingest_units).where(ingest_units.c.id == row.id).values(**mark))
        return Claim(self, None, row.id, row.unit, held=False)

    # -- reading and deleting -------------------------------------------------

    def units(self, corpus: str) -> list[UnitRecord]:
        with self.database.transaction() as conn:
            rows = conn.execute(select(ingest_units).where(ingest_units.c.corpus == corpus)
                                .order_by(ingest_units.c.unit)).all()
        if not rows:
            raise _unknown(corpus)
        return [_record(row) for row in rows]

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
    )
