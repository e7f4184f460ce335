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
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone

from sqlalchemy import Double, delete, func, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Row

from ..config import NORMALIZATIONS, check_stream_name
from ..errors import BadInputError, ConfigError, HistoryError, StreamMethodError, UnknownStreamError
from .database import Database
from .records import Decision, Event, ModalityStats, StreamStats
from .schema import events, streams


class ConfidenceHistory:
    """The confidence history in one `Database` (or behind one URL). Connects lazily."""

    def __init__(self, database: Database | str) -> None:
        self.database = database if isinstance(database, Database) else Database(database)

    def __repr__(self) -> str:
        return f"ConfidenceHistory({self.database.masked_url!r})"

    def __enter__(self) -> ConfidenceHistory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return self.database.url

    # The database's own calls, for the many callers that hold only the history.

    def close(self) -> None:
        self.database.close()

    def migrate(self) -> str:
        """Bring the schema to the newest revision (creating it); return that revision."""
        return self.database.migrate()

    def revision(self) -> str | None:
        """The schema revision the database is at; None if it was never migrated."""
        return self.database.revision()

    def check(self) -> None:
        """Raise unless the database answers and its schema is at the newest revision."""
        self.database.check()

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
        method: str = "xmore",
        key_id: int | None = None,
    ) -> Event:
        """Add one query to `stream` (created on first use) in one transaction.

        `decide` receives the stream's statistics with this query already
        counted and returns the weights and prediction to store. If it raises,
        nothing is recorded. A stream holds one `method`: a query of another is
        refused (StreamMethodError), and nothing is recorded. `key_id` is the API
        key the query came with (`xmore serve`), None for any other writer.
        """
        check_stream_name(stream)  # one rule on every backend (config.py)
        c_image = _check_confidence("c_image", c_image)
        c_text = None if c_text is None else _check_confidence("c_text", c_text)
        if normalize not in NORMALIZATIONS:
            raise ConfigError(f"unknown normalisation {normalize!r}: choose one of {', '.join(NORMALIZATIONS)}")
        now = datetime.now(timezone.utc)
        with self.database.transaction(write=True) as conn:
            upsert = _upsert_stream(conn.dialect.name, stream, c_image, c_text, now, method)
            row = conn.execute(upsert).one()
            if row.method != method:  # raising rolls the statistics' update back
                raise StreamMethodError(
                    f"stream {stream!r} holds {row.method} results; its confidence statistics would mean nothing "
                    f"for {method}: use another stream name (or `xmore streams reset {stream}`)")
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
                method=method,
                key_id=key_id,
            )
            values = asdict(recorded)
            del values["stream"]
            conn.execute(events.insert().values(stream_id=row.id, **values))
        return recorded

    def reset(self, name: str) -> int:
        """Delete a stream and its events; return how many events went."""
        with self.database.transaction(write=True) as conn:
            stream_id = self._stream_id(conn, name)
            removed = conn.execute(delete(events).where(events.c.stream_id == stream_id)).rowcount
            conn.execute(delete(streams).where(streams.c.id == stream_id))
        return removed

    # -- reading ----------------------------------------------------------

    def streams(self) -> list[StreamStats]:
        with self.database.transaction() as conn:
            rows = conn.execute(select(streams).order_by(streams.c.name)).all()
        return [_stats(row) for row in rows]

    def stream(self, name: str) -> StreamStats:
        with self.database.transaction() as conn:
            row = conn.execute(select(streams).where(streams.c.name == name)).one_or_none()
        if row is None:
            raise _unknown_stream(name)
        return _stats(row)

    def events(self, name: str, *, last: int | None = None) -> list[Event]:
        """The stream's events in order; with `last`, only the `last` most recent."""
        if last is not None and last < 0:
            raise BadInputError(f"last must be 0 or more, got {last}")
        with self.database.transaction() as conn:
            stream_id = self._stream_id(conn, name)
            query = select(events).where(events.c.stream_id == stream_id)
            if last is None:
                rows = conn.execute(query.order_by(events.c.seq)).all()
            else:
                rows = conn.execute(query.order_by(events.c.seq.desc()).limit(last)).all()[::-1]
        return [_event(name, row) for row in rows]

    # -- plumbing ---------------------------------------------------------

    def _stream_id(self, conn: Connection, name: str) -> int:
        stream_id = conn.execute(select(streams.c.id).where(streams.c.name == name)).scalar()
        if stream_id is None:
            raise _unknown_stream(name)
        return stream_id


def _upsert_stream(dialect: str, name: str, c_image: float, c_text: float | None, now: datetime, method: str):
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
        method=method,
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
        method=row.method,
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
        method=row.method,
        key_id=row.key_id,
    )


def _unknown_stream(name: str) -> UnknownStreamError:
    return UnknownStreamError(f"no stream named {name!r} (xmore streams list shows the streams)")


def _check_confidence(label: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{label} must be a confidence in [0, 1], got {value}")
    return value

