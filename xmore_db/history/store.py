"""`ConfidenceHistory`: per-stream confidence statistics in SQLite or PostgreSQL.

X-MoRe adjusts each query's modality confidences against the confidences seen
so far in its stream, the current query included. `record()` does the whole
step in one transaction: an upsert bumps the stream's running statistics and
returns them, the caller's `decide` turns them into weights and a prediction,
and the event is appended. The upsert's row lock (PostgreSQL) or the database
write lock taken by BEGIN IMMEDIATE (SQLite) serialises writers on a stream, so
concurrent classifier processes lose no update and number events 1, 2, 3, ...
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Double, delete, func, literal, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, Row, make_url

from ..config import NORMALIZATIONS, mask_url_password
from ..errors import (
    BadInputError,
    ConfigError,
    DatabaseNotMigratedError,
    DatabaseUnreachableError,
    HistoryError,
    UnknownStreamError,
)
from .engine import WRITE_OPTION, alembic_config, create_history_engine, head_revision
from .records import Decision, Event, ModalityStats, StreamStats
from .schema import events, streams


class ConfidenceHistory:
    """The confidence history behind one database URL. Connects lazily."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None

    def __repr__(self) -> str:
        return f"ConfidenceHistory({mask_url_password(self.url)!r})"

    def __enter__(self) -> ConfidenceHistory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- schema -----------------------------------------------------------

    def migrate(self) -> str:
        """Bring the schema to the newest revision (creating it); return that revision."""
        self._create_sqlite_directory()
        cfg = alembic_config(self.url)
        with self._transaction(write=True, create=True) as conn:
            cfg.attributes["connection"] = conn
            try:
                command.upgrade(cfg, "head")
            except CommandError as exc:  # e.g. a revision from a newer xmore-db
                raise HistoryError(f"cannot migrate database {self._masked}: {exc}") from None
        return head_revision()

    def revision(self) -> str | None:
        """The schema revision the database is at; None if it was never migrated."""
        path = self._sqlite_file()
        if path is not None and path.parent.is_dir() and not path.exists():
            return None
        with self._transaction() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def check(self) -> None:
        """Raise unless the database answers and its schema is at the newest revision."""
        current = self.revision()
        head = head_revision()
        if current == head:
            return
        if current is None:
            raise self._not_migrated()
        script = ScriptDirectory.from_config(alembic_config(self.url))
        if current not in {rev.revision for rev in script.walk_revisions()}:
            raise HistoryError(
                f"database {self._masked} is at schema revision {current}, which this "
                "version of xmore-db does not know: upgrade xmore-db"
            )
        raise DatabaseNotMigratedError(
            f"database {self._masked} is at schema revision {current}, behind {head}: run `xmore init`"
        )

    # -- writing ----------------------------------------------------------

    def record(
        self,
        stream: str,
        *,
        c_image: float,
        c_text: float | None,
        normalize: str,
        query: str | None,
        decide: Callable[[StreamStats], Decision],
    ) -> Event:
        """Add one query to `stream` (created on first use) in one transaction.

        `decide` receives the stream's statistics with this query already
        counted and returns the weights and prediction to store. If it raises,
        nothing is recorded.
        """
        _check_stream_name(stream)
        c_image = _check_confidence("c_image", c_image)
        c_text = None if c_text is None else _check_confidence("c_text", c_text)
        if normalize not in NORMALIZATIONS:
            raise ConfigError(f"unknown normalisation {normalize!r}: choose one of {', '.join(NORMALIZATIONS)}")
        now = datetime.now(timezone.utc)
        with self._transaction(write=True) as conn:
            upsert = _upsert_stream(conn.dialect.name, stream, c_image, c_text, now)
            row = conn.execute(upsert).one()
            stats = _stats(row)
            decision = decide(stats)
            if not isinstance(decision, Decision):
                raise TypeError(f"decide() must return a Decision, got {type(decision).__name__}")
            recorded = Event(
                stream=stream,
                seq=row.n_events,
                query=query,
                c_image=c_image,
                c_text=c_text,
                w_image=float(decision.w_image),
                w_text=float(decision.w_text),
                prediction=str(decision.prediction),
                normalize=normalize,
                created_at=now,
            )
            values = asdict(recorded)
            del values["stream"]
            conn.execute(events.insert().values(stream_id=row.id, **values))
        return recorded

    def reset(self, name: str) -> int:
        """Delete a stream and its events; return how many events went."""
        with self._transaction(write=True) as conn:
            stream_id = self._stream_id(conn, name)
            removed = conn.execute(delete(events).where(events.c.stream_id == stream_id)).rowcount
            conn.execute(delete(streams).where(streams.c.id == stream_id))
        return removed

    # -- reading ----------------------------------------------------------

    def streams(self) -> list[StreamStats]:
        with self._transaction() as conn:
            rows = conn.execute(select(streams).order_by(streams.c.name)).all()
        return [_stats(row) for row in rows]

    def stream(self, name: str) -> StreamStats:
        with self._transaction() as conn:
            row = conn.execute(select(streams).where(streams.c.name == name)).one_or_none()
        if row is None:
            raise _unknown_stream(name)
        return _stats(row)

    def events(self, name: str, *, last: int | None = None) -> list[Event]:
        """The stream's events in order; with `last`, only the `last` most recent."""
        if last is not None and last < 0:
            raise BadInputError(f"last must be 0 or more, got {last}")
        with self._transaction() as conn:
            stream_id = self._stream_id(conn, name)
            query = select(events).where(events.c.stream_id == stream_id)
            if last is None:
                rows = conn.execute(query.order_by(events.c.seq)).all()
            else:
                rows = conn.execute(query.order_by(events.c.seq.desc()).limit(last)).all()[::-1]
        return [_event(name, row) for row in rows]

    # -- plumbing ---------------------------------------------------------

    @property
    def _masked(self) -> str:
        return mask_url_password(self.url)

    def _get_engine(self) -> Engine:
        if self._engine is None:
            try:
                self._engine = create_history_engine(self.url)
            except sa_exc.ArgumentError as exc:
                raise HistoryError(f"invalid database URL {self._masked}: {exc}") from None
            except ImportError as exc:
                raise HistoryError(
                    f"no driver for database {self._masked}: {exc}; install xmore-db[postgres] for PostgreSQL"
                ) from None
        return self._engine

    @contextmanager
    def _transaction(self, *, write: bool = False, create: bool = False) -> Iterator[Connection]:
        """A connection in a transaction, committed on success.

        Database errors become the `HistoryError` a user can act on; others
        (from `decide`, say) roll back and pass through unchanged. Only with
        `create` may a missing SQLite file be created.
        """
        if not create:
            self._refuse_missing_sqlite_file()
        engine = self._get_engine()
        try:
            conn = engine.connect()
        except sa_exc.DBAPIError as exc:
            raise self._unreachable(exc) from None
        try:
            if write:
                conn = conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn
        except sa_exc.DBAPIError as exc:
            raise self._translate(exc) from exc
        finally:
            conn.close()

    def _stream_id(self, conn: Connection, name: str) -> int:
        stream_id = conn.execute(select(streams.c.id).where(streams.c.name == name)).scalar()
        if stream_id is None:
            raise _unknown_stream(name)
        return stream_id

    def _sqlite_file(self) -> Path | None:
        """The SQLite database file; None for other databases and in-memory ones."""
        try:
            parsed = make_url(self.url)
        except sa_exc.ArgumentError as exc:
            raise HistoryError(f"invalid database URL {self._masked}: {exc}") from None
        database = parsed.database
        if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
            return None
        if database.startswith("file:"):
            return None
        return Path(database).expanduser()

    def _create_sqlite_directory(self) -> None:
        path = self._sqlite_file()
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseUnreachableError(
                f"cannot connect to database {self._masked}: "
                f"cannot create directory {path.parent}: {exc.strerror or exc}"
            ) from None

    def _refuse_missing_sqlite_file(self) -> None:
        """Fail as connecting would, but without leaving an empty database file behind."""
        path = self._sqlite_file()
        if path is None or path.exists():
            return
        if not path.parent.is_dir():
            raise DatabaseUnreachableError(
                f"cannot connect to database {self._masked}: directory {path.parent} does not exist (run `xmore init`)"
            )
        raise self._not_migrated()

    def _unreachable(self, exc: sa_exc.DBAPIError) -> DatabaseUnreachableError:
        return DatabaseUnreachableError(f"cannot connect to database {self._masked}: {_short_reason(exc)}")

    def _not_migrated(self) -> DatabaseNotMigratedError:
        return DatabaseNotMigratedError(f"database {self._masked} has no xmore schema: run `xmore init`")

    def _translate(self, exc: sa_exc.DBAPIError) -> HistoryError:
        orig = exc.orig
        sqlstate = getattr(orig, "sqlstate", None)
        if sqlstate == "42P01" or "no such table" in str(orig):
            return self._not_migrated()
        if exc.connection_invalidated or (sqlstate or "").startswith("08"):
            return self._unreachable(exc)
        return HistoryError(f"database {self._masked} failed: {_short_reason(exc)}")


def _upsert_stream(dialect: str, name: str, c_image: float, c_text: float | None, now: datetime):
    """INSERT the stream or bump its statistics, RETURNING the row after the change."""
    if dialect == "postgresql":
        insert, lowest, highest = pg_insert, func.least, func.greatest
    elif dialect == "sqlite":  # two-argument min()/max() are scalar functions there
        insert, lowest, highest = sqlite_insert, func.min, func.max
    else:
        raise HistoryError(f"unsupported database dialect {dialect!r}")
    s = streams.c
    image = literal(c_image, Double)
    statement = insert(streams).values(
        name=name,
        created_at=now,
        n_events=1,
        image_min=c_image,
        image_max=c_image,
        image_sum=c_image,
        text_count=0 if c_text is None else 1,
        text_min=c_text,
        text_max=c_text,
        text_sum=0.0 if c_text is None else c_text,
    )
    changes = {
        "n_events": s.n_events + 1,
        "image_min": lowest(s.image_min, image),
        "image_max": highest(s.image_max, image),
        "image_sum": s.image_sum + image,
    }
    if c_text is not None:
        text = literal(c_text, Double)
        changes |= {
            "text_count": s.text_count + 1,
            # NULL until the first caption; SQLite's min(NULL, x) would stay NULL.
            "text_min": lowest(func.coalesce(s.text_min, text), text),
            "text_max": highest(func.coalesce(s.text_max, text), text),
            "text_sum": s.text_sum + text,
        }
    return statement.on_conflict_do_update(index_elements=[s.name], set_=changes).returning(*streams.c)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _float(value: float | None) -> float | None:
    # SQLite's RETURNING can hand back a whole-valued REAL as an int.
    return None if value is None else float(value)


def _stats(row: Row) -> StreamStats:
    return StreamStats(
        name=row.name,
        n_events=row.n_events,
        image=ModalityStats(row.n_events, _float(row.image_min), _float(row.image_max), float(row.image_sum)),
        text=ModalityStats(row.text_count, _float(row.text_min), _float(row.text_max), float(row.text_sum)),
        created_at=_utc(row.created_at),
    )


def _event(stream: str, row: Row) -> Event:
    return Event(
        stream=stream,
        seq=row.seq,
        query=row.query,
        c_image=float(row.c_image),
        c_text=_float(row.c_text),
        w_image=float(row.w_image),
        w_text=float(row.w_text),
        prediction=row.prediction,
        normalize=row.normalize,
        created_at=_utc(row.created_at),
    )


def _unknown_stream(name: str) -> UnknownStreamError:
    return UnknownStreamError(f"no stream named {name!r} (xmore streams list shows the streams)")


def _check_stream_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise BadInputError(f"stream name must be a non-empty string, got {name!r}")


def _check_confidence(label: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{label} must be a confidence in [0, 1], got {value}")
    return value


def _short_reason(exc: sa_exc.DBAPIError) -> str:
    """The driver's message, first line, whitespace collapsed."""
    text = str(exc.orig) if exc.orig is not None else str(exc)
    lines = [line for line in text.splitlines() if line.strip()]
    return " ".join(lines[0].split()) if lines else type(exc.orig).__name__
