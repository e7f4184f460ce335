"""`xmore corpora`: the ingested corpora, their work units, and deleting one."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from ..workspace import Workspace
from . import options as opt
from .base import make_app, settings_from
from .render import echo_json, echo_table

app = make_app("List and inspect ingested corpora and their work units; delete a corpus.")

CorpusName = Annotated[str, typer.Argument(help="Corpus name (as given to `xmore ingest --corpus`).")]


def _reasons(reasons: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "-"


@app.command("list")
def list_corpora(ctx: typer.Context, json: opt.Json = False):
    """List corpora: units by status, rows, and the points of each in both collections."""
    with Workspace(settings_from(ctx)) as ws:
        ws.database.check()
        corpora = ws.ledger.corpora()
        store = ws.raw_store()
        points = {c.corpus: store.corpus_counts(c.corpus) for c in corpora} if corpora else {}
    out = [asdict(c) | {"points": points[c.corpus]} for c in corpora]
    if json:
        echo_json(out)
        return
    if not out:
        typer.echo("No corpora yet: `xmore ingest PATH --corpus NAME` adds one.", err=True)
        return
    echo_table(["corpus", "kind", "done", "failed", "pending", "rows", "ingested", "skipped", "images", "texts"],
               [[c["corpus"], c["kind"], c["units"]["done"], c["units"]["failed"],
                 c["units"]["pending"] + c["units"]["running"], c["rows"], c["ingested"], c["skipped"],
                 c["points"]["images"], c["points"]["texts"]] for c in out])


@app.command()
def show(ctx: typer.Context, name: CorpusName, json: opt.Json = False):
    """Show a corpus' work units: status, rows, skipped rows with reasons, errors, timings."""
    with Workspace(settings_from(ctx)) as ws:
        ws.database.check()
        units = ws.ledger.units(name)
        points = ws.raw_store().corpus_counts(name)
    if json:
        echo_json({"corpus": name, "points": points, "units": [asdict(u) for u in units]})
        return
    first = units[0]
    typer.echo(f"corpus {name}: {first.kind} from {first.source}; "
               f"{points['images']} images, {points['texts']} texts stored")
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
    result = {"corpus": name, "points_removed": points, "units_removed": removed}
    if json:
        echo_json(result)
        return
    typer.echo(f"Deleted corpus {name!r}: {points['images']} images, {points['texts']} texts, {removed} units")
