"""`CorpusOwners`: the team that ingested each corpus over HTTP, in the history database.

`xmore serve` records the caller's team when an HTTP ingest creates a corpus.
The CLI and the Python API, the admin tools, record nothing: a corpus without
a row belongs to the open team (team None), as does one that a service started
with --open ingested. Over HTTP, ingesting into a corpus or deleting it needs
its team's `ingest` key or an `admin` key (`xmore_db.service.corpora`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Row

from .database import Database
from .schema import corpus_owners
from .store import _utc


@dataclass(frozen=True)
class CorpusOwner:
    corpus: str
    team: str | None  # None: the open team
    created_at: datetime


def team_label(team: str | None) -> str:
    """A team as messages name it."""
    return "the open team (the CLI and services started with --open)" if team is None else f"team {team!r}"


class CorpusOwners:
    """The corpus owners in one `Database` (or behind one URL). Connects lazily."""

    def __init__(self, database: Database | str) -> None:
        self.database = database if isinstance(database, Database) else Database(database)

    def owner(self, corpus: str) -> CorpusOwner | None:
        """The corpus' row; None when it has none (then it belongs to the open team, if it exists at all)."""
        with self.database.transaction() as conn:
            row = conn.execute(select(corpus_owners).where(corpus_owners.c.corpus == corpus)).one_or_none()
        return None if row is None else _record(row)

    def teams(self) -> dict[str, str | None]:
        """corpus -> team, for every corpus that has a row."""
        with self.database.transaction() as conn:
            return {row.corpus: row.team for row in conn.execute(select(corpus_owners.c.corpus,
                                                                        corpus_owners.c.team))}

    def claim(self, corpus: str, team: str | None) -> tuple[CorpusOwner, bool]:
        """Record `team` as the corpus' owner unless it has one: (the owner now on record, whether this call
        recorded it). Of two callers racing for a new corpus, exactly one records it."""
        insert = pg_insert if self.database.dialect == "postgresql" else sqlite_insert
        with self.database.transaction(write=True) as conn:
            created = conn.execute(insert(corpus_owners)
                                   .values(corpus=corpus, team=team, created_at=datetime.now(timezone.utc))
                                   .on_conflict_do_nothing(index_elements=["corpus"])
                                   .returning(corpus_owners.c.corpus)).first() is not None
            row = conn.execute(select(corpus_owners).where(corpus_owners.c.corpus == corpus)).one()
        return _record(row), created

    def forget(self, corpus: str) -> bool:
        """Remove the corpus' row (the corpus was deleted, or never got a unit); True if there was one."""
        with self.database.transaction(write=True) as conn:
            return conn.execute(delete(corpus_owners).where(corpus_owners.c.corpus == corpus)).rowcount > 0


def _record(row: Row) -> CorpusOwner:
    return CorpusOwner(corpus=row.corpus, team=row.team, created_at=_utc(row.created_at))
