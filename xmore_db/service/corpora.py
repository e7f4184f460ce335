"""`/v1/corpora`: the corpora with the team that owns each, deleting one, and ingesting over HTTP.

Every key may list and read the corpora (every team searches them all). Ingesting
and deleting need an `ingest` key of the corpus' team, or an `admin` key; a new
corpus belongs to the team whose key first ingests it (`history.owners`).

Ingest over HTTP reads files on the server, so it is off unless the operator
names the directories it may read: `xmore serve --ingest-root DIR`. A source
(and a captions file or --text-emb folder) must lie under one of them once
symlinks and `..` are resolved; a relative path is taken under the first.
The ingest runs on its own thread (`ingests.Ingests`): the route answers 202
once its checks passed and its units are registered; a request that fails
those checks gets the error itself.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from ..errors import BadInputError, ConfigError, UnknownCorpusError
from ..history.owners import team_label
from ..history.units import STATUSES
from ..ingest.writer import DEFAULT_FLUSH_ROWS
from .auth import Caller, Who
from .errors import ApiError
from .ingests import IngestParams, Ingests
from .settings import ServiceSettings

if TYPE_CHECKING:
    from ..api import Index

# How long the ingest route waits for the checks (source layout, store, models) before answering 202 anyway.
START_WAIT_S = 10.0
INGEST_OFF = "ingest over HTTP is off: start xmore serve with --ingest-root DIR"


class IngestRequest(BaseModel):
    """`xmore ingest`'s options; paths are the server's, under an --ingest-root."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, description="The corpus folder, shard or file (as `xmore ingest PATH`).")
    format: str | None = Field(None, description="Force the source kind: embeddings, webdataset, files or folder.")
    captions: str | None = Field(None, description="Captions file of an image folder, if not in the folder.")
    text_emb: str | None = Field(None, description="Folder of text_emb_N.npy caption embeddings (fine model).")
    image_column: str | None = None
    caption_column: str | None = None
    separator: str | None = Field(None, description="A CSV captions file's separator: a character, or comma, tab, "
                                                    "semicolon.")
    keep_columns: list[str] | None = Field(None, description="Metadata columns kept in each pair's payload.")
    allow_partial: bool = False
    workers: int = Field(1, ge=1, le=64)
    write_batch: int = Field(1024, ge=1, le=100_000)
    flush_rows: int = Field(DEFAULT_FLUSH_ROWS, ge=1, le=1_000_000,
                            description="Rows written between two flushes of the store; an ingest stops only "
                                        "between flushes.")
    max_caption_chars: int = Field(1000, ge=1)


def check_ingest_roots(paths: list[Path] | tuple[Path, ...]) -> tuple[Path, ...]:
    """The --ingest-root directories, resolved; ConfigError, one line, for one that is not a directory."""
    roots = []
    for path in paths:
        resolved = Path(path).expanduser().resolve()
        if not resolved.is_dir():
            raise ConfigError(f"--ingest-root {path} is not a directory")
        roots.append(resolved)
    return tuple(dict.fromkeys(roots))


def allowed_path(value: str, field: str, roots: tuple[Path, ...]) -> Path:
    """`value` resolved (symlinks, `..`), relative ones under the first root; 403 outside every root."""
    given = Path(value)
    resolved = (given if given.is_absolute() else roots[0] / given).resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        shown = "" if str(resolved) == value else f" (it resolves to {resolved})"
        raise ApiError(403, f"{field} {value} is outside the directories this service ingests from{shown}: "
                            "the operator allows them with xmore serve --ingest-root DIR")
    if not resolved.exists():
        raise BadInputError(f"{field} {value} does not exist on the server")
    return resolved


def check_corpus_name(name: str) -> str:
    if not name.strip() or not name.isprintable() or name != name.strip():
        raise BadInputError(f"corpus name {name!r} must be printable, not empty, with no space at either end")
    return name


def _summary(units) -> dict:
    """A corpus' units counted as `xmore corpora list --json` counts them."""
    reasons: Counter = Counter()
    for unit in units:
        reasons.update(unit.skip_reasons)
    by_status = dict.fromkeys(STATUSES, 0) | Counter(u.status for u in units)
    first = units[0] if units else None
    return {"kind": first.kind if first else None, "source": first.source if first else None,
            "units": len(units), "units_by_status": by_status, "rows": sum(u.rows or 0 for u in units),
            "ingested": sum(u.ingested or 0 for u in units), "skipped": sum(u.skipped for u in units),
            "skip_reasons": dict(sorted(reasons.items()))}


NOT_BUSY = {"busy": False, "message": None}  # `store` as the CLI shows it: the service holds the store itself


def router(index: Index, lock: threading.Lock, settings: ServiceSettings, ingests: Ingests) -> APIRouter:
    """The corpora routes over one Index; `lock` is the service's (see `ingests` for how an ingest shares it)."""
    routes = APIRouter()
    ws = index._workspace
    owners = ingests.owners

    def owning_team(name: str) -> str | None:
        owner = owners.owner(name)
        return None if owner is None else owner.team

    def require_owner(who: Caller, name: str, team: str | None, doing: str) -> None:
        who.require("ingest")
        if team != who.team and not who.admin:
            raise ApiError(403, f"corpus {name!r} belongs to {team_label(team)}: {doing} it needs an admin key")

    def ingest_state(name: str) -> dict:
        job = ingests.job(name)
        return {"status": "idle"} if job is None else job.to_dict()

    @routes.get("/v1/corpora", summary="The corpora, each with its team (`xmore corpora list --json`)")
    def list_corpora(who: Who) -> list[dict]:
        ws.database.check()
        records = ws.ledger.corpora()
        teams = owners.teams()
        with lock:
            store = ws.store()
            points = {c.corpus: store.corpus_counts(c.corpus) for c in records}
        out = []
        for record in records:
            item = asdict(record)
            by_status = item.pop("units")
            out.append({"corpus": record.corpus, "team": teams.get(record.corpus)}
                       | {k: v for k, v in item.items() if k != "corpus"}
                       | {"units": sum(by_status.values()), "units_by_status": by_status,
                          "points": points[record.corpus], "store": NOT_BUSY, "ingest": ingest_state(record.corpus)})
        return out

    @routes.get("/v1/corpora/{name:path}", summary="A corpus: its team, units, skipped rows and the running ingest "
                                              "(`xmore corpora show --json`)")
    def show_corpus(who: Who, name: str) -> dict:
        ws.database.check()
        job = ingests.job(name)
        try:
            units = ws.ledger.units(name)
        except UnknownCorpusError:
            if job is None or not job.running:
                raise
            units = []  # its first ingest is still checking the source
        with lock:
            points = ws.store().corpus_counts(name)
        return ({"corpus": name, "team": owning_team(name)} | _summary(units)
                | {"points": points, "store": NOT_BUSY, "unit_records": [asdict(u) for u in units],
                   "ingest": ingest_state(name)})

    @routes.delete("/v1/corpora/{name:path}", summary="Delete a corpus: its points and unit records (its team's "
                                                 "ingest key, or an admin key)")
    def delete_corpus(who: Who, name: str) -> dict:
        who.require("ingest")
        ws.database.check()
        with ingests.admitting():
            ws.ledger.units(name)  # 404 for an unknown corpus, before any talk of teams
            require_owner(who, name, owning_team(name), "deleting")
            ingests.check_free(name, "delete it")
            with ws.ledger.writer_lock():
                with lock:
                    store = ws.store()
                    points = store.corpus_counts(name)
                    store.delete_corpus(name)
                removed = ws.ledger.delete(name)
                owners.forget(name)
            ingests.discard(name)
        return {"corpus": name, "points_removed": points, "units_removed": removed}

    @routes.post("/v1/corpora/{name:path}/ingest", status_code=202,
                 summary="Ingest a corpus from a path on the server, in the background (`xmore ingest`; an ingest "
                         "key of the corpus' team, or an admin key; needs xmore serve --ingest-root)")
    def ingest_corpus(who: Who, name: str, body: IngestRequest) -> dict:
        from ..corpus import Columns, parse_separator
        from ..ingest import IngestOptions
        from ..sources import KINDS
        from ..sources.payload import parse_keep_columns

        who.require("ingest")
        roots = settings.ingest_roots
        if not roots:
            raise ApiError(403, INGEST_OFF)
        check_corpus_name(name)
        source = allowed_path(body.source, "source", roots)
        captions = allowed_path(body.captions, "captions", roots) if body.captions else None
        text_emb = allowed_path(body.text_emb, "text_emb", roots) if body.text_emb else None
        if body.format is not None and body.format not in KINDS:
            raise BadInputError(f"format {body.format!r} is not one of {', '.join(KINDS)}")
        keep = parse_keep_columns(",".join(body.keep_columns)) if body.keep_columns is not None else ()
        params = IngestParams(
            source=source, kind=body.format, captions=captions, text_emb=text_emb,
            columns=Columns(image=body.image_column, caption=body.caption_column,
                            separator=parse_separator(body.separator), keep=keep),
            allow_partial=body.allow_partial,
            options=IngestOptions(workers=body.workers, write_batch=body.write_batch, flush_rows=body.flush_rows,
                                  max_caption_chars=body.max_caption_chars))
        ws.database.check()
        with ingests.admitting():
            ingests.check_free(name, "ingest again")
            owner = owners.owner(name)
            claimed = False
            if owner is None and not ws.ledger.exists(name):
                owner, claimed = owners.claim(name, who.team)
            team = None if owner is None else owner.team
            require_owner(who, name, team, "ingesting into")
            job = ingests.start(name, team, params, claimed=claimed)
        job.began.wait(START_WAIT_S)
        if not job.running and not job.registered and job.exception is not None:
            ingests.forget(job)
            raise job.exception  # the checks failed: this request's error, nothing was registered
        return {"corpus": name, "team": team} | job.to_dict()

    return routes
