"""RECO: the fusion math, the fusion layers, training (memory, loss, checkpoints) and the CLI around them."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.cli import fails, ok, ok_json
from tests.conftest import TINY_MODELS
from xmore_db.config import Settings
from xmore_db.errors import BadInputError, ConfigError
from xmore_db.methods import MethodInputs, get_method
from xmore_db.methods.reco import RecoFusion, reco_mean
from xmore_db.reco.layers import build_layers, load_fusion, read_fusion, save_fusion
from xmore_db.reco.memory import TrainingMemory, build_memory, image_folder
from xmore_db.reco.train import Trainer, TrainOptions, reco_loss
from xmore_db.toy import write_test_set
from xmore_db.workspace import Workspace


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# -- reco-mean -----------------------------------------------------------------------------------------------


def test_reco_mean_by_hand():
    q = np.array([[1.0, 0.0]])
    r = np.array([[[0.0, 1.0], [1.0, 0.0]]])
    # cosines 0 and 1, s = ln 3: weights 1/4 and 3/4; q + 1 * (0.75, 0.25) = (1.75, 0.25), normalised.
    out = reco_mean(q, r, alpha=1.0, logit_scale=np.log(3.0))
    assert np.allclose(out, unit([[1.75, 0.25]]))
    assert np.allclose(reco_mean(q, r, alpha=0.0, logit_scale=10.0), q)


def test_reco_mean_ignores_nan_rows_and_keeps_queries_without_items():
    rng = np.random.default_rng(0)
    q, r = unit(rng.normal(size=(3, 5))), unit(rng.normal(size=(3, 4, 5)))
    padded = np.concatenate([r[:, :2], np.full((3, 2, 5), np.nan)], axis=1)
    padded[2] = np.nan  # query 2 retrieved nothing
    before = padded.copy()
    out = reco_mean(q, padded, alpha=0.7, logit_scale=20.0)
    assert out.shape == (3, 5) and np.allclose(np.linalg.norm(out, axis=1), 1)
    assert np.allclose(out[:2], reco_mean(q[:2], r[:, :2][:2], alpha=0.7, logit_scale=20.0))
    assert np.allclose(out[2], q[2])
    assert np.array_equal(np.isnan(padded), np.isnan(before))  # inputs untouched
    with pytest.raises(ValueError, match=r"retrieved must be \(N, k, D\)"):
        reco_mean(q, r[:2], alpha=1.0, logit_scale=1.0)


def test_reco_methods_refine_images_and_prompts_with_their_own_k():
    rng = np.random.default_rng(1)
    images, prompts = unit(rng.normal(size=(4, 6))), unit(rng.normal(size=(3, 6)))
    items, neighbours = unit(rng.normal(size=(4, 8, 6))), unit(rng.normal(size=(3, 8, 6)))
    fusion = RecoFusion(alpha=0.5, k=3)
    inputs = MethodInputs(image_embeddings=images, prompts=prompts, logit_scale=10.0, indirect_captions=items,
                          prompt_neighbours=neighbours, fusion=fusion)
    p = get_method("reco-mean").modalities(inputs, 16).p_image
    expected_images = reco_mean(images, items[:, :3], alpha=0.5, logit_scale=10.0)
    expected_prompts = reco_mean(prompts, neighbours[:, :3], alpha=0.5, logit_scale=10.0)
    logits = 10.0 * expected_images @ expected_prompts.T
    assert np.allclose(p, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), atol=1e-6)
    # Without prompt neighbours (text side off) the prompts stay as they are.
    plain = MethodInputs(image_embeddings=images, prompts=prompts, logit_scale=10.0, indirect_captions=items,
                         fusion=fusion)
    logits = 10.0 * expected_images @ prompts.T
    assert np.allclose(get_method("reco-mean").modalities(plain, 16).p_image,
                       np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), atol=1e-6)


# -- the fusion layers ---------------------------------------------------------------------------------------


def _perturbed(dim: int, text: bool = True, k: int = 4, seed: int = 0):
    layers = build_layers(dim, k=k, text=text, seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in layers.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator))
    return layers


def test_an_untrained_layer_returns_the_query_and_padding_is_masked():
    rng = np.random.default_rng(2)
    q, r = unit(rng.normal(size=(5, 16))).astype(np.float32), unit(rng.normal(size=(5, 4, 16))).astype(np.float32)
    fresh = build_layers(16, k=4, text=True, seed=0)
    assert np.allclose(fresh.refine_images(q, r), q, atol=1e-6)
    layers = _perturbed(16)
    out = layers.refine_images(q, r)
    assert out.shape == (5, 16) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    assert not np.allclose(out, q, atol=1e-3)
    padded = np.concatenate([r[:, :2], np.full((5, 2, 16), np.nan, dtype=np.float32)], axis=1)
    assert np.allclose(layers.refine_images(q, padded), layers.refine_images(q, r[:, :2]), atol=1e-5)
    assert np.allclose(layers.refine_prompts(q, padded), layers.refine_prompts(q, r[:, :2]), atol=1e-5)


def test_checkpoints_round_trip_and_are_refused_across_classifiers(tmp_path):
    layers = _perturbed(16)
    path = tmp_path / "fusion.safetensors"
    save_fusion(path, layers, {"classifier": "xmore-tiny", "classifier_fingerprint": "fp", "dim": 16})
    record = json.loads((tmp_path / "fusion.json").read_text())
    assert record["k"] == 4 and record["text_side"] is True and record["kind"] == "xmore-reco-fusion"
    loaded = load_fusion(path, classifier="xmore-tiny", fingerprint="fp", dim=16)
    rng = np.random.default_rng(3)
    q, r = unit(rng.normal(size=(3, 16))).astype(np.float32), unit(rng.normal(size=(3, 4, 16))).astype(np.float32)
    assert np.allclose(loaded.refine_images(q, r), layers.refine_images(q, r), atol=1e-6)
    assert np.allclose(loaded.refine_prompts(q, r), layers.refine_prompts(q, r), atol=1e-6)
    with pytest.raises(BadInputError, match="trained for classifier xmore-tiny but the configured classifier is RN50"):
        load_fusion(path, classifier="RN50:openai", fingerprint="fp", dim=16)
    with pytest.raises(BadInputError, match="other weights of xmore-tiny"):
        load_fusion(path, classifier="xmore-tiny", fingerprint="another", dim=16)
    (tmp_path / "bad.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(BadInputError, match="cannot be read"):
        read_fusion(tmp_path / "bad.safetensors")


# -- training ------------------------------------------------------------------------------------------------


def _synthetic_memory(n: int = 48, dim: int = 16, k: int = 4, seed: int = 0) -> TrainingMemory:
    """Images are noisy captions; each pair retrieves the captions (images) of random other pairs."""
    rng = np.random.default_rng(seed)
    captions = unit(rng.normal(size=(n, dim))).astype(np.float32)
    images = unit(captions + 0.9 * rng.normal(size=(n, dim))).astype(np.float32)
    neighbours = np.stack([rng.choice(np.delete(np.arange(n), i), k, replace=False) for i in range(n)])
    neighbours[0, -1] = -1  # one padded slot
    return TrainingMemory(ids=np.array([str(i) for i in range(n)]), image_queries=images, captions=captions,
                          image_neighbours=neighbours.astype(np.int32), images=images,
                          text_neighbours=neighbours[:, ::-1].astype(np.int32).copy())


def test_training_steps_lower_the_loss_on_a_tiny_memory():
    memory = _synthetic_memory()
    layers = build_layers(16, k=4, text=True, seed=0)
    trainer = Trainer(layers, memory, TrainOptions(batch=32, lr=1e-2, holdout=0.0), scale=10.0)
    everything = memory.batch(np.arange(len(memory)))
    assert np.isnan(everything["image_items"][0, -1]).all()
    with torch.no_grad():
        before = float(reco_loss(layers, everything, 10.0))
    for step in range(30):
        trainer.step(step)
    with torch.no_grad():
        after = float(reco_loss(layers, everything, 10.0))
    assert after < before - 0.05, (before, after)


def test_memory_batches_and_holdout_are_seeded():
    memory = _synthetic_memory()
    a = Trainer(build_layers(16, k=4, text=False, seed=0), memory, TrainOptions(batch=8, seed=5), scale=10.0)
    b = Trainer(build_layers(16, k=4, text=False, seed=0), memory, TrainOptions(batch=8, seed=5), scale=10.0)
    assert np.array_equal(a.rows(7), b.rows(7)) and not np.array_equal(a.rows(7), a.rows(8))
    assert len(a.held_rows) == 2 and not set(a.held_rows) & set(a.train_rows)
    assert not any(set(a.rows(s)) & set(a.held_rows) for s in range(20))


def test_non_folder_corpora_cannot_be_reencoded():
    settings = Settings(coarse_model="xmore-tiny", fine_model="xmore-tiny-wide", classifier_model="xmore-tiny-wide")
    units = [SimpleNamespace(kind="webdataset", source="/shards")]
    workspace = SimpleNamespace(settings=settings, ledger=SimpleNamespace(units=lambda corpus: units))
    with pytest.raises(ConfigError, match="only a folder corpus keeps .*ingested as webdataset"):
        image_folder(workspace, "web")


# -- through the store and the CLI ---------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path, monkeypatch):
    for name in ("XMORE_QDRANT_URL", "XMORE_DATABASE_URL", "XMORE_DEBUG", "XMORE_CAPTION_CACHE", "XMORE_RECO_K"):
        monkeypatch.delenv(name, raising=False)
    for name, value in dict(TINY_MODELS, XMORE_HOME=str(tmp_path / "home"), XMORE_COARSE_K="16",
                            XMORE_FINE_K="4").items():
        monkeypatch.setenv(name, value)
    return tmp_path


def test_store_searches_the_caption_cache_and_lists_a_corpus(backend_env, corpus_dir):
    ok("init")
    ok("ingest", corpus_dir, "--corpus", "shapes")
    with Workspace(Settings.from_env()) as ws:
        store = ws.store()
        ids = []
        offset = None
        while True:
            page, offset = store.corpus_pairs("shapes", limit=25, offset=offset)
            ids += [pid for pid, _ in page]
            if offset is None:
                break
        assert len(ids) == len(set(ids)) == 60 and ids == sorted(ids)
        assert store.corpus_pairs("other", limit=10) == ([], None)
        captions = store.caption_vectors(ids)
        images = store.image_vectors(ids + ["00000000-0000-0000-0000-000000000000"])
        assert images.shape == (61, 32) and np.isnan(images[-1]).all() and not np.isnan(images[:-1]).any()
        query = captions[:3] + 0.1
        hits = store.caption_cache_search(query, limit=5)
        truth = np.argsort(-(unit(query) @ unit(captions).T), axis=1)[:, :5]
        assert [[h.pair_id for h in row] for row in hits] == [[ids[j] for j in row] for row in truth]


def test_training_memory_leaves_each_pair_out_of_its_own_retrievals(backend_env, corpus_dir):
    ok("init")
    ok("ingest", corpus_dir, "--corpus", "shapes")
    with Workspace(Settings.from_env()) as ws:
        memory, info = build_memory(ws, "shapes", 5)
        assert not info["cached"] and memory.has_text and len(memory) == 60 and memory.k == 5
        rows = np.arange(60)[:, None]
        assert (memory.image_neighbours >= 0).all() and (memory.text_neighbours >= 0).all()
        assert not (memory.image_neighbours == rows).any() and not (memory.text_neighbours == rows).any()
        # The image side is the store's coarse search, less the pair itself.
        store = ws.store()
        hits = store.coarse_search(memory.image_queries[:4], limit=6)
        for i, row in enumerate(hits):
            expected = [h.pair_id for h in row if h.pair_id != memory.ids[i]][:5]
            assert [memory.ids[j] for j in memory.image_neighbours[i]] == expected
        again, info = build_memory(ws, "shapes", 5)
        assert info["cached"] and np.array_equal(again.image_neighbours, memory.image_neighbours)


def test_reco_train_cli_checkpoints_resumes_exactly_and_serves_classify_and_eval(env, corpus_dir, query_images,
                                                                                 labels_file):
    ok("init")
    ok("ingest", corpus_dir, "--corpus", "shapes")
    assert ok_json("status")["reco_text_side"]["on"] is True
    common = ["--corpus", "shapes", "--k", "3", "--batch", "16", "--save-every", "2", "--lr", "0.01"]
    straight = ok_json("reco", "train", *common, "--steps", "4", "--out", env / "straight.safetensors")
    assert straight["steps"] == 4 and straight["text_side"] is True and straight["k"] == 3
    assert [c["step"] for c in straight["loss_curve"]] == [0, 2, 4] and straight["pairs_per_second"] > 0
    half = env / "half.safetensors"
    ok_json("reco", "train", *common, "--steps", "2", "--out", half)
    resumed = ok_json("reco", "train", *common, "--steps", "4", "--out", half)
    assert resumed["resumed_from"] == 2 and resumed["optimizer_restored"] and resumed["memory_cache"]["cached"]
    a, _ = read_fusion(env / "straight.safetensors")
    b_record, b = read_fusion(half)
    _, a_tensors = read_fusion(env / "straight.safetensors")
    assert all(torch.allclose(a_tensors[name], b[name], atol=1e-6) for name in a_tensors)
    assert b_record["loss_curve"] == a["loss_curve"]
    line = fails("reco", "train", "--corpus", "shapes", "--k", "4", "--steps", "6", "--out", half)
    assert "holds a fusion layer trained with other settings" in line and "k 3 (asked: 4)" in line

    fusion = env / "straight.safetensors"
    for method in ("reco-mean", "reco", "xmore+reco"):
        rows = ok_json("classify", *query_images[:2], "--labels", labels_file, "--stream", method,
                       "--method", method, "--fusion", fusion)
        assert [r["method"] for r in rows] == [method] * 2
        assert all(abs(sum(r["probabilities"]) - 1) < 1e-6 for r in rows)
    shape = write_test_set(env / "shape", "shape", 10, seed=4)
    results = ok_json("eval", "--dataset", shape, "--ks", "1,4", "-k", "4", "-K", "16", "--methods",
                      "zeroshot,reco-mean,reco,xmore", "--fusion", fusion, "--out", env / "eval")
    assert set(results["table"]) == {"zeroshot", "reco-mean", "reco", "xmore"}
    assert "reco" in results["comparisons"]["zeroshot"]


def test_reco_bad_input_is_one_line_and_writes_nothing(env, corpus_dir, monkeypatch):
    ok("init")
    monkeypatch.setenv("XMORE_CAPTION_CACHE", "0")
    ok("ingest", corpus_dir, "--corpus", "shapes")
    out = env / "f.safetensors"
    line = fails("reco", "train", "--corpus", "shapes", "--steps", "2", "--out", out)
    assert "has none: run `xmore cache-captions`" in line and not out.exists()
    ok("cache-captions")
    line = fails("reco", "train", "--corpus", "shapes", "--k", "60", "--out", out)
    assert "k (60) must be smaller than corpus 'shapes''s 60 pairs" in line and not out.exists()
    assert "no pairs" in fails("reco", "train", "--corpus", "nope", "--out", out)
    shape = write_test_set(env / "shape", "shape", 6, seed=4)
    evaluate = ["eval", "--dataset", shape, "--ks", "1,4", "-k", "4", "-K", "16", "--methods", "reco"]
    assert "pass --fusion FILE" in fails(*evaluate)
    (env / "bad.safetensors").write_bytes(b"not a safetensors file")
    assert "cannot be read" in fails(*evaluate, "--fusion", env / "bad.safetensors")
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(2, dtype=np.float32)}, str(env / "foreign.safetensors"))
    assert "not a RECO fusion layer" in fails(*evaluate, "--fusion", env / "foreign.safetensors")
    ok("reco", "train", "--corpus", "shapes", "--k", "3", "--steps", "1", "--batch", "8", "--out", out)
    monkeypatch.setenv("XMORE_CLASSIFIER_MODEL", "xmore-tiny-wide")
    line = fails(*evaluate, "--fusion", out)
    assert "trained for classifier xmore-tiny but the configured classifier is xmore-tiny-wide" in line


def test_image_only_training_reencodes_a_folder_corpus_when_coarse_is_not_the_classifier(env, corpus_dir,
                                                                                          monkeypatch):
    monkeypatch.setenv("XMORE_CLASSIFIER_MODEL", "xmore-tiny-wide")
    ok("init")
    ok("ingest", corpus_dir, "--corpus", "shapes")
    status = ok_json("status")["reco_text_side"]
    assert status["on"] is False and "not the classifier's" in status["why"]
    record = ok_json("reco", "train", "--corpus", "shapes", "--k", "3", "--steps", "2", "--batch", "8",
                     "--out", env / "wide.safetensors")
    assert record["text_side"] is False and record["dim"] == 48
    layers = load_fusion(env / "wide.safetensors", classifier="xmore-tiny-wide",
                         fingerprint=record["classifier_fingerprint"], dim=48)
    assert not layers.has_text
