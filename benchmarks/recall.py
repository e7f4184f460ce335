"""Coarse recall@128 of the stores benchmarks/scale.py built, for many fresh queries, with its uncertainty.

scale.py measures recall with 200 queries: about ±0.004 (95 %), as wide as the gap between
a beam that reaches XMORE_RECALL_TARGET and one that just misses it. This draws `--queries`
new queries from the same clustered generator (regenerated from the seed: the same
sub-topics, queries never stored), takes numpy's exact top-128 over the stored float32
images, and searches each store at its calibrated beam and at the beams given (`--ef`):
mean recall, its 95 % interval (mean ± 1.96 standard errors over queries), the share of
queries below 0.9, and the store's own calibration (its 200 stored-vector probes) at the
same beam, to compare.

    .venv/bin/python benchmarks/recall.py --pairs 1000000 --workdir /work/scale --queries 1000 --ef 2048,4096
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from retrieval import CORPUS, ClusteredPairs  # noqa: E402
from scale import COARSE_DIM, FINE_DIM, PROFILES, K, data_dir, exact_top, provenance  # noqa: E402

from xmore_db.store.beam import BeamTarget  # noqa: E402
from xmore_db.store.edge import EdgeStore  # noqa: E402
from xmore_db.store.types import pair_ids  # noqa: E402

BATCH = 100


def fresh_queries(n: int, count: int, seed: int) -> np.ndarray:
    """`count` image queries from the generator that made the `n` stored pairs (its state after them)."""
    pairs = ClusteredPairs(n, COARSE_DIM, FINE_DIM, seed)
    for _ in pairs.chunks():  # the stored pairs' draws, replayed so the queries come after them
        pass
    return pairs.queries(count)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, required=True)
    parser.add_argument("--workdir", type=Path, required=True, help="scale.py's: the data and the stores")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--profiles", default=",".join(PROFILES))
    parser.add_argument("--ef", default="", help="beams to try besides the calibrated one (comma list)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = data_dir(args.workdir, args.pairs, args.seed)
    print(f"load average {os.getloadavg()[0]:.2f}; {args.queries} fresh queries over {args.pairs:,} pairs",
          file=sys.stderr)
    Q = fresh_queries(args.pairs, args.queries, args.seed)
    started = time.perf_counter()
    exact = exact_top(np.load(data / "X.npy", mmap_mode="r"), Q, K)
    print(f"exact top-{K} by numpy in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    row_of = {pid: i for i, pid in enumerate(pair_ids(CORPUS, [str(i) for i in range(args.pairs)]))}
    extra = [int(b) for b in args.ef.split(",") if b.strip()]

    print(f"\n| profile | hnsw_ef | coarse recall@{K}, {args.queries} fresh queries | 95 % interval | "
          "queries below 0.9 | calibration's probes at this beam |")
    print("|---|---:|---:|---:|---:|---:|")
    for profile in args.profiles.split(","):
        store = EdgeStore(args.workdir / f"{profile}-{args.pairs}", beam=BeamTarget(limit=K))
        store.open(provenance())
        calibration = store.beam_calibration()
        for ef in (None, *extra):
            shares = []
            for start in range(0, len(Q), BATCH):
                hits = store.coarse_search(Q[start:start + BATCH], limit=K, hnsw_ef=ef)
                for q, found in enumerate(hits, start):
                    shares.append(len({row_of[h.pair_id] for h in found} & set(exact[q].tolist())) / K)
            shares = np.array(shares)
            mean, half = shares.mean(), 1.96 * shares.std(ddof=1) / np.sqrt(len(shares))
            beam = store.search_beam(K, ef)
            probes = calibration.recall.get(beam) if calibration else None
            label = f"{beam} (calibrated)" if ef is None else str(beam)
            print(f"| {profile} | {label} | {mean:.4f} | {mean - half:.4f} to {mean + half:.4f} | "
                  f"{(shares < 0.9).mean():.1%} | {'-' if probes is None else f'{probes:.4f}'} |", flush=True)
        store.close()


if __name__ == "__main__":
    main()
