"""What only the embedded Qdrant Edge store does: one process per store, files on disk."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from xmore_db.errors import (
    StoreError,
    StoreLockedError,
    StoreMismatchError,
    StoreNotInitializedError,
)
from xmore_db.store import IndexState, PairBatch, Provenance, pair_id
from xmore_db.store.edge import RECORD_NAME, EdgeStore, locked_message

PROV = Provenance(coarse_model="toy-coarse", coarse_dim=8, fine_model="toy-fine", fine_dim=12)
ROOT = Path(__file__).resolve().parents[1]


def pairs(n: int, seed: int = 0, corpus: str = "c") -> PairBatch:
    rng = np.random.default_rng(seed)
    return PairBatch(
        corpus=corpus, keys=[f"k{i}" for i in range(n)],
        captions=[f"caption {i}" for i in range(n)],
        image_vectors=rng.standard_normal((n, PROV.coarse_dim)).astype(np.float32),
        text_vectors=rng.standard_normal((n, PROV.fine_dim)).astype(np.float32),
    )


def ids_of(results) -> list[list[str]]:
    return [[hit.pair_id for hit in hits] for hits in results]


def test_constructing_touches_nothing(tmp_path):
    path = tmp_path / "qdrant"
    store = EdgeStore(path)
    assert store.backend == "qdrant-edge" and store.location == str(path)
    assert not path.exists()
    with pytest.raises(StoreNotInitializedError, match=r"run `xmore init`"):
        store.open(PROV)
    assert store.stored_provenance() is None
    assert not path.exists()


def test_layout_on_disk(tmp_path):
    path = tmp_path / "qdrant"
    with EdgeStore(path) as store:
        store.init(PROV)
    record = json.loads((path / RECORD_NAME).read_text())
    assert record["provenance"]["coarse_model"] == "toy-coarse"
    assert (path / "images").is_dir() and (path / "texts").is_dir()
    # The texts shard never gets a graph: it is only searched under an id filter.
    texts = json.loads((path / "texts" / "edge_config.json").read_text())
    images = json.loads((path / "images" / "edge_config.json").read_text())
    assert texts["hnsw_config"]["m"] == 0 and images["hnsw_config"]["m"] == 16
    # No write-ahead log: a write counts once flushed, and the store's own lock file holds it.
    assert texts["wal_enabled"] is False and images["wal_enabled"] is False
    assert (path / "xmore.lock").exists()


def test_written_pairs_survive_a_killed_process(tmp_path):
    """Without a write-ahead log, what upsert_pairs returned from is on disk: a process killed right
    after (no close, no exit handlers) leaves it readable, and the lock goes with the process."""
    path = tmp_path / "qdrant"
    writer = textwrap.dedent(f"""
        import os
        import numpy as np
        from xmore_db.store import PairBatch, Provenance
        from xmore_db.store.edge import EdgeStore
        store = EdgeStore({str(path)!r})
        store.init(Provenance(**{PROV.to_dict()!r}))
        rng = np.random.default_rng(0)
        store.upsert_pairs(PairBatch(corpus="c", keys=[f"k{{i}}" for i in range(50)],
                                     captions=[f"caption {{i}}" for i in range(50)],
                                     image_vectors=rng.standard_normal((50, 8)).astype(np.float32),
                                     text_vectors=rng.standard_normal((50, 12)).astype(np.float32)))
        os.kill(os.getpid(), 9)
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", writer], env=env, timeout=120)
    assert done.returncode == -9
    with EdgeStore(path) as store:
        store.open(PROV)
        assert store.counts() == {"images": 50, "texts": 50}
        assert store.existing_ids([pair_id("c", "k49")]) == {pair_id("c", "k49")}


def test_second_process_gets_a_clear_lock_error(tmp_path):
    path = tmp_path / "qdrant"
    with EdgeStore(path) as store:
        store.init(PROV)
        store.upsert_pairs(pairs(5))
    holder = textwrap.dedent(f"""
        import sys
        from xmore_db.store import Provenance
        from xmore_db.store.edge import EdgeStore
        store = EdgeStore({str(path)!r})
        store.open(Provenance(**{PROV.to_dict()!r}))
        print("ready", flush=True)
        sys.stdin.read()
        store.close()
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "ready"
        for call in (EdgeStore(path).open, EdgeStore(path).init):
            with pytest.raises(StoreLockedError) as caught:
                call(PROV)
            assert str(caught.value) == locked_message(str(path))
            assert str(caught.value) == (
                f"the embedded store at {path} is open in another process; Qdrant Edge allows one "
                "process per store: stop the other process, or run a Qdrant server and set "
                "XMORE_QDRANT_URL for concurrent use"
            )
        with pytest.raises(StoreLockedError):
            EdgeStore(path).counts()
    finally:
        child.stdin.close()
        child.wait(timeout=20)
    assert child.returncode == 0
    with EdgeStore(path) as store:  # released when the other process closes
        store.open(PROV)
        assert store.counts() == {"images": 5, "texts": 5}


def test_data_persists_across_close_and_reopen(tmp_path):
    path = tmp_path / "qdrant"
    batch = pairs(40)
    query = batch.image_vectors[:2] + 0.01
    with EdgeStore(path) as store:
        store.init(PROV)
        store.upsert_pairs(batch)
        before = store.coarse_search(query, limit=5)
    with EdgeStore(path) as store:
        store.open(PROV)
        assert store.counts() == {"images": 40, "texts": 40}
        after = store.coarse_search(query, limit=5)
        assert [h.pair_id for h in after[0]] == [h.pair_id for h in before[0]]
        assert after[0][0].pair_id == pair_id("c", "k0")
        assert store.existing_ids([pair_id("c", "k3"), pair_id("c", "zz")]) == {pair_id("c", "k3")}


def test_optimize_keeps_answers(tmp_path):
    batch = pairs(300, seed=1)
    with EdgeStore(tmp_path / "qdrant") as store:
        store.init(PROV)
        store.upsert_pairs(batch)
        queries = batch.image_vectors[:4]
        fine_q = batch.text_vectors[:4]
        candidates = [[pair_id("c", f"k{j}") for j in range(i, 300, 7)] for i in range(4)]
        coarse_before = ids_of(store.coarse_search(queries, limit=10))
        fine_before = ids_of(store.fine_search(fine_q, candidates, limit=5))
        store.optimize()
        store.optimize()  # nothing left to do: still fine
        assert ids_of(store.coarse_search(queries, limit=10)) == coarse_before
        assert ids_of(store.fine_search(fine_q, candidates, limit=5)) == fine_before
        assert store.counts() == {"images": 300, "texts": 300}


def test_shard_of_another_size_is_refused_before_writing(tmp_path):
    path = tmp_path / "qdrant"
    with EdgeStore(path) as store:
        store.init(PROV)
    # A record that disagrees with the shards (edited or copied by hand).
    record = json.loads((path / RECORD_NAME).read_text())
    record["provenance"]["coarse_dim"] = 16
    (path / RECORD_NAME).write_text(json.dumps(record))
    with pytest.raises(StoreMismatchError, match=r"'images' holds 8-d vectors"):
        EdgeStore(path).open(Provenance(**record["provenance"]))


def test_unreadable_record_is_a_store_error(tmp_path):
    path = tmp_path / "qdrant"
    path.mkdir()
    (path / RECORD_NAME).write_text("{not json")
    with pytest.raises(StoreError, match="unreadable"):
        EdgeStore(path).open(PROV)


def test_missing_shard_asks_for_init(tmp_path):
    path = tmp_path / "qdrant"
    with EdgeStore(path) as store:
        store.init(PROV)
    import shutil

    shutil.rmtree(path / "texts")
    with pytest.raises(StoreNotInitializedError, match=r"'texts'.*run `xmore init`"):
        EdgeStore(path).open(PROV)
    with EdgeStore(path) as store:
        assert store.init(PROV) is True
        assert store.counts() == {"images": 0, "texts": 0}


@pytest.mark.slow
def test_kill_during_the_index_build_is_finished_by_the_next_run(tmp_path):
    """kill -9 while optimize() builds the HNSW graph of `images`: the marker in the record
    survives, index_state() says a build is owed, and optimize_if_needed() builds the graph."""
    path = tmp_path / "qdrant"
    n, dim = 5500, 512  # 11 MB of vectors: past Qdrant Edge's indexing threshold, a graph is built
    prov = Provenance(coarse_model="big-coarse", coarse_dim=dim, fine_model="toy-fine", fine_dim=4)
    child_code = textwrap.dedent(f"""
        import numpy as np
        from xmore_db.store import PairBatch, Provenance
        from xmore_db.store.edge import EdgeStore
        rng = np.random.default_rng(0)
        store = EdgeStore({str(path)!r})
        store.init(Provenance(**{prov.to_dict()!r}))
        with store.bulk_load():
            store.upsert_pairs(PairBatch(
                corpus="c", keys=[str(i) for i in range({n})], captions=["x"] * {n},
                image_vectors=rng.standard_normal(({n}, {dim})).astype(np.float32),
                text_vectors=rng.standard_normal(({n}, 4)).astype(np.float32)))
            print("building", flush=True)
        print("built", flush=True)
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", child_code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "building"
        building = path / "images" / "temp_segments"  # where the engine builds the new segment
        deadline = time.monotonic() + 30
        while not (building.is_dir() and any(building.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.02)
        child.kill()
    finally:
        child.wait(timeout=30)
    assert child.stdout.read() == "", "the build finished before the kill: make it bigger"

    assert json.loads((path / RECORD_NAME).read_text())["index_build_pending"] is True
    with EdgeStore(path) as store:
        state = store.index_state()["images"]
        assert state.points == n and state.indexed < n and state.needs_build
        store.open(prov)
        assert store.optimize_if_needed() is True
        assert store.index_state()["images"] == IndexState(points=n, indexed=n, graph=True, needs_build=False)
    assert "index_build_pending" not in json.loads((path / RECORD_NAME).read_text())


def test_an_exclusive_bulk_load_writes_texts_from_a_second_process(tmp_path):
    """Qdrant Edge keeps the GIL while it writes: inside bulk_load() the `texts` shard is a writer process's,
    which writes the captions while this process writes the images (each lot's texts durable first)."""
    path = tmp_path / "qdrant"
    with EdgeStore(path) as store:
        store.init(PROV)
        store.upsert_pairs(pairs(3, corpus="before"))
        with store.bulk_load():
            writer = store._texts_writer
            assert writer is not None and writer.poll() is None
            first = store.begin_pair_batches([pairs(20, seed=1, corpus="c")])
            second = store.begin_pair_batches([pairs(20, seed=2, corpus="d")])  # begun before the first ends
            first()
            second()
            assert store.existing_ids([pair_id("c", "k0"), pair_id("d", "k19"), pair_id("x", "k0")]) == {
                pair_id("c", "k0"), pair_id("d", "k19")}
            # `texts` is away meanwhile: what needs it says so, in one line.
            with pytest.raises(StoreError, match=r"texts collection .* is being written by the bulk load's writer"):
                store.fine_search(np.ones((1, PROV.fine_dim), np.float32), [[pair_id("c", "k0")]], limit=1)
        assert writer.poll() == 0  # closed its shard and ended
        assert store.counts() == {"images": 43, "texts": 43}
        hits = store.fine_search(pairs(20, seed=2).text_vectors[:1], [[pair_id("d", f"k{i}") for i in range(20)]],
                                 limit=1)
        assert hits[0][0].pair_id == pair_id("d", "k0") and hits[0][0].caption == "caption 0"


def test_a_dead_texts_writer_fails_the_write_in_one_line_and_the_store_recovers(tmp_path):
    path = tmp_path / "qdrant"
    with EdgeStore(path) as store:
        store.init(PROV)
        with pytest.raises(StoreError) as caught, store.bulk_load():
            store.upsert_pairs(pairs(10, corpus="c"))
            store._texts_writer.kill()
            store._texts_writer.wait()
            store.upsert_pairs(pairs(10, seed=1, corpus="d"))
        assert "writer process of the texts collection" in str(caught.value) and "\n" not in str(caught.value)
        # The pairs written before are whole; the refused lot left nothing reachable (no image without caption).
        assert store.counts() == {"images": 10, "texts": 10}
        store.upsert_pairs(pairs(10, seed=1, corpus="d"))  # `texts` is this process's again
        assert store.counts() == {"images": 20, "texts": 20}


def test_a_lot_the_writer_process_refuses_fails_alone(tmp_path):
    """Each lot reads its own answers: one the engine refuses (a payload it cannot store) fails in one line,
    writes no image, and the next lot goes through."""
    path = tmp_path / "qdrant"
    with EdgeStore(path) as store:
        store.init(PROV)
        with store.bulk_load():
            bad = dataclasses.replace(pairs(4, corpus="bad"),
                                      extras=[{"metadata": {"kind": complex(1, 2)}}] * 4)  # no JSON for it
            with pytest.raises(StoreError) as caught:
                store.upsert_pairs(bad)
            assert "writing captions" in str(caught.value) and "\n" not in str(caught.value)
            store.upsert_pairs(pairs(5, corpus="good"))
        assert store.counts() == {"images": 5, "texts": 5}
