"""Database fixtures for the confidence-history tests.

`tests/conftest.py` imports them with `from tests.fixtures_db import *`.
PostgreSQL comes from XMORE_TEST_POSTGRES_URL (default: the local server with
trust auth); each test gets a database of its own, dropped afterwards. Tests
that need it skip, saying why, when no server answers.
"""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from xmore_db.config import mask_url_password

__all__ = ["postgres_server_url", "postgres_url", "sqlite_url", "history_url", "history"]

POSTGRES_URL_ENV = "XMORE_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _admin_engine(url: str):
    return create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool, connect_args={"connect_timeout": 5})


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """A reachable PostgreSQL server's URL (a database we may CREATE DATABASE from)."""
    url = os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL
    engine = _admin_engine(url)
    try:
        with engine.connect():
            pass
    except sa_exc.DBAPIError as exc:
        reason = " ".join(str(exc.orig).split("\n")[0].split())
        pytest.skip(
            f"PostgreSQL not reachable at {mask_url_password(url)} ({reason}); "
            f"set {POSTGRES_URL_ENV} to run the PostgreSQL tests"
        )
    finally:
        engine.dispose()
    return url


@pytest.fixture
def postgres_url(postgres_server_url: str):
    """The URL of a fresh, empty PostgreSQL database, dropped after the test."""
    name = f"xmore_t_{uuid.uuid4().hex}"
    engine = _admin_engine(postgres_server_url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """The URL of a not-yet-created SQLite database file in the test's tmp_path."""
    return f"sqlite:///{tmp_path / 'history.sqlite3'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def history_url(request) -> str:
    """An empty database: SQLite, then PostgreSQL (skipped when unreachable)."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def history(history_url):
    """A migrated ConfidenceHistory over `history_url`, closed afterwards."""
    from xmore_db.history import ConfidenceHistory

    history = ConfidenceHistory(history_url)
    history.migrate()
    yield history
    history.close()
