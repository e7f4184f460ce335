"""`xmore keys`: the API keys of `xmore serve`, managed where the database is reachable."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from ..workspace import Workspace
from . import options as opt
from .base import make_app, settings_from
from .render import echo_json, echo_table

if TYPE_CHECKING:  # the key store pulls in SQLAlchemy: imported when a command runs, so `xmore --help` stays quick
    from ..history.keys import ApiKey, KeyStore

app = make_app("Create, list and revoke the API keys of `xmore serve`. Only a hash of each key is stored; "
               "a key is printed once, when it is created.")


def _role(value: str) -> str:
    """A usage error (exit 2) naming the roles, like every other malformed argument."""
    from ..history.keys import ROLES

    if value not in ROLES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(ROLES)}")
    return value


Team = Annotated[str, typer.Option("--team", metavar="TEAM",
                                   help="The team the key belongs to: its streams are the team's own "
                                        "(1 to 64 of A-Z a-z 0-9 _ . -).")]
Role = Annotated[str, typer.Option("--role", metavar="ROLE", callback=_role,
                                   help="query (classify, retrieve, search, status, the team's streams), ingest "
                                        "(also ingest and the team's corpora) or admin (everything, keys of "
                                        "every team included).")]
Note = Annotated[str | None, typer.Option("--note", metavar="TEXT",
                                          help="What the key is for, shown by `xmore keys list`.")]
KeyId = Annotated[int, typer.Argument(help="The key's id, as `xmore keys list` shows it.")]


def _store(ws: Workspace) -> KeyStore:
    from ..history.keys import KeyStore

    ws.history.check()
    return KeyStore(ws.database)


def _when(value) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M:%S}"


def _described(record: ApiKey) -> str:
    return f"key {record.key_id} (team {record.team}, {record.role}, {record.prefix}…)"


@app.command()
def create(ctx: typer.Context, team: Team, role: Role, note: Note = None, json: opt.Json = False):
    """Create a key and print it, once: stdout holds the key (or, with --json, its record with `api_key`)."""
    with Workspace(settings_from(ctx)) as ws:
        created = _store(ws).create(team, role, note=note)
    if json:
        echo_json({"api_key": created.api_key} | asdict(created.record))
    else:
        typer.echo(created.api_key)
    typer.echo(f"Created {_described(created.record)}. The key is shown only this once: only its hash is stored.",
               err=True)


@app.command("list")
def list_keys(
    ctx: typer.Context,
    json: opt.Json = False,
    all: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
):
    """List the keys (id, team, role, prefix, note, created, revoked); never a key or its hash."""
    with Workspace(settings_from(ctx)) as ws:
        records = _store(ws).keys(include_revoked=all)
    if json:
        echo_json([asdict(record) for record in records])
        return
    if not records:
        typer.echo("No keys yet: `xmore keys create --team T --role admin` makes the first.", err=True)
        return
    echo_table(["id", "team", "role", "prefix", "note", "created", "revoked"],
               [[r.key_id, r.team, r.role, r.prefix, r.note or "", _when(r.created_at), _when(r.revoked_at)]
                for r in records])


@app.command()
def revoke(ctx: typer.Context, key_id: KeyId, yes: opt.Yes = False, json: opt.Json = False):
    """Revoke a key: requests with it get 401 from then on. Its events keep naming it."""
    with Workspace(settings_from(ctx)) as ws:
        store = _store(ws)
        record = store.get(key_id)
        if not record.revoked and not yes:
            typer.confirm(f"Revoke {_described(record)}? Requests with it will be refused.", abort=True, err=True)
        record, revoked_now = store.revoke(key_id)
    if json:
        echo_json(asdict(record) | {"already_revoked": not revoked_now})
    elif revoked_now:
        typer.echo(f"Revoked {_described(record)}")
    else:
        typer.echo(f"{_described(record).capitalize()} was already revoked on {_when(record.revoked_at)}; "
                   "nothing changed", err=True)
