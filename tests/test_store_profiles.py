"""Storage profiles (exact, compact, tiny) and the HNSW and corpus-index settings, on both backends.

Qdrant Edge runs in tmp_path; the server code path runs on qdrant-client's local mode,
which keeps the datatype and on-disk flags in its config but stores float32, keeps no
quantized copy, ignores HNSW settings and payload indexes and searches by brute force:
on it these tests check what is recorded, shown and refused, and that every profile's
parameters pass through the server calls; what the engine builds from a profile is
checked on Edge, from its own files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.cli import fails, ok, ok_json
from xmore_db.config import Settings
from xmore_db.errors import ConfigError, StoreError, StoreMismatchError
from xmore_db.store import PairBatch, Provenance, Storage, VectorStore, open_store
from xmore_db.store.edge import RECORD_NAME, EdgeStore
from xmore_db.store.storage import StorageRequest

PROFILES = ("exact", "compact", "tiny")
PROV = Provenance(coarse_model="toy-coarse", coarse_dim=256, fine_model="toy-fine", fine_dim=16)
LOCAL_MODE = ("qdrant-client's local mode ignores quantization, datatype and HNSW settings (it stores float32 and "
              "searches by brute force): what the engine builds is checked on Qdrant Edge")


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def planted(n_background: int, dim: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Vectors with well-separated neighbours: for each of 4 queries, 10 points at cosine 0.95, 0.90, ..., 0.50
    to it, among `n_background` random ones (cosine about 0 ± 1/sqrt(dim)). Returns (vectors, queries, the
    rows of each query's 10 planted neighbours, nearest first)."""
    rng = np.random.default_rng(seed)
    queries = unit(rng.standard_normal((4, dim)))
    rows, expected = [unit(rng.standard_normal((n_background, dim)))], []
    for query in queries:
        noise = rng.standard_normal((10, dim))
        noise -= np.outer(noise @ query, query)  # orthogonal to the query
        cosines = np.linspace(0.95, 0.50, 10)[:, None]
        start = sum(len(r) for r in rows)
        rows.append(unit(cosines * query + np.sqrt(1 - cosines ** 2) * unit(noise)))
        expected.append(list(range(start, start + 10)))
    return np.concatenate(rows), queries, expected


def batch(images: np.ndarray, corpus: str = "planted") -> PairBatch:
    n = len(images)
    rng = np.random.default_rng(5)
    return PairBatch(corpus=corpus, keys=[f"k{i}" for i in range(n)], captions=[f"caption {i}" for i in range(n)],
                     image_vectors=images, text_vectors=unit(rng.standard_normal((n, PROV.fine_dim))))


@pytest.fixture(params=["qdrant-edge", "qdrant-server"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def stores(backend, tmp_path):
    """make(**storage settings) -> a store object over one location; every store made is closed at the end."""
    made: list[VectorStore] = []

    def make(location: str = "store", **storage) -> VectorStore:
        for store in made:  # local mode and Edge allow one open client per location
            store.close()
        url = f"file:{tmp_path / location / 'local'}" if backend == "qdrant-server" else None
        store = open_store(Settings(home=tmp_path / location, qdrant_url=url, **storage))
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def top_ids(store: VectorStore, queries: np.ndarray, limit: int = 10) -> list[list[str]]:
    return [[hit.pair_id for hit in hits] for hits in store.coarse_search(queries, limit=limit)]


@pytest.mark.parametrize("profile", PROFILES)
def test_each_profile_is_recorded_and_finds_what_exact_finds(stores, profile):
    images, queries, expected = planted(60, PROV.coarse_dim)  # local mode writes ~30 points a second
    exact = stores("exact-store")
    exact.init(PROV)
    exact.upsert_pairs(batch(images))
    exact.optimize()
    wanted = top_ids(exact, queries)
    ids = batch(images).ids
    assert wanted == [[ids[row] for row in rows] for rows in expected]  # exact finds the planted neighbours

    store = stores(storage_profile=profile)
    assert store.init(PROV) is True
    store.upsert_pairs(batch(images))
    store.optimize()
    recorded = store.stored_storage()
    assert recorded.profile == profile and recorded == StorageRequest(profile=profile).resolve(None)
    assert top_ids(store, queries) == wanted
    scores = [[hit.score for hit in hits] for hits in store.coarse_search(queries, limit=10)]
    np.testing.assert_allclose(scores, [np.linspace(0.95, 0.50, 10)] * 4, atol=5e-3)  # float16: ~1e-3

    # Reopened without the setting, the store uses what it recorded.
    again = stores()
    again.open(PROV)
    assert again.stored_storage() == recorded and again.storage() == recorded
    assert top_ids(again, queries) == wanted


def test_profiles_bundle_the_documented_knobs():
    assert StorageRequest().resolve(None) == Storage()
    assert StorageRequest(profile="exact").resolve(None).to_dict() == {
        "profile": "exact", "datatype": "float32", "quantization": "none", "vectors_on_disk": False,
        "oversampling": None, "hnsw_m": 16, "hnsw_ef_construct": 200, "corpus_index": True}
    assert StorageRequest(profile="compact").resolve(None).to_dict() == {
        "profile": "compact", "datatype": "float16", "quantization": "scalar", "vectors_on_disk": True,
        "oversampling": 2.0, "hnsw_m": 16, "hnsw_ef_construct": 200, "corpus_index": True}
    assert StorageRequest(profile="tiny").resolve(None).to_dict() == {
        "profile": "tiny", "datatype": "float16", "quantization": "binary", "vectors_on_disk": True,
        "oversampling": 4.0, "hnsw_m": 16, "hnsw_ef_construct": 200, "corpus_index": True}
    # Knobs over a profile; another combination is named custom.
    custom = StorageRequest(profile="compact", vectors_on_disk=False, oversampling=3, hnsw_m=32).resolve(None)
    assert (custom.profile, custom.vectors_on_disk, custom.oversampling, custom.hnsw_m) == ("custom", False, 3.0, 32)
    assert StorageRequest(quantization="binary").resolve(None).oversampling == 4.0


@pytest.mark.parametrize(("built", "asked", "message"), [
    ({"storage_profile": "compact"}, {"storage_profile": "tiny"},
     "was built with storage profile compact (float16 vectors on disk, scalar (int8) quantization in RAM, rescored "
     "at oversampling 2; HNSW m 16, ef_construct 200; keyword index on corpus); XMORE_STORAGE_PROFILE=tiny asks "
     "for another (quantization binary instead of scalar): unset it (an existing store keeps the storage it "
     "records) or use a new store"),
    ({}, {"storage_profile": "compact"},
     "was built with storage profile exact (float32 vectors in RAM, no quantization; HNSW m 16, ef_construct 200; "
     "keyword index on corpus); XMORE_STORAGE_PROFILE=compact asks for another (datatype float16 instead of "
     "float32; quantization scalar instead of none; vectors_on_disk on instead of off): unset it"),
    ({"storage_profile": "tiny"}, {"storage_profile": "tiny", "hnsw_m": 32, "corpus_index": False},
     "XMORE_HNSW_M=32, XMORE_CORPUS_INDEX=off ask for another (hnsw_m 32 instead of 16; corpus_index off instead "
     "of on): unset them"),
])
def test_other_storage_is_refused_before_anything_is_written(stores, tmp_path, built, asked, message):
    images, _, _ = planted(10, PROV.coarse_dim)
    store = stores(**built)
    store.init(PROV)
    store.upsert_pairs(batch(images))
    recorded = store.stored_storage()
    record_file = tmp_path / "store" / "qdrant" / RECORD_NAME
    record_before = record_file.read_bytes() if record_file.exists() else None

    other = stores(**asked)
    for call in (other.init, other.open):
        with pytest.raises(StoreMismatchError) as refused:
            call(PROV)
        assert message in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(StoreError, match="was not opened"):  # writes need a successful open()
        other.upsert_pairs(batch(images, corpus="another"))
    # Nothing was written: the same counts, the same record.
    assert other.counts() == {"images": len(images), "texts": len(images)}
    assert other.stored_storage() == recorded
    if record_before is not None:
        assert record_file.read_bytes() == record_before


def test_asking_for_what_the_store_has_is_no_mismatch(stores):
    store = stores(storage_profile="tiny", hnsw_m=24)
    store.init(PROV)
    for asked in ({}, {"storage_profile": "tiny", "hnsw_m": 24}, {"quantization": "binary"},
                  {"hnsw_ef_construct": 200}):
        again = stores(**asked)
        again.open(PROV)
        assert again.storage().profile == "tiny" and again.storage().hnsw_m == 24


def test_oversampling_is_a_search_setting(stores):
    images, queries, _ = planted(20, PROV.coarse_dim)
    store = stores(storage_profile="compact")
    store.init(PROV)
    store.upsert_pairs(batch(images))
    wanted = top_ids(store, queries)

    wider = stores(oversampling=6)
    wider.open(PROV)  # no refusal: it changes no stored vector
    assert wider.storage().oversampling == 6.0 and wider.stored_storage().oversampling == 2.0
    assert top_ids(wider, queries) == wanted

    exact = stores("exact-store", oversampling=6)
    exact.init(PROV)
    assert exact.storage().oversampling is None  # nothing to rescore without quantization


def test_store_made_before_profiles_reads_as_exact(stores, backend, tmp_path):
    images, queries, _ = planted(20, PROV.coarse_dim)
    store = stores()
    store.init(PROV)
    store.upsert_pairs(batch(images))
    wanted = top_ids(store, queries)
    # What the code before profiles wrote: the same record without its storage entry.
    if backend == "qdrant-edge":
        path = tmp_path / "store" / "qdrant" / RECORD_NAME
        record = json.loads(path.read_text())
        del record["storage"]
        path.write_text(json.dumps(record))
    else:
        for name in store.names.values():
            metadata = dict(store.client.get_collection(name).config.metadata["xmore"])
            del metadata["storage"]
            store.client.update_collection(name, metadata={"xmore": metadata})

    old = stores()
    # Read as what built it then: the engine's ef_construct 100, not today's default of 200.
    assert old.stored_storage() == Storage(hnsw_ef_construct=100) and old.stored_storage().profile == "exact"
    old.open(PROV)
    assert top_ids(old, queries) == wanted
    stores(storage_profile="exact").open(PROV)
    with pytest.raises(StoreMismatchError, match="was built with storage profile exact"):
        stores(storage_profile="compact").open(PROV)


def test_hnsw_and_corpus_index_settings_are_recorded(stores, backend, tmp_path):
    images, queries, _ = planted(20, PROV.coarse_dim)
    store = stores(hnsw_m=32, hnsw_ef_construct=200, corpus_index=False)
    store.init(PROV)
    store.upsert_pairs(batch(images, corpus="a"))
    store.upsert_pairs(batch(images[:5], corpus="b"))
    assert store.stored_storage().build() == {"datatype": "float32", "quantization": "none",
                                              "vectors_on_disk": False, "hnsw_m": 32, "hnsw_ef_construct": 200,
                                              "corpus_index": False}
    # Without the index, corpus filters still work (a scan of the payload).
    assert store.corpus_counts("b") == {"images": 5, "texts": 5}
    [hits] = store.coarse_search(queries[:1], limit=3, corpora=["b"])
    assert {hit.pair_id for hit in hits} <= set(batch(images[:5], corpus="b").ids)
    if backend == "qdrant-server":
        pytest.skip(LOCAL_MODE)
    images_config = json.loads((tmp_path / "store" / "qdrant" / "images" / "edge_config.json").read_text())
    texts_config = json.loads((tmp_path / "store" / "qdrant" / "texts" / "edge_config.json").read_text())
    assert images_config["hnsw_config"]["m"] == 32 and images_config["hnsw_config"]["ef_construct"] == 200
    assert texts_config["hnsw_config"]["m"] == 0  # no graph on texts, whatever m is
    store.close()
    import qdrant_edge

    for name in ("images", "texts"):
        shard = qdrant_edge.EdgeShard.load(str(tmp_path / "store" / "qdrant" / name))
        assert "corpus" not in (shard.info().payload_schema or {})
        shard.close()


def test_caption_cache_vector_follows_the_datatype(stores, backend, tmp_path):
    from xmore_db.store import CaptionCache

    images = planted(20, PROV.coarse_dim)[0]
    store = stores(storage_profile="compact")
    store.init(PROV)
    store.upsert_pairs(batch(images))
    store.set_caption_cache(CaptionCache(model="toy-classifier", dim=6))
    rows = unit(np.random.default_rng(2).standard_normal((len(images), 6)))
    ids = batch(images).ids
    store.set_caption_vectors(ids, rows)
    np.testing.assert_allclose(store.caption_vectors(ids[:3]), rows[:3], atol=1e-3)  # float16 on Edge
    if backend == "qdrant-server":
        pytest.skip(LOCAL_MODE)
    config = json.loads((tmp_path / "store" / "qdrant" / "texts" / "edge_config.json").read_text())
    assert config["vectors"]["classifier"]["datatype"] == "float16"
    assert config["vectors"]["fine"] == {"size": 16, "distance": "Cosine", "on_disk": True, "datatype": "float16"}


# What Qdrant Edge builds for each profile: the HNSW segment's own config and the sizes of its files.
BUILT = {
    "exact": {"storage_type": "InRamMmap", "datatype": None, "quantization_config": None,
              "bytes_per_vector": 512 * 4, "quantized_bytes_per_vector": None},
    "compact": {"storage_type": "Mmap", "datatype": "float16",
                "quantization_config": {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}},
                "bytes_per_vector": 512 * 2, "quantized_bytes_per_vector": 512 + 4},  # int8 codes, one offset
    "tiny": {"storage_type": "Mmap", "datatype": "float16", "quantization_config": {"binary": {"always_ram": True}},
             "bytes_per_vector": 512 * 2, "quantized_bytes_per_vector": 512 // 8},  # one bit a dimension
}


@pytest.mark.parametrize("profile", PROFILES)
def test_edge_builds_what_the_profile_says(tmp_path, profile):
    """10,500 512-d vectors: past the full-scan threshold (10 MB even as float16), so optimize() builds the graph
    and, in compact and tiny, the quantized copy; planted neighbours are still found in order."""
    prov = Provenance(coarse_model="c", coarse_dim=512, fine_model="f", fine_dim=8)
    images, queries, expected = planted(10_500 - 40, 512)
    n = len(images)
    pairs = PairBatch(corpus="c", keys=[str(i) for i in range(n)], captions=["c"] * n, image_vectors=images,
                      text_vectors=unit(np.random.default_rng(1).standard_normal((n, 8))))
    path = tmp_path / "qdrant"
    with EdgeStore(path, storage=StorageRequest(profile=profile)) as store:
        store.init(prov)
        store.upsert_pairs(pairs)
        store.optimize()
        assert store.index_state()["images"].indexed == n
        ids = pairs.ids
        assert top_ids(store, queries) == [[ids[row] for row in rows] for rows in expected]

    [segment] = [s for s in (path / "images" / "segments").iterdir()
                 if json.loads((s / "segment.json").read_text())["config"]["vector_data"]["coarse"]["index"]["type"]
                 == "hnsw"]
    config = json.loads((segment / "segment.json").read_text())["config"]["vector_data"]["coarse"]
    want = BUILT[profile]
    assert config["index"]["options"]["m"] == 16 and config["index"]["options"]["ef_construct"] == 200
    assert (config["storage_type"], config.get("datatype"), config["quantization_config"]) == (
        want["storage_type"], want["datatype"], want["quantization_config"])
    storage = segment / "vector_storage-coarse"
    assert (storage / "matrix.dat").stat().st_size // n == want["bytes_per_vector"]
    quantized = storage / "quantized.data"
    if want["quantized_bytes_per_vector"] is None:
        assert not quantized.exists()
    else:
        assert quantized.stat().st_size // n == want["quantized_bytes_per_vector"]


def test_settings_name_the_bad_value():
    with pytest.raises(ConfigError, match=r"^--storage-profile \(XMORE_STORAGE_PROFILE\) 'big' is not one of "
                                          r"exact, compact, tiny$"):
        Settings.from_env({"XMORE_STORAGE_PROFILE": "big"})
    with pytest.raises(ConfigError, match=r"^--hnsw-m \(XMORE_HNSW_M\) must be at least 2, got 1$"):
        Settings.from_env({"XMORE_HNSW_M": "1"})
    with pytest.raises(ConfigError, match=r"^--oversampling \(XMORE_OVERSAMPLING\) must be a finite number at least 1"):
        Settings.from_env({"XMORE_OVERSAMPLING": "0.5"})
    with pytest.raises(ConfigError, match=r"^XMORE_VECTORS_ON_DISK='maybe' is not a valid value"):
        Settings.from_env({"XMORE_VECTORS_ON_DISK": "maybe"})
    assert Settings.from_env({"XMORE_VECTORS_ON_DISK": "on", "XMORE_CORPUS_INDEX": "off"}).corpus_index is False


# -- the CLI ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["compact", "tiny"])
def test_cli_init_ingest_status_with_a_profile(backend_env, monkeypatch, corpus_dir, query_images, profile):
    monkeypatch.setenv("XMORE_STORAGE_PROFILE", profile)
    init = ok_json("init")
    assert init["storage"]["profile"] == profile
    ok("ingest", corpus_dir, "--corpus", "shapes")
    status = ok_json("status")
    assert status["storage"] == StorageRequest(profile=profile).resolve(None).to_dict()
    assert status["collections"] == {"images": 60, "texts": 60}
    # The setting need not be repeated: the store uses the profile it records.
    monkeypatch.delenv("XMORE_STORAGE_PROFILE")
    text = ok("status").stdout
    assert f"  storage:     {profile}: float16 vectors on disk, " in text
    assert len(ok_json("retrieve", query_images[0])["captions"]) == 4

    # Another profile is refused, one line, before anything is written.
    other = "tiny" if profile == "compact" else "compact"
    error = fails("--storage-profile", other, "ingest", corpus_dir, "--corpus", "more")
    assert error.startswith("Error: the vector store at ") and \
        f"was built with storage profile {profile} (" in error and \
        f"XMORE_STORAGE_PROFILE={other} asks for another (quantization " in error
    assert ok_json("status")["collections"] == {"images": 60, "texts": 60}
    assert ok_json("corpora", "list")[0]["corpus"] == "shapes" and len(ok_json("corpora", "list")) == 1


def test_cli_rejects_an_unknown_profile(tiny_env):
    error = fails("--storage-profile", "big", "init", code=2)
    assert "'big' is not one of exact, compact, tiny" in error
    assert not Path(os.environ["XMORE_HOME"]).exists()  # init never ran
