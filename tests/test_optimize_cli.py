"""`xmore optimize` and the index in `xmore status`, after an index build a kill interrupted."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli import fails, ok, ok_json
from xmore_db.config import Settings
from xmore_db.store import PairBatch
from xmore_db.workspace import Workspace

WARNING = ("Warning: the index of images needs building (a bulk load deferred it or a kill interrupted it; "
           "searches scan instead): run `xmore optimize`")


class Killed(BaseException):
    """Stands for a kill -9: nothing after it runs, no except clause of ours catches it."""


def interrupted_load(n: int = 10) -> None:
    """Pairs written by a bulk load that dies before its index build, as a killed ingest leaves them."""
    rng = np.random.default_rng(0)
    with Workspace(Settings.from_env()) as ws:
        store, provenance = ws.store(), ws.provenance()
        with pytest.raises(Killed), store.bulk_load():
            store.upsert_pairs(PairBatch(
                corpus="c", keys=[f"k{i}" for i in range(n)], captions=[f"caption {i}" for i in range(n)],
                image_vectors=rng.standard_normal((n, provenance.coarse_dim)).astype(np.float32),
                text_vectors=rng.standard_normal((n, provenance.fine_dim)).astype(np.float32)))
            raise Killed


def test_status_warns_and_optimize_finishes_an_interrupted_build(backend_env):
    ok("init")
    clean = ok("status")
    assert "Warning" not in clean.stderr
    assert "  index of texts: 0 points, no graph (searched under an id filter)" in clean.stdout.splitlines()

    interrupted_load()
    status = ok("status")
    assert status.stderr.strip() == WARNING
    [line] = [line for line in status.stdout.splitlines() if line.startswith("  index of images:")]
    assert line.endswith(": build needed, run `xmore optimize`")
    shown = ok_json("status")
    assert shown["index"]["images"] | {"indexed": None} == {
        "points": 10, "indexed": None, "graph": True, "needs_build": True}
    assert shown["index"]["texts"]["needs_build"] is False

    done = ok_json("optimize")
    assert done["was_needed"] is True
    assert not any(state["needs_build"] for state in done["index"].values())
    assert done["index"]["images"]["points"] == 10
    after = ok("status")
    assert "Warning" not in after.stderr and "build needed" not in after.stdout

    again = ok("optimize")
    assert again.stdout.startswith("Optimized ") and "(nothing was pending)" in again.stdout.splitlines()[0]
    images = ("10 points, no index (qdrant-client local mode)" if "XMORE_QDRANT_URL" in backend_env
              else "0/10 indexed (segments under the indexing threshold are searched exactly)")
    # The beam measured for recall@K (K = 16 here; 9: the other points of so small a store); local mode scans.
    beam = [] if "XMORE_QDRANT_URL" in backend_env else ["  search beam: recall@9 by hnsw_ef over 10 probes: 9: 1.000"]
    assert again.stdout.splitlines()[1:] == [
        f"  images:  {images}", "  texts:   10 points, no graph (searched under an id filter)", *beam]
    assert done["search_beam"] == (None if "XMORE_QDRANT_URL" in backend_env else ok_json("status")["search_beam"][
        "calibration"])


def test_optimize_on_a_store_never_initialised_says_run_init(backend_env):
    line = fails("optimize")
    assert line.startswith("Error: no collections at ") and line.endswith(": run `xmore init`")


def test_ingest_rerun_finishes_an_interrupted_build(backend_env, corpus_dir):
    ok("init")
    ok("ingest", str(corpus_dir), "--corpus", "shapes")
    interrupted_load()  # as if the ingest had been killed in its final build
    assert ok("status").stderr.strip() == WARNING
    again = ok_json("ingest", str(corpus_dir), "--corpus", "shapes")
    assert (again["ingested"], again["already_present"]) == (0, 60)  # no unit left to write ...
    status = ok("status", "--json")  # ... and still the build was finished
    assert "Warning" not in status.stderr
    assert not any(state["needs_build"] for state in json.loads(status.stdout)["index"].values())
