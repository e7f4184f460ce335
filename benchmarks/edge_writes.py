"""What a Qdrant Edge write costs from Python, and whether it lets other threads run.

Ingest spends its time in two calls into the engine's bindings: building the `Point`
objects (each vector converted value by value, the payload field by field) and
`EdgeShard.update()`. This times both per point, for a caption point (768-d, a payload of
four fields) and an image point (512-d, two fields), by part (vector as array('f'), as a
numpy row, as a list; with and without the payload), and measures how much a Python
thread counting in a loop gets done while the main thread is inside one `update()` of
all the points and a `flush()`, against its rate alone: near 0 % means the call keeps the GIL throughout (the
counter runs only between calls), 100 % that it releases it.

    .venv/bin/python benchmarks/edge_writes.py --points 20000
"""

from __future__ import annotations

import argparse
import array
import os
import tempfile
import threading
import time
import uuid

import numpy as np
import qdrant_edge as qe

CHUNK = 512  # points an update() call, as the store writes them (store/edge.py WRITE_CHUNK)


def per_point(label: str, make, n: int):
    started = time.perf_counter()
    made = make()
    print(f"  {label:52s} {(time.perf_counter() - started) / n * 1e6:6.1f} µs a point")
    return made


class Counter:
    """A thread counting as fast as it can: its rate shows how much of the GIL the main thread leaves."""

    def __init__(self):
        self.count, self.stop = 0, False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            self.count += 1

    def rate(self, work) -> float:
        before, started = self.count, time.perf_counter()
        work()
        return (self.count - before) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=20000)
    args = parser.parse_args()
    n = args.points
    print(f"load average {os.getloadavg()[0]:.2f}; {n} points")
    rng = np.random.default_rng(0)
    captions = rng.standard_normal((n, 768)).astype(np.float32)
    images = rng.standard_normal((n, 512)).astype(np.float32)
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, str(i))) for i in range(n)]
    payloads = [{"caption": f"a photo of thing {i} in some words", "corpus": "c", "key": f"{i:08d}",
                 "url": f"https://example.com/{i}.jpg"} for i in range(n)]

    print("building points:")
    rows = per_point("768-d rows as array('f') (engine_rows)",
                     lambda: [array.array("f", r.tobytes()) for r in captions], n)
    image_rows = [array.array("f", r.tobytes()) for r in images]
    per_point("caption point: 768-d array('f'), named, no payload", lambda: [qe.Point(i, {"fine": r}, {})
                                                                            for i, r in zip(ids, rows, strict=True)], n)
    points = per_point("caption point: 768-d array('f'), named, 4-field payload",
                       lambda: [qe.Point(i, {"fine": r}, p) for i, r, p in zip(ids, rows, payloads, strict=True)], n)
    per_point("caption point: 768-d numpy row, named, no payload",
              lambda: [qe.Point(i, {"fine": r}, {}) for i, r in zip(ids, captions, strict=True)], n)
    per_point("caption point: 768-d list (tolist() included), no payload",
              lambda: [qe.Point(i, {"fine": r}, {}) for i, r in zip(ids, captions.tolist(), strict=True)], n)
    per_point("image point: 512-d array('f'), named, 2-field payload",
              lambda: [qe.Point(i, {"coarse": r}, {"corpus": "c", "key": p["key"]})
                       for i, r, p in zip(ids, image_rows, payloads, strict=True)], n)

    counter = Counter()
    time.sleep(0.2)
    alone = counter.rate(lambda: time.sleep(1.0))
    with tempfile.TemporaryDirectory() as folder:
        for wal in (True, False):
            shard = qe.EdgeShard.create(f"{folder}/wal-{wal}", qe.EdgeConfig(
                vectors={"fine": qe.EdgeVectorParams(size=768, distance=qe.Distance.Cosine)},
                hnsw_config=qe.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000), wal_enabled=wal))
            shard.update(qe.UpdateOperation.create_field_index("corpus", qe.PayloadSchemaType.Keyword))
            started = time.perf_counter()
            for a in range(0, n, CHUNK):
                shard.update(qe.UpdateOperation.upsert_points(points[a:a + CHUNK]))
            upsert = time.perf_counter() - started
            # One call for all the points again (an upsert of the same ids): between calls the counter
            # always gets its turn, so only a single long call shows whether the engine lets go of the GIL.
            during_update = counter.rate(lambda s=shard: s.update(qe.UpdateOperation.upsert_points(points)))
            started = time.perf_counter()
            during_flush = counter.rate(shard.flush)
            flush = time.perf_counter() - started
            shard.close()
            print(f"update() of caption points, {CHUNK} a call, write-ahead log {'on' if wal else 'off'}: "
                  f"{upsert / n * 1e6:.1f} µs a point, flush {flush:.2f} s; a counting thread ran at "
                  f"{during_update / alone:.0%} of its rate during one update() of all {n}, {during_flush / alone:.0%} "
                  "during flush()")
    counter.stop = True


if __name__ == "__main__":
    main()
