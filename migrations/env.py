"""Alembic environment for the confidence-history database.

Two ways in:
- `ConfidenceHistory.migrate()` passes its own open connection in
  `config.attributes["connection"]`, so the SQLite settings (busy timeout,
  foreign keys, explicit BEGIN) and the error mapping are the store's own;
- the `alembic` command line (developers; see alembic.ini) takes the URL from
  `sqlalchemy.url`, else XMORE_DATABASE_URL, else the default under XMORE_HOME.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from xmore_db.history.schema import metadata

config = context.config
target_metadata = metadata

if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from xmore_db.config import Settings

    return Settings.from_env().effective_database_url


def _configure(**kwargs: object) -> None:
    context.configure(target_metadata=target_metadata, compare_type=True, **kwargs)


def run_migrations_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from xmore_db.history.engine import create_history_engine

    engine = create_history_engine(_url())
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
