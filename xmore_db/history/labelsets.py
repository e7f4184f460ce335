"""`LabelSets`: named lists of class names, one namespace per team, in the history database.

`xmore serve` keeps them so that a classify request can name its labels
(`label_set`) instead of sending them. Team T's set `flowers` is not team U's;
the open team (None, a service started with --open) is stored as team ''.
The labels follow the rules of `labels.check_labels`: at least two, none empty
or repeated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Row

from ..errors import BadInputError, LabelsError
from ..labels import check_labels
from .database import Database
from .schema import label_sets
from .store import _utc

# URL-safe, so that /v1/labelsets/NAME needs no escaping; starting with a letter or digit (no `.` or `..`).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")
NAME_RULE = "1 to 100 of A-Z a-z 0-9 _ . -, starting with a letter or digit"
MAX_LABELS = 10_000
OPEN_TEAM_STORED = ""


@dataclass(frozen=True)
class LabelSet:
    name: str
    team: str | None  # None: the open team
    labels: list[str]
    created_at: datetime
    updated_at: datetime


def check_label_set_name(name: object) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise BadInputError(f"label set name {name!r} must be {NAME_RULE}")
    return name


class LabelSets:
    """The label sets in one `Database` (or behind one URL). Connects lazily."""

    def __init__(self, database: Database | str) -> None:
        self.database = database if isinstance(database, Database) else Database(database)

    def sets(self, team: str | None) -> list[LabelSet]:
        """The team's label sets, by name."""
        c = label_sets.c
        with self.database.transaction() as conn:
            rows = conn.execute(select(label_sets).where(c.team == _stored(team)).order_by(c.name)).all()
        return [_record(row) for row in rows]

    def get(self, team: str | None, name: str) -> LabelSet | None:
        """The team's set named `name`; None if it has none of that name."""
        c = label_sets.c
        with self.database.transaction() as conn:
            row = conn.execute(select(label_sets).where(c.team == _stored(team), c.name == name)).one_or_none()
        return None if row is None else _record(row)

    def put(self, team: str | None, name: str, labels: Sequence[str]) -> tuple[LabelSet, bool]:
        """Create or replace the team's set `name`: (the set, whether it was created). BadInputError for a bad
        name or bad labels, nothing written."""
        check_label_set_name(name)
        names = check_labels(labels)
        if len(names) > MAX_LABELS:
            raise LabelsError(f"a label set holds at most {MAX_LABELS:,} labels, got {len(names):,}")
        c = label_sets.c
        now = datetime.now(timezone.utc)
        insert = pg_insert if self.database.dialect == "postgresql" else sqlite_insert
        with self.database.transaction(write=True) as conn:
            existed = conn.execute(select(c.id).where(c.team == _stored(team), c.name == name)).first() is not None
            statement = insert(label_sets).values(team=_stored(team), name=name, labels=names, created_at=now,
                                                  updated_at=now)
            conn.execute(statement.on_conflict_do_update(index_elements=["team", "name"],
                                                         set_={"labels": names, "updated_at": now}))
            row = conn.execute(select(label_sets).where(c.team == _stored(team), c.name == name)).one()
        return _record(row), not existed

    def delete(self, team: str | None, name: str) -> bool:
        """Delete the team's set `name`; True if there was one."""
        c = label_sets.c
        with self.database.transaction(write=True) as conn:
            return conn.execute(delete(label_sets).where(c.team == _stored(team), c.name == name)).rowcount > 0


def _stored(team: str | None) -> str:
    return OPEN_TEAM_STORED if team is None else team


def _record(row: Row) -> LabelSet:
    return LabelSet(name=row.name, team=None if row.team == OPEN_TEAM_STORED else row.team,
                    labels=list(row.labels), created_at=_utc(row.created_at), updated_at=_utc(row.updated_at))
