"""API keys: the key store in the history database, and `xmore keys` on the command line."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import select

from tests.cli import fails, ok, xmore
from xmore_db.errors import BadInputError, DatabaseNotMigratedError, UnknownKeyError
from xmore_db.history import ConfidenceHistory, Decision
from xmore_db.history.keys import ROLES, KeyStore
from xmore_db.history.schema import api_keys


@pytest.fixture
def store(history):
    return KeyStore(history.database)


def _rows(store: KeyStore) -> list[dict]:
    with store.database.transaction() as conn:
        return [dict(row._mapping) for row in conn.execute(select(api_keys).order_by(api_keys.c.id))]


def test_a_key_is_stored_only_as_its_hash(store):
    created = store.create("vision", "query", note="the labelling bot")
    key = created.api_key
    assert key.startswith("xmk_") and len(key) >= 4 + 43  # 32 random bytes, URL-safe base64
    assert created.record.prefix == key[:8] and created.record.role == "query" and not created.record.revoked
    [row] = _rows(store)
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert key not in json.dumps(row, default=str)  # the key itself is nowhere in the database
    assert store.find(key) == created.record
    assert store.find(key + "x") is None and store.find("xmk_" + "A" * 43) is None
    assert store.create("vision", "query").api_key != key


def test_revoking_keeps_the_record_and_says_when_it_was_already_done(store):
    first = store.create("vision", "admin").record
    second = store.create("audio", "ingest").record
    record, revoked_now = store.revoke(first.key_id)
    assert revoked_now and record.revoked and record.key_id == first.key_id
    again, revoked_now = store.revoke(first.key_id)
    assert not revoked_now and again.revoked_at == record.revoked_at
    assert store.keys() == [second]
    assert [k.key_id for k in store.keys(include_revoked=True)] == [first.key_id, second.key_id]
    assert store.active_count() == 1
    with pytest.raises(UnknownKeyError, match=r"^no API key with id 99 \(xmore keys list --all shows every key\)$"):
        store.revoke(99)
    with pytest.raises(UnknownKeyError):
        store.get(99)


@pytest.mark.parametrize("team, role, note, message", [
    ("a/b", "query", None, "team 'a/b' must be 1 to 64 of A-Z a-z 0-9 _ . -"),
    ("", "query", None, "team '' must be"),
    ("t" * 65, "query", None, "must be 1 to 64"),
    ("vision", "owner", None, "role 'owner' is not one of query, ingest, admin"),
    ("vision", "query", "two\nlines", "note must be one printable line"),
])
def test_bad_teams_roles_and_notes_write_nothing(store, team, role, note, message):
    with pytest.raises(BadInputError, match=message.replace("(", r"\(").replace(".", r"\.")):
        store.create(team, role, note=note)
    assert _rows(store) == []


def test_events_record_the_key_that_wrote_them(history, store):
    key_id = store.create("vision", "query").record.key_id

    def decide(_stats):
        return Decision(1.0, 0.0, "cat")

    history.record("s", c_image=0.5, c_text=None, normalize="minmax", query="a.png", decide=decide, key_id=key_id)
    history.record("s", c_image=0.6, c_text=None, normalize="minmax", query="b.png", decide=decide)
    assert [e.key_id for e in history.events("s")] == [key_id, None]
    store.revoke(key_id)  # a revoked key's events still name it
    assert history.events("s")[0].key_id == key_id


def test_roles_are_ranked_lowest_first():
    assert ROLES == ("query", "ingest", "admin")


# -- xmore keys ------------------------------------------------------------------------------------------------

@pytest.fixture
def cli_db(tmp_path, monkeypatch):
    """A migrated SQLite history for the CLI (XMORE_DATABASE_URL), and its key store."""
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    for name in ("XMORE_QDRANT_URL", "XMORE_QDRANT_API_KEY", "XMORE_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XMORE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XMORE_DATABASE_URL", url)
    ConfidenceHistory(url).migrate()
    store = KeyStore(url)
    yield store
    store.database.close()


def test_create_prints_the_key_once_on_stdout(cli_db):
    result = ok("keys", "create", "--team", "vision", "--role", "admin", "--note", "ops")
    key = result.stdout.strip()
    assert key.startswith("xmk_") and result.stdout == key + "\n"
    assert result.stderr.strip() == (f"Created key 1 (team vision, admin, {key[:8]}…). "
                                     "The key is shown only this once: only its hash is stored.")
    assert cli_db.find(key).team == "vision"

    created = json.loads(ok("keys", "create", "--team", "audio", "--role", "query", "--json").stdout)
    assert set(created) == {"api_key", "key_id", "team", "role", "prefix", "note", "created_at", "revoked_at"}
    assert cli_db.find(created["api_key"]).key_id == created["key_id"] == 2


def test_list_shows_no_key_and_no_hash(cli_db):
    assert xmore("keys", "list").stderr.strip() == (
        "No keys yet: `xmore keys create --team T --role admin` makes the first.")
    assert json.loads(ok("keys", "list", "--json").stdout) == []
    keys = [cli_db.create("vision", "query", note="bot").api_key, cli_db.create("audio", "ingest").api_key]
    cli_db.revoke(2)
    table = ok("keys", "list").stdout
    assert table.splitlines()[0].split() == ["id", "team", "role", "prefix", "note", "created", "revoked"]
    assert len(table.splitlines()) == 2 and "vision" in table and "audio" not in table
    listed = json.loads(ok("keys", "list", "--all", "--json").stdout)
    assert [(k["key_id"], k["team"], k["role"], k["note"]) for k in listed] == [
        (1, "vision", "query", "bot"), (2, "audio", "ingest", None)]
    assert listed[0]["revoked_at"] is None and listed[1]["revoked_at"]
    everything = table + json.dumps(listed)
    for key in keys:
        assert key not in everything and hashlib.sha256(key.encode()).hexdigest() not in everything
        assert key[:8] in everything


def test_revoke_asks_and_says_when_it_was_already_done(cli_db):
    key = cli_db.create("vision", "query").api_key
    declined = xmore("keys", "revoke", "1", input="n\n")
    assert declined.exit_code == 1 and "Revoke key 1 (team vision, query, " in declined.stderr
    assert not cli_db.get(1).revoked
    revoked = ok("keys", "revoke", "1", input="y\n")
    assert revoked.stdout.splitlines()[-1] == f"Revoked key 1 (team vision, query, {key[:8]}…)"  # after the echoed y
    assert cli_db.get(1).revoked
    again = ok("keys", "revoke", "1", "--yes")
    assert again.stdout == "" and again.stderr.startswith("Key 1 (team vision, query, ")
    assert "was already revoked on " in again.stderr and again.stderr.strip().endswith("; nothing changed")
    assert json.loads(ok("keys", "revoke", "1", "--json").stdout)["already_revoked"] is True


def test_keys_errors_are_one_line(cli_db):
    assert fails("keys", "revoke", "7", "--yes") == (
        "Error: no API key with id 7 (xmore keys list --all shows every key)")
    assert fails("keys", "create", "--team", "a/b", "--role", "query") == (
        "Error: team 'a/b' must be 1 to 64 of A-Z a-z 0-9 _ . -")
    assert "'owner' is not one of query, ingest, admin" in fails("keys", "create", "--team", "a", "--role",
                                                                 "owner", code=2)
    assert "--team" in fails("keys", "create", "--role", "query", code=2)
    assert "Invalid value for 'key_id'" in fails("keys", "revoke", "x", code=2)
    assert cli_db.keys(include_revoked=True) == []


def test_keys_need_a_migrated_database(tmp_path, monkeypatch):
    for name in ("XMORE_QDRANT_URL", "XMORE_DATABASE_URL", "XMORE_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XMORE_HOME", str(tmp_path / "home"))
    line = fails("keys", "list")
    assert "run `xmore init`" in line
    assert not (tmp_path / "home" / "history.sqlite3").exists()
    with pytest.raises(DatabaseNotMigratedError):
        KeyStore(f"sqlite:///{tmp_path / 'other.sqlite3'}").create("vision", "query")
