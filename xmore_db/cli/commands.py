"""Top-level commands: init, ingest, retrieve, classify, status, config."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from ..workspace import Workspace
from . import options as opt
from .render import echo_json, echo_table, progress_bar


def register(app: typer.Typer) -> None:
    for command in (init, ingest, retrieve, classify, status, config):
        app.command()(command)
    app.command("cache-captions")(cache_captions)


def _settings(ctx: typer.Context, **overrides):
    from .base import settings_from

    return settings_from(ctx, **overrides)


_CLUSTER_ONLY = " On a Qdrant server, when the collections are created; ignored, with a note, elsewhere."


def init(
    ctx: typer.Context,
    shards: Annotated[int | None, typer.Option(
        "--shards", min=1, envvar="XMORE_QDRANT_SHARDS", show_default="the server's: one per node",
        help="Shards per collection (a multiple of the cluster's nodes spreads them evenly)." + _CLUSTER_ONLY)] = None,
    replicas: Annotated[int | None, typer.Option(
        "--replicas", min=1, envvar="XMORE_QDRANT_REPLICAS", show_default="1",
        help="Copies of each shard, on different nodes (2 survives losing one node)." + _CLUSTER_ONLY)] = None,
    write_consistency: Annotated[int | None, typer.Option(
        "--write-consistency", min=1, envvar="XMORE_QDRANT_WRITE_CONSISTENCY", show_default="1",
        help="Copies that must hold a write before it is acknowledged; at most --replicas." + _CLUSTER_ONLY)] = None,
    json: opt.Json = False,
):
    """Create the two collections and migrate the confidence-history database.

    Every configured model's weights are checked first (a file must read as a
    state dict, a tag must be in the local cache): nothing is created otherwise.
    Safe to run again: existing collections are checked against the configured
    models (vector sizes included) and left as they are, shards and replicas included.
    """
    from ..workspace import initialise

    settings = _settings(ctx, qdrant_shards=shards, qdrant_replicas=replicas,
                         qdrant_write_consistency=write_consistency)
    result = initialise(settings)
    ignored = settings.qdrant_cluster_ignored  # after the work: a failure stays one line
    if ignored:
        typer.echo(f"Note: {ignored}", err=True)
    if settings.qdrant_cluster and not ignored and not result["collections_created"]:
        typer.echo("Note: the collections already existed and keep their shards and replicas: the layout "
                   "options apply when they are created (`xmore status --json` shows it)", err=True)
    if json:
        echo_json(result)
        return
    p = result["provenance"]
    verb = "Created" if result["collections_created"] else "Checked existing"
    typer.echo(f"{verb} collections images ({p['coarse_model']}, {p['coarse_dim']}-d) and "
               f"texts ({p['fine_model']}, {p['fine_dim']}-d) in {result['vector_backend']} at "
               f"{result['vector_location']}")
    typer.echo(f"Storage {_storage_line(result['storage'])}")
    typer.echo(f"Database {result['database']} at revision {result['revision']}")


def _storage_line(storage: dict) -> str:
    from ..store.storage import Storage

    return Storage.from_record(storage).describe()


def ingest(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The corpus: a clip-retrieval embeddings folder (img_emb/, "
                                         "metadata/), a folder of webdataset .tar shards (or one shard), "
                                         "img2dataset's shard folders (00000/), or a folder of images with "
                                         "captions.csv/.jsonl/.parquet or metadata.csv/.jsonl/.parquet.")],
    corpus: Annotated[str, typer.Option("--corpus", "-c", help="Corpus name; with each row's key it "
                                        "identifies the pair, so re-ingesting overwrites, never duplicates.")],
    captions: Annotated[Path | None, typer.Option(
        "--captions", help="Captions file of an image folder (CSV with a header, JSONL or parquet), if not "
        "in the folder.")] = None,
    image_column: Annotated[str | None, typer.Option(
        "--image-column", help="The captions file's column of image paths (default: found by name: image, "
        "image_path, file_name, filepath, ...).")] = None,
    caption_column: Annotated[str | None, typer.Option(
        "--caption-column", help="The column of captions, in a captions file or an embeddings folder's "
        "metadata (default: found by name: caption, text, title, ...).")] = None,
    separator: Annotated[str | None, typer.Option(
        "--separator", help="A CSV captions file's separator: a character, or comma, tab, semicolon "
        "(default: the one under which the header has both columns).")] = None,
    keep_columns: Annotated[str | None, typer.Option(
        "--keep-columns", help="Comma-separated metadata columns to keep in each pair's payload (as `metadata`), "
        "e.g. NSFW,similarity,width,height: of a captions file, an embeddings folder's metadata, or the samples' "
        ".json. url and the image's path are always kept.")] = None,
    allow_partial: Annotated[bool, typer.Option(
        "--allow-partial", help="Take shards that look incomplete (no end-of-archive blocks, fewer samples "
        "than img2dataset's _stats.json counts) with the samples they have, instead of failing them.")] = False,
    format: Annotated[str | None, typer.Option(
        "--format", help="Force the source kind: embeddings, webdataset, files or folder (default: "
        "detected).")] = None,
    text_emb: Annotated[Path | None, typer.Option(
        "--text-emb", help="Folder of text_emb_N.npy caption embeddings made with the fine model, for an "
        "embeddings folder (else the captions are encoded). LAION's own text_emb is in the coarse model's space: "
        "it is taken only when the fine model is the coarse one.")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", "-w", min=1, help="Threads claiming units in this process. For several processes or "
        "machines, run more `xmore ingest` with PostgreSQL and a Qdrant server.")] = 1,
    write_batch: Annotated[int, typer.Option(
        "--write-batch", min=1, help="Rows per read and per upsert batch.")] = 1024,
    flush_rows: Annotated[int, typer.Option(
        "--flush-rows", min=1, help="Rows written between two flushes of the store (a unit's end flushes too): "
        "fewer flushes write faster; each batch waits in memory until its flush.")] = 16384,
    max_caption_chars: Annotated[int, typer.Option(
        "--max-caption-chars", min=1, help="Longer captions are skipped (counted as caption_too_long).")] = 1000,
    device: opt.Device = None,
    json: opt.Json = False,
):
    """Ingest a corpus into the two collections, resumably, unit by unit.

    Units (an npy partition, a tar shard, a slice of a captions file) are recorded in
    the database: a rerun continues where the last one stopped, and retries failed
    units. Bad rows are skipped and counted per unit with their reason; a unit whose
    files cannot be read fails alone. `xmore corpora show NAME` lists the units.
    """
    from ..corpus import Columns, parse_separator
    from ..ingest import IngestOptions
    from ..ingest import ingest as run_ingest
    from ..sources import KINDS
    from ..sources.payload import parse_keep_columns

    if format is not None and format not in KINDS:  # an enumerated option: a usage error, exit 2
        raise typer.BadParameter(f"{format!r} is not one of {', '.join(KINDS)}", param_hint="--format")
    settings = _settings(ctx, device=device)
    options = IngestOptions(workers=workers, write_batch=write_batch, max_caption_chars=max_caption_chars,
                            flush_rows=flush_rows)
    columns = Columns(image=image_column, caption=caption_column, separator=parse_separator(separator),
                      keep=parse_keep_columns(keep_columns))
    with Workspace(settings) as ws, progress_bar("ingesting", unit="pair") as bar:
        report = run_ingest(ws, path, corpus=corpus, kind=format, captions=captions, text_emb=text_emb,
                            columns=columns, allow_partial=allow_partial, options=options,
                            on_start=bar.start, on_progress=bar.advance, on_unit=_echo_unit)
    summary = asdict(report) | {"pairs_per_second": round(report.pairs_per_second, 2)}
    if json:
        echo_json(summary)
    else:
        _echo_ingest_summary(report, corpus)
    if report.caption_cache.startswith("not filled"):
        typer.echo(f"Warning: caption cache {report.caption_cache}", err=True)
    if report.failures:  # the other units went on; the exit status still says some failed
        typer.echo(f"Error: {len(report.failures)} unit(s) failed ({', '.join(report.failures)}): "
                   "fix their files and rerun to retry them (xmore corpora show shows the errors)", err=True)
        raise typer.Exit(1)


def _echo_ingest_summary(report, corpus: str) -> None:
    typer.echo(f"Ingested {report.ingested} new pairs into corpus {corpus!r} "
               f"({report.already_present} already present, {report.skipped} rows skipped) "
               f"in {report.seconds:.1f} s ({report.pairs_per_second:.0f} pairs/s); "
               f"units: {report.units_done} done, {report.units_failed} failed, {report.units_pending} pending; "
               f"collections now hold {report.collections['images']} images, {report.collections['texts']} texts")
    if report.skip_reasons:
        typer.echo("Skipped rows: " + ", ".join(f"{k} {v}" for k, v in report.skip_reasons.items()))
    if report.changed:
        typer.echo("Changed since ingested, read again: " + ", ".join(report.changed))
    for unit, note in report.notes.items():
        typer.echo(f"Note on unit {unit}: {note}")
    for unit, error in report.failures.items():
        typer.echo(f"Failed unit {unit}: {error}")


def _echo_unit(outcome) -> None:
    """One line per finished unit on stderr, with its rate, without breaking the progress bar."""
    import sys

    from tqdm import tqdm

    text = (f"unit {outcome.unit}: {outcome.status}, {outcome.ingested} ingested, {outcome.skipped} skipped, "
            f"{outcome.seconds:.1f} s ({outcome.pairs_per_second:.0f} pairs/s)")
    tqdm.write(text + (f": {outcome.error}" if outcome.error else "") + (f" ({outcome.note})" if outcome.note else ""),
               file=sys.stderr)


def _load_images(paths: list[Path]):
    from ..images import load_image

    return [load_image(p) for p in paths]


def retrieve(
    ctx: typer.Context,
    image: Annotated[Path, typer.Argument(help="Query image.")],
    coarse: Annotated[bool, typer.Option(
        "--coarse", help="Also show the coarse stage's image neighbours, with their caption, key, url and path.")
    ] = False,
    coarse_k: opt.CoarseK = None,
    fine_k: opt.FineK = None,
    corpus: opt.Corpora = None,
    json: opt.Json = False,
):
    """Show the captions retrieved for an image: coarse image neighbours, reranked against the image."""
    from .remote import refuse_local_options, remote, server

    if remote(ctx):
        refuse_local_options(ctx, coarse_k="--coarse-k", fine_k="--fine-k")
        with server(ctx) as client:
            [out] = client.retrieve([image], coarse=coarse, corpora=corpus or None)
    else:
        out = _retrieve_locally(ctx, image, coarse=coarse, coarse_k=coarse_k, fine_k=fine_k, corpus=corpus)
    if json:
        echo_json(out)
        return
    if coarse:
        neighbours = out["coarse"]
        typer.echo(f"Coarse: {len(neighbours)} nearest corpus images (`xmore show CORPUS:KEY` shows one)")
        echo_table(["rank", "score", "corpus", "key", "caption"],
                   [[i + 1, f"{h['score']:.4f}", h["corpus"], h["key"], h["caption"]]
                    for i, h in enumerate(neighbours)])
        typer.echo("")
    typer.echo(f"Fine: {len(out['captions'])} captions ranked against the image")
    echo_table(["rank", "score", "corpus", "caption"],
               [[i + 1, f"{h['score']:.4f}", h["corpus"], h["caption"]] for i, h in enumerate(out["captions"])])


def _retrieve_locally(ctx: typer.Context, image: Path, *, coarse: bool, coarse_k, fine_k, corpus) -> dict:
    """`xmore retrieve --json`'s document for one image, computed here."""
    from ..classify import embed_images
    from ..retrieval import describe
    from ..retrieval import retrieve as two_stage

    settings = _settings(ctx, coarse_k=coarse_k, fine_k=fine_k)
    images = _load_images([image])
    with Workspace(settings) as ws:
        store = ws.store()
        embeddings = embed_images(ws, images, ("coarse", "fine"))
        [result] = two_stage(store, embeddings["coarse"], embeddings["fine"], coarse_k=settings.coarse_k,
                             fine_k=settings.fine_k, hnsw_ef=settings.hnsw_ef, corpora=corpus or None)
        neighbours = describe(store, result.coarse) if coarse else []
    out = {"query": str(image), "captions": [asdict(h) for h in result.captions]}
    if coarse:
        out["coarse"] = [asdict(h) for h in neighbours]
    return out


def classify(
    ctx: typer.Context,
    images: Annotated[list[Path], typer.Argument(help="Images to classify, in stream order.")],
    labels: Annotated[Path | None, typer.Option("--labels", "-l", help="Class names, one per line.")] = None,
    label_set: Annotated[str | None, typer.Option(
        "--label-set", metavar="NAME",
        help="With --server: a label set saved on the server (PUT /v1/labelsets/NAME), instead of --labels.")] = None,
    stream: Annotated[str, typer.Option("--stream", "-s", envvar="XMORE_STREAM",
                                        help="Stream whose confidence history normalises the weights: 1 to 200 "
                                             "printable characters, no space at either end.")] = "default",
    normalize: opt.Normalize = None,
    template: opt.Template = None,
    coarse_k: opt.CoarseK = None,
    fine_k: opt.FineK = None,
    method_name: opt.Method = "xmore",
    textbank: opt.TextBank = None,
    fusion: opt.Fusion = None,
    corpus: opt.Corpora = None,
    device: opt.Device = None,
    json: opt.Json = False,
):
    """Classify images, appending each to the stream's history (X-MoRe by default).

    --json adds p_I, p_T, raw and adjusted confidences and the final probabilities.
    A query with no retrieved caption is classified by the image alone and flagged.
    A stream holds one method's results: another method needs another stream.
    """
    from ..config import check_stream_name
    from ..labels import read_labels
    from .remote import refuse_local_options, remote, server

    check_stream_name(stream)
    if (labels is None) == (label_set is None):
        raise typer.BadParameter("give the class names with --labels FILE, or with --server a saved --label-set "
                                 "NAME (one of the two)", param_hint="--labels")
    if remote(ctx):  # before the imports below: a remote classify loads no model and opens no store
        refuse_local_options(ctx, normalize="--normalize", template="--template", coarse_k="--coarse-k",
                             fine_k="--fine-k", textbank="--textbank", fusion="--fusion", device="--device")
        class_names = read_labels(labels) if labels is not None else None
        with server(ctx) as client:
            out = client.classify(list(images), labels=class_names, label_set=label_set, stream=stream,
                                  method=method_name, corpora=corpus or None)
        _echo_classifications(out, json=json)
        return
    if label_set is not None:
        raise typer.BadParameter("label sets are kept by a server: --label-set needs --server URL (or "
                                 "XMORE_SERVER); locally give --labels FILE", param_hint="--label-set")
    from ..classify import classify_methods, classify_paths
    from ..coder.encode import read_bank
    from ..methods import get_method
    from ..methods.base import TEXTBANK
    from ..methods.inputs import MethodFiles

    if method_name not in classify_methods():
        raise typer.BadParameter(f"{method_name!r} is not one of {', '.join(classify_methods())}",
                                 param_hint="--method")
    settings = _settings(ctx, normalize=normalize, template=template, coarse_k=coarse_k, fine_k=fine_k,
                         device=device)
    class_names = read_labels(labels)
    if TEXTBANK in get_method(method_name).needs:  # the bank is read and checked before any work
        read_bank(textbank, class_names)
    files = MethodFiles(textbank=textbank, fusion=fusion)
    with Workspace(settings) as ws, progress_bar("classifying", unit="image") as bar:
        results = classify_paths(ws, list(images), labels=class_names, stream=stream, method_name=method_name,
                                 files=files, corpora=corpus or None, on_start=bar.start,
                                 on_progress=bar.advance)
    _echo_classifications([r.to_dict() for r in results], json=json)


def _echo_classifications(results: list[dict], *, json: bool) -> None:
    """`xmore classify`'s output from its --json documents, local or from a server alike."""
    if json:
        echo_json(results)
        return
    rows = []
    for r in results:
        flag = "image only: no caption retrieved" if r["no_captions"] else f"{len(r['captions'])} captions"
        rows.append([r["seq"], r["query"], r["prediction"], f"{max(r['probabilities']):.3f}",
                     f"{r['w_image']:.2f}", f"{r['w_text']:.2f}", flag])
    echo_table(["seq", "image", "prediction", "p", "ĉ_I", "ĉ_T", "retrieval"], rows)


def cache_captions(
    ctx: typer.Context,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Replace a cache made for another classifier.")] = False,
    json: opt.Json = False,
):
    """Fill the caption cache for existing corpora: the classifier's embedding of every caption.

    With the cache filled, classify encodes no caption at query time. Ingest fills
    it for new pairs (XMORE_CAPTION_CACHE, on by default); this fills the rest.
    """
    from ..caption_cache import fill_caption_cache

    with Workspace(_settings(ctx)) as ws, progress_bar("caching captions", unit="caption") as bar:
        report = fill_caption_cache(ws, rebuild=rebuild, on_start=bar.start, on_progress=bar.advance)
    if json:
        echo_json(asdict(report))
        return
    replaced = f" (replaced the cache of {report.replaced})" if report.replaced else ""
    typer.echo(f"Cached {report.filled} caption embeddings of {report.model} ({report.dim}-d){replaced} "
               f"in {report.seconds:.1f} s")


def status(ctx: typer.Context, json: opt.Json = False):
    """Show the backends, collection sizes and database revision.

    Exits 1 when the vector store or the database cannot be reached, as every
    command does; what it learned before the database failed is still printed.
    An embedded store held by another process (a running ingest) is no failure:
    it is reported busy, its counts unknown, and the rest is shown.
    With --server: the server's status, as it reports it, and who the key is.
    """
    from ..errors import StoreLockedError, XmoreError
    from .base import echo_error, masked, store_state
    from .remote import remote, server

    if remote(ctx):
        with server(ctx) as client:
            out = client.status()
        if json:
            echo_json(out)
        else:
            _echo_server_status(out, client.url)
        return
    settings = _settings(ctx)
    out: dict = {"vector_backend": settings.vector_backend}
    with Workspace(settings) as ws:
        store = ws.raw_store()
        out["vector_location"] = store.location
        stored = store.stored_provenance()  # the store's record: readable while another process holds it
        try:
            out["collections"] = store.counts() if stored else None
            index = store.index_state() if stored else {}
            busy = False
        except StoreLockedError:  # Qdrant Edge allows one process: an ingest holds it, the SQL part still shows
            out["collections"], index, busy = None, {}, True
        out["store"] = store_state(busy)
        out["provenance"] = asdict(stored) if stored else None
        cache = store.caption_cache() if stored else None
        out["caption_cache"] = asdict(cache) if cache else None
        storage = store.stored_storage() if stored else None  # searches use the oversampling asked, if any
        out["storage"] = store.requested_storage.searched(storage).to_dict() if storage else None
        out["index"] = {name: asdict(state) for name, state in index.items()} or None
        out["search_beam"] = _search_beam(store, settings) if stored and not busy else None
        out["cluster"] = _cluster_layout(store) if stored and not busy else None
        out["configured_models"] = {"coarse": settings.coarse_model, "fine": settings.fine_model,
                                    "classifier": settings.classifier_model}
        from ..reco import text_side

        on, why = text_side(settings)
        out["reco_text_side"] = {"on": on, "why": why}
        out["database"] = settings.masked()["database_url"]
        try:
            # A home never initialised has no SQLite file yet: not an unreachable database.
            fresh = settings.database_url is None and not (settings.home / "history.sqlite3").exists()
            out["database_revision"] = None if fresh else ws.history.revision()
            out["streams"] = len(ws.history.streams()) if out["database_revision"] else 0
        except XmoreError as exc:
            out["database_revision"] = None
            out["database_error"] = masked(ctx, str(exc))
    if json:
        echo_json(out)
    else:
        _echo_status(out, stored, settings)
    _warn_index(index)
    if "database_error" in out:
        echo_error(ctx, out["database_error"])
        raise typer.Exit(1)


def _search_beam(store, settings) -> dict:
    """The beam a coarse search of K uses, where it comes from, and the recorded calibration (store/beam.py)."""
    choice = store.beam_choice(settings.coarse_k, settings.hnsw_ef)
    calibration = store.beam_calibration()
    return {**asdict(choice), "recall_target": store.beam_target.recall,
            "calibration": calibration.to_record() if calibration else None}


def _beam_line(beam: dict) -> str:
    from ..store.beam import BeamCalibration, BeamChoice, BeamTarget, describe_beam

    choice = BeamChoice(**{name: beam[name] for name in ("hnsw_ef", "source", "recall", "reached")})
    calibration = BeamCalibration.from_record(beam["calibration"])
    target = BeamTarget(recall=beam["recall_target"], limit=calibration.limit if calibration else 1)
    return describe_beam(choice, target, calibration)


def _cluster_layout(store) -> dict | None:
    """A Qdrant server's shards, replicas and write consistency per collection (`xmore init --shards`)."""
    if store.backend != "qdrant-server":
        return None
    return store.cluster_layout()


def _echo_index(index: dict) -> None:
    from ..store import IndexState
    from .optimize import describe_index

    for name, state in index.items():
        typer.echo(f"  index of {name}: {describe_index(IndexState(**state))}")


def _warn_index(index: dict) -> None:
    for name, state in index.items():
        if state.needs_build:
            typer.echo(f"Warning: the index of {name} needs building (a bulk load deferred it or a kill "
                       "interrupted it; searches scan instead): run `xmore optimize`", err=True)


def _echo_status(out: dict, stored, settings) -> None:
    typer.echo(f"vector store:  {out['vector_backend']} at {out['vector_location']}")
    if stored:
        if out["store"]["busy"]:
            typer.echo(f"  busy:        {out['store']['message']}")
        counts = out["collections"] or {"images": "?", "texts": "?"}
        typer.echo(f"  images:      {counts['images']} points "
                   f"({stored.coarse_model}, {stored.coarse_dim}-d)")
        typer.echo(f"  texts:       {counts['texts']} points "
                   f"({stored.fine_model}, {stored.fine_dim}-d)")
        typer.echo(f"  storage:     {_storage_line(out['storage'])}")
        if out["search_beam"]:
            typer.echo(f"  search beam: {_beam_line(out['search_beam'])}")
        cache = out["caption_cache"]
        typer.echo(f"  caption cache: {cache['model'] + ' (' + str(cache['dim']) + '-d)' if cache else 'none'}")
        _echo_index(out["index"] or {})
    else:
        typer.echo("  not initialised: run `xmore init`")
    typer.echo(f"database:      {out['database']}")
    if "database_error" in out:
        typer.echo("  revision:    unknown (see the error below)")
    else:
        typer.echo(f"  revision:    {out['database_revision'] or 'none: run `xmore init`'}")
        typer.echo(f"  streams:     {out['streams']}")
    typer.echo(f"models:        coarse {settings.coarse_model}, fine {settings.fine_model}, "
               f"classifier {settings.classifier_model}")
    typer.echo(f"RECO text side: {out['reco_text_side']['why']}")


def _echo_server_status(out: dict, url: str) -> None:
    """A server's status in the local status' layout, from its JSON (GET /v1/status)."""
    from ..config import mask_url_password

    who = "open, no keys" if not out.get("keys_required") else \
        f"team {out.get('team')}, {out.get('role') or ('admin' if out.get('admin') else 'query')} key"
    typer.echo(f"server:        {mask_url_password(url)} ({who})")
    typer.echo(f"vector store:  {out['vector_backend']} at {out['vector_location']}")
    stored, counts = out.get("provenance") or {}, out.get("collections") or {"images": "?", "texts": "?"}
    if stored:
        typer.echo(f"  images:      {counts['images']} points ({stored['coarse_model']}, {stored['coarse_dim']}-d)")
        typer.echo(f"  texts:       {counts['texts']} points ({stored['fine_model']}, {stored['fine_dim']}-d)")
        cache = out.get("caption_cache")
        typer.echo(f"  caption cache: {cache['model'] + ' (' + str(cache['dim']) + '-d)' if cache else 'none'}")
    typer.echo(f"database:      {out['database']}")
    typer.echo(f"  revision:    {out['database_revision']}")
    typer.echo(f"  streams:     {out['streams']}" + (f" (of team {out['team']})" if out.get("keys_required") else ""))
    if "max_batch" in out:
        typer.echo(f"batching:      up to {out['max_batch']} images, waiting at most {out['max_wait_ms']:g} ms")


def config(ctx: typer.Context, json: opt.Json = False):
    """Print the effective settings (secrets masked) and where each can be set."""
    from ..config import Settings

    settings = _settings(ctx)
    values = settings.masked()
    if json:
        echo_json(values)
        return
    echo_table(["setting", "value", "variable"],
               [[name, "" if value is None else value, Settings.ENV.get(name, "")]
                for name, value in values.items()])
