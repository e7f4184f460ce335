"""The caption cache: classify encodes no caption at query time when it is filled."""

from __future__ import annotations

import pytest

from tests.cli import fails, ok_json


def forbid_caption_encoding(monkeypatch):
    from xmore_db.models.encoder import ClipEncoder

    def refuse(self, texts):
        if texts:
            raise AssertionError(f"encoded {len(texts)} captions at query time")
        return original(self, texts)

    original = ClipEncoder.encode_texts
    monkeypatch.setattr(ClipEncoder, "encode_texts", refuse)


def test_ingest_fills_cache_and_classify_reads_it(backend_env, corpus_dir, query_images, labels_file, monkeypatch):
    ok_json("init")
    report = ok_json("ingest", corpus_dir, "--corpus", "shapes")
    assert report["caption_cache"] == "filled with xmore-tiny"
    assert ok_json("status")["caption_cache"] == {"model": "xmore-tiny", "dim": 32}
    # Class prompts are encoded once and cached on disk; after that, no text is encoded at all.
    warm = ok_json("classify", query_images[0], "--labels", labels_file, "--stream", "warm")
    forbid_caption_encoding(monkeypatch)
    cached = ok_json("classify", query_images[0], "--labels", labels_file, "--stream", "cold")
    assert cached[0]["probabilities"] == pytest.approx(warm[0]["probabilities"], abs=1e-5)
    assert not cached[0]["no_captions"]


def test_cache_captions_backfills_an_uncached_corpus(backend_env, corpus_dir, query_images, labels_file,
                                                   monkeypatch):
    ok_json("init")
    ok_json("--no-caption-cache", "ingest", corpus_dir, "--corpus", "shapes")
    assert ok_json("status")["caption_cache"] is None
    uncached = ok_json("classify", query_images[1], "--labels", labels_file, "--stream", "a")
    filled = ok_json("cache-captions")
    assert filled["filled"] == 60 and filled["model"] == "xmore-tiny"
    assert ok_json("cache-captions")["filled"] == 0  # nothing left to fill
    forbid_caption_encoding(monkeypatch)
    cached = ok_json("classify", query_images[1], "--labels", labels_file, "--stream", "b")
    assert cached[0]["probabilities"] == pytest.approx(uncached[0]["probabilities"], abs=1e-5)


def test_cache_of_another_classifier_is_not_used_or_replaced_silently(backend_env, corpus_dir, query_images,
                                                                     labels_file, monkeypatch):
    ok_json("init")
    ok_json("ingest", corpus_dir, "--corpus", "shapes")
    monkeypatch.setenv("XMORE_CLASSIFIER_MODEL", "xmore-tiny-wide")
    # classify still works: the cache is for xmore-tiny, so captions are encoded at query time
    assert ok_json("classify", query_images[0], "--labels", labels_file, "--stream", "w")[0]["prediction"]
    refused = fails("cache-captions")
    assert "holds xmore-tiny" in refused and "--rebuild" in refused
    rebuilt = ok_json("cache-captions", "--rebuild")
    assert rebuilt["replaced"] == "xmore-tiny" and rebuilt["filled"] == 60 and rebuilt["dim"] == 48
