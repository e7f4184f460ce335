"""How ingest writes: pair ids, batches made durable a group at a time, parallel uploads to a server.

The server tests use the real qdrant-client over HTTP against the loopback stand-in
server (tests/qdrant_stub.py): a large write is sent by qdrant-client's worker
processes, each its own HTTP client. What is not covered: a real server's speed.
"""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest

from tests.cli import fails, ok_json
from tests.qdrant_stub import QdrantStub
from xmore_db.config import Settings
from xmore_db.errors import StoreReadOnlyError
from xmore_db.ingest.writer import Writer
from xmore_db.store import PairBatch, Provenance, open_store, pair_id
from xmore_db.store.server import ServerStore, upload_processes
from xmore_db.store.types import IMAGES, PAIR_NAMESPACE, TEXTS, pair_ids
from xmore_db.toy.formats import write_embeddings_folder

pytestmark = pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
PROVENANCE = Provenance("coarse-test", 8, "fine-test", 12)
READ_WRITE_KEY, READ_ONLY_KEY = "rw-key-for-tests", "ro-key-for-tests"


def pairs(corpus: str, start: int, n: int, seed: int = 0) -> PairBatch:
    rng = np.random.default_rng(seed + start)
    return PairBatch(corpus=corpus, keys=[f"k{i}" for i in range(start, start + n)],
                     captions=[f"caption {i}" for i in range(start, start + n)],
                     image_vectors=rng.standard_normal((n, PROVENANCE.coarse_dim)).astype(np.float32),
                     text_vectors=rng.standard_normal((n, PROVENANCE.fine_dim)).astype(np.float32),
                     extras=[{"url": f"https://example.com/{i}.jpg"} for i in range(start, start + n)])


def test_pair_ids_are_fixed_forever():
    assert pair_id("laion", "0000/0") == "c79c9236-3e04-5192-8460-733beffe2341"  # stored ids depend on it
    keys = ["0000/0", "", "ü/漢字", "a\tb", "x" * 300]
    for corpus in ("laion", "Ünï", "c"):
        assert pair_ids(corpus, keys) == [str(uuid.uuid5(PAIR_NAMESPACE, f"{corpus}\x1f{key}")) for key in keys]
    with pytest.raises(ValueError, match="reserved separator"):
        pair_ids("a\x1fb", ["k"])


# -- the writer: durable a group at a time --------------------------------------------------


@pytest.fixture
def edge_store(tmp_path):
    store = open_store(Settings(home=tmp_path / "home"))
    store.init(PROVENANCE)
    yield store
    store.close()


def test_batches_become_durable_with_their_group_or_at_a_seal(edge_store):
    writer = Writer(edge_store, threading.Lock(), flush_rows=10, batch_rows=4)
    try:
        first = [writer.submit(pairs("c", start, 4)) for start in (0, 4)]
        assert edge_store.counts() == {"images": 0, "texts": 0}  # 8 rows: the group is not full
        assert not any(future.done() for future in first)
        third = writer.submit(pairs("c", 8, 4))  # 12 rows: the group is written
        assert [f.result(timeout=30) for f in [*first, third]] == [4, 4, 4]
        assert edge_store.counts() == {"images": 12, "texts": 12}
        last = writer.submit(pairs("c", 12, 2))
        writer.seal()  # a caller that waits for its batches now
        assert last.result(timeout=30) == 2
        assert edge_store.existing_ids(pair_ids("c", [f"k{i}" for i in range(14)])) == set(
            pair_ids("c", [f"k{i}" for i in range(14)]))
    finally:
        writer.close()
    assert writer.writes == 4


def test_a_failed_group_fails_every_batch_in_it_and_writes_nothing_half(edge_store):
    writer = Writer(edge_store, threading.Lock(), flush_rows=100, batch_rows=4)
    try:
        good = writer.submit(pairs("c", 0, 4))
        bad = pairs("c", 4, 4)
        bad.image_vectors[1] = np.nan  # the store refuses it before writing anything of the group
        refused = writer.submit(bad)
        writer.seal()
        for future in (good, refused):
            with pytest.raises(ValueError, match="NaN"):
                future.result(timeout=30)
    finally:
        writer.close()
    assert edge_store.counts() == {"images": 0, "texts": 0}


def test_ingest_with_flushes_inside_units_stores_every_pair_once(tiny_env, tmp_path):
    ok_json("init")
    folder = write_embeddings_folder(tmp_path / "emb", [7, 5], coarse_dim=32, fine_dim=48,
                                     text_emb_folder=tmp_path / "fine")
    report = ok_json("ingest", folder, "--corpus", "c", "--text-emb", tmp_path / "fine", "--write-batch", "2",
                     "--flush-rows", "3")
    assert (report["ingested"], report["skipped"], report["collections"]) == (12, 0, {"images": 12, "texts": 12})
    assert "--flush-rows" in fails("ingest", folder, "--corpus", "c", "--flush-rows", "0", code=2)


# -- a server: parallel uploads --------------------------------------------------------------


@pytest.fixture
def stub():
    with QdrantStub(api_key=READ_WRITE_KEY, read_only_api_key=READ_ONLY_KEY) as server:
        yield server


def server_store(stub: QdrantStub, tmp_path, key: str) -> ServerStore:
    return ServerStore.from_settings(Settings(home=tmp_path / "home", qdrant_url=stub.url, qdrant_api_key=key))


def test_a_large_write_to_a_server_is_uploaded_by_several_processes_and_stores_every_pair(stub, tmp_path):
    batches = [pairs("big", start, 1024) for start in range(0, 4096, 1024)]
    assert upload_processes(4096) > 1  # the path under test
    store = server_store(stub, tmp_path, READ_WRITE_KEY)
    store.init(PROVENANCE)
    store.upsert_pair_batches(batches)
    assert store.counts() == {"images": 4096, "texts": 4096}
    ids = [pid for batch in batches for pid in batch.ids]
    sent = np.concatenate([b.image_vectors for b in batches])
    assert np.allclose(store.image_vectors(ids), sent / np.linalg.norm(sent, axis=1, keepdims=True), atol=1e-6)
    texts = store.points(TEXTS, [ids[0], ids[-1]])
    assert texts[ids[-1]].payload == {"caption": "caption 4095", "corpus": "big", "key": "k4095",
                                      "url": "https://example.com/4095.jpg"}
    assert store.points(IMAGES, [ids[0]])[ids[0]].payload == {"corpus": "big", "key": "k0"}
    store.close()


def test_a_refused_parallel_upload_says_why_in_one_line(stub, tmp_path):
    owner = server_store(stub, tmp_path, READ_WRITE_KEY)
    owner.init(PROVENANCE)
    reader = server_store(stub, tmp_path, READ_ONLY_KEY)
    reader.open(PROVENANCE)
    with pytest.raises(StoreReadOnlyError) as refused:
        reader.upsert_pair_batches([pairs("big", start, 1024) for start in range(0, 4096, 1024)])
    assert str(refused.value) == (
        "the Qdrant key is read-only: writing captions needs a read-write key (XMORE_QDRANT_API_KEY set to the "
        f"server's api_key, not its read_only_api_key); Qdrant at {stub.url} answered 403")
    assert owner.counts() == {"images": 0, "texts": 0}
    owner.close()
    reader.close()
