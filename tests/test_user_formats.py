"""The formats users bring, written by hand the way the real tools write them, ingested to exact counts.

Hugging Face imagefolder (`metadata.jsonl` with `file_name`, `text`), open_clip's
tab-separated CSV (`filepath`, `title`), Excel's "CSV UTF-8" (a byte-order mark,
semicolons in some locales), img2dataset's webdataset shards with their parquet
and `_stats.json`, img2dataset's default *files* layout, LAION-400M's unpadded
`_0` partitions with a `key` column. Nothing here uses the project's own writers.
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

from tests.cli import fails, ok_json, xmore

COARSE, FINE = 32, 48  # xmore-tiny, xmore-tiny-wide
COLOURS = [(220, 40, 40), (40, 170, 60), (40, 70, 220)]


@pytest.fixture
def home(tiny_env):
    ok_json("init")


def jpeg(i: int) -> bytes:
    image = Image.new("RGB", (40, 40), (240, 240, 240))
    image.paste(COLOURS[i % 3], (i % 10, i % 10, i % 10 + 20, i % 10 + 20))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


def image_files(folder, names):
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(jpeg(i))


# -- Hugging Face imagefolder, open_clip CSV, Excel CSV ------------------------------------------


def test_hugging_face_imagefolder_metadata_jsonl(home, tmp_path):
    folder = tmp_path / "hf"
    image_files(folder, [f"{i:04d}.jpg" for i in range(6)])
    (folder / "metadata.jsonl").write_text("".join(
        json.dumps({"file_name": f"{i:04d}.jpg", "text": f"a photo of thing {i}"}) + "\n" for i in range(6)))
    report = ok_json("ingest", folder, "--corpus", "hf")
    assert (report["kind"], report["ingested"], report["skipped"]) == ("folder", 6, 0)
    assert report["collections"] == {"images": 6, "texts": 6}


def test_jsonl_without_known_columns_fails_before_writing_and_columns_can_be_named(home, tmp_path):
    folder = tmp_path / "own"
    image_files(folder, ["a.jpg", "b.jpg"])
    (folder / "captions.jsonl").write_text(json.dumps({"picture": "a.jpg", "words": "one"}) + "\n"
                                           + json.dumps({"picture": "b.jpg", "words": "two"}) + "\n")
    line = fails("ingest", folder, "--corpus", "own")
    assert "has no image column and no caption column" in line and "found picture, words" in line
    for name in ("image, image_path, file_name, filepath", "caption, text, title", "--image-column"):
        assert name in line
    assert ok_json("status")["collections"] == {"images": 0, "texts": 0}
    report = ok_json("ingest", folder, "--corpus", "own", "--image-column", "picture", "--caption-column", "words")
    assert report["ingested"] == 2


def test_open_clip_tab_separated_csv(home, tmp_path):
    folder = tmp_path / "oc"
    image_files(folder, [f"img/{i}.jpg" for i in range(5)])
    lines = ["filepath\ttitle"] + [f"img/{i}.jpg\ta picture, with a comma, number {i}" for i in range(5)]
    (folder / "captions.csv").write_text("\n".join(lines) + "\n")
    report = ok_json("ingest", folder, "--corpus", "oc")
    assert (report["ingested"], report["skipped"]) == (5, 0)


@pytest.mark.parametrize("separator", [",", ";"])
def test_excel_csv_utf8_with_a_byte_order_mark(home, tmp_path, separator):
    folder = tmp_path / "excel"
    image_files(folder, [f"{i}.jpg" for i in range(4)])
    rows = [f"image{separator}caption"] + [f"{i}.jpg{separator}caf\u00e9 number {i}" for i in range(4)]
    (folder / "captions.csv").write_bytes(("\r\n".join(rows) + "\r\n").encode("utf-8-sig"))
    report = ok_json("ingest", folder, "--corpus", "excel")
    assert (report["ingested"], report["skipped"]) == (4, 0)


def test_csv_column_error_says_what_was_found_and_what_would_work(home, tmp_path):
    folder = tmp_path / "bad"
    image_files(folder, ["0.jpg"])
    (folder / "captions.csv").write_text("picture\tcaption\n0.jpg\tone\n")
    line = fails("ingest", folder, "--corpus", "bad")
    assert "read as tab-separated" in line and "found picture, caption" in line
    assert "image, image_path, file_name, filepath, filename, file, path" in line
    wrong = fails("ingest", folder, "--corpus", "bad", "--separator", ";", "--image-column", "picture")
    assert "separated by ';'" in wrong and "--separator tab" in wrong
    assert ok_json("ingest", folder, "--corpus", "bad", "--separator", "tab",
                   "--image-column", "picture")["ingested"] == 1


def test_a_unit_whose_rows_are_all_skipped_for_one_reason_fails_naming_the_cause(home, tmp_path):
    folder = tmp_path / "moved"
    image_files(folder, [f"pics/{i}.jpg" for i in range(4)])
    (folder / "captions.csv").write_text("image,caption\n" + "".join(f"images/{i}.jpg,c {i}\n" for i in range(4)))
    result = xmore("ingest", folder, "--corpus", "moved", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ingested"] == 0 and report["units_failed"] == 1
    [error] = report["failures"].values()
    assert "all 4 rows skipped as missing_image" in error and "relative to" in error and "--image-column" in error


# -- img2dataset: webdataset shards with their parquet and stats ------------------------------


def tar_member(tar, name, data: bytes):
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o444
    tar.addfile(info, io.BytesIO(data))


def img2dataset_shard(folder, shard: int, samples: int, failed: dict[str, int] | None = None,
                      successes: int | None = None, cut_after: int | None = None, caption=lambda k: f"c {k}"):
    """A shard as img2dataset's webdataset writer leaves it: the tar, `{shard}.parquet` and `{shard}_stats.json`.

    `failed` adds rows of those statuses to the parquet (absent from the tar, as img2dataset does);
    `cut_after` keeps the tar's first samples only, cut at a sample boundary (no end-of-archive blocks).
    """
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{shard:05d}"
    buffer, offsets = io.BytesIO(), []
    keys = [f"{shard:05d}{i:04d}" for i in range(samples)]
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for i, key in enumerate(keys):
            tar_member(tar, f"{key}.jpg", jpeg(i))
            tar_member(tar, f"{key}.txt", caption(key).encode())
            tar_member(tar, f"{key}.json", json.dumps({"key": key, "status": "success", "caption": caption(key),
                                                       "url": f"https://example.com/{key}.jpg"}).encode())
            offsets.append(tar.offset)
    data = buffer.getvalue()
    (folder / f"{name}.tar").write_bytes(data if cut_after is None else data[:offsets[cut_after - 1]])
    statuses = ["success"] * samples + [s for s, n in (failed or {}).items() for _ in range(n)]
    failed_keys = [f"{shard:05d}{i:04d}" for i in range(samples, len(statuses))]
    pq.write_table(pa.table({
        "url": [f"https://example.com/{k}.jpg" for k in keys + failed_keys],
        "caption": [caption(k) for k in keys + failed_keys],
        "key": keys + failed_keys, "status": statuses,
        "error_message": [None if s == "success" else "timed out" for s in statuses],
    }), folder / f"{name}.parquet")
    stats = {"count": len(statuses), "successes": samples if successes is None else successes,
             "failed_to_download": statuses.count("failed_to_download"),
             "failed_to_resize": statuses.count("failed_to_resize"), "status_dict": {}}
    (folder / f"{name}_stats.json").write_text(json.dumps(stats))
    return folder / f"{name}.tar"


def test_failed_downloads_are_counted_with_their_status(home, tmp_path):
    img2dataset_shard(tmp_path / "wds", 0, 5, failed={"failed_to_download": 3, "failed_to_resize": 1})
    report = ok_json("ingest", tmp_path / "wds", "--corpus", "w")
    assert (report["rows"], report["ingested"]) == (9, 5)
    assert report["skip_reasons"] == {"failed_to_download": 3, "failed_to_resize": 1}


def test_a_shard_still_being_written_fails_then_is_read_whole(home, tmp_path):
    img2dataset_shard(tmp_path / "wds", 0, 4)
    img2dataset_shard(tmp_path / "wds", 1, 9, cut_after=4)
    result = xmore("ingest", tmp_path / "wds", "--corpus", "w", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["failures"].keys() == {"00001.tar"} and "end-of-archive" in report["failures"]["00001.tar"]
    assert report["collections"] == {"images": 4, "texts": 4}  # nothing of the cut shard was written

    partial = ok_json("ingest", tmp_path / "wds", "--corpus", "w", "--allow-partial")
    assert partial["ingested"] == 4 and partial["partial"] == ["00001.tar"]
    assert "4 of 9" in partial["notes"]["00001.tar"]

    img2dataset_shard(tmp_path / "wds", 1, 9)  # the writer finished
    again = ok_json("ingest", tmp_path / "wds", "--corpus", "w")
    assert again["changed"] == ["00001.tar"] and again["ingested"] == 5 and again["already_present"] == 8
    assert again["collections"] == {"images": 13, "texts": 13}
    listed = ok_json("corpora", "list")[0]
    assert listed["ingested"] == 13 and listed["points"] == {"images": 13, "texts": 13}


def test_a_changed_shard_is_ingested_again_under_the_same_ids(home, tmp_path):
    img2dataset_shard(tmp_path / "wds", 0, 3)
    assert ok_json("ingest", tmp_path / "wds", "--corpus", "w")["ingested"] == 3
    assert ok_json("ingest", tmp_path / "wds", "--corpus", "w")["changed"] == []
    img2dataset_shard(tmp_path / "wds", 0, 3, caption=lambda k: f"a new caption for {k}")
    again = ok_json("ingest", tmp_path / "wds", "--corpus", "w")
    assert again["changed"] == ["00000.tar"] and (again["ingested"], again["already_present"]) == (0, 3)
    assert again["collections"] == {"images": 3, "texts": 3}
    (tmp_path / "q.jpg").write_bytes(jpeg(0))
    hits = ok_json("retrieve", tmp_path / "q.jpg")["captions"]
    assert hits and all(h["caption"].startswith("a new caption") for h in hits)
    assert ok_json("corpora", "show", "w")["unit_records"][0]["ingested"] == 3


def test_fewer_samples_than_the_stats_successes_fails_the_shard(home, tmp_path):
    img2dataset_shard(tmp_path / "wds", 0, 3, successes=5)
    result = xmore("ingest", tmp_path / "wds", "--corpus", "w", "--json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["failures"]["00000.tar"]
    assert "3 samples" in error and "5 successes" in error and "--allow-partial" in error
    taken = ok_json("ingest", tmp_path / "wds", "--corpus", "w", "--allow-partial")
    assert taken["ingested"] == 3 and taken["partial"] == ["00000.tar"]


def test_shards_are_units_in_natural_order(home, tmp_path):
    folder = tmp_path / "wds"
    for shard in (10, 2, 1, 0):
        img2dataset_shard(folder, shard, 1)
        (folder / f"{shard:05d}.tar").rename(folder / f"{shard}.tar")
        (folder / f"{shard:05d}.parquet").unlink()
        (folder / f"{shard:05d}_stats.json").unlink()
    report = ok_json("ingest", folder, "--corpus", "n")
    assert [o["unit"] for o in report["processed"]] == ["0.tar", "1.tar", "2.tar", "10.tar"]
    assert [u["unit"] for u in ok_json("corpora", "show", "n")["unit_records"]] == ["0.tar", "1.tar", "2.tar", "10.tar"]


# -- img2dataset: the default files layout --------------------------------------------------------


def test_img2dataset_files_layout(home, tmp_path):
    root = tmp_path / "files"
    for shard, samples in ((0, 4), (1, 3)):
        folder = root / f"{shard:05d}"
        folder.mkdir(parents=True)
        keys = [f"{shard:05d}{i:04d}" for i in range(samples)]
        for i, key in enumerate(keys):
            (folder / f"{key}.jpg").write_bytes(jpeg(i))
            (folder / f"{key}.txt").write_text(f"caption {key}")
            (folder / f"{key}.json").write_text(json.dumps({"key": key, "caption": f"caption {key}",
                                                            "status": "success"}))
        failed = [f"{shard:05d}{i:04d}" for i in range(samples, samples + 2)]
        pq.write_table(pa.table({"key": keys + failed, "caption": ["c"] * (samples + 2),
                                 "status": ["success"] * samples + ["failed_to_download"] * 2}),
                       root / f"{shard:05d}.parquet")
        (root / f"{shard:05d}_stats.json").write_text(json.dumps({"count": samples + 2, "successes": samples,
                                                                  "failed_to_download": 2}))
    report = ok_json("ingest", root, "--corpus", "f")
    assert report["kind"] == "files" and [o["unit"] for o in report["processed"]] == ["00000", "00001"]
    assert (report["rows"], report["ingested"]) == (11, 7)
    assert report["skip_reasons"] == {"failed_to_download": 4}
    assert report["collections"] == {"images": 7, "texts": 7}


# -- LAION-400M: unpadded partitions, a key column, duplicate keys -----------------------------------


def laion_partition(folder, n: int, part: int, keys: list[str], seed: int):
    rng = np.random.default_rng(seed)
    for sub in ("img_emb", "text_emb", "metadata"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    vectors = rng.standard_normal((n, COARSE)).astype(np.float32)
    np.save(folder / "img_emb" / f"img_emb_{part}.npy", (vectors / np.linalg.norm(vectors, axis=1,
                                                                                    keepdims=True)).astype(np.float16))
    pq.write_table(pa.table({"caption": [f"caption {k} in part {part}" for k in keys], "key": keys,
                             "url": [f"https://example.com/{k}.jpg" for k in keys]}),
                   folder / "metadata" / f"metadata_{part}.parquet")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_duplicate_keys_across_partitions_and_runs_are_counted_once(home, tmp_path, workers):
    folder = tmp_path / "laion"
    keys = [f"{i:09d}" for i in range(5)]
    laion_partition(folder, 5, 0, keys, seed=0)
    laion_partition(folder, 5, 1, keys, seed=1)  # a second partition with the same keys
    report = ok_json("ingest", folder, "--corpus", "l", "--workers", workers, "--write-batch", "2")
    assert sorted(o["unit"] for o in report["processed"]) == ["0", "1"]
    assert report["ingested"] == 5 and report["skip_reasons"] == {"duplicate_key": 5}
    assert report["collections"] == {"images": 5, "texts": 5}

    laion_partition(folder, 5, 10, keys[:3] + ["new-1", "new-2"], seed=2)  # a later run, three keys again
    again = ok_json("ingest", folder, "--corpus", "l")
    assert again["ingested"] == 2 and again["skip_reasons"] == {"duplicate_key": 3}
    listed = ok_json("corpora", "list")[0]
    assert listed["ingested"] == 7 and listed["points"] == {"images": 7, "texts": 7}
