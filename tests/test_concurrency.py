"""Many classifier processes on one PostgreSQL stream lose no update."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.cli import ok
from tests.conftest import TINY_MODELS
from xmore_db.history import ConfidenceHistory

PROCESSES = 8


@pytest.mark.postgres
@pytest.mark.slow
def test_eight_processes_classify_into_one_stream(postgres_url, tmp_path, monkeypatch, corpus_dir,
                                                  query_images, labels_file):
    env = dict(os.environ, **TINY_MODELS, XMORE_DATABASE_URL=postgres_url, XMORE_COARSE_K="16", XMORE_FINE_K="4")
    env.pop("XMORE_QDRANT_URL", None)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    base = tmp_path / "base"
    monkeypatch.setenv("XMORE_HOME", str(base))
    ok("init")
    ok("ingest", corpus_dir, "--corpus", "shapes")

    # The embedded engine allows one process per store: each classifier gets its own copy.
    homes = []
    for i in range(PROCESSES):
        home = tmp_path / f"home{i}"
        shutil.copytree(base, home)
        homes.append(home)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "xmore_db", "classify", *map(str, query_images), "--labels",
             str(labels_file), "--stream", "shared", "--json"],
            env=dict(env, XMORE_HOME=str(home)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for home in homes
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    per_process = [json.loads(out) for out, _ in outputs]
    assert all(len(results) == len(query_images) for results in per_process)

    history = ConfidenceHistory(postgres_url)
    try:
        stats = history.stream("shared")
        events = history.events("shared")
    finally:
        history.close()
    total = PROCESSES * len(query_images)
    assert stats.n_events == total == len(events)
    assert sorted(e.seq for e in events) == list(range(1, total + 1))
    c_image = [e.c_image for e in events]
    c_text = [e.c_text for e in events if e.c_text is not None]
    assert stats.image.count == len(c_image)
    assert stats.image.min == pytest.approx(min(c_image)) and stats.image.max == pytest.approx(max(c_image))
    assert stats.image.sum == pytest.approx(sum(c_image))
    assert stats.text.count == len(c_text)
    assert stats.text.min == pytest.approx(min(c_text)) and stats.text.max == pytest.approx(max(c_text))
    # Each process saw its own seq numbers, all distinct across processes.
    seqs = [r["seq"] for results in per_process for r in results]
    assert sorted(seqs) == list(range(1, total + 1))
