"""Embedded ingestion of precomputed embeddings: `xmore ingest` against a raw Qdrant Edge upsert, a baseline
checkout, and by stage.

Writes a synthetic clip-retrieval folder (img_emb/ float16 512-d like ViT-B/32,
metadata/ parquet with captions and urls) and a second folder of 768-d caption
embeddings (ViT-L/14-sized) given as --text-emb, so no model runs. Then, alternating,
on fresh stores:

- raw: two EdgeShards configured as the embedded store's, the same points (ids,
  vectors, payloads, all prepared in memory before the clock starts) upserted as the
  store writes them (512-point calls, rows as `engine_rows` makes them, texts then
  images, each flushed every `--flush-rows` rows): the engine's share, without reading
  or checks;
- xmore: `ingest()`, the code path of `xmore ingest`, from the files: memory-mapped
  reads, parquet captions, row checks, pair ids, the unit ledger (SQLite), the
  writer thread. Run in a child process that imports this checkout;
- baseline (with --baseline DIR): the same, importing the checkout in DIR (e.g. a
  `git worktree add /tmp/base-ingest <commit>`), so both are timed in one run.

With --stages, the pipeline's stages are then timed one after another in this
process, each alone (the pipeline overlaps them on two threads, so they add up to
more than its total): reading, row checks with the id lookups, the store's checks
and payloads, building the engine's points, the engine's upserts, the flushes.

Neither includes the final optimize() (the HNSW build, the same engine call on the
same points for all) unless --include-optimize is given.

    .venv/bin/python benchmarks/ingest.py --pairs 100000 --baseline /tmp/base-ingest --stages
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
COARSE_MODEL, FINE_MODEL = "ViT-B-32:openai", "ViT-L-14:openai"  # only their sizes are used: 512, 768
CORPUS = "bench"


def write_folder(root: Path, pairs: int, partitions: int) -> tuple[Path, Path]:
    from xmore_db.toy.formats import write_embeddings_folder

    sizes = [pairs // partitions + (1 if i < pairs % partitions else 0) for i in range(partitions)]
    folder = write_embeddings_folder(root / "laion", sizes, coarse_dim=512, fine_dim=768,
                                     text_emb_folder=root / "fine", dtype=np.float16)
    return folder, root / "fine"


def workspace(home: Path):
    from xmore_db.config import Settings
    from xmore_db.workspace import Workspace

    home.mkdir(parents=True)
    ws = Workspace(Settings(home=home, coarse_model=COARSE_MODEL, fine_model=FINE_MODEL, caption_cache=False))
    ws.raw_store().init(ws.provenance())
    ws.history.migrate()
    return ws


# -- raw --------------------------------------------------------------------------


def raw_points(folder: Path, fine: Path):
    """Everything the raw upsert needs, in memory: ids, float32 vectors, payloads."""
    import pyarrow.parquet as pq

    from xmore_db.store.types import pair_ids

    ids, captions, keys, images, texts = [], [], [], [], []
    for path in sorted((folder / "img_emb").glob("img_emb_*.npy")):
        part = path.stem.removeprefix("img_emb_")
        image = np.load(path).astype(np.float32)
        images.append(image)
        texts.append(np.load(fine / f"text_emb_{part}.npy").astype(np.float32))
        captions += pq.read_table(folder / "metadata" / f"metadata_{part}.parquet")["caption"].to_pylist()
        part_keys = [f"{part}/{row}" for row in range(len(image))]
        keys += part_keys
        ids += pair_ids(CORPUS, part_keys)
    return ids, captions, keys, np.concatenate(images), np.concatenate(texts)


def run_raw(store_dir: Path, data, flush_rows: int, include_optimize: bool) -> float:
    import qdrant_edge as qe

    from xmore_db.store import Provenance, Storage
    from xmore_db.store.edge import WRITE_CHUNK, _config, engine_rows
    from xmore_db.store.types import COARSE_VECTOR, FINE_VECTOR

    ids, captions, keys, images, texts = data
    provenance = Provenance(COARSE_MODEL, 512, FINE_MODEL, 768)
    shards = {name: qe.EdgeShard.create(str(store_dir / name), _config(name, provenance, Storage()))
              for name in ("images", "texts")}

    def upsert(shard, name, matrix, payload, start, stop):
        for chunk in range(start, stop, WRITE_CHUNK):
            end = min(chunk + WRITE_CHUNK, stop)
            rows = engine_rows(matrix[chunk:end])
            shard.update(qe.UpdateOperation.upsert_points([
                qe.Point(ids[i], {name: rows[i - chunk]}, payload(i)) for i in range(chunk, end)]))
        shard.flush()

    started = time.perf_counter()
    for start in range(0, len(ids), flush_rows):
        stop = min(start + flush_rows, len(ids))
        upsert(shards["texts"], FINE_VECTOR, texts,
               lambda i: {"caption": captions[i], "corpus": CORPUS, "key": keys[i]}, start, stop)
        upsert(shards["images"], COARSE_VECTOR, images, lambda i: {"corpus": CORPUS, "key": keys[i]}, start, stop)
    if include_optimize:
        for shard in shards.values():
            shard.optimize()
    seconds = time.perf_counter() - started
    for shard in shards.values():
        shard.close()
    return seconds


# -- xmore ingest, in a child process importing a given checkout --------------------


def run_child(tree: Path, home: Path, folder: Path, fine: Path, batch: int, include_optimize: bool) -> dict:
    command = [sys.executable, __file__, "--child", str(tree), "--child-home", str(home), "--child-folder",
               str(folder), "--child-fine", str(fine), "--batch", str(batch)]
    done = subprocess.run(command + (["--include-optimize"] if include_optimize else []), cwd=tree,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the ingest in {tree} failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def child(args: argparse.Namespace) -> None:
    """`ingest()` of the checkout at args.child (first on sys.path), timed; its figures as JSON on stdout."""
    sys.path.insert(0, str(args.child))
    import xmore_db
    from xmore_db.ingest import IngestOptions, ingest

    assert Path(xmore_db.__file__).resolve().is_relative_to(args.child.resolve()), xmore_db.__file__
    with workspace(args.child_home) as ws:
        started = time.perf_counter()
        report = ingest(ws, args.child_folder, corpus=CORPUS, text_emb=args.child_fine,
                        options=IngestOptions(write_batch=args.batch, optimize=args.include_optimize))
        seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "ingested": report.ingested}))


# -- stages, one after another ------------------------------------------------------


class Stopwatch:
    """Seconds spent per stage: `with clock("read"): ...` adds to "read"."""

    def __init__(self, *stages: str):
        self.seconds = dict.fromkeys(stages, 0.0)

    @contextlib.contextmanager
    def __call__(self, stage: str):
        started = time.perf_counter()
        yield
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started


def run_stages(home: Path, folder: Path, fine: Path, batch: int, flush_rows: int,
               include_optimize: bool) -> dict[str, float]:
    """Seconds per stage of the ingest of `folder`, each timed alone in this thread, on a fresh store."""
    import qdrant_edge as qe

    from xmore_db.sources import open_source
    from xmore_db.sources.base import caption_problems, vector_problems
    from xmore_db.store.checks import check_batch, text_payloads
    from xmore_db.store.edge import WRITE_CHUNK, engine_rows
    from xmore_db.store.types import COARSE_VECTOR, FINE_VECTOR, PairBatch, pair_ids

    clock = Stopwatch("read", "row checks and id lookups", "store checks and payloads", "points",
                      "engine upsert", "flush")
    with workspace(home) as ws:
        store, provenance = ws.store(), ws.provenance()
        source = open_source(folder, text_emb=fine)
        source.check(provenance.coarse_dim, provenance.fine_dim)
        with clock("read"):
            batches = [b for unit in source.units() for b in source.read(unit, batch)]
        for b in batches:
            with clock("row checks and id lookups"):
                caption_problems(b.captions, 1000)
                vector_problems(b.image_vectors)
                vector_problems(b.text_vectors)
                store.existing_ids(pair_ids(CORPUS, b.keys))
        writes = []  # per batch, per collection: ids, float32 vectors, payloads
        for b in batches:
            with clock("store checks and payloads"):
                pairs = PairBatch(corpus=CORPUS, keys=b.keys, captions=b.captions, image_vectors=b.image_vectors,
                                  text_vectors=b.text_vectors, extras=b.extras)
                ids, images, texts = check_batch(pairs, provenance, store.location)
                writes.append({"texts": (ids, FINE_VECTOR, texts, text_payloads(pairs)),
                               "images": (ids, COARSE_VECTOR, images,
                                          [{"corpus": CORPUS, "key": key} for key in b.keys])})
        shards = {name: store._shard(name) for name in ("images", "texts")}
        for first in range(0, len(writes), max(1, flush_rows // batch)):
            for name in ("texts", "images"):  # as the store writes a group: texts, flush, images, flush
                for ids, vector, matrix, payloads in (w[name] for w in writes[first:first + flush_rows // batch]):
                    for start in range(0, len(ids), WRITE_CHUNK):
                        stop = start + WRITE_CHUNK
                        with clock("points"):
                            points = [qe.Point(pid, {vector: row}, payload) for pid, row, payload in
                                      zip(ids[start:stop], engine_rows(matrix[start:stop]), payloads[start:stop],
                                          strict=True)]
                        with clock("engine upsert"):
                            shards[name].update(qe.UpdateOperation.upsert_points(points))
                with clock("flush"):
                    shards[name].flush()
        if include_optimize:
            with clock("optimize"):
                store.optimize()
    return clock.seconds


# -- main -------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1024, help="rows per read batch (--write-batch)")
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs of each; medians reported")
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout, timed alternately")
    parser.add_argument("--stages", action="store_true", help="then time each stage alone, in this process")
    parser.add_argument("--include-optimize", action="store_true", help="time the final optimize() for all")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder, removed")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    for name in ("--child", "--child-home", "--child-folder", "--child-fine"):
        parser.add_argument(name, type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args)
        return
    sys.path.insert(0, str(ROOT))
    from xmore_db.ingest.writer import DEFAULT_FLUSH_ROWS

    load = os.getloadavg()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"{machine}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start", file=sys.stderr)
    trees = {"xmore": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    root = Path(tempfile.mkdtemp(prefix="xmore-bench-ingest-", dir=args.workdir))
    try:
        started = time.perf_counter()
        folder, fine = write_folder(root, args.pairs, args.partitions)
        print(f"wrote {args.pairs} pairs in {args.partitions} partitions (float16, 512-d images, "
              f"768-d captions) in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        data = raw_points(folder, fine)
        runs: dict[str, list[float]] = {"raw": [], **{name: [] for name in trees}}
        for i in range(args.repeat):
            order = list(trees.items()) if i % 2 == 0 else list(trees.items())[::-1]
            runs["raw"].append(run_raw(root / f"raw-{i}", data, DEFAULT_FLUSH_ROWS, args.include_optimize))
            shutil.rmtree(root / f"raw-{i}")
            for name, tree in order:
                figures = run_child(tree, root / f"{name}-{i}", folder, fine, args.batch, args.include_optimize)
                assert figures["ingested"] == args.pairs, f"{name} ingested {figures['ingested']} of {args.pairs}"
                runs[name].append(figures["seconds"])
                shutil.rmtree(root / f"{name}-{i}")
            print(f"run {i + 1}: " + ", ".join(f"{name} {args.pairs / times[-1]:.0f} pairs/s"
                                               for name, times in runs.items()), file=sys.stderr)
        rates = {name: args.pairs / statistics.median(times) for name, times in runs.items()}
        stages = (run_stages(root / "stages", folder, fine, args.batch, DEFAULT_FLUSH_ROWS, args.include_optimize)
                  if args.stages else None)
        load_after = os.getloadavg()
        print(f"raw Qdrant Edge upsert: {rates['raw']:.0f} pairs/s")
        print(f"xmore ingest:           {rates['xmore']:.0f} pairs/s ({rates['xmore'] / rates['raw']:.2f} of raw)")
        if args.baseline:
            ratios = [b / x for x, b in zip(runs["xmore"], runs["baseline"], strict=True)]
            print(f"baseline ingest:        {rates['baseline']:.0f} pairs/s ({args.baseline}); xmore/baseline "
                  f"{statistics.median(ratios):.2f} (median of {', '.join(f'{r:.2f}' for r in ratios)})")
        if stages:
            print(f"by stage, each alone, {args.pairs} pairs (seconds, pairs/s):")
            for stage, spent in stages.items():
                print(f"  {stage:28s} {spent:7.2f} s  {args.pairs / spent if spent else float('inf'):9.0f}")
        print(f"load average {load[0]:.2f} at the start, {load_after[0]:.2f} at the end; {machine}")
        if args.json:
            args.json.write_text(json.dumps({
                "pairs": args.pairs, "partitions": args.partitions, "batch": args.batch, "repeat": args.repeat,
                "include_optimize": args.include_optimize, "seconds": runs, "stages": stages,
                "pairs_per_second": {name: round(rate, 1) for name, rate in rates.items()},
                "load_average": [load, load_after], "machine": machine,
            }, indent=2) + "\n")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
