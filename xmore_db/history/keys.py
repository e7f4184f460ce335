"""`KeyStore`: the API keys of `xmore serve`, in the history database.

A key belongs to a team and has a role (`ROLES`, lowest rank first). Only the
sha256 of a key is stored: the key itself exists once, in what `create()`
returns, and whoever holds the database cannot use what they read there.
A fast hash is the right one here: a key is 32 random bytes (256 bits) from
`secrets.token_urlsafe`, so no amount of guessing per second finds one from
its hash; slow password hashes (bcrypt, argon2) protect guessable human
passwords, and would cost every request their deliberate tens of milliseconds.
Being deterministic, the hash also finds its row through a unique index.

Keys are revoked, never deleted: the events a key wrote keep naming it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import func, select, update
from sqlalchemy.engine import Row

from ..errors import BadInputError, UnknownKeyError
from .database import Database
from .schema import api_keys
from .store import _utc

ROLES = ("query", "ingest", "admin")  # ranked: each may do what the ones before it may
TEAM_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
TEAM_RULE = "1 to 64 of A-Z a-z 0-9 _ . -"
KEY_PREFIX = "xmk_"  # makes a leaked key recognisable (secret scanners, logs)
KEY_BYTES = 32
SHOWN_CHARS = 8  # the key's first characters kept in `prefix`, to tell keys apart in listings
MAX_NOTE_CHARS = 200


@dataclass(frozen=True)
class ApiKey:
    """One key as stored: never the key itself nor its hash."""

    key_id: int
    team: str
    role: str
    prefix: str
    note: str | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class CreatedKey:
    """A new key and its record: `api_key` is the only copy there will ever be."""

    api_key: str
    record: ApiKey


def hash_key(key: str) -> str:
    """The stored form of a key: its sha256, hex (see the module docstring for why a fast hash)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_team(team: object) -> str:
    if not isinstance(team, str) or not TEAM_NAME.fullmatch(team):
        raise BadInputError(f"team {team!r} must be {TEAM_RULE}")
    return team


def check_role(role: object) -> str:
    if role not in ROLES:
        raise BadInputError(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role


def _check_note(note: str | None) -> str | None:
    if note is None:
        return None
    if not note.strip() or not note.isprintable() or len(note) > MAX_NOTE_CHARS:
        raise BadInputError(f"a key's note must be one printable line of 1 to {MAX_NOTE_CHARS} characters")
    return note


class KeyStore:
    """The API keys in one `Database` (or behind one URL). Connects lazily."""

    def __init__(self, database: Database | str) -> None:
        self.database = database if isinstance(database, Database) else Database(database)

    def __repr__(self) -> str:
        return f"KeyStore({self.database.masked_url!r})"

    def create(self, team: str, role: str, *, note: str | None = None) -> CreatedKey:
        """A new key for `team` with `role`; BadInputError for a bad team, role or note, nothing written."""
        check_team(team)
        check_role(role)
        _check_note(note)
        key = KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)
        now = datetime.now(timezone.utc)
        with self.database.transaction(write=True) as conn:
            key_id = conn.execute(
                api_keys.insert()
                .values(team=team, role=role, key_hash=hash_key(key), prefix=key[:SHOWN_CHARS], note=note,
                        created_at=now)
                .returning(api_keys.c.id)
            ).scalar_one()
        record = ApiKey(key_id=key_id, team=team, role=role, prefix=key[:SHOWN_CHARS], note=note, created_at=now,
                        revoked_at=None)
        return CreatedKey(api_key=key, record=record)

    def keys(self, *, include_revoked: bool = False) -> list[ApiKey]:
        """The keys in creation order; revoked ones only with `include_revoked`."""
        query = select(api_keys).order_by(api_keys.c.id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with self.database.transaction() as conn:
            rows = conn.execute(query).all()
        return [_record(row) for row in rows]

    def get(self, key_id: int) -> ApiKey:
        with self.database.transaction() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).one_or_none()
        if row is None:
            raise _unknown(key_id)
        return _record(row)

    def find(self, key: str) -> ApiKey | None:
        """The record of the key presented, revoked or not; None for a key never made here."""
        with self.database.transaction() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_hash == hash_key(key))).one_or_none()
        return None if row is None else _record(row)

    def active_count(self) -> int:
        """How many keys are not revoked."""
        with self.database.transaction() as conn:
            return conn.execute(select(func.count()).select_from(api_keys)
                                .where(api_keys.c.revoked_at.is_(None))).scalar_one()

    def revoke(self, key_id: int) -> tuple[ApiKey, bool]:
        """Revoke a key; returns its record and whether this call revoked it (False: it already was).

        UnknownKeyError for an id never made here.
        """
        now = datetime.now(timezone.utc)
        with self.database.transaction(write=True) as conn:
            changed = conn.execute(
                update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            ).rowcount
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).one_or_none()
        if row is None:
            raise _unknown(key_id)
        return _record(row), changed == 1


def _unknown(key_id: int) -> UnknownKeyError:
    return UnknownKeyError(f"no API key with id {key_id} (xmore keys list --all shows every key)")


def _record(row: Row) -> ApiKey:
    return ApiKey(
        key_id=row.id,
        team=row.team,
        role=row.role,
        prefix=row.prefix,
        note=row.note,
        created_at=_utc(row.created_at),
        revoked_at=None if row.revoked_at is None else _utc(row.revoked_at),
    )
