"""`xmore ingest` on each source, with bad rows and bad units, through the CLI."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.cli import ok_json, xmore
from tests.conftest import TINY_MODELS
from xmore_db.toy.formats import add_member, write_embeddings_folder, write_shards

COARSE, FINE = 32, 48  # xmore-tiny, xmore-tiny-wide


@pytest.fixture
def edge_env(tmp_path, monkeypatch):
    for name in ("XMORE_QDRANT_URL", "XMORE_DATABASE_URL", "XMORE_QDRANT_API_KEY", "XMORE_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    env = dict(TINY_MODELS, XMORE_HOME=str(tmp_path / "home"), XMORE_COARSE_K="8", XMORE_FINE_K="4")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    ok_json("init")
    return env


def test_embeddings_folder_with_fine_text_embeddings(backend_env, tmp_path):
    ok_json("init")
    folder = write_embeddings_folder(tmp_path / "emb", [20, 20, 13], coarse_dim=COARSE, fine_dim=FINE,
                                     text_emb_folder=tmp_path / "fine")
    report = ok_json("ingest", folder, "--corpus", "laion", "--text-emb", tmp_path / "fine", "--write-batch", "8")
    assert report["kind"] == "embeddings"
    assert (report["units"], report["units_done"], report["ingested"], report["skipped"]) == (3, 3, 53, 0)
    assert report["collections"] == {"images": 53, "texts": 53}
    assert sorted(o["unit"] for o in report["processed"]) == ["0000", "0001", "0002"]
    again = ok_json("ingest", folder, "--corpus", "laion", "--text-emb", tmp_path / "fine")
    assert (again["ingested"], again["already_present"], again["processed"]) == (0, 53, [])
    retrieved = ok_json("retrieve", _query(tmp_path))
    assert retrieved["captions"] and retrieved["captions"][0]["caption"].startswith("synthetic caption")


def _query(tmp_path):
    from PIL import Image

    path = tmp_path / "q.png"
    Image.new("RGB", (40, 40), (200, 30, 30)).save(path)
    return path


def test_embeddings_folder_captions_encoded_with_the_fine_model(edge_env, tmp_path):
    folder = write_embeddings_folder(tmp_path / "emb", [12, 5], coarse_dim=COARSE, dtype=np.float32,
                                     key_column=True)
    report = ok_json("ingest", folder, "--corpus", "c", "--workers", "2", "--write-batch", "4")
    assert (report["ingested"], report["units_done"]) == (17, 2)
    assert report["collections"] == {"images": 17, "texts": 17}


def test_every_bad_row_kind_is_skipped_and_counted(edge_env, tmp_path):
    folder = write_embeddings_folder(tmp_path / "emb", [10, 6, 5], coarse_dim=COARSE)
    images = np.load(folder / "img_emb" / "img_emb_0000.npy")
    images[1, 3] = np.nan
    images[2] = 0
    np.save(folder / "img_emb" / "img_emb_0000.npy", images)
    meta = pq.read_table(folder / "metadata" / "metadata_0000.parquet").to_pydict()
    meta["caption"][3] = ""
    meta["caption"][4] = "x" * 50
    meta["caption"][5] = None
    pq.write_table(pa.table(meta), folder / "metadata" / "metadata_0000.parquet")
    np.save(folder / "img_emb" / "img_emb_0001.npy", np.ones((6, COARSE + 1), np.float16))  # wrong size
    short = pq.read_table(folder / "metadata" / "metadata_0002.parquet").slice(0, 3)
    pq.write_table(short, folder / "metadata" / "metadata_0002.parquet")  # 5 vectors, 3 captions

    result = xmore("ingest", folder, "--corpus", "bad", "--max-caption-chars", "40", "--json")
    assert result.exit_code == 1  # a partition of another width fails: all its rows skipped for one reason
    report = json.loads(result.stdout)
    assert (report["units_done"], report["units_failed"]) == (2, 1) and report["ingested"] == 5 + 0 + 3
    assert report["skip_reasons"] == {"caption_too_long": 1, "empty_caption": 2, "nan_embedding": 1,
                                      "row_count_mismatch": 2, "wrong_size_embedding": 6, "zero_norm_embedding": 1}
    assert report["failures"] == {"0001": "unit 0001: all 6 rows skipped as wrong_size_embedding: likely, its "
                                          "vectors were made by another model than the configured ones "
                                          "(XMORE_COARSE_MODEL, XMORE_FINE_MODEL)"}
    units = {u["unit"]: u for u in ok_json("corpora", "show", "bad")["unit_records"]}
    assert units["0000"]["skip_reasons"] == {"caption_too_long": 1, "empty_caption": 2, "nan_embedding": 1,
                                             "zero_norm_embedding": 1}
    assert (units["0000"]["rows"], units["0000"]["ingested"], units["0000"]["skipped"]) == (10, 5, 5)
    assert units["0001"]["skip_reasons"] == {"wrong_size_embedding": 6}
    assert units["0002"]["skip_reasons"] == {"row_count_mismatch": 2}
    assert report["collections"] == {"images": 8, "texts": 8}


def test_a_unit_that_cannot_be_read_fails_alone_and_is_retried(edge_env, tmp_path):
    folder = write_embeddings_folder(tmp_path / "emb", [4, 4, 4], coarse_dim=COARSE)
    good = (folder / "img_emb" / "img_emb_0001.npy").read_bytes()
    (folder / "img_emb" / "img_emb_0001.npy").write_bytes(b"\x93NUMPY garbage")
    result = xmore("ingest", folder, "--corpus", "c", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert (report["units_done"], report["units_failed"], report["ingested"]) == (2, 1, 8)
    assert "unit 0001: cannot read" in report["failures"]["0001"]
    assert result.stderr.strip().splitlines()[-1].startswith("Error: 1 unit(s) failed (0001)")
    failed = [u for u in ok_json("corpora", "show", "c")["unit_records"] if u["status"] == "failed"]
    assert [u["unit"] for u in failed] == ["0001"] and "cannot read" in failed[0]["error"]

    (folder / "img_emb" / "img_emb_0001.npy").write_bytes(good)
    again = ok_json("ingest", folder, "--corpus", "c")
    assert [o["unit"] for o in again["processed"]] == ["0001"]
    assert again["units_done"] == 3 and again["collections"] == {"images": 12, "texts": 12}


def test_webdataset_shards_compute_both_embeddings(edge_env, tmp_path):
    write_shards(tmp_path / "wds", [7, 6])
    with tarfile.open(tmp_path / "wds" / "00001.tar", "a") as tar:
        add_member(tar, "broken.jpg", b"\xff\xd8\xff\xe0 not a jpeg")
        add_member(tar, "broken.txt", b"a caption for a broken image")
    report = ok_json("ingest", tmp_path / "wds", "--corpus", "wds", "--write-batch", "4")
    assert report["kind"] == "webdataset" and report["units_done"] == 2
    assert report["ingested"] == 13 and report["skip_reasons"] == {"undecodable_image": 1}
    assert report["collections"] == {"images": 13, "texts": 13}
    hits = ok_json("retrieve", _query(tmp_path))["captions"]
    assert hits and all("circle" in h["caption"] for h in hits)


def test_image_folder_with_parquet_captions(edge_env, tmp_path, corpus_dir):
    import csv
    import shutil

    folder = tmp_path / "folder"
    shutil.copytree(corpus_dir / "images", folder / "pics")
    with (corpus_dir / "captions.csv").open() as handle:
        rows = list(csv.DictReader(handle))[:20]
    pq.write_table(pa.table({"image": [r["image"].replace("images/", "pics/") for r in rows] + ["pics/none.png"],
                             "caption": [r["caption"] for r in rows] + ["lost"]}),
                   tmp_path / "caps.parquet")
    report = ok_json("ingest", folder, "--corpus", "f", "--captions", tmp_path / "caps.parquet")
    assert report["kind"] == "folder" and report["ingested"] == 20
    assert report["skip_reasons"] == {"missing_image": 1}
