"""Two-stage retrieval (coarse K=128, fine k=16): Qdrant Edge vs exact numpy vs qdrant-client local mode.

Synthetic embeddings shaped like CLIP's: points gathered in many clusters
(two levels: topics and sub-topics) on the sphere, not uniform noise (on which
HNSW is unrealistically bad). Every figure comes from one run on one machine,
with the 1-minute load average when its measurement started (MEASURING.md:
numpy's product suffers more from load than the single-threaded engine).

    .venv/bin/python benchmarks/retrieval.py --pairs 100000
    .venv/bin/python benchmarks/retrieval.py --pairs 100000 --profile exact,compact,tiny --workdir /tmp/r100k
    .venv/bin/python benchmarks/retrieval.py --pairs 1000000 --json out.json

Reports p50/p95 per-query latency, batch throughput, coarse recall@128 against
the exact top-128, and whether the fine stage returns exactly numpy's top-16
among the coarse candidates, per storage profile and beam (`--ef`: `calibrated`
is the beam the store measured for XMORE_RECALL_TARGET at the end of its load, as
`xmore ingest` does; a number is an explicit XMORE_HNSW_EF). The row `… N threads`
runs the same batches split over the machine's cores, one Python thread each:
Qdrant Edge holds the GIL while it searches, so it shows what threads would gain.
Then `xmore search`'s store path (the top 20 of `images` for one query vector,
their payloads read from `texts`; the encoder's time is not in it), plain and with
the `--corpus` filter, with recall@20.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xmore_db.retrieval import describe, retrieve  # noqa: E402
from xmore_db.store import PairBatch, Provenance  # noqa: E402
from xmore_db.store.types import pair_ids  # noqa: E402

CORPUS = "bench"
WRITE_BATCH = 4096
SEARCH_N = 20


def normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class ClusteredSphere:
    """Points near sub-topic centres, which sit near topic centres (cosine ~0.8 to their centre)."""

    def __init__(self, dim: int, topics: int, subtopics: int, rng: np.random.Generator):
        self.dim, self.rng = dim, rng
        topic = normalise(rng.standard_normal((topics, dim)))
        parent = rng.integers(0, topics, subtopics)
        self.centres = normalise(topic[parent] + 0.9 / np.sqrt(dim) * rng.standard_normal((subtopics, dim)))

    def sample(self, cluster: np.ndarray) -> np.ndarray:
        noise = self.rng.standard_normal((len(cluster), self.dim)).astype(np.float32)
        return normalise(self.centres[cluster] + 0.75 / np.sqrt(self.dim) * noise)


class ClusteredPairs:
    """`n` pairs (N/200 sub-topics), made chunk by chunk so that a million need not be held at once
    (benchmarks/scale.py writes them to disk); queries() after all chunks, from the same sub-topics."""

    CHUNK = 65536

    def __init__(self, n: int, coarse_dim: int, fine_dim: int, seed: int):
        self.rng = np.random.default_rng(seed)
        self.n, self.subtopics = n, max(16, n // 200)
        self.images = ClusteredSphere(coarse_dim, max(8, self.subtopics // 20), self.subtopics, self.rng)
        self.texts = ClusteredSphere(fine_dim, max(8, self.subtopics // 20), self.subtopics, self.rng)
        self.cluster = self.rng.integers(0, self.subtopics, n)

    def chunks(self):
        """(start, image rows, text rows), in order."""
        for start in range(0, self.n, self.CHUNK):
            part = self.cluster[start:start + self.CHUNK]
            yield start, self.images.sample(part), self.texts.sample(part)

    def queries(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        q_cluster = self.rng.integers(0, self.subtopics, count)
        return self.images.sample(q_cluster), self.texts.sample(q_cluster)


def make_data(n: int, queries: int, coarse_dim: int, fine_dim: int, seed: int):
    pairs = ClusteredPairs(n, coarse_dim, fine_dim, seed)
    X = np.empty((n, coarse_dim), np.float32)
    T = np.empty((n, fine_dim), np.float32)
    for start, images, texts in pairs.chunks():
        X[start:start + len(images)] = images
        T[start:start + len(texts)] = texts
    return (X, T, *pairs.queries(queries))


def load(store, X: np.ndarray, T: np.ndarray) -> float:
    started = time.perf_counter()
    for start in range(0, len(X), WRITE_BATCH):
        stop = min(start + WRITE_BATCH, len(X))
        keys = [str(i) for i in range(start, stop)]
        store.upsert_pairs(PairBatch(corpus=CORPUS, keys=keys, captions=[f"caption {k}" for k in keys],
                                     image_vectors=X[start:stop], text_vectors=T[start:stop]))
    store.optimize()
    return time.perf_counter() - started


def exact_two_stage(X, T, Qc, Qf, K, k):
    """numpy brute force: exact top-K images, then exact top-k captions among them."""
    sims = Qc @ X.T
    top = np.argpartition(-sims, K - 1, axis=1)[:, :K]
    order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
    coarse = np.take_along_axis(top, order, axis=1)
    fine_sims = np.einsum("bkd,bd->bk", T[coarse], Qf)
    fine = np.take_along_axis(coarse, np.argsort(-fine_sims, axis=1)[:, :k], axis=1)
    return coarse, fine


def timed_per_query(fn, n: int) -> np.ndarray:
    times = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return np.array(times)


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def measure(name, single, batched, n_queries, batch):
    single(0)  # warm up
    load = load_average()
    per_query = timed_per_query(single, n_queries)
    batches = max(1, n_queries // batch)
    start = time.perf_counter()
    for b in range(batches):
        batched(b)
    throughput = batches * batch / (time.perf_counter() - start)
    return {"name": name, "p50_ms": float(np.percentile(per_query, 50) * 1e3),
            "p95_ms": float(np.percentile(per_query, 95) * 1e3), "batch_qps": float(throughput), "load": load}


def store_runner(store, Qc, Qf, K, k, batch, ef=None):
    def single(i):
        return retrieve(store, Qc[i:i + 1], Qf[i:i + 1], coarse_k=K, fine_k=k, hnsw_ef=ef)

    def batched(b):
        s = slice(b * batch, (b + 1) * batch)
        return retrieve(store, Qc[s], Qf[s], coarse_k=K, fine_k=k, hnsw_ef=ef)

    return single, batched


def threaded_batches(store, Qc, Qf, K, k, batch, ef, n_queries, threads):
    """Batch throughput with each batch split over `threads` Python threads (results kept in order)."""
    pool = ThreadPoolExecutor(threads)
    parts = np.array_split(np.arange(batch), threads)

    def batched(b):
        rows = [b * batch + part for part in parts if len(part)]
        return [hit for got in pool.map(lambda r: retrieve(store, Qc[r], Qf[r], coarse_k=K, fine_k=k, hnsw_ef=ef),
                                        rows) for hit in got]

    batched(0)
    load = load_average()
    batches = max(1, n_queries // batch)
    start = time.perf_counter()
    for b in range(batches):
        batched(b)
    pool.shutdown()
    return batches * batch / (time.perf_counter() - start), load


def quality(store, Qc, Qf, K, k, ef, exact_coarse, T, index):
    """Coarse recall@K against the exact top-K; the share of queries whose fine top-k is numpy's among the
    engine's candidates, and the share whose every caption is within float16's precision (2e-3) of numpy's
    k-th best (a compact or tiny store keeps float16 captions: near-ties may swap)."""
    got = retrieve(store, Qc, Qf, coarse_k=K, fine_k=k, hnsw_ef=ef)
    recalls, fine_exact, fine_within = [], 0, 0
    for q, result in enumerate(got):
        coarse_rows = np.array([index[h.pair_id] for h in result.coarse])
        recalls.append(len(set(coarse_rows) & set(exact_coarse[q])) / K)
        fine_sims = T[coarse_rows] @ Qf[q]
        expected = [int(coarse_rows[j]) for j in np.argsort(-fine_sims)[:k]]
        found = [index[h.pair_id] for h in result.captions]
        fine_exact += found == expected
        sims = dict(zip(coarse_rows.tolist(), fine_sims.tolist(), strict=True))
        fine_within += min(sims[row] for row in found) >= np.sort(fine_sims)[-k] - 2e-3
    return float(np.mean(recalls)), fine_exact / len(got), fine_within / len(got)


def open_edge(path: Path, profile: str, provenance, X, T):
    """The Edge store of `profile` at `path`, loaded (or reused when it holds this many pairs) and calibrated."""
    from xmore_db.store.edge import EdgeStore
    from xmore_db.store.storage import StorageRequest

    edge = EdgeStore(path, storage=StorageRequest(profile=profile))
    edge.init(provenance)
    if edge.counts()["images"] == len(X):  # a store kept by --workdir, from the same seed and size
        print(f"reusing the loaded {profile} store in {path}", file=sys.stderr)
        edge.optimize()  # measures the beam if the store has no current calibration
        return edge, None
    print(f"loading Qdrant Edge, profile {profile} (upsert + optimize)", file=sys.stderr)
    return edge, load(edge, X, T)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--coarse-dim", type=int, default=512, help="ViT-B/32 image embeddings")
    parser.add_argument("--fine-dim", type=int, default=768, help="ViT-L/14 text embeddings")
    parser.add_argument("-K", type=int, default=128)
    parser.add_argument("-k", type=int, default=16)
    parser.add_argument("--ef", default="calibrated,2048",
                        help="coarse beams to sweep (comma list): `calibrated` (the store's, for the recall "
                             "target) or numbers")
    parser.add_argument("--profile", default="exact", help="storage profiles to build and measure (comma list)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads of the split-batch row (0: no such row)")
    parser.add_argument("--local-max", type=int, default=20_000, help="largest N for qdrant-client local mode")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the Edge stores here; a later run with the same --pairs and --seed reuses them")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    K, k, n = args.K, args.k, args.pairs
    print(f"generating {n} clustered pairs ({args.coarse_dim}-d images, {args.fine_dim}-d texts)", file=sys.stderr)
    X, T, Qc, Qf = make_data(n, args.queries, args.coarse_dim, args.fine_dim, args.seed)
    provenance = Provenance(coarse_model="synthetic", coarse_dim=args.coarse_dim,
                            fine_model="synthetic", fine_dim=args.fine_dim)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="xmore-bench-"))
    report: dict = {"pairs": n, "queries": args.queries, "batch": args.batch, "K": K, "k": k,
                    "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {os.cpu_count()} cores",
                    "load_at_start": load_average(), "edge_load_seconds": {}, "calibration": {}}
    rows = []
    try:
        def np_single(i):
            return exact_two_stage(X, T, Qc[i:i + 1], Qf[i:i + 1], K, k)

        def np_batched(b):
            s = slice(b * args.batch, (b + 1) * args.batch)
            return exact_two_stage(X, T, Qc[s], Qf[s], K, k)

        exact_coarse, _ = exact_two_stage(X, T, Qc, Qf, K, k)
        index = {pid: i for i, pid in enumerate(pair_ids(CORPUS, [str(i) for i in range(n)]))}
        search_rows = []
        exact_top = np.argsort(-(Qc @ X.T), axis=1)[:, :SEARCH_N]
        for profile in args.profile.split(","):
            edge, seconds = open_edge(workdir / f"edge-{profile}" if profile != "exact" else workdir / "edge",
                                      profile, provenance, X, T)
            report["edge_load_seconds"][profile] = seconds
            calibration = edge.beam_calibration()
            report["calibration"][profile] = calibration.to_record() if calibration else None
            rows.append(measure("numpy-exact", np_single, np_batched, args.queries, args.batch))
            for ef_text in args.ef.split(","):
                ef = None if ef_text.strip() == "calibrated" else int(ef_text)
                label = f"qdrant-edge {profile}, hnsw_ef={edge.search_beam(K, ef)}" + (" (calibrated)" if ef is None
                                                                                        else "")
                row = measure(label, *store_runner(edge, Qc, Qf, K, k, args.batch, ef), args.queries, args.batch)
                row["coarse_recall_at_K"], row["fine_exact_fraction"], row["fine_within_float16"] = quality(
                    edge, Qc, Qf, K, k, ef, exact_coarse, T, index)
                rows.append(row)
                if ef is None and args.threads > 1:
                    qps, load = threaded_batches(edge, Qc, Qf, K, k, args.batch, ef, args.queries, args.threads)
                    rows.append({**row, "name": f"{label}, batches split over {args.threads} threads",
                                 "p50_ms": None, "p95_ms": None, "batch_qps": qps, "load": load})
            for label, corpora in ((f"{profile}: search n=20", None), (f"{profile}: search n=20, --corpus filter",
                                                                        [CORPUS])):
                def one(i, corpora=corpora, edge=edge):
                    hits = edge.coarse_search(Qc[i:i + 1], limit=SEARCH_N, corpora=corpora)[0]
                    return describe(edge, hits)
                one(0)  # warm up
                load = load_average()
                times = timed_per_query(one, args.queries)
                recall = np.mean([len({index[h.pair_id] for h in one(q)} & set(exact_top[q])) / SEARCH_N
                                  for q in range(args.queries)])
                search_rows.append({"name": label, "p50_ms": float(np.percentile(times, 50) * 1e3),
                                    "p95_ms": float(np.percentile(times, 95) * 1e3), "recall_at_20": float(recall),
                                    "hnsw_ef": edge.search_beam(SEARCH_N), "load": load})
            edge.close()
        report["search"] = search_rows

        if n <= args.local_max:
            from qdrant_client import QdrantClient

            from xmore_db.store.server import ServerStore

            print("loading qdrant-client local mode", file=sys.stderr)
            local = ServerStore(QdrantClient(":memory:"), location=":memory:")
            local.init(provenance)
            report["local_load_seconds"] = load(local, X, T)
            rows.append(measure("qdrant-client-local", *store_runner(local, Qc, Qf, K, k, args.batch),
                                min(args.queries, 50), args.batch))
            local.close()
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    # Each engine row against the numpy row measured just before its profile's rows (the nearest in time).
    numpy_row = None
    for r in rows:
        if r["name"] == "numpy-exact":
            numpy_row = r
        r["speedup_p50_vs_numpy"] = numpy_row["p50_ms"] / r["p50_ms"] if r["p50_ms"] else None
        r["speedup_batch_vs_numpy"] = r["batch_qps"] / numpy_row["batch_qps"]
    report["rows"] = rows
    report["load_at_end"] = load_average()
    print(f"\nTwo-stage retrieval, N={n}, K={K}, k={k}, {args.queries} queries, batch {args.batch}; "
          f"{report['machine']}; 1-minute load average {report['load_at_start']} at the start, "
          f"{report['load_at_end']} at the end")
    print(f"| backend | load | p50 ms | p95 ms | batch q/s | p50 speed-up vs numpy | batch speed-up vs numpy | "
          f"coarse recall@{K} | fine = exact top-{k} |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        recall = f"{r['coarse_recall_at_K']:.4f}" if "coarse_recall_at_K" in r else "1 (exact)"
        fine = f"{r['fine_exact_fraction']:.0%}" if "fine_exact_fraction" in r else "100%"
        if r.get("fine_within_float16", 1) != r.get("fine_exact_fraction", 1):
            fine += f" ({r['fine_within_float16']:.0%} within 2e-3)"
        p50 = f"{r['p50_ms']:.2f}" if r["p50_ms"] else "-"
        p95 = f"{r['p95_ms']:.2f}" if r["p95_ms"] else "-"
        speed = f"{r['speedup_p50_vs_numpy']:.1f}x" if r["speedup_p50_vs_numpy"] else "-"
        print(f"| {r['name']} | {r['load']:.1f} | {p50} | {p95} | {r['batch_qps']:.0f} | {speed} | "
              f"{r['speedup_batch_vs_numpy']:.1f}x | {recall} | {fine} |")
    print(f"\nSearch (xmore search's store path: top {SEARCH_N} of images + their texts payloads, calibrated beam)")
    print(f"| query | load | hnsw_ef | p50 ms | p95 ms | recall@{SEARCH_N} |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in report["search"]:
        print(f"| {r['name']} | {r['load']:.1f} | {r['hnsw_ef']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
              f"{r['recall_at_20']:.4f} |")
    for profile, calibration in report["calibration"].items():
        if calibration:
            curve = ", ".join(f"{beam}: {recall:.4f}" for beam, recall in calibration["recall"].items())
            print(f"{profile}: beam calibration ({calibration['probes']} probes, {calibration['seconds']:.1f} s): "
                  f"recall@{calibration['limit']} at hnsw_ef {curve}")
    for profile, seconds in report["edge_load_seconds"].items():
        if seconds is not None:
            print(f"{profile}: Edge load (upsert + optimize, with the beam calibration): {seconds:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
