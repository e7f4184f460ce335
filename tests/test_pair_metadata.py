"""Hits that mean something: what a pair keeps to be found again, coarse hits, `xmore show`.

Every source keeps `url` when its metadata has one, the source-relative path
of the image (a folder's or img2dataset files' image path, clip-retrieval's
`image_path`, a shard and its member) and the columns chosen with
`--keep-columns`. The sources are written by hand, as the real tools write them.
"""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.cli import fails, ok, ok_json
from xmore_db.store import pair_id

COARSE = 32  # xmore-tiny


@pytest.fixture
def env(tiny_env):
    return tiny_env


@pytest.fixture
def home(env):
    ok_json("init")


def jpeg(i: int) -> bytes:
    image = Image.new("RGB", (40, 40), (240, 240, 240))
    image.paste(((60 * i) % 256, 90, 200), (i % 10, i % 10, i % 10 + 20, i % 10 + 20))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float16)


def laion_folder(folder, n: int = 6, *, dim: int = COARSE):
    """A LAION-style embeddings folder: img_emb, text_emb (same CLIP), metadata with LAION's columns."""
    for sub in ("img_emb", "text_emb", "metadata"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    np.save(folder / "img_emb" / "img_emb_0.npy", unit_vectors(n, dim, 0))
    np.save(folder / "text_emb" / "text_emb_0.npy", unit_vectors(n, dim, 1))
    keys = [f"{i:09d}" for i in range(n)]
    pq.write_table(pa.table({
        "image_path": keys, "caption": [f"a photo of item {i}" for i in range(n)],
        "NSFW": ["UNLIKELY"] * n, "similarity": [0.25 + i / 100 for i in range(n)], "LICENSE": ["?"] * n,
        "url": [f"https://example.com/{k}.jpg" for k in keys], "key": keys, "status": ["success"] * n,
        "width": [640] * n, "height": [480 + i for i in range(n)],
    }), folder / "metadata" / "metadata_0.parquet")
    return folder


def shown_payload(ref: str) -> dict:
    return ok_json("show", ref)["texts"]["payload"]


# -- what each source keeps ------------------------------------------------------------------------


def test_laion_keeps_url_and_the_chosen_columns(home, tmp_path):
    folder = laion_folder(tmp_path / "laion")
    report = ok_json("ingest", folder, "--corpus", "laion", "--keep-columns", "NSFW,similarity,width,height")
    assert report["ingested"] == 6
    payload = shown_payload("laion:000000003")
    assert payload["url"] == "https://example.com/000000003.jpg"
    assert payload["caption"] == "a photo of item 3" and payload["corpus"] == "laion"
    assert payload["metadata"] == {"NSFW": "UNLIKELY", "similarity": pytest.approx(0.28), "width": 640,
                                   "height": 483}
    assert payload["path"] == "000000003"  # LAION's image_path column (its key, as img2dataset wrote it)


def test_clip_retrieval_output_without_a_key_column_keeps_image_path(home, tmp_path):
    folder = tmp_path / "inference"
    for sub in ("img_emb", "metadata"):
        (folder / sub).mkdir(parents=True)
    np.save(folder / "img_emb" / "img_emb_0.npy", unit_vectors(3, COARSE, 2))
    paths = [f"/data/photos/{name}.jpg" for name in ("cat", "dog", "fox")]
    pq.write_table(pa.table({"image_path": paths, "caption": ["a cat", "a dog", "a fox"]}),
                   folder / "metadata" / "metadata_0.parquet")
    assert ok_json("ingest", folder, "--corpus", "mine")["ingested"] == 3
    payload = shown_payload("mine:0/1")
    assert payload["path"] == "/data/photos/dog.jpg" and payload["key"] == "0/1"
    assert "url" not in payload and "metadata" not in payload


def test_webdataset_hits_name_their_shard_and_member(home, tmp_path):
    folder = tmp_path / "wds"
    folder.mkdir()
    with tarfile.open(folder / "00000.tar", "w") as tar:
        for i in range(3):
            key = f"00000{i:04d}"
            for name, data in ((f"{key}.jpg", jpeg(i)), (f"{key}.txt", f"caption {key}".encode()),
                               (f"{key}.json", json.dumps({"key": key, "url": f"https://x.org/{key}.jpg",
                                                           "width": 40, "status": "success"}).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    assert ok_json("ingest", folder, "--corpus", "w", "--keep-columns", "width")["ingested"] == 3
    payload = shown_payload("w:000000002")
    assert payload["path"] == "00000.tar/000000002.jpg"
    assert payload["url"] == "https://x.org/000000002.jpg" and payload["metadata"] == {"width": 40}


def test_img2dataset_files_hits_keep_their_image_path(home, tmp_path):
    shard = tmp_path / "files" / "00000"
    shard.mkdir(parents=True)
    for i in range(2):
        key = f"00000{i:04d}"
        (shard / f"{key}.jpg").write_bytes(jpeg(i))
        (shard / f"{key}.txt").write_text(f"caption {key}")
        (shard / f"{key}.json").write_text(json.dumps({"key": key, "url": f"https://x.org/{key}.jpg"}))
    ok_json("ingest", tmp_path / "files", "--corpus", "f")
    payload = shown_payload("f:000000001")
    assert payload["path"] == "00000/000000001.jpg" and payload["url"] == "https://x.org/000000001.jpg"


def test_image_folder_hits_keep_path_url_and_columns(home, tmp_path):
    folder = tmp_path / "hf"
    (folder / "imgs").mkdir(parents=True)
    lines = []
    for i in range(3):
        (folder / "imgs" / f"{i}.jpg").write_bytes(jpeg(i))
        lines.append(json.dumps({"file_name": f"imgs/{i}.jpg", "text": f"thing {i}",
                                 "url": f"https://x.org/{i}.jpg", "license": "cc-by", "rating": i}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    ok_json("ingest", folder, "--corpus", "hf", "--keep-columns", "license,Rating")
    payload = shown_payload("hf:imgs/2.jpg")
    assert payload["path"] == "imgs/2.jpg" and payload["url"] == "https://x.org/2.jpg"
    assert payload["metadata"] == {"license": "cc-by", "Rating": 2}


def test_unknown_keep_columns_fail_before_anything_is_written(home, tmp_path):
    laion = laion_folder(tmp_path / "laion")
    line = fails("ingest", laion, "--corpus", "l", "--keep-columns", "NSFW,nope,similarity,Bogus")
    assert "--keep-columns" in line and "does not have: nope, Bogus (it has image_path, caption, NSFW" in line
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(jpeg(0))
    (folder / "captions.csv").write_text("image,caption,width\na.jpg,one,40\n")
    assert "nope" in fails("ingest", folder, "--corpus", "c", "--keep-columns", "width,nope")
    assert ok_json("status")["collections"] == {"images": 0, "texts": 0}
    assert ok_json("corpora", "list") == []


# -- coarse hits and `xmore show`, on both backends ----------------------------------------------


def test_coarse_hits_carry_what_caption_hits_carry_and_show_prints_a_pair(backend_env, corpus_dir, query_images):
    ok("init")
    ok("ingest", corpus_dir, "--corpus", "toy")
    out = ok_json("retrieve", query_images[0], "--coarse")
    fields = {"pair_id", "score", "caption", "corpus", "key", "url", "path", "metadata"}
    assert set(out["captions"][0]) == fields and set(out["coarse"][0]) == fields
    assert len(out["coarse"]) == 16
    for hit in out["coarse"]:
        assert hit["corpus"] == "toy" and hit["caption"] and hit["path"] == hit["key"]
        assert hit["pair_id"] == pair_id("toy", hit["key"])
    text = ok("retrieve", query_images[0], "--coarse").stdout
    first = out["coarse"][0]
    assert first["caption"] in text and first["key"] in text

    shown = ok_json("show", first["pair_id"])
    assert shown == ok_json("show", f"toy:{first['key']}")
    assert shown["pair_id"] == first["pair_id"] and (shown["corpus"], shown["key"]) == ("toy", first["key"])
    assert shown["texts"]["payload"]["caption"] == first["caption"]
    assert shown["texts"]["vectors"] == {"fine": 48, "classifier": 32}
    assert shown["images"] == {"payload": {"corpus": "toy", "key": first["key"]}, "vectors": {"coarse": 32}}
    assert shown["caption_cache"] == {"model": "xmore-tiny", "cached": True}
    plain = ok("show", first["pair_id"]).stdout
    assert first["caption"] in plain and "coarse (32-d)" in plain

    assert "no pair toy:nothing.png" in fails("show", "toy:nothing.png")
    assert "CORPUS:KEY" in fails("show", "not-a-pair")


# -- LAION's own text_emb is in the coarse model's space ------------------------------------------


def test_own_text_emb_is_refused_unless_the_fine_model_is_the_coarse_one(env, tmp_path):
    folder = laion_folder(tmp_path / "laion")
    ok("init")
    line = fails("ingest", folder, "--corpus", "l", "--text-emb", folder)
    assert "coarse model" in line and "omit --text-emb" in line

    # Same width, other model: the size check cannot tell, the folder can.
    env.setenv("XMORE_HOME", str(tmp_path / "home64"))
    for role, model in (("COARSE", "xmore-toy-medium"), ("FINE", "xmore-toy-strong"),
                        ("CLASSIFIER", "xmore-toy-medium")):
        env.setenv(f"XMORE_{role}_MODEL", model)
    wide = laion_folder(tmp_path / "laion64", dim=64)
    ok("init")
    line = fails("ingest", wide, "--corpus", "l", "--text-emb", wide / "text_emb")
    assert "xmore-toy-medium" in line and "xmore-toy-strong" in line and "omit --text-emb" in line
    assert ok_json("status")["collections"] == {"images": 0, "texts": 0}

    env.setenv("XMORE_HOME", str(tmp_path / "same"))
    env.setenv("XMORE_FINE_MODEL", "xmore-toy-medium")
    ok("init")
    assert ok_json("ingest", wide, "--corpus", "l", "--text-emb", wide)["ingested"] == 6
