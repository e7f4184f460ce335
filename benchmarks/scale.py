"""Storage profiles at scale: memory, disk, build time, latency and recall at 100k and 1M pairs, then sizing.

For each size and profile (exact, compact, tiny) it builds a Qdrant Edge store of the
clustered synthetic pairs of benchmarks/retrieval.py (512-d images, 768-d captions)
under --workdir, as `xmore ingest` does (a bulk load, then one optimize() that builds
the graph and measures the search beam), and keeps it: a second run reuses the data
and the stores and only measures. Each measurement runs in a fresh process:

- numpy: exact two-stage search over the float32 vectors held in RAM (the baseline);
- each profile: p50/p95 of one two-stage query (coarse K=128 at the store's calibrated
  beam, fine k=16, `xmore_db.retrieval.retrieve`), throughput in batches of 32, then the
  process's resident memory after that fixed workload (RssAnon and RssFile from
  /proc/self/status, and RssFile by store file from /proc/self/smaps), before the
  ground truth is touched; then coarse recall@128 against numpy's exact top-128 and
  fine-stage exactness (the fine top-16 equals numpy's among the engine's candidates,
  over the float32 vectors and over the float16 values a compact or tiny store keeps).

Memory a profile needs per pair = RssAnon + the store files that profile keeps in
RAM (exact: both collections' vectors; every profile: the graph, the quantized copy,
payload index and id maps), divided by the pairs; with two sizes, the slope between
them (fixed costs cancel). The on-disk originals of compact and tiny are page cache,
shown apart. From those figures: a sizing table for 10M, 400M (LAION-400M) and 5B
(LAION-5B) pairs per profile, with the cluster shape (nodes, shards, replicas) for
the node size given, and the arithmetic printed.

    .venv/bin/python benchmarks/scale.py --sizes 100000 --workdir /work/scale
    nice -n 10 .venv/bin/python benchmarks/scale.py --sizes 100000,1000000 --workdir /work/scale --rounds 2

The 1-minute load average is printed beside every figure (MEASURING.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from retrieval import CORPUS, ClusteredPairs, exact_two_stage  # noqa: E402

PROFILES = ("exact", "compact", "tiny")
COARSE_DIM, FINE_DIM = 512, 768
K, k = 128, 16
WRITE_BATCH = 4096
FLOAT16_TOLERANCE = 2e-3  # float16 keeps about 3 decimal digits of a cosine
GIB = 1024 ** 3
# The store files each profile promises to keep in RAM (the rest is read from disk on use, page cache).
IN_RAM = {"exact": {"vectors", "graph", "quantized", "payload index", "ids"},
          "compact": {"graph", "quantized", "payload index", "ids"},
          "tiny": {"graph", "quantized", "payload index", "ids"}}
SIZING = ((10_000_000, "10M"), (400_000_000, "400M (LAION-400M)"), (5_000_000_000, "5B (LAION-5B)"))


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def component(path: str) -> str:
    """What a store file holds, from its place in a shard (`images/segments/<id>/vector_index-coarse/…`)."""
    parts = path.split("/")
    if "wal" in parts:
        return "wal"
    if any(p.startswith("vector_storage") for p in parts):
        return "quantized" if parts[-1].startswith("quantized") else "vectors"
    if any(p.startswith("vector_index") for p in parts):
        return "graph"
    if "payload_index" in parts:
        return "payload index"
    if "payload_storage" in parts:
        return "payload"
    if parts[-1].startswith("id_tracker"):
        return "ids"
    return "other"


def store_files(store: Path) -> dict[str, int]:
    """Bytes on disk (allocated blocks) by `collection component`."""
    out: dict[str, int] = {}
    for path in store.rglob("*"):
        if path.is_file():
            rel = path.relative_to(store).as_posix()
            key = f"{rel.split('/')[0]} {component(rel)}"
            out[key] = out.get(key, 0) + path.stat().st_blocks * 512
    return dict(sorted(out.items()))


def process_memory(store: Path) -> dict:
    """RssAnon, RssFile, VmHWM of this process, and its resident file pages by store component."""
    status = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile", "RssShmem", "VmRSS", "VmHWM"):
            status[name] = int(value.split()[0]) * 1024
    resident: dict[str, int] = {}
    mapped: dict[str, int] = {}
    prefix = str(store.resolve()) + "/"
    key = None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and "-" in fields[0]:  # a mapping's header: address perms offset dev inode path
            rel = fields[5][len(prefix):] if fields[5].startswith(prefix) else None
            key = f"{rel.split('/')[0]} {component(rel)}" if rel else None
        elif key and fields and fields[0] in ("Rss:", "Size:"):
            into = resident if fields[0] == "Rss:" else mapped
            into[key] = into.get(key, 0) + int(fields[1]) * 1024
    return {**status, "resident_by_component": dict(sorted(resident.items())),
            "mapped_by_component": dict(sorted(mapped.items()))}


# -- the data ------------------------------------------------------------------


def data_dir(workdir: Path, n: int, seed: int) -> Path:
    return workdir / f"data-{n}-seed{seed}"


def make_data(folder: Path, n: int, queries: int, seed: int) -> None:
    """X (images), T (captions), the queries and the exact top-K of each, as .npy files; kept once done."""
    if (folder / "data.json").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    print(f"generating {n} pairs into {folder}", file=sys.stderr)
    pairs = ClusteredPairs(n, COARSE_DIM, FINE_DIM, seed)
    X = np.lib.format.open_memmap(folder / "X.npy", mode="w+", dtype=np.float32, shape=(n, COARSE_DIM))
    T = np.lib.format.open_memmap(folder / "T.npy", mode="w+", dtype=np.float32, shape=(n, FINE_DIM))
    for start, images, texts in pairs.chunks():
        X[start:start + len(images)] = images
        T[start:start + len(texts)] = texts
    Qc, Qf = pairs.queries(queries)
    np.save(folder / "Qc.npy", Qc)
    np.save(folder / "Qf.npy", Qf)
    np.save(folder / "exact.npy", exact_top(X, Qc, K))
    X.flush()
    T.flush()
    (folder / "data.json").write_text(json.dumps({"pairs": n, "queries": queries, "seed": seed}))


def exact_top(X: np.ndarray, Q: np.ndarray, limit: int, chunk: int = 65536) -> np.ndarray:
    """(queries, limit) rows of X with the highest Q·x, best first, streaming X in chunks."""
    best_rows = np.empty((len(Q), 0), np.int64)
    best_sims = np.empty((len(Q), 0), np.float32)
    for start in range(0, len(X), chunk):
        sims = np.concatenate([best_sims, Q @ np.asarray(X[start:start + chunk]).T], axis=1)
        rows = np.concatenate([best_rows, np.broadcast_to(np.arange(start, min(start + chunk, len(X))),
                                                          (len(Q), min(chunk, len(X) - start)))], axis=1)
        keep = np.argpartition(-sims, min(limit, sims.shape[1]) - 1, axis=1)[:, :limit]
        best_sims, best_rows = np.take_along_axis(sims, keep, 1), np.take_along_axis(rows, keep, 1)
    order = np.argsort(-best_sims, axis=1)
    return np.take_along_axis(best_rows, order, 1)


# -- children: each measurement in a fresh process ---------------------------------


def provenance():
    from xmore_db.store import Provenance

    return Provenance(coarse_model="synthetic", coarse_dim=COARSE_DIM, fine_model="synthetic", fine_dim=FINE_DIM)


def child_build(data: Path, store_dir: Path, profile: str) -> dict:
    """Build the store of `profile` (a bulk load, then optimize(): graph and beam calibration), timed."""
    from xmore_db.store.beam import BeamTarget
    from xmore_db.store.edge import EdgeStore
    from xmore_db.store.storage import StorageRequest

    X = np.load(data / "X.npy", mmap_mode="r")
    T = np.load(data / "T.npy", mmap_mode="r")
    n = len(X)
    shutil.rmtree(store_dir, ignore_errors=True)  # a build killed halfway is started again, for honest timings
    load_before = load_average()
    store = EdgeStore(store_dir, storage=StorageRequest(profile=profile), beam=BeamTarget(limit=K))
    store.init(provenance())
    from xmore_db.store import PairBatch

    started = time.perf_counter()
    with store.bulk_load():
        for start in range(0, n, WRITE_BATCH):
            stop = min(start + WRITE_BATCH, n)
            keys = [str(i) for i in range(start, stop)]
            store.upsert_pairs(PairBatch(corpus=CORPUS, keys=keys, captions=[f"caption {i}" for i in keys],
                                         image_vectors=np.asarray(X[start:stop]),
                                         text_vectors=np.asarray(T[start:stop])))
            if start // WRITE_BATCH % 25 == 0:
                print(f"  {profile}: {stop}/{n} written, {time.perf_counter() - started:.0f} s", file=sys.stderr)
        upserted = time.perf_counter()
    finished = time.perf_counter()
    calibration = store.beam_calibration()
    store.close()
    return {"profile": profile, "pairs": n, "upsert_seconds": upserted - started,
            "optimize_seconds": finished - upserted, "total_seconds": finished - started,
            "calibration": calibration.to_record() if calibration else None,
            "load_before": load_before, "load_after": load_average(), "machine": machine()}


def child_measure(data: Path, store_dir: Path, queries: int, batch: int) -> dict:
    """Latency, memory (before any ground truth is read), then recall and fine exactness of one store."""
    from xmore_db.retrieval import retrieve
    from xmore_db.store.beam import BeamTarget
    from xmore_db.store.edge import EdgeStore
    from xmore_db.store.types import pair_ids

    Qc, Qf = np.load(data / "Qc.npy")[:queries], np.load(data / "Qf.npy")[:queries]
    store = EdgeStore(store_dir, beam=BeamTarget(limit=K))
    store.open(provenance())
    storage = store.storage()
    for i in range(min(20, queries)):  # warm up
        retrieve(store, Qc[i:i + 1], Qf[i:i + 1], coarse_k=K, fine_k=k)
    load = load_average()
    times, results = [], []
    faults = resource.getrusage(resource.RUSAGE_SELF)
    for i in range(queries):
        started = time.perf_counter()
        results += retrieve(store, Qc[i:i + 1], Qf[i:i + 1], coarse_k=K, fine_k=k)
        times.append(time.perf_counter() - started)
    after = resource.getrusage(resource.RUSAGE_SELF)
    # The same queries again: the pages they read are now resident, so what differs from the first pass is
    # what waited on the disk (major faults: pages read from it).
    again = []
    for i in range(queries):
        started = time.perf_counter()
        retrieve(store, Qc[i:i + 1], Qf[i:i + 1], coarse_k=K, fine_k=k)
        again.append(time.perf_counter() - started)
    batches = max(1, queries // batch)
    started = time.perf_counter()
    for b in range(batches):
        retrieve(store, Qc[b * batch:(b + 1) * batch], Qf[b * batch:(b + 1) * batch], coarse_k=K, fine_k=k)
    batch_qps = batches * batch / (time.perf_counter() - started)
    memory = process_memory(store_dir)
    beam = store.beam_choice(K)
    store.close()

    exact = np.load(data / "exact.npy")[:queries]
    n = int(json.loads((data / "data.json").read_text())["pairs"])
    index = {pid: i for i, pid in enumerate(pair_ids(CORPUS, [str(i) for i in range(n)]))}
    T = np.load(data / "T.npy", mmap_mode="r")
    recalls, fine_exact, fine_exact_stored, fine_within = [], 0, 0, 0
    for q, result in enumerate(results):
        rows = np.array([index[h.pair_id] for h in result.coarse])
        recalls.append(len(set(rows.tolist()) & set(exact[q].tolist())) / K)
        found = [index[h.pair_id] for h in result.captions]
        candidates = np.asarray(T[np.sort(rows)])
        order = np.sort(rows)
        fine_exact += found == [int(order[j]) for j in np.argsort(-(candidates @ Qf[q]), kind="stable")[:k]]
        stored = candidates.astype(np.float16).astype(np.float32) if storage.datatype == "float16" else candidates
        fine_exact_stored += found == [int(order[j]) for j in np.argsort(-(stored @ Qf[q]), kind="stable")[:k]]
        # Every caption returned scores within float16's precision of numpy's 16th best among the candidates.
        sims = dict(zip(order.tolist(), (candidates @ Qf[q]).tolist(), strict=True))
        fine_within += min(sims[row] for row in found) >= sorted(sims.values())[-k] - FLOAT16_TOLERANCE
    return {"pairs": n, "profile": storage.profile, "queries": queries, "batch": batch, "load": load,
            "load_after": load_average(), "hnsw_ef": beam.hnsw_ef, "beam": beam.source,
            "p50_ms": float(np.percentile(times, 50) * 1e3), "p95_ms": float(np.percentile(times, 95) * 1e3),
            "p50_ms_again": float(np.percentile(again, 50) * 1e3),
            "p95_ms_again": float(np.percentile(again, 95) * 1e3),
            "major_faults_per_query": (after.ru_majflt - faults.ru_majflt) / queries,
            "minor_faults_per_query": (after.ru_minflt - faults.ru_minflt) / queries,
            "batch_qps": batch_qps, "coarse_recall": float(np.mean(recalls)),
            "fine_exact": fine_exact / len(results), "fine_exact_stored": fine_exact_stored / len(results),
            "fine_within_tolerance": fine_within / len(results),
            "memory": memory, "disk": store_files(store_dir)}


def child_numpy(data: Path, queries: int, batch: int) -> dict:
    """numpy's exact two-stage search over the float32 vectors held in RAM."""
    X, T = np.load(data / "X.npy"), np.load(data / "T.npy")
    Qc, Qf = np.load(data / "Qc.npy")[:queries], np.load(data / "Qf.npy")[:queries]
    exact_two_stage(X, T, Qc[:1], Qf[:1], K, k)
    load = load_average()
    times = []
    for i in range(queries):
        started = time.perf_counter()
        exact_two_stage(X, T, Qc[i:i + 1], Qf[i:i + 1], K, k)
        times.append(time.perf_counter() - started)
    batches = max(1, queries // batch)
    started = time.perf_counter()
    for b in range(batches):
        exact_two_stage(X, T, Qc[b * batch:(b + 1) * batch], Qf[b * batch:(b + 1) * batch], K, k)
    return {"pairs": len(X), "profile": "numpy", "load": load, "load_after": load_average(),
            "p50_ms": float(np.percentile(times, 50) * 1e3), "p95_ms": float(np.percentile(times, 95) * 1e3),
            "batch_qps": batches * batch / (time.perf_counter() - started)}


def run_child(*args: str) -> dict:
    """One step in a fresh process (its memory and timing its own); its JSON result."""
    done = subprocess.run([sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE, check=True, text=True)
    return json.loads(done.stdout)


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    return f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB"


# -- the report ------------------------------------------------------------------


def ram_needed(row: dict) -> int:
    """Bytes the profile keeps in RAM: RssAnon (what the engine read into its heap, e.g. the quantized copy)
    plus the full size of the in-RAM store files it memory-maps instead (resident or not yet: the promise)."""
    wanted = IN_RAM[row["profile"]]
    mapped = row["memory"]["mapped_by_component"]
    files = sum(size for key, size in row["disk"].items() if key.split(" ", 1)[1] in wanted and key in mapped)
    return row["memory"]["RssAnon"] + files


def page_cache_part(row: dict) -> int:
    """Resident pages of on-disk originals after the workload (compact, tiny): cache, droppable."""
    if row["profile"] == "exact":
        return 0
    return sum(size for key, size in row["memory"]["resident_by_component"].items() if key.endswith(" vectors"))


def per_pair(rows_by_size: dict[int, dict], value) -> tuple[float, str]:
    """Bytes per pair: the slope between the smallest and largest size (fixed costs cancel), or value/n."""
    sizes = sorted(rows_by_size)
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        slope = (value(rows_by_size[large]) - value(rows_by_size[small])) / (large - small)
        return slope, f"slope {small:,}→{large:,}"
    n = sizes[0]
    return value(rows_by_size[n]) / n, f"at {n:,} (fixed costs included)"


def print_measurements(results: dict, builds: dict) -> None:
    for n in sorted(results):
        rows = results[n]
        print(f"\n#### {n:,} pairs\n")
        print("| profile | load | p50 ms | p95 ms | batch q/s (32) | p50 vs numpy | batch vs numpy | hnsw_ef | "
              "coarse recall@128 | fine = exact top-16 (float32 / stored / within 2e-3) | RssAnon MiB | RssFile MiB | "
              "RAM needed B/pair | disk B/pair | build s (upsert + optimize) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        numpy_row = rows.get("numpy")
        for name in ("numpy", *PROFILES):
            r = rows.get(name)
            if r is None:
                continue
            vs = (f"{numpy_row['p50_ms'] / r['p50_ms']:.1f}x | {r['batch_qps'] / numpy_row['batch_qps']:.1f}x"
                  if numpy_row else "- | -")
            if name == "numpy":
                print(f"| numpy exact | {r['load']:.1f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
                      f"{r['batch_qps']:.0f} | 1.0x | 1.0x | - | 1 | 100% | - | - | - | - | - |")
                continue
            b = builds.get((n, name), {})
            build = (f"{b['total_seconds']:.0f} ({b['upsert_seconds']:.0f} + {b['optimize_seconds']:.0f})"
                     if b else "reused")
            print(f"| {name} | {r['load']:.1f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['batch_qps']:.0f} | {vs} | "
                  f"{r['hnsw_ef']} | {r['coarse_recall']:.4f} | {r['fine_exact']:.0%} / {r['fine_exact_stored']:.0%} / "
                  f"{r['fine_within_tolerance']:.0%} | "
                  f"{r['memory']['RssAnon'] / 2**20:.0f} | {r['memory']['RssFile'] / 2**20:.0f} | "
                  f"{ram_needed(r) / n:.0f} | {sum(r['disk'].values()) / n:.0f} | {build} |")
        for name in PROFILES:
            r = rows.get(name)
            if r:
                files = ", ".join(f"{key} {size / 2**20:.1f}" for key, size in r["disk"].items() if size >= 2**20)
                resident = ", ".join(f"{key} {size / 2**20:.1f}"
                                     for key, size in r["memory"]["resident_by_component"].items() if size >= 2**20)
                print(f"\n{name}: files MiB: {files}\n{name}: resident after the workload, MiB: {resident}; "
                      f"page cache of on-disk originals {page_cache_part(r) / 2**20:.1f}; VmHWM "
                      f"{r['memory']['VmHWM'] / 2**20:.0f}")
                if "p50_ms_again" in r:
                    print(f"{name}: per query, first pass: {r['major_faults_per_query']:.1f} major page faults "
                          f"(read from disk), {r['minor_faults_per_query']:.1f} minor; the same queries again: p50 "
                          f"{r['p50_ms_again']:.2f} ms, p95 {r['p95_ms_again']:.2f} ms")


def print_sizing(results: dict, node_ram_gib: float, node_disk_tb: float, ram_use: float, disk_use: float,
                 replicas: dict[int, int], shard_points: int) -> dict:
    """The sizing table from the per-pair figures, with the arithmetic."""
    usable_ram = node_ram_gib * GIB * ram_use
    usable_disk = node_disk_tb * 1e12 * disk_use
    print(f"\n### Sizing (per-pair figures from {', '.join(f'{n:,}' for n in sorted(results))} pairs)\n")
    print(f"A node: {node_ram_gib:g} GiB RAM of which {ram_use:.0%} for Qdrant ({usable_ram / GIB:.0f} GiB), "
          f"{node_disk_tb:g} TB NVMe of which {disk_use:.0%} for data ({usable_disk / 1e12:.2f} TB). "
          f"Shards: one per {shard_points / 1e6:.0f}M points at most, and a multiple of the nodes.\n")
    print("| pairs | profile | RAM per pair | RAM, one copy | disk per pair | disk, one copy | replicas | nodes | "
          "shards | arithmetic |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    out = {}
    for profile in PROFILES:
        by_size = {n: rows[profile] for n, rows in results.items() if profile in rows}
        if not by_size:
            continue
        ram, ram_how = per_pair(by_size, ram_needed)
        disk, disk_how = per_pair(by_size, lambda r: sum(r["disk"].values()))
        out[profile] = {"ram_per_pair": ram, "disk_per_pair": disk, "from": ram_how}
        for pairs, label in SIZING:
            copies = replicas[pairs]
            ram_total, disk_total = pairs * ram, pairs * disk
            by_ram = math.ceil(ram_total * copies / usable_ram)
            by_disk = math.ceil(disk_total * copies / usable_disk)
            nodes = max(copies, by_ram, by_disk)
            shards = max(nodes, math.ceil(pairs / shard_points))
            shards = math.ceil(shards / nodes) * nodes
            arithmetic = (f"RAM {pairs:,} × {ram:.0f} B × {copies} = {ram_total * copies / GIB:,.0f} GiB → "
                          f"{by_ram} node(s); disk {pairs:,} × {disk:.0f} B × {copies} = "
                          f"{disk_total * copies / 1e12:,.2f} TB → {by_disk}; at least {copies} (one per copy)")
            print(f"| {label} | {profile} | {ram:.0f} B | {ram_total / GIB:,.0f} GiB | {disk:.0f} B | "
                  f"{disk_total / 1e12:,.2f} TB | {copies} | {nodes} | {shards} | {arithmetic} |")
            out[profile][label] = {"nodes": nodes, "shards": shards, "replicas": copies,
                                   "ram_gib": ram_total / GIB, "disk_tb": disk_total / 1e12}
        print(f"| | {profile}: per-pair RAM {ram_how}, disk {disk_how} | | | | | | | | |")
    for profile, figures in out.items():  # the issue's question: LAION-400M on 3 commodity nodes
        one_copy = 400_000_000 * figures["ram_per_pair"] / GIB
        print(f"\n{profile}, 400M pairs on 3 nodes: {one_copy / 3:,.0f} GiB of RAM a node with one copy, "
              f"{2 * one_copy / 3:,.0f} GiB with two (usable a node here: {usable_ram / GIB:.0f} GiB); disk "
              f"{400_000_000 * figures['disk_per_pair'] / 3e12:,.2f} TB a node a copy")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="pairs per store (comma list)")
    parser.add_argument("--profiles", default=",".join(PROFILES))
    parser.add_argument("--workdir", type=Path, help="data and stores, kept for later runs (required)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure numpy and every profile this many times, alternating; medians reported")
    parser.add_argument("--build-only", action="store_true", help="make the data and stores, measure nothing")
    parser.add_argument("--no-numpy", action="store_true", help="skip the numpy baseline (it holds the float32 "
                        "vectors in RAM: 5 GB at 1M pairs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--node-ram-gib", type=float, default=128)
    parser.add_argument("--node-disk-tb", type=float, default=3.84)
    parser.add_argument("--ram-use", type=float, default=0.75, help="share of a node's RAM for Qdrant's data")
    parser.add_argument("--disk-use", type=float, default=0.7, help="share of a node's disk for Qdrant's data")
    parser.add_argument("--shard-points", type=int, default=50_000_000,
                        help="points per shard at most (builds and shard transfers stay hours, not days)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--report", type=Path, default=None,
                        help="print the tables of an earlier run's --json file (with this run's sizing options)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        step, *rest = args.child
        if step == "build":
            result = child_build(Path(rest[0]), Path(rest[1]), rest[2])
        elif step == "measure":
            result = child_measure(Path(rest[0]), Path(rest[1]), int(rest[2]), int(rest[3]))
        else:
            result = child_numpy(Path(rest[0]), int(rest[1]), int(rest[2]))
        print(json.dumps(result))
        return

    if args.report:
        saved = json.loads(args.report.read_text())
        results = {int(n): rows for n, rows in saved["results"].items()}
        builds = {(int(key.split()[0]), key.split()[1]): b for key, b in saved["builds"].items()}
        report(results, builds, args)
        return
    if args.workdir is None:
        parser.error("--workdir is required")
    sizes = [int(s) for s in args.sizes.split(",")]
    profiles = [p for p in args.profiles.split(",") if p]
    print(f"{machine()}; 1-minute load average {load_average()} at the start", file=sys.stderr)
    builds: dict = {}
    for n in sizes:
        data = data_dir(args.workdir, n, args.seed)
        make_data(data, n, args.queries, args.seed)
        for profile in profiles:
            store_dir = args.workdir / f"{profile}-{n}"
            record = store_dir.parent / f"{profile}-{n}.build.json"
            if record.exists() and (store_dir / "xmore-store.json").exists():
                builds[(n, profile)] = json.loads(record.read_text())
                print(f"reusing {store_dir} (built in {builds[(n, profile)]['total_seconds']:.0f} s)",
                      file=sys.stderr)
                continue
            print(f"building {store_dir}", file=sys.stderr)
            builds[(n, profile)] = run_child("build", str(data), str(store_dir), profile)
            record.write_text(json.dumps(builds[(n, profile)], indent=2))
    if args.build_only:
        return

    results: dict[int, dict[str, dict]] = {}
    for n in sizes:
        data = data_dir(args.workdir, n, args.seed)
        rounds: dict[str, list[dict]] = {}
        for _ in range(args.rounds):
            for name in ([] if args.no_numpy else ["numpy"]) + profiles:
                print(f"measuring {name} at {n:,} pairs (load {load_average()})", file=sys.stderr)
                row = (run_child("numpy", str(data), str(args.queries), str(args.batch)) if name == "numpy" else
                       run_child("measure", str(data), str(args.workdir / f"{name}-{n}"), str(args.queries),
                                 str(args.batch)))
                rounds.setdefault(name, []).append(row)
        results[n] = {name: median_row(rows) for name, rows in rounds.items()}
    print(f"\n{machine()}; {args.queries} queries, K={K}, k={k}, rounds {args.rounds} (medians); "
          f"1-minute load average {load_average()} at the end")
    builds = {key: b for key, b in builds.items() if key[0] in results}
    sizing = report(results, builds, args)
    if args.json:
        args.json.write_text(json.dumps({"results": {str(n): rows for n, rows in results.items()},
                                         "builds": {f"{n} {p}": b for (n, p), b in builds.items()},
                                         "sizing": sizing}, indent=2))


def report(results: dict, builds: dict, args: argparse.Namespace) -> dict:
    print_measurements(results, builds)
    replicas = {10_000_000: 1, 400_000_000: 2, 5_000_000_000: 2}
    return print_sizing({n: {p: r for p, r in rows.items() if p != "numpy"} for n, rows in results.items()},
                        args.node_ram_gib, args.node_disk_tb, args.ram_use, args.disk_use, replicas,
                        args.shard_points)


def median_row(rows: list[dict]) -> dict:
    """The round with the median p50 (its other figures kept with it, from the same process)."""
    return sorted(rows, key=lambda r: r["p50_ms"])[len(rows) // 2]


if __name__ == "__main__":
    main()
