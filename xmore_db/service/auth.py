"""API keys, teams, and the stream namespace rule.

A keys file maps each key to its team and whether it is an admin:

    {"KEY": {"team": "vision", "admin": false}, ...}        (JSON)
    [KEY]                                                   (TOML: one table per key)
    team = "vision"
    admin = false

A request carries `Authorization: Bearer KEY`. Without a keys file the service
has one open team: no key is asked for, every caller may reset, and stream
names are stored as given (the same streams as the CLI's).

Namespace rule: with keys, team T's stream NAME is stored as `T/NAME`. Team names
are 1 to 64 of `A-Z a-z 0-9 _ . -` (no `/`), so the first `/` of a stored name
ends the team; a team lists, reads, writes and resets only names under its own
prefix. The stored name must still pass `config.check_stream_name` (printable,
no space at either end, at most 200 characters including the prefix).
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..config import check_stream_name
from ..errors import ConfigError

TEAM_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
OPEN_TEAM = None  # the team of a service started without keys


@dataclass(frozen=True)
class Caller:
    """Who sent a request: a team (None without keys: the open team) and whether it may administer."""

    team: str | None
    admin: bool

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
    """The keys a service accepts; `open()` is the single open team."""

    def __init__(self, entries: dict[str, Caller] | None):
        self._entries = entries

    @classmethod
    def open(cls) -> Keys:
        return cls(None)

    @property
    def required(self) -> bool:
        return self._entries is not None

    def caller(self, key: str | None) -> Caller | None:
        """The caller a key belongs to, or None for a missing or unknown key (compared in constant time)."""
        if self._entries is None:
            return Caller(team=OPEN_TEAM, admin=True)
        if not key:
            return None
        found = None
        for known, caller in self._entries.items():
            if hmac.compare_digest(known.encode(), key.encode()):
                found = caller
        return found

    @classmethod
    def from_file(cls, path: str | Path) -> Keys:
        """Read a JSON or TOML keys file (by suffix; `.toml` is TOML, anything else JSON); ConfigError, one line."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read keys file {path}: {exc.strerror or exc}") from None
        try:
            if path.suffix.lower() == ".toml":
                try:
                    import tomllib
                except ImportError:  # pragma: no cover - Python 3.10
                    import tomli as tomllib
                raw = tomllib.loads(text)
            else:
                raw = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"keys file {path} is not valid {path.suffix.lstrip('.').upper() or 'JSON'}: "
                              f"{' '.join(str(exc).split())}") from None
        if not isinstance(raw, dict) or not raw:
            raise ConfigError(f"keys file {path} must map each key to {{team, admin}}, and hold at least one key")
        entries: dict[str, Caller] = {}
        for number, (key, entry) in enumerate(raw.items(), 1):
            where = f"keys file {path}, key #{number}"  # never the key itself in a message
            if len(key) < 16:
                raise ConfigError(f"{where}: a key needs at least 16 characters")
            if not isinstance(entry, dict) or not isinstance(entry.get("team"), str):
                raise ConfigError(f"{where}: needs a table with a string `team`")
            if not TEAM_NAME.fullmatch(entry["team"]):
                raise ConfigError(f"{where}: team {entry['team']!r} must be 1 to 64 of A-Z a-z 0-9 _ . -")
            admin = entry.get("admin", False)
            if not isinstance(admin, bool):
                raise ConfigError(f"{where}: `admin` must be true or false")
            unknown = set(entry) - {"team", "admin"}
            if unknown:
                raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
            entries[key] = Caller(team=entry["team"], admin=admin)
        return cls(entries)
