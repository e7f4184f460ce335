"""`xmore corpora`: the ingested corpora, their work units, and deleting one."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from ..errors import StoreLockedError
from ..workspace import Workspace
from . import options as opt
from .base import make_app, settings_from, store_state
from .render import echo_json, echo_table

app = make_app("List and inspect ingested corpora and their work units; delete a corpus.")

CorpusName = Annotated[str, typer.Argument(help="Corpus name (as given to `xmore ingest --corpus`).")]


def _reasons(reasons: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "-"


def _points(ws: Workspace, names: list[str]) -> tuple[dict[str, dict | None], bool]:
    """Each corpus' points in both collections, and whether the store is busy: Qdrant Edge allows one
    process, so while another (a running ingest) holds it the counts are None and the ledger still shows."""
    if not names:
        return {}, False
    store = ws.raw_store()
    try:
        return {name: store.corpus_counts(name) for name in names}, False
    except StoreLockedError:
        return dict.fromkeys(names), True


def _count(points: dict | None, collection: str) -> object:
    return "?" if points is None else points[collection]


def _corpus_json(record) -> dict:
    """A corpus for --json: `units` the count (as ingest prints it), `units_by_status` status -> count."""
    out: dict = {}
    for key, value in asdict(record).items():
        if key == "units":
            out |= {"units": sum(value.values()), "units_by_status": value}
        else:
            out[key] = value
    return out


@app.command("list")
def list_corpora(ctx: typer.Context, json: opt.Json = False):
    """List corpora: units by status, rows, and the points of each in both collections."""
    with Workspace(settings_from(ctx)) as ws:
        ws.database.check()
        corpora = ws.ledger.corpora()
        teams = _owners(ws).teams()  # a corpus without a row belongs to the open team (None)
        points, busy = _points(ws, [c.corpus for c in corpora])
    out = [_corpus_json(c) | {"team": teams.get(c.corpus), "points": points[c.corpus], "store": store_state(busy)}
           for c in corpora]
    if json:
        echo_json(out)
        return
    if not out:
        typer.echo("No corpora yet: `xmore ingest PATH --corpus NAME` adds one.", err=True)
        return
    echo_table(["corpus", "kind", "done", "failed", "pending", "rows", "ingested", "skipped", "images", "texts"],
               [[c["corpus"], c["kind"], by["done"], by["failed"], by["pending"] + by["running"], c["rows"],
                 c["ingested"], c["skipped"], _count(c["points"], "images"), _count(c["points"], "texts")]
                for c in out for by in [c["units_by_status"]]])
    if busy:
        typer.echo(f"store busy: {store_state(busy)['message']}")


def _owners(ws: Workspace):
    """The corpus-team records; imported here because SQLAlchemy would slow every `xmore` start."""
    from ..history.owners import CorpusOwners

    return CorpusOwners(ws.database)


@app.command()
def show(ctx: typer.Context, name: CorpusName, json: opt.Json = False):
    """Show a corpus' work units: status, rows, skipped rows with reasons, errors, timings."""
    with Workspace(settings_from(ctx)) as ws:
        ws.database.check()
        units = ws.ledger.units(name)
        owner = _owners(ws).owner(name)
        counts, busy = _points(ws, [name])
        points = counts[name]
    if json:
        echo_json({"corpus": name, "team": owner and owner.team, "points": points, "store": store_state(busy),
                   "units": len(units), "unit_records": [asdict(u) for u in units]})
        return
    first = units[0]
    stored = (f"store busy ({store_state(busy)['message']})" if busy
              else f"{points['images']} images, {points['texts']} texts stored")
    typer.echo(f"corpus {name}: {first.kind} from {first.source}; {stored}")
    echo_table(["unit", "status", "rows", "ingested", "skipped", "reasons", "seconds", "worker", "error"],
               [[u.unit, u.status, "-" if u.rows is None else u.rows, "-" if u.ingested is None else u.ingested,
                 u.skipped, _reasons(u.skip_reasons), "-" if u.seconds is None else f"{u.seconds:.1f}",
                 u.worker or "-", u.error or ""] for u in units])


@app.command()
def delete(ctx: typer.Context, name: CorpusName, yes: opt.Yes = False, json: opt.Json = False):
    """Delete a corpus: its points in both collections and its unit records."""
    with Workspace(settings_from(ctx)) as ws:
        ws.database.check()
        ledger = ws.ledger
        units = ledger.units(name)  # an unknown corpus fails here, before anything is asked
        store = ws.raw_store()
        points = store.corpus_counts(name)
        if not yes:
            typer.confirm(f"Delete corpus {name!r}: {points['images']} images, {points['texts']} texts and "
                          f"{len(units)} unit records?", abort=True, err=True)
        with ledger.writer_lock():
            store.delete_corpus(name)
            removed = ledger.delete(name)
            _owners(ws).forget(name)
    result = {"corpus": name, "points_removed": points, "units_removed": removed}
    if json:
        echo_json(result)
        return
    typer.echo(f"Deleted corpus {name!r}: {points['images']} images, {points['texts']} texts, {removed} units")
