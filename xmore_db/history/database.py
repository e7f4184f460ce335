"""`Database`: the history database behind one URL, shared by the confidence
history and the ingest unit ledger.

It owns what both need and neither should reimplement: the lazily created
engine, transactions (BEGIN IMMEDIATE on SQLite for writers), translating driver
errors into the `HistoryError`s a user can act on, the schema revision check and
migrations, and the SQLite file (never created by a read).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url

from ..config import mask_url_password
from ..errors import DatabaseNotMigratedError, DatabaseUnreachableError, HistoryError, first_line
from .engine import WRITE_OPTION, alembic_config, create_history_engine, head_revision


class Database:
    """The history database behind one URL. Connects lazily; `close()` disposes of the engine."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None

    def __repr__(self) -> str:
        return f"Database({self.masked_url!r})"

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @property
    def masked_url(self) -> str:
        """The URL with its password masked: the only form that goes into messages."""
        return mask_url_password(self.url)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            try:
                self._engine = create_history_engine(self.url)
            except sa_exc.ArgumentError as exc:
                raise HistoryError(f"invalid database URL {self.masked_url}: {exc}") from None
            except ImportError as exc:
                raise HistoryError(
                    f"no driver for database {self.masked_url}: {exc}; install xmore-db[postgres] for PostgreSQL"
                ) from None
        return self._engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite database file; None for other databases and in-memory ones."""
        try:
            parsed = make_url(self.url)
        except sa_exc.ArgumentError as exc:
            raise HistoryError(f"invalid database URL {self.masked_url}: {exc}") from None
        database = parsed.database
        if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
            return None
        if database.startswith("file:"):
            return None
        return Path(database).expanduser()

    # -- schema -----------------------------------------------------------

    def migrate(self) -> str:
        """Bring the schema to the newest revision (creating it); return that revision."""
        self._create_sqlite_directory()
        cfg = alembic_config(self.url)
        with self.transaction(write=True, create=True) as conn:
            cfg.attributes["connection"] = conn
            try:
                command.upgrade(cfg, "head")
            except CommandError as exc:  # e.g. a revision from a newer xmore-db
                raise HistoryError(f"cannot migrate database {self.masked_url}: {exc}") from None
        return head_revision()

    def revision(self) -> str | None:
        """The schema revision the database is at; None if it was never migrated."""
        path = self.sqlite_file
        if path is not None and path.parent.is_dir() and not path.exists():
            return None
        with self.transaction() as conn:
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
                f"database {self.masked_url} is at schema revision {current}, which this "
                "version of xmore-db does not know: upgrade xmore-db"
            )
        raise DatabaseNotMigratedError(
            f"database {self.masked_url} is at schema revision {current}, behind {head}: run `xmore init`"
        )

    # -- transactions and errors --------------------------------------------

    @contextmanager
    def transaction(self, *, write: bool = False, create: bool = False) -> Iterator[Connection]:
        """A connection in a transaction, committed on success.

        Database errors become the `HistoryError` a user can act on; others
        (from a caller's callback, say) roll back and pass through unchanged.
        `write` takes the write lock first on SQLite. Only with `create` may a
        missing SQLite file be created.
        """
        if not create:
            self._refuse_missing_sqlite_file()
        conn = self.connect()
        try:
            if write:
                conn = conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn
        except sa_exc.DBAPIError as exc:
            raise self.translate(exc) from exc
        finally:
            conn.close()

    def connect(self) -> Connection:
        """A bare connection, not in a transaction: the caller begins, commits and closes it."""
        try:
            return self.engine.connect()
        except sa_exc.DBAPIError as exc:
            raise self._unreachable(exc) from None

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Translate database errors raised in the block, for work on a connection from `connect()`."""
        try:
            yield
        except sa_exc.DBAPIError as exc:
            raise self.translate(exc) from exc

    def translate(self, exc: sa_exc.DBAPIError) -> HistoryError:
        """The `HistoryError` a user can act on, for a driver error."""
        orig = exc.orig
        sqlstate = getattr(orig, "sqlstate", None)
        if sqlstate == "42P01" or "no such table" in str(orig):
            return self._not_migrated()
        if exc.connection_invalidated or (sqlstate or "").startswith("08"):
            return self._unreachable(exc)
        return HistoryError(f"database {self.masked_url} failed: {_short_reason(exc)}")

    # -- plumbing ---------------------------------------------------------

    def _create_sqlite_directory(self) -> None:
        path = self.sqlite_file
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseUnreachableError(
                f"cannot connect to database {self.masked_url}: "
                f"cannot create directory {path.parent}: {exc.strerror or exc}"
            ) from None

    def _refuse_missing_sqlite_file(self) -> None:
        """Fail as connecting would, but without leaving an empty database file behind."""
        path = self.sqlite_file
        if path is None or path.exists():
            return
        if not path.parent.is_dir():
            raise DatabaseUnreachableError(
                f"cannot connect to database {self.masked_url}: directory {path.parent} does not exist "
                "(run `xmore init`)"
            )
        raise self._not_migrated()

    def _unreachable(self, exc: sa_exc.DBAPIError) -> DatabaseUnreachableError:
        return DatabaseUnreachableError(f"cannot connect to database {self.masked_url}: {_short_reason(exc)}")

    def _not_migrated(self) -> DatabaseNotMigratedError:
        return DatabaseNotMigratedError(f"database {self.masked_url} has no xmore schema: run `xmore init`")


def _short_reason(exc: sa_exc.DBAPIError) -> str:
    """The driver's message (not SQLAlchemy's wrapping of it), one line."""
    cause = exc.orig if exc.orig is not None else exc
    return first_line(cause) or type(cause).__name__
