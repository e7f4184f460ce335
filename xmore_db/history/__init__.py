"""The confidence history: per-stream running statistics for X-MoRe's adjustment.

`schema` holds the tables (created only by the Alembic revisions in the
top-level `migrations/`), `engine` connects and finds those migrations,
`database` the `Database` object (transactions, error translation, schema
check) that the `ConfidenceHistory` (`store`) and the ingest `UnitLedger`
(`units`) share, `records` the frozen dataclasses, `keys` the API keys of
`xmore serve` (hashed), `owners` the team that ingested each corpus over HTTP,
`labelsets` the teams' named label sets.
"""

from __future__ import annotations

from .database import Database
from .engine import MIGRATIONS_DIR, alembic_config, create_history_engine, head_revision
from .records import Decision, Event, ModalityStats, StreamStats
from .store import ConfidenceHistory

__all__ = [
    "MIGRATIONS_DIR",
    "ConfidenceHistory",
    "Database",
    "Decision",
    "Event",
    "ModalityStats",
    "StreamStats",
    "alembic_config",
    "create_history_engine",
    "head_revision",
]
