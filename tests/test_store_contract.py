"""One contract for both vector store backends.

Qdrant Edge runs in tmp_path; the server code path runs on qdrant-client's
local mode (`file:` URL in tmp_path), which is exact brute force, so both must
agree with numpy to the last id.
"""

from __future__ import annotations

import dataclasses
import time
import uuid

import numpy as np
import pytest

from xmore_db.config import Settings
from xmore_db.errors import (
    ConfigError,
    StoreError,
    StoreLockedError,
    StoreMismatchError,
    StoreNotInitializedError,
    StoreUnreachableError,
)
from xmore_db.store import (
    CaptionHit,
    ImageHit,
    PairBatch,
    Provenance,
    VectorStore,
    open_store,
    pair_id,
)

PROV = Provenance(coarse_model="toy-coarse", coarse_dim=8, fine_model="toy-fine", fine_dim=12)
N = 60
PINNED_PAIR_ID = "c6dc2e98-5b85-5e7b-b447-077ee789ecdf"


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "images": unit(rng.standard_normal((N, PROV.coarse_dim))).astype(np.float32),
        "texts": unit(rng.standard_normal((N, PROV.fine_dim))).astype(np.float32),
        "coarse_q": unit(rng.standard_normal((5, PROV.coarse_dim))).astype(np.float32),
        "fine_q": unit(rng.standard_normal((3, PROV.fine_dim))).astype(np.float32),
    }


def keys(n: int = N) -> list[str]:
    return [f"k{i:03d}" for i in range(n)]


def captions(n: int = N) -> list[str]:
    return [f"a photo number {i}, naïve café ✓" for i in range(n)]


def batch(data, corpus: str = "corpus-a", n: int = N) -> PairBatch:
    return PairBatch(corpus=corpus, keys=keys(n), captions=captions(n),
                     image_vectors=data["images"][:n], text_vectors=data["texts"][:n])


@pytest.fixture(params=["qdrant-edge", "qdrant-server"])
def make_store(request, tmp_path):
    """A factory of store objects over one location; every store made is closed at the end."""
    if request.param == "qdrant-edge":
        settings = Settings(home=tmp_path / "home")
    else:
        settings = Settings(home=tmp_path / "home", qdrant_url=f"file:{tmp_path / 'local'}")
    made: list[VectorStore] = []

    def make() -> VectorStore:
        for store in made:  # local mode and Edge allow one open client per location
            store.close()
        store = open_store(settings)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def filled(make_store, data) -> VectorStore:
    store = make_store()
    assert store.init(PROV) is True
    store.upsert_pairs(batch(data))
    return store


def assert_same_hits(got, expected) -> None:
    assert [[h.pair_id for h in hits] for hits in got] == [
        [h.pair_id for h in hits] for hits in expected]
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-5)


def test_backend_and_location(make_store, tmp_path):
    store = make_store()
    assert isinstance(store, VectorStore)
    assert store.backend in ("qdrant-edge", "qdrant-server")
    assert str(tmp_path) in store.location


def test_init_creates_then_is_idempotent(make_store, data):
    store = make_store()
    assert store.stored_provenance() is None
    assert store.init(PROV) is True
    assert store.counts() == {"images": 0, "texts": 0}
    assert store.stored_provenance() == PROV
    store.upsert_pairs(batch(data, n=10))

    again = make_store()
    assert again.init(PROV) is False
    assert again.counts() == {"images": 10, "texts": 10}
    assert again.stored_provenance() == PROV


def test_open_before_init_says_run_init(make_store):
    store = make_store()
    with pytest.raises(StoreNotInitializedError, match=r"no collections at .*: run `xmore init`"):
        store.open(PROV)
    with pytest.raises(StoreNotInitializedError):
        store.counts()
    assert store.stored_provenance() is None


@pytest.mark.parametrize("change", [
    {"coarse_dim": 16},
    {"fine_dim": 24},
    {"coarse_model": "other-coarse"},
    {"fine_model": "other-fine"},
])
def test_open_with_other_models_fails_before_writing(make_store, data, change):
    store = make_store()
    store.init(PROV)
    store.upsert_pairs(batch(data, n=7))

    other = dataclasses.replace(PROV, **change)
    store = make_store()
    for call in (store.open, store.init):
        with pytest.raises(StoreMismatchError) as caught:
            call(other)
        message = str(caught.value)
        assert "\n" not in message
        role = "coarse" if next(iter(change)).startswith("coarse") else "fine"
        collection = "images" if role == "coarse" else "texts"
        assert f"'{collection}'" in message
        assert getattr(PROV, f"{role}_model") in message
        assert getattr(other, f"{role}_model") in message
        assert f"{getattr(PROV, f'{role}_dim')}-d" in message
        assert f"{getattr(other, f'{role}_dim')}-d" in message
    store.open(PROV)
    assert store.counts() == {"images": 7, "texts": 7}
    assert store.stored_provenance() == PROV


def test_fingerprints_are_kept_but_not_compared(make_store):
    store = make_store()
    store.init(dataclasses.replace(PROV, coarse_fingerprint="sha256:abc"))
    assert store.stored_provenance().coarse_fingerprint == "sha256:abc"
    make_store().open(dataclasses.replace(PROV, coarse_fingerprint="sha256:other"))


def test_upsert_counts_and_reupsert_changes_nothing(filled, data):
    assert filled.counts() == {"images": N, "texts": N}
    filled.upsert_pairs(batch(data))
    assert filled.counts() == {"images": N, "texts": N}
    filled.upsert_pairs(batch(data, corpus="corpus-b", n=5))
    assert filled.counts() == {"images": N + 5, "texts": N + 5}


def test_writes_need_open(make_store, data):
    make_store().init(PROV)
    with pytest.raises(StoreError, match="call open"):
        make_store().upsert_pairs(batch(data, n=2))


def test_upsert_rejects_bad_batches(filled, data):
    with pytest.raises(StoreMismatchError, match=r"image vectors have 12 dimensions .*'images'"):
        filled.upsert_pairs(PairBatch(corpus="c", keys=["a"], captions=["x"],
                                      image_vectors=data["texts"][:1],
                                      text_vectors=data["texts"][:1]))
    with pytest.raises(ValueError, match="captions"):
        filled.upsert_pairs(PairBatch(corpus="c", keys=["a", "b"], captions=["x"],
                                      image_vectors=data["images"][:2],
                                      text_vectors=data["texts"][:2]))
    with pytest.raises(ValueError, match="NaN"):
        filled.upsert_pairs(PairBatch(corpus="c", keys=["a"], captions=["x"],
                                      image_vectors=np.full((1, 8), np.nan),
                                      text_vectors=data["texts"][:1]))
    assert filled.counts() == {"images": N, "texts": N}


def test_coarse_search_equals_numpy(filled, data):
    ids = [pair_id("corpus-a", key) for key in keys()]
    hits = filled.coarse_search(data["coarse_q"], limit=10)
    assert len(hits) == len(data["coarse_q"])
    scores = data["coarse_q"] @ data["images"].T
    for row, got in zip(scores, hits, strict=True):
        order = np.argsort(-row)[:10]
        assert all(isinstance(hit, ImageHit) for hit in got)
        assert [hit.pair_id for hit in got] == [ids[j] for j in order]
        np.testing.assert_allclose([hit.score for hit in got], row[order], atol=1e-5)
    assert filled.coarse_search(data["coarse_q"][:0], limit=3) == []


@pytest.mark.parametrize("backend", ["qdrant-edge", "qdrant-server"])
@pytest.mark.parametrize("profile", ["exact", "compact", "tiny"])
def test_batched_searches_equal_one_by_one(data, backend, profile, tmp_path):
    """A batch is one engine call per stage (Qdrant Edge holds the GIL while it searches, so threads would
    gain nothing; local mode's client is not thread-safe): its answers are each query's own, in order.
    Qdrant Edge's scores are the same to the bit; local mode's numpy products round differently in a batch."""
    url = f"file:{tmp_path / 'local'}" if backend == "qdrant-server" else None
    with open_store(Settings(home=tmp_path / "home", storage_profile=profile, qdrant_url=url)) as store:
        store.init(PROV)
        store.upsert_pairs(batch(data))
        store.optimize()
        queries = np.concatenate([data["coarse_q"], data["images"][:3]])  # 3 that hit a stored vector exactly
        batched = store.coarse_search(queries, limit=7)
        one_by_one = [store.coarse_search(q[None], limit=7)[0] for q in queries]
        ids = [pair_id("corpus-a", key) for key in keys()]
        groups = [ids[:20], [], ids[10:50], ids[5:6], ids]
        fine_queries = np.resize(data["fine_q"], (len(groups), PROV.fine_dim))
        fine = store.fine_search(fine_queries, groups, limit=5)
        fine_one_by_one = [store.fine_search(q[None], [g], limit=5)[0]
                           for q, g in zip(fine_queries, groups, strict=True)]
    assert_same_hits(batched, one_by_one)
    assert_same_hits(fine, fine_one_by_one)
    assert [[h.caption for h in hits] for hits in fine] == [[h.caption for h in hits] for hits in fine_one_by_one]
    if backend == "qdrant-edge":
        assert batched == one_by_one and fine == fine_one_by_one


def test_coarse_search_checks_query_size(filled, data):
    with pytest.raises(StoreMismatchError, match="query vectors have 12 dimensions"):
        filled.coarse_search(data["fine_q"], limit=3)
    with pytest.raises(ValueError):
        filled.coarse_search(data["coarse_q"][0], limit=3)
    with pytest.raises(ValueError):
        filled.coarse_search(data["coarse_q"], limit=0)


def test_fine_search_ranks_only_candidates_like_numpy(filled, data):
    ids = [pair_id("corpus-a", key) for key in keys()]
    rng = np.random.default_rng(3)
    groups = [rng.choice(N, size=size, replace=False) for size in (20, 5, 1)]
    candidates = [[ids[j] for j in group] for group in groups]
    hits = filled.fine_search(data["fine_q"], candidates, limit=4)
    assert len(hits) == 3
    for query, group, got in zip(data["fine_q"], groups, hits, strict=True):
        scores = data["texts"][group] @ query
        order = np.argsort(-scores)[:4]
        assert all(isinstance(hit, CaptionHit) for hit in got)
        assert [hit.pair_id for hit in got] == [ids[group[j]] for j in order]
        np.testing.assert_allclose([hit.score for hit in got], scores[order], atol=1e-5)
        assert {hit.pair_id for hit in got} <= {ids[j] for j in group}


def test_fine_search_empty_candidates(filled, data):
    ids = [pair_id("corpus-a", key) for key in keys()]
    hits = filled.fine_search(data["fine_q"], [[], ids[:3], []], limit=2)
    assert hits[0] == [] and hits[2] == []
    assert len(hits[1]) == 2
    assert filled.fine_search(data["fine_q"][:1], [[]], limit=2) == [[]]
    unknown = pair_id("corpus-a", "never-stored")
    assert filled.fine_search(data["fine_q"][:1], [[unknown]], limit=2) == [[]]
    with pytest.raises(ValueError, match="one candidate list per query"):
        filled.fine_search(data["fine_q"], [ids[:3]], limit=2)


def test_caption_payload_round_trip(filled, data):
    target = 17
    pid = pair_id("corpus-a", keys()[target])
    query = data["texts"][target:target + 1]
    [[hit]] = filled.fine_search(query, [[pid]], limit=5)
    assert hit == CaptionHit(pair_id=pid, score=pytest.approx(1.0, abs=1e-5),
                             caption=captions()[target], corpus="corpus-a", key=keys()[target])


def test_existing_ids(filled):
    present = [pair_id("corpus-a", key) for key in keys()[:4]]
    absent = [pair_id("corpus-a", "nope"), pair_id("corpus-b", keys()[0])]
    assert filled.existing_ids(present + absent) == set(present)
    assert filled.existing_ids([]) == set()
    assert filled.existing_ids([present[0].upper()]) == {present[0]}


def test_data_survives_close_and_reopen(filled, make_store, data):
    before = filled.coarse_search(data["coarse_q"], limit=5)
    reopened = make_store()
    reopened.open(PROV)
    assert reopened.counts() == {"images": N, "texts": N}
    assert_same_hits(reopened.coarse_search(data["coarse_q"], limit=5), before)


def test_reads_work_without_configured_models(filled, make_store, data):
    raw = make_store()  # what `xmore status` does: no provenance at hand
    assert raw.stored_provenance() == PROV
    assert raw.counts() == {"images": N, "texts": N}
    assert len(raw.coarse_search(data["coarse_q"], limit=3)[0]) == 3


def test_optimize_keeps_results(filled, data):
    before = filled.coarse_search(data["coarse_q"], limit=5)
    filled.optimize()
    assert_same_hits(filled.coarse_search(data["coarse_q"], limit=5), before)
    assert filled.counts() == {"images": N, "texts": N}


class Killed(BaseException):
    """Stands for a kill -9: nothing after it runs, no except clause of ours catches it."""


def _kill(*args, **kwargs):
    raise Killed


def test_index_state(filled, make_store):
    state = filled.index_state()
    assert set(state) == {"images", "texts"}
    assert (state["images"].points, state["texts"].points) == (N, N)
    assert state["images"].graph and not state["texts"].graph  # texts: m=0, searched under an id filter
    assert not state["images"].needs_build and not state["texts"].needs_build
    if filled.backend == "qdrant-edge":
        assert state["images"].indexed == 0  # 60 points are under the indexing threshold: searched exactly
    else:
        assert state["images"].indexed is None  # qdrant-client's local mode keeps no index
    assert filled.optimize_if_needed() is False
    assert make_store().index_state() == state  # a read: needs no configured models


def test_build_interrupted_by_a_kill_is_remembered_and_finished(filled, make_store, data, monkeypatch):
    before = filled.coarse_search(data["coarse_q"], limit=5)
    monkeypatch.setattr(filled, "_build_indexes", _kill)
    with pytest.raises(Killed):
        filled.optimize()
    store = make_store()  # a new process, as far as the store can tell
    state = store.index_state()
    assert state["images"].needs_build and not state["texts"].needs_build
    with pytest.raises(StoreError, match="call open"):
        store.optimize_if_needed()  # building writes: the models are checked first
    store.open(PROV)
    assert store.optimize_if_needed() is True
    assert not any(s.needs_build for s in store.index_state().values())
    assert store.optimize_if_needed() is False
    assert_same_hits(store.coarse_search(data["coarse_q"], limit=5), before)


def test_bulk_load_killed_before_its_build_is_remembered(make_store, data):
    store = make_store()
    store.init(PROV)
    with pytest.raises(Killed):
        with store.bulk_load():
            store.upsert_pairs(batch(data, n=10))
            raise Killed
    store = make_store()
    store.open(PROV)
    assert store.index_state()["images"].needs_build
    assert store.optimize_if_needed() is True
    assert not store.index_state()["images"].needs_build
    with store.bulk_load():  # a load that finishes leaves nothing owed
        store.upsert_pairs(batch(data, corpus="corpus-b", n=5))
    assert not store.index_state()["images"].needs_build and store.counts() == {"images": 15, "texts": 15}


def test_context_manager_closes(make_store, data):
    with make_store() as store:
        store.init(PROV)
        store.upsert_pairs(batch(data, n=3))
    store = make_store()
    store.open(PROV)
    assert store.counts() == {"images": 3, "texts": 3}


def test_pair_id_is_deterministic():
    first = pair_id("laion", "000001")
    assert first == pair_id("laion", "000001") == PINNED_PAIR_ID  # the namespace never changes
    assert uuid.UUID(first).version == 5
    assert first != pair_id("laion", "000002") != pair_id("other", "000001")
    with pytest.raises(ValueError, match="separator"):
        pair_id("a\x1fb", "c")


# -- server backend only ----------------------------------------------------------


def test_unreachable_server_fails_fast():
    store = open_store(Settings(qdrant_url="http://127.0.0.1:1"))
    started = time.monotonic()
    expected = r"^cannot reach Qdrant at http://127\.0\.0\.1:1: "
    with pytest.raises(StoreUnreachableError, match=expected):
        store.open(PROV)
    assert time.monotonic() - started < 5
    store.close()


def test_server_location_hides_the_api_key():
    store = open_store(Settings(qdrant_url="https://127.0.0.1:1", qdrant_api_key="s3cret"))
    assert store.backend == "qdrant-server"
    assert "s3cret" not in store.location
    store.close()


def test_server_in_memory(data):
    with open_store(Settings(qdrant_url=":memory:")) as store:
        assert store.location == ":memory:"
        assert store.init(PROV) is True
        store.upsert_pairs(batch(data, n=5))
        assert store.counts() == {"images": 5, "texts": 5}


def test_server_bad_url_is_a_config_error():
    with pytest.raises(ConfigError, match="not understood"):
        open_store(Settings(qdrant_url="ftp://example.org"))


def test_local_mode_path_held_elsewhere_is_locked(tmp_path):
    settings = Settings(qdrant_url=f"file:{tmp_path / 'held'}")
    with open_store(settings):
        with pytest.raises(StoreLockedError, match="open in another process"):
            open_store(settings)


def test_server_collection_without_our_metadata_is_refused(tmp_path):
    from qdrant_client import QdrantClient, models

    from xmore_db.store.server import ServerStore

    client = QdrantClient(":memory:")
    client.create_collection("images", vectors_config={
        "coarse": models.VectorParams(size=8, distance=models.Distance.COSINE)})
    store = ServerStore(client, location=":memory:")
    with pytest.raises(StoreMismatchError, match="not created by xmore"):
        store.init(PROV)
    assert not client.collection_exists("texts")
    store.close()


def test_server_collection_prefix(data):
    from qdrant_client import QdrantClient

    from xmore_db.store.server import ServerStore

    client = QdrantClient(":memory:")
    with ServerStore(client, location=":memory:", collection_prefix="xm_") as store:
        store.init(PROV)
        store.upsert_pairs(batch(data, n=4))
        assert {c.name for c in client.get_collections().collections} == {"xm_images", "xm_texts"}
        assert store.counts() == {"images": 4, "texts": 4}


def test_caption_cache_filled_at_upsert_and_backfilled(make_store, data):
    from xmore_db.store import CaptionCache

    store = make_store()
    store.init(PROV)
    assert store.caption_cache() is None
    store.upsert_pairs(batch(data, n=20))  # written before the cache existed
    cache = CaptionCache(model="toy-classifier", dim=6)
    store.set_caption_cache(cache)
    assert store.caption_cache() == cache
    rng = np.random.default_rng(3)
    vectors = unit(rng.standard_normal((N, 6))).astype(np.float32)
    full = batch(data)
    store.upsert_pairs(PairBatch(corpus=full.corpus, keys=full.keys[20:], captions=full.captions[20:],
                                 image_vectors=full.image_vectors[20:], text_vectors=full.text_vectors[20:],
                                 caption_vectors=vectors[20:]))
    ids = [pair_id("corpus-a", k) for k in keys()]
    got = store.caption_vectors(ids)
    assert np.isnan(got[:20]).all() and np.allclose(got[20:], vectors[20:], atol=1e-6)

    # The backfill: pages of captions still lacking a vector, then filled.
    missing, offset = [], None
    while True:
        page, offset = store.uncached_captions(limit=7, offset=offset)
        missing += page
        if offset is None:
            break
    assert sorted(pid for pid, _ in missing) == sorted(ids[:20])
    assert {caption for _, caption in missing} == set(captions()[:20])
    store.set_caption_vectors([pid for pid, _ in missing], vectors[[ids.index(pid) for pid, _ in missing]])
    assert np.allclose(store.caption_vectors(ids), vectors, atol=1e-6)
    assert store.uncached_captions(limit=10) == ([], None)

    # Another classifier replaces the cache: its vectors start empty.
    other = CaptionCache(model="toy-classifier-2", dim=4)
    store.set_caption_cache(other)
    assert store.caption_cache() == other
    assert np.isnan(store.caption_vectors(ids[:3])).all()
    with pytest.raises(StoreMismatchError):
        store.set_caption_vectors(ids[:1], vectors[:1])  # 6-d into a 4-d cache
    reopened = make_store()
    assert reopened.caption_cache() == other


@pytest.mark.filterwarnings("ignore:Payload indexes have no effect")
def test_server_load_killed_with_indexing_off_is_remembered_and_restored(data, monkeypatch):
    """A server's bulk load turns indexing off (indexing_threshold 0); a kill leaves it off for good
    unless the store sees it. qdrant-client's local mode has no optimizer settings, so the settings
    a server would keep are played by a dict here; everything else runs for real."""
    from qdrant_client import QdrantClient

    from xmore_db.store.server import DEFAULT_INDEXING_THRESHOLD_KB, ServerStore

    client = QdrantClient(":memory:")
    thresholds = {"images": 20_000, "texts": 20_000}
    get_collection, update_collection = client.get_collection, client.update_collection

    def get(name, **kwargs):
        info = get_collection(name, **kwargs)
        info.config.optimizer_config.indexing_threshold = thresholds[name]
        return info

    def update(name, optimizers_config=None, **kwargs):
        if optimizers_config is not None:
            thresholds[name] = optimizers_config.indexing_threshold
        return update_collection(name, **kwargs) if kwargs else True

    monkeypatch.setattr(client, "get_collection", get)
    monkeypatch.setattr(client, "update_collection", update)
    store = ServerStore(client, location="http://server.test:6333")  # not local: the server code path
    store.init(PROV)
    with pytest.raises(Killed):
        with store.bulk_load():
            store.upsert_pairs(batch(data, n=10))
            assert thresholds == {"images": 0, "texts": 0}
            raise Killed
    # A real kill also skips the `finally` that restored the settings: put back what it leaves.
    thresholds.update(images=0, texts=0)
    state = store.index_state()
    assert state["images"].needs_build and state["texts"].needs_build
    assert store.optimize_if_needed() is True
    assert thresholds == {"images": DEFAULT_INDEXING_THRESHOLD_KB, "texts": DEFAULT_INDEXING_THRESHOLD_KB}
    assert not any(s.needs_build for s in store.index_state().values())
    store.close()
