"""Two-stage retrieval (coarse K=128, fine k=16): Qdrant Edge vs exact numpy vs qdrant-client local mode.

Synthetic embeddings shaped like CLIP's: points gathered in many clusters
(two levels: topics and sub-topics) on the sphere, not uniform noise (on which
HNSW is unrealistically bad). Every figure comes from one run on one machine.

    .venv/bin/python benchmarks/retrieval.py --pairs 100000
    .venv/bin/python benchmarks/retrieval.py --pairs 1000000 --json out.json

Reports p50/p95 per-query latency, batch throughput, coarse recall@128 against
the exact top-128, and whether the fine stage returns exactly numpy's top-16
among the coarse candidates. Then `xmore search`'s store path (the top 20 of
`images` for one query vector, their payloads read from `texts`; the encoder's
time is not in it), plain and with the `--corpus` filter, with recall@20.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xmore_db.retrieval import describe, retrieve  # noqa: E402
from xmore_db.store import PairBatch, Provenance  # noqa: E402
from xmore_db.store.base import pair_id  # noqa: E402

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


def make_data(n: int, queries: int, coarse_dim: int, fine_dim: int, seed: int):
    rng = np.random.default_rng(seed)
    subtopics = max(16, n // 200)
    images = ClusteredSphere(coarse_dim, max(8, subtopics // 20), subtopics, rng)
    texts = ClusteredSphere(fine_dim, max(8, subtopics // 20), subtopics, rng)
    cluster = rng.integers(0, subtopics, n)
    X = np.empty((n, coarse_dim), np.float32)
    T = np.empty((n, fine_dim), np.float32)
    for start in range(0, n, 65536):
        part = cluster[start:start + 65536]
        X[start:start + len(part)] = images.sample(part)
        T[start:start + len(part)] = texts.sample(part)
    q_cluster = rng.integers(0, subtopics, queries)
    return X, T, images.sample(q_cluster), texts.sample(q_cluster)


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


def measure(name, single, batched, n_queries, batch):
    single(0)  # warm up
    per_query = timed_per_query(single, n_queries)
    batches = max(1, n_queries // batch)
    start = time.perf_counter()
    for b in range(batches):
        batched(b)
    throughput = batches * batch / (time.perf_counter() - start)
    return {"name": name, "p50_ms": float(np.percentile(per_query, 50) * 1e3),
            "p95_ms": float(np.percentile(per_query, 95) * 1e3), "batch_qps": float(throughput)}


def store_runner(store, Qc, Qf, K, k, batch, ef=None):
    def single(i):
        return retrieve(store, Qc[i:i + 1], Qf[i:i + 1], coarse_k=K, fine_k=k, hnsw_ef=ef)

    def batched(b):
        s = slice(b * batch, (b + 1) * batch)
        return retrieve(store, Qc[s], Qf[s], coarse_k=K, fine_k=k, hnsw_ef=ef)

    return single, batched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--coarse-dim", type=int, default=512, help="ViT-B/32 image embeddings")
    parser.add_argument("--fine-dim", type=int, default=768, help="ViT-L/14 text embeddings")
    parser.add_argument("-K", type=int, default=128)
    parser.add_argument("-k", type=int, default=16)
    parser.add_argument("--ef", default="default,256,512", help="coarse hnsw_ef values to sweep (comma list)")
    parser.add_argument("--local-max", type=int, default=20_000, help="largest N for qdrant-client local mode")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the Edge store here; a later run with the same --pairs and --seed reuses it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from xmore_db.store.edge import EdgeStore

    K, k, n = args.K, args.k, args.pairs
    print(f"generating {n} clustered pairs ({args.coarse_dim}-d images, {args.fine_dim}-d texts)", file=sys.stderr)
    X, T, Qc, Qf = make_data(n, args.queries, args.coarse_dim, args.fine_dim, args.seed)
    provenance = Provenance(coarse_model="synthetic", coarse_dim=args.coarse_dim,
                            fine_model="synthetic", fine_dim=args.fine_dim)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="xmore-bench-"))
    report: dict = {"pairs": n, "queries": args.queries, "batch": args.batch, "K": K, "k": k,
                    "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
                               f"{__import__('os').cpu_count()} cores"}
    rows = []
    try:
        edge = EdgeStore(workdir / "edge")
        edge.init(provenance)
        if edge.counts()["images"] == n:  # a store kept by --workdir, from the same seed and size
            print(f"reusing the loaded store in {workdir}", file=sys.stderr)
            report["edge_load_seconds"] = None
        else:
            print("loading Qdrant Edge (upsert + optimize)", file=sys.stderr)
            report["edge_load_seconds"] = load(edge, X, T)
        def np_single(i):
            return exact_two_stage(X, T, Qc[i:i + 1], Qf[i:i + 1], K, k)

        def np_batched(b):
            s = slice(b * args.batch, (b + 1) * args.batch)
            return exact_two_stage(X, T, Qc[s], Qf[s], K, k)

        rows.append(measure("numpy-exact", np_single, np_batched, args.queries, args.batch))

        # Quality: coarse recall@K against the exact top-K; fine exactness among the engine's candidates.
        exact_coarse, _ = exact_two_stage(X, T, Qc, Qf, K, k)
        index = {pair_id(CORPUS, str(i)): i for i in range(n)}
        for ef_text in args.ef.split(","):
            ef = None if ef_text.strip() == "default" else int(ef_text)
            row = measure(f"qdrant-edge, hnsw_ef={ef or 'default'}",
                          *store_runner(edge, Qc, Qf, K, k, args.batch, ef), args.queries, args.batch)
            got = retrieve(edge, Qc, Qf, coarse_k=K, fine_k=k, hnsw_ef=ef)
            recalls, fine_exact = [], 0
            for q, result in enumerate(got):
                coarse_rows = np.array([index[h.pair_id] for h in result.coarse])
                recalls.append(len(set(coarse_rows) & set(exact_coarse[q])) / K)
                fine_sims = T[coarse_rows] @ Qf[q]
                expected = [int(coarse_rows[j]) for j in np.argsort(-fine_sims)[:k]]
                fine_exact += [index[h.pair_id] for h in result.captions] == expected
            row["coarse_recall_at_K"] = float(np.mean(recalls))
            row["fine_exact_fraction"] = fine_exact / len(got)
            rows.append(row)
        search_rows = []
        exact_top = np.argsort(-(Qc @ X.T), axis=1)[:, :SEARCH_N]
        for label, corpora in (("search n=20", None), ("search n=20, --corpus filter", [CORPUS])):
            def one(i, corpora=corpora):
                hits = edge.coarse_search(Qc[i:i + 1], limit=SEARCH_N, hnsw_ef=2048, corpora=corpora)[0]
                return describe(edge, hits)
            edge.coarse_search(Qc[:1], limit=SEARCH_N, hnsw_ef=2048, corpora=corpora)  # warm up
            times = timed_per_query(one, args.queries)
            recall = np.mean([len({index[h.pair_id] for h in one(q)} & set(exact_top[q])) / SEARCH_N
                              for q in range(args.queries)])
            search_rows.append({"name": label, "p50_ms": float(np.percentile(times, 50) * 1e3),
                                "p95_ms": float(np.percentile(times, 95) * 1e3), "recall_at_20": float(recall)})
        report["search"] = search_rows
        edge.close()

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

    numpy_row = next(r for r in rows if r["name"] == "numpy-exact")
    for r in rows:
        r["speedup_p50_vs_numpy"] = numpy_row["p50_ms"] / r["p50_ms"]
        r["speedup_batch_vs_numpy"] = r["batch_qps"] / numpy_row["batch_qps"]
    report["rows"] = rows
    print(f"\nTwo-stage retrieval, N={n}, K={K}, k={k}, {args.queries} queries, "
          f"batch {args.batch}; {report['machine']}")
    print(f"| backend | p50 ms | p95 ms | batch q/s | p50 speed-up vs numpy | batch speed-up vs numpy | "
          f"coarse recall@{K} | fine = exact top-{k} |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        recall = f"{r['coarse_recall_at_K']:.4f}" if "coarse_recall_at_K" in r else "1 (exact)"
        fine = f"{r['fine_exact_fraction']:.0%}" if "fine_exact_fraction" in r else "100%"
        print(f"| {r['name']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['batch_qps']:.0f} | "
              f"{r['speedup_p50_vs_numpy']:.1f}x | {r['speedup_batch_vs_numpy']:.1f}x | {recall} | {fine} |")
    print(f"\nSearch (xmore search's store path: top {SEARCH_N} of images + their texts payloads)")
    print(f"| query | p50 ms | p95 ms | recall@{SEARCH_N} |")
    print("|---|---|---|---|")
    for r in report["search"]:
        print(f"| {r['name']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['recall_at_20']:.4f} |")
    if report["edge_load_seconds"] is not None:
        print(f"Edge load (upsert + optimize): {report['edge_load_seconds']:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
