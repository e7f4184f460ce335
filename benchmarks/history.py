"""Event-write latency of the confidence history, for a short and a long stream.

One `ConfidenceHistory.record()` is what each classified query costs in SQL: the
atomic stats upsert, the caller's decision, and the event insert, in one
transaction. Its latency must not grow with the stream's length.

    .venv/bin/python benchmarks/history.py                 # SQLite, and PostgreSQL if reachable
    .venv/bin/python benchmarks/history.py --long 1000000 --writes 500

Streams are pre-filled with bulk SQL (fast), then timed through the real API.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xmore_db.history import ConfidenceHistory, Decision  # noqa: E402

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def prefill(url: str, history: ConfidenceHistory, stream: str, n: int) -> float:
    """A stream of n events: one through the API (creates the row), the rest by bulk SQL."""
    history.record(stream, c_image=0.5, c_text=0.5, normalize="minmax", query=None,
                   decide=lambda stats: Decision(w_image=1.0, w_text=1.0, prediction="a"))
    started = time.perf_counter()
    engine = create_engine(url)
    series = ("generate_series(2, :n) AS s(x)" if url.startswith("postgresql")
              else "(WITH RECURSIVE s(x) AS (SELECT 2 UNION ALL SELECT x + 1 FROM s WHERE x < :n) SELECT x FROM s) s")
    with engine.begin() as conn:
        stream_id = conn.execute(text("SELECT id FROM streams WHERE name = :name"), {"name": stream}).scalar_one()
        conn.execute(text(
            "INSERT INTO events (stream_id, seq, query, c_image, c_text, w_image, w_text, prediction, normalize, "
            f"created_at) SELECT :sid, x, NULL, 0.5, 0.5, 1.0, 1.0, 'a', 'minmax', CURRENT_TIMESTAMP FROM {series}"),
            {"sid": stream_id, "n": n})
        conn.execute(text("UPDATE streams SET n_events = :n, image_sum = :n * 0.5, text_count = :n, "
                          "text_sum = :n * 0.5 WHERE id = :sid"), {"sid": stream_id, "n": n})
    engine.dispose()
    return time.perf_counter() - started


def time_writes(history: ConfidenceHistory, stream: str, writes: int, rng: random.Random) -> np.ndarray:
    latencies = []
    for _ in range(writes):
        c_image, c_text = rng.random(), rng.random()
        start = time.perf_counter()
        history.record(stream, c_image=c_image, c_text=c_text, normalize="minmax", query="bench.jpg",
                       decide=lambda stats: Decision(w_image=0.5, w_text=0.5, prediction="a"))
        latencies.append(time.perf_counter() - start)
    return np.array(latencies) * 1e3


def bench(name: str, url: str, short: int, long: int, writes: int) -> dict:
    history = ConfidenceHistory(url)
    history.migrate()
    rng = random.Random(0)
    out = {"backend": name}
    for label, n in (("short", short), ("long", long)):
        print(f"{name}: pre-filling a stream of {n} events", file=sys.stderr)
        out[f"{label}_prefill_seconds"] = prefill(url, history, label, n)
        time_writes(history, label, 20, rng)  # warm up
        ms = time_writes(history, label, writes, rng)
        out[label] = {"events": n, "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}
    out["p50_ratio_long_over_short"] = out["long"]["p50_ms"] / out["short"]["p50_ms"]
    history.close()
    return out


def postgres_database(server_url: str):
    """A fresh database on the server, dropped afterwards; None if the server does not answer."""
    try:
        admin = create_engine(server_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with admin.connect() as conn:
            name = f"xmore_bench_{uuid.uuid4().hex[:12]}"
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # no server: the SQLite figures still stand
        print(f"PostgreSQL skipped: {str(exc).splitlines()[0]}", file=sys.stderr)
        return None, None
    base = server_url.rsplit("/", 1)[0]

    def drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return f"{base}/{name}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=int, default=1_000)
    parser.add_argument("--long", type=int, default=1_000_000)
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--postgres", default=os.environ.get("XMORE_TEST_POSTGRES_URL", DEFAULT_PG))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(bench("sqlite", f"sqlite:///{tmp}/history.sqlite3", args.short, args.long, args.writes))
    pg_url, drop = postgres_database(args.postgres)
    if pg_url:
        try:
            results.append(bench("postgresql", pg_url, args.short, args.long, args.writes))
        finally:
            drop()

    print(f"\nEvent write (ConfidenceHistory.record), {args.writes} writes per stream; "
          f"{platform.machine()}, {os.cpu_count()} cores")
    print(f"| database | p50 ms, {args.short} events | p95 ms | p50 ms, {args.long} events | p95 ms | "
          "long / short (p50) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['backend']} | {r['short']['p50_ms']:.2f} | {r['short']['p95_ms']:.2f} | "
              f"{r['long']['p50_ms']:.2f} | {r['long']['p95_ms']:.2f} | {r['p50_ratio_long_over_short']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
