"""API keys, teams, roles, and the stream namespace rule.

Keys live in the history database (`xmore_db.history.keys`, where only a hash
of each is stored); `xmore keys create --team T --role R` makes one and prints
it once. A request carries `Authorization: Bearer KEY`; the key names its team
and its role, and the key's id is recorded on every event the request writes.

Roles, lowest rank first (`ROLES`); each may do what the ones before it may:
- query: classify, retrieve, search, status, and its team's streams (read);
- ingest: also ingest and its team's corpora;
- admin: everything: resetting streams, and the keys of every team (so an admin
  key belongs with whoever runs the service).

`Keys.open()` is a service started with `--open`: one open team, no key asked
for, every caller an admin, stream names stored as given (the CLI's streams).

Namespace rule: with keys, team T's stream NAME is stored as `T/NAME`. Team names
are 1 to 64 of `A-Z a-z 0-9 _ . -` (no `/`), so the first `/` of a stored name
ends the team; a team lists, reads, writes and resets only names under its own
prefix. The stored name must still pass `config.check_stream_name` (printable,
no space at either end, at most 200 characters including the prefix).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ..config import check_stream_name
from ..history.keys import ROLES, TEAM_NAME, KeyStore
from .errors import ApiError

__all__ = ["OPEN_TEAM", "ROLES", "TEAM_NAME", "Caller", "Keys", "Who", "caller"]

OPEN_TEAM = None  # the team of a service started with --open
MISSING_KEY = "a valid API key is needed: send `Authorization: Bearer KEY`"


def _with_article(role: str) -> str:
    return f"an {role}" if role[0] in "aeiou" else f"a {role}"


@dataclass(frozen=True)
class Caller:
    """Who sent a request: a team (None: the open team), a role, and the key's id (None: no key)."""

    team: str | None
    role: str
    key_id: int | None

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    def require(self, role: str) -> None:
        """ApiError 403 unless this caller's role ranks at least `role`."""
        if ROLES.index(self.role) < ROLES.index(role):
            raise ApiError(403, f"this request needs {_with_article(role)} key; the key sent is "
                                f"{_with_article(self.role)} key")

    def stored(self, name: str) -> str:
        """The stored stream name for the name this caller uses; StreamNameError if either breaks the rules."""
        check_stream_name(name)
        return name if self.team is None else check_stream_name(f"{self.team}/{name}")

    def owns(self, stored: str) -> bool:
        return self.team is None or stored.startswith(f"{self.team}/")

    def shown(self, stored: str) -> str:
        """The name this caller uses for a stored name it owns."""
        return stored if self.team is None else stored[len(self.team) + 1:]


class Keys:
    """The keys a service accepts: those in a `KeyStore`, or none at all (`open()`)."""

    def __init__(self, store: KeyStore | None):
        self.store = store

    @classmethod
    def open(cls) -> Keys:
        return cls(None)

    @property
    def required(self) -> bool:
        return self.store is not None

    def caller(self, key: str | None) -> Caller:
        """The caller a bearer key belongs to; ApiError 401 for a missing, unknown or revoked key."""
        if self.store is None:
            return Caller(team=OPEN_TEAM, role="admin", key_id=None)
        if not key:
            raise ApiError(401, MISSING_KEY)
        record = self.store.find(key)
        if record is None:
            raise ApiError(401, "unknown API key")
        if record.revoked:
            raise ApiError(401, "revoked API key")
        if record.role not in ROLES:  # a row written by hand, or by a newer xmore-db
            raise ApiError(401, f"API key {record.prefix}… has role {record.role!r}, which this service does "
                                f"not know ({', '.join(ROLES)})")
        return Caller(team=record.team, role=record.role, key_id=record.key_id)


def caller(request: Request) -> Caller:
    """The caller a request's `Authorization: Bearer KEY` names (the app's `state.keys` decides); 401 otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    return request.app.state.keys.caller(key.strip() if scheme.lower() == "bearer" else None)


Who = Annotated[Caller, Depends(caller)]
