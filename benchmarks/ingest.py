"""Embedded ingestion of precomputed embeddings: `xmore ingest` against a raw Qdrant Edge upsert.

Writes a synthetic clip-retrieval folder (img_emb/ float16 512-d like ViT-B/32,
metadata/ parquet with captions) and a second folder of 768-d caption embeddings
(ViT-L/14-sized) given as --text-emb, so no model runs. Then, alternating, on
fresh stores:

- raw: two EdgeShards configured as the embedded store's, the same points (ids,
  float32 vectors, payloads, all prepared in memory before the clock starts)
  upserted in the same batches and 512-point chunks (rows converted with
  tolist(), as the store does), texts then images, each batch flushed: what the
  store's write does, minus its checks;
- xmore: `ingest()`, the code path of `xmore ingest`, from the files: memory-mapped
  reads, parquet captions, row checks, pair ids, the unit ledger (SQLite), the
  writer thread.

Neither includes the final optimize() (the HNSW build, the same engine call on
the same points for both) unless --include-optimize is given.

    .venv/bin/python benchmarks/ingest.py --pairs 100000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xmore_db.config import Settings  # noqa: E402
from xmore_db.ingest import IngestOptions, ingest  # noqa: E402
from xmore_db.store import Provenance, pair_id  # noqa: E402
from xmore_db.store.base import COARSE_VECTOR, FINE_VECTOR  # noqa: E402
from xmore_db.store.edge import WRITE_CHUNK, _config  # noqa: E402
from xmore_db.toy.formats import write_embeddings_folder  # noqa: E402
from xmore_db.workspace import Workspace  # noqa: E402

COARSE_MODEL, FINE_MODEL = "ViT-B-32:openai", "ViT-L-14:openai"  # only their sizes are used: 512, 768
CORPUS = "bench"


def write_folder(root: Path, pairs: int, partitions: int) -> tuple[Path, Path]:
    sizes = [pairs // partitions + (1 if i < pairs % partitions else 0) for i in range(partitions)]
    folder = write_embeddings_folder(root / "laion", sizes, coarse_dim=512, fine_dim=768,
                                     text_emb_folder=root / "fine", dtype=np.float16)
    return folder, root / "fine"


def raw_points(folder: Path, fine: Path):
    """Everything the raw upsert needs, in memory: ids, float32 vectors, payloads."""
    import pyarrow.parquet as pq

    ids, captions, keys, images, texts = [], [], [], [], []
    for path in sorted((folder / "img_emb").glob("img_emb_*.npy")):
        part = path.stem.removeprefix("img_emb_")
        image = np.load(path).astype(np.float32)
        images.append(image)
        texts.append(np.load(fine / f"text_emb_{part}.npy").astype(np.float32))
        captions += pq.read_table(folder / "metadata" / f"metadata_{part}.parquet")["caption"].to_pylist()
        part_keys = [f"{part}/{row}" for row in range(len(image))]
        keys += part_keys
        ids += [pair_id(CORPUS, key) for key in part_keys]
    return ids, captions, keys, np.concatenate(images), np.concatenate(texts)


def run_raw(store_dir: Path, data, batch: int, include_optimize: bool) -> float:
    import qdrant_edge as qe

    ids, captions, keys, images, texts = data
    provenance = Provenance(COARSE_MODEL, 512, FINE_MODEL, 768)
    shards = {name: qe.EdgeShard.create(str(store_dir / name), _config(name, provenance))
              for name in ("images", "texts")}
    started = time.perf_counter()
    for start in range(0, len(ids), batch):
        stop = min(start + batch, len(ids))
        for chunk in range(start, stop, WRITE_CHUNK):
            end = min(chunk + WRITE_CHUNK, stop)
            rows = texts[chunk:end].tolist()  # the same conversion as the store's
            shards["texts"].update(qe.UpdateOperation.upsert_points([
                qe.Point(ids[i], {FINE_VECTOR: rows[i - chunk]},
                         {"caption": captions[i], "corpus": CORPUS, "key": keys[i]})
                for i in range(chunk, end)]))
        shards["texts"].flush()
        for chunk in range(start, stop, WRITE_CHUNK):
            end = min(chunk + WRITE_CHUNK, stop)
            rows = images[chunk:end].tolist()
            shards["images"].update(qe.UpdateOperation.upsert_points([
                qe.Point(ids[i], {COARSE_VECTOR: rows[i - chunk]}, {"corpus": CORPUS, "key": keys[i]})
                for i in range(chunk, end)]))
        shards["images"].flush()
    if include_optimize:
        for shard in shards.values():
            shard.optimize()
    seconds = time.perf_counter() - started
    for shard in shards.values():
        shard.close()
    return seconds


def run_xmore(home: Path, folder: Path, fine: Path, batch: int, include_optimize: bool) -> tuple[float, int]:
    settings = Settings(home=home, coarse_model=COARSE_MODEL, fine_model=FINE_MODEL)
    home.mkdir(parents=True)
    with Workspace(settings) as ws:
        ws.raw_store().init(ws.provenance())
        ws.history.migrate()
        started = time.perf_counter()
        report = ingest(ws, folder, corpus=CORPUS, text_emb=fine,
                        options=IngestOptions(write_batch=batch, optimize=include_optimize))
        seconds = time.perf_counter() - started
    return seconds, report.ingested


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1024, help="rows per upsert batch, for both")
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs of each; medians reported")
    parser.add_argument("--include-optimize", action="store_true", help="time the final optimize() for both")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder, removed")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="xmore-bench-ingest-", dir=args.workdir))
    try:
        started = time.perf_counter()
        folder, fine = write_folder(root, args.pairs, args.partitions)
        print(f"wrote {args.pairs} pairs in {args.partitions} partitions (float16, 512-d images, "
              f"768-d captions) in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        data = raw_points(folder, fine)
        raw, ours = [], []
        for i in range(args.repeat):
            raw.append(run_raw(root / f"raw-{i}", data, args.batch, args.include_optimize))
            seconds, ingested = run_xmore(root / f"xmore-{i}", folder, fine, args.batch, args.include_optimize)
            assert ingested == args.pairs, f"ingested {ingested} of {args.pairs}"
            ours.append(seconds)
            print(f"run {i + 1}: raw {args.pairs / raw[-1]:.0f} pairs/s, xmore ingest "
                  f"{args.pairs / ours[-1]:.0f} pairs/s", file=sys.stderr)
            shutil.rmtree(root / f"raw-{i}")
            shutil.rmtree(root / f"xmore-{i}")
        raw_rate = args.pairs / statistics.median(raw)
        our_rate = args.pairs / statistics.median(ours)
        figures = {
            "pairs": args.pairs, "partitions": args.partitions, "batch": args.batch, "repeat": args.repeat,
            "include_optimize": args.include_optimize,
            "raw_pairs_per_second": round(raw_rate, 1), "xmore_pairs_per_second": round(our_rate, 1),
            "ratio": round(our_rate / raw_rate, 3),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        }
        print(f"raw Qdrant Edge upsert: {raw_rate:.0f} pairs/s")
        print(f"xmore ingest:           {our_rate:.0f} pairs/s")
        print(f"ratio:                  {our_rate / raw_rate:.2f}")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
