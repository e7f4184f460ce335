"""The coarse search's beam, measured by optimize() for a recall target (store/beam.py), and shown by `xmore status`.

The graph test builds a real HNSW graph on Qdrant Edge (10,000 random 256-d vectors, past
the engine's full-scan threshold) on which the engine's default beam misses neighbours:
the calibration must pick a wider beam, and that beam must reach the target on queries
it never saw. qdrant-client's local mode searches by brute force, so it is not measured.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.cli import fails, ok, ok_json
from xmore_db.config import Settings
from xmore_db.errors import ConfigError
from xmore_db.store import PairBatch, Provenance, open_store, pair_id
from xmore_db.store.beam import (
    UNCALIBRATED_BEAM,
    BeamCalibration,
    BeamTarget,
    ladder,
    mean_recall,
    probe_recall_needed,
    without_own,
)
from xmore_db.store.edge import EdgeStore
from xmore_db.store.storage import StorageRequest


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_ladder_starts_at_the_limit_and_stops_at_4096():
    assert ladder(128) == [128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096]
    assert ladder(10) == [10, 15, 20, 30, 40, 60, 80, 120, 160, 240, 320]
    assert ladder(5000) == [5000]


def test_recall_leaves_out_the_probe_itself():
    assert without_own(["me", "a", "b", "c"], "me", 2) == ["a", "b"]
    assert without_own(["a", "b", "c"], "me", 2) == ["a", "b"]
    assert mean_recall([["a", "b"], ["c", "x"]], [["a", "b"], ["c", "d"]]) == pytest.approx(0.75)
    assert mean_recall([[]], [[]]) == 1.0


def curve(points: dict[int, float]) -> BeamCalibration:
    return BeamCalibration(limit=128, probes=200, points=1000, oversampling=None, recall=points, seconds=1.0)


def test_the_probes_must_miss_less_than_the_target_allows():
    # New queries miss about 1.08 times what stored probes miss: the probes may miss 0.9 of 1 - target.
    assert probe_recall_needed(0.95) == pytest.approx(0.955)
    assert probe_recall_needed(0.99) == pytest.approx(0.991)
    assert probe_recall_needed(0.5) == pytest.approx(0.55)
    assert probe_recall_needed(1.0) == 1.0


def test_the_smallest_beam_reaching_the_target_is_chosen():
    measured = curve({128: 0.87, 256: 0.92, 512: 0.946, 1024: 0.951, 2048: 0.956})
    # 0.951 at 1024 is above 0.95, but not above the 0.955 the probes must show for it.
    assert measured.choose(0.95).hnsw_ef == 2048
    assert measured.choose(0.95).reached is True and measured.choose(0.95).recall == 0.956
    assert measured.choose(0.94).hnsw_ef == 512  # needs 0.946, which 512 shows exactly
    assert measured.choose(0.9).hnsw_ef == 256
    assert measured.choose(0.5).hnsw_ef == 128


def test_a_target_out_of_reach_takes_where_the_curve_flattens():
    measured = curve({128: 0.87, 256: 0.92, 512: 0.946, 1024: 0.951, 2048: 0.953})
    choice = measured.choose(0.99)
    assert (choice.hnsw_ef, choice.recall, choice.reached) == (1024, 0.951, False)


def test_calibration_record_round_trip_and_foreign_records():
    measured = curve({128: 0.9, 256: 0.96})
    assert BeamCalibration.from_record(measured.to_record()) == measured
    for foreign in (None, "x", {}, {"limit": 128}, {"limit": 1, "probes": 1, "points": 1, "recall": {}}):
        assert BeamCalibration.from_record(foreign) is None


def test_bad_targets_are_refused():
    with pytest.raises(ValueError, match="recall target"):
        BeamTarget(recall=0)
    with pytest.raises(ConfigError, match=r"^--recall-target \(XMORE_RECALL_TARGET\) is the share"):
        Settings(recall_target=1.5)
    with pytest.raises(ConfigError, match="hnsw_ef must be at least 1"):
        Settings(hnsw_ef=0)
    assert Settings().hnsw_ef is None and Settings().recall_target == 0.95


@pytest.fixture(scope="module")
def graph_store(tmp_path_factory):
    """An Edge store with a real graph: 10,000 random 256-d vectors (10,240 KB, past the 10,000 KB threshold)."""
    rng = np.random.default_rng(11)
    n, dim = 10_000, 256
    images = unit(rng.standard_normal((n, dim)))
    # Built at the engine's ef_construct of 100 (ours is 200): a graph on which the narrowest beam misses.
    store = EdgeStore(tmp_path_factory.mktemp("beam") / "qdrant", storage=StorageRequest(hnsw_ef_construct=100),
                      beam=BeamTarget(recall=0.95, limit=32))
    store.init(Provenance(coarse_model="toy-coarse", coarse_dim=dim, fine_model="toy-fine", fine_dim=4))
    with store.bulk_load():
        for start in range(0, n, 2500):
            keys = [str(i) for i in range(start, start + 2500)]
            store.upsert_pairs(PairBatch(corpus="c", keys=keys, captions=keys, image_vectors=images[start:start + 2500],
                                         text_vectors=unit(rng.standard_normal((2500, 4)))))
    yield store, images
    store.close()


def test_optimize_measures_a_wider_beam_that_reaches_the_target(graph_store):
    store, images = graph_store
    assert store.index_state()["images"].indexed == len(images)  # searched through the graph
    calibration = store.beam_calibration()
    assert calibration is not None and (calibration.limit, calibration.probes, calibration.points) == (32, 200, 10_000)
    assert calibration.recall[32] < 0.95  # the engine's default beam is short here
    choice = store.beam_choice(32)
    assert choice.source == "calibrated" and choice.reached and choice.hnsw_ef > 32
    # On fresh queries, the chosen beam finds about the target's share of the exact top 32; the narrowest does not.
    queries = unit(np.random.default_rng(12).standard_normal((100, images.shape[1])))
    exact = np.argsort(-(queries @ images.T), axis=1)[:, :32]
    ids = np.array([pair_id("c", str(i)) for i in range(len(images))])
    found = {beam: [[h.pair_id for h in hits] for hits in store.coarse_search(queries, limit=32, hnsw_ef=beam)]
             for beam in (None, 32)}
    truth = [list(ids[row]) for row in exact]
    assert mean_recall(found[None], truth) >= 0.93
    assert mean_recall(found[None], truth) > mean_recall(found[32], truth)


def test_the_calibration_survives_reopening_and_optimize_does_not_measure_again(graph_store):
    store, _ = graph_store
    recorded = store.beam_calibration()
    store.close()
    reopened = EdgeStore(store.path, beam=BeamTarget(recall=0.99, limit=32))
    reopened.open(Provenance(coarse_model="toy-coarse", coarse_dim=256, fine_model="toy-fine", fine_dim=4))
    assert reopened.beam_calibration() == BeamCalibration.from_record(recorded.to_record())
    # Another target is chosen from the same curve, with no new measurement.
    assert reopened.search_beam(32) == recorded.choose(0.99).hnsw_ef >= store.search_beam(32)
    reopened.optimize()  # nothing new: the recorded curve, with its timing, stays
    assert reopened.beam_calibration().to_record() == recorded.to_record()
    assert reopened.search_beam(32, hnsw_ef=64) == 64  # XMORE_HNSW_EF overrides
    reopened.close()


@pytest.mark.parametrize("backend", ["qdrant-edge", "qdrant-server"])
def test_small_store_beam_on_both_backends(tmp_path, backend):
    settings = Settings(home=tmp_path / "home", coarse_k=8, fine_k=4,
                        qdrant_url=f"file:{tmp_path / 'local'}" if backend == "qdrant-server" else None)
    rng = np.random.default_rng(0)
    with open_store(settings) as store:
        store.init(Provenance(coarse_model="toy-coarse", coarse_dim=8, fine_model="toy-fine", fine_dim=4))
        store.upsert_pairs(PairBatch(corpus="c", keys=[str(i) for i in range(30)], captions=["x"] * 30,
                                     image_vectors=unit(rng.standard_normal((30, 8))),
                                     text_vectors=unit(rng.standard_normal((30, 4)))))
        assert store.beam_choice(8).source == "uncalibrated" and store.search_beam(8) == UNCALIBRATED_BEAM
        store.optimize()
        if backend == "qdrant-edge":
            # No graph under the threshold: every beam is exact, and the narrowest is chosen.
            assert store.beam_calibration().recall == {8: 1.0}
            assert store.search_beam(8) == 8
        else:  # local mode scans by brute force: nothing to measure
            assert store.beam_calibration() is None and store.search_beam(8) == UNCALIBRATED_BEAM


def test_status_shows_the_beam(tiny_env, corpus_dir, monkeypatch):
    ok("init")
    before = ok_json("status")["search_beam"]
    assert (before["hnsw_ef"], before["source"], before["calibration"]) == (UNCALIBRATED_BEAM, "uncalibrated", None)
    assert "  search beam: hnsw_ef 2048, not calibrated (`xmore optimize` measures the beam" in ok("status").stdout
    ok("ingest", corpus_dir, "--corpus", "shapes")
    shown = ok_json("status")["search_beam"]
    assert shown["source"] == "calibrated" and shown["reached"] is True and shown["recall_target"] == 0.95
    assert shown["calibration"]["points"] == 60 and shown["calibration"]["limit"] == 8
    line = next(line for line in ok("status").stdout.splitlines() if line.startswith("  search beam:"))
    assert line.startswith("  search beam: hnsw_ef 8 for coarse recall@8 >= 0.95 (measured 1.000 on stored probes, "
                           "where 0.955 is asked of them; "
                           "60 probes at 60 points")
    monkeypatch.setenv("XMORE_HNSW_EF", "300")
    assert "  search beam: hnsw_ef 300 (XMORE_HNSW_EF)" in ok("status").stdout
    monkeypatch.setenv("XMORE_RECALL_TARGET", "2")
    assert fails("status") == ("Error: --recall-target (XMORE_RECALL_TARGET) is the share of the exact top-K the "
                               "coarse search should find, above 0 and at most 1; got 2.0")
