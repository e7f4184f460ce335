"""Test-only entry: `xmore ingest` with the writer's test hook, run as a subprocess by the kill -9 tests.

    python tests/ingest_with_hooks.py PATH --corpus C [--text-emb DIR] [--write-batch N] [--flush-rows N]
        [--write-delay SECONDS] [--hang-after WRITES --hang-marker FILE] [--barrier DIR --peers N]

The settings come from the environment (XMORE_HOME, the models, the database),
as for `xmore`. `--write-delay` slows every write down (so concurrent workers
interleave); `--hang-after N` stops the writer after its Nth batch is durable,
writing the process id to the marker file first, so the test can kill -9 it
mid-unit (with `--flush-rows` no larger than `--write-batch`, each batch is
made durable alone). `--barrier DIR --peers N` holds each process after its first
claim until N processes have claimed a unit (each leaves a file in DIR): every
concurrent worker then holds a unit however long each took to start, and the
first one cannot claim them all while the others are still loading (units are
claimed ahead of their writes, so the write delay alone does not hold it back).
Prints the report as `xmore ingest --json` does.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from dataclasses import asdict
from pathlib import Path

from xmore_db.config import Settings
from xmore_db.history.units import UnitLedger
from xmore_db.ingest import IngestOptions, ingest
from xmore_db.workspace import Workspace


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path")
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--text-emb")
    parser.add_argument("--write-batch", type=int, default=1024)
    parser.add_argument("--flush-rows", type=int, default=IngestOptions.flush_rows)
    parser.add_argument("--write-delay", type=float, default=0.0)
    parser.add_argument("--hang-after", type=int, default=0)
    parser.add_argument("--hang-marker")
    parser.add_argument("--barrier")
    parser.add_argument("--peers", type=int, default=1)
    args = parser.parse_args(argv)

    def after_write(writes: int) -> None:
        if args.write_delay:
            time.sleep(args.write_delay)
        if args.hang_after and writes == args.hang_after:
            if args.hang_marker:
                Path(args.hang_marker).write_text(str(os.getpid()))
            while True:
                time.sleep(60)

    if args.barrier:
        hold_after_first_claim(Path(args.barrier), args.peers)
    with Workspace(Settings.from_env()) as ws:
        report = ingest(ws, args.path, corpus=args.corpus, text_emb=args.text_emb,
                        options=IngestOptions(write_batch=args.write_batch, flush_rows=args.flush_rows),
                        after_write=after_write)
    print(json.dumps(asdict(report)))


def hold_after_first_claim(barrier: Path, peers: int) -> None:
    claim = UnitLedger.claim
    claimed = threading.Event()

    def claim_then_wait(self, corpus: str, worker: str):
        held = claim(self, corpus, worker)
        if not claimed.is_set():
            claimed.set()
            wait_for_peers(barrier, peers)
        return held

    UnitLedger.claim = claim_then_wait


def wait_for_peers(barrier: Path, peers: int, timeout: float = 120.0) -> None:
    barrier.mkdir(parents=True, exist_ok=True)
    (barrier / str(os.getpid())).touch()
    deadline = time.monotonic() + timeout
    while len(list(barrier.iterdir())) < peers:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(list(barrier.iterdir()))} of {peers} workers reached the barrier")
        time.sleep(0.05)


if __name__ == "__main__":
    main()
