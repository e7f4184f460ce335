"""Connecting to the history database and finding its Alembic migrations."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url

import xmore_db

from ..config import mask_url_password
from ..errors import HistoryError


def _migrations_dir() -> Path:
    """The Alembic scripts: inside the package in an installed wheel (setup.py maps the checkout's
    top-level `migrations/` to `xmore_db/migrations` at build time), at the top level in a checkout."""
    package = Path(xmore_db.__file__).resolve().parent
    installed = package / "migrations"
    return installed if (installed / "env.py").is_file() else package.parent / "migrations"


MIGRATIONS_DIR = _migrations_dir()
SUPPORTED_BACKENDS = ("sqlite", "postgresql")
SQLITE_BUSY_TIMEOUT_S = 30
POSTGRES_CONNECT_TIMEOUT_S = 10
# Execution option that makes a SQLite transaction BEGIN IMMEDIATE (take the write lock first).
WRITE_OPTION = "xmore_write"


def create_history_engine(url: str | URL) -> Engine:
    """An engine set up for concurrent writers: a busy timeout and explicit BEGINs
    on SQLite (with foreign keys on), a connect timeout on PostgreSQL."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise HistoryError(
            f"unsupported database {mask_url_password(str(url))}: use a sqlite:/// or postgresql+psycopg:// URL"
        )
    if backend == "sqlite":
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record) -> None:
            # SQLAlchemy emits BEGIN itself (below), so sqlite3 must not.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get(WRITE_OPTION, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    connect_args: dict[str, object] = {}
    if parsed.get_driver_name() in ("psycopg", "psycopg2") and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
    return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)


def alembic_config(url: str) -> Config:
    """The Alembic configuration of the history schema, for `url`."""
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise HistoryError(
            f"the schema migrations are missing ({MIGRATIONS_DIR}): reinstall xmore-db from its source tree"
        )
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None, "the migrations have no head revision"
    return head
