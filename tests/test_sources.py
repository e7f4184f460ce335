"""The corpus sources on their own: units, rows, keys and the rows they skip."""

from __future__ import annotations

import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from xmore_db.errors import BadInputError, CaptionsError, UnitReadError
from xmore_db.sources import detect_kind, open_source
from xmore_db.toy.formats import add_member, write_embeddings_folder, write_shards


def rows_of(source, unit, batch_rows=4):
    batches = list(source.read(unit, batch_rows))
    keys = [k for b in batches for k in b.keys]
    skipped = {}
    for b in batches:
        for reason, n in b.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
    return batches, keys, skipped


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_embeddings_folder_reads_partitions_in_batches(tmp_path, dtype):
    folder = write_embeddings_folder(tmp_path / "emb", [10, 7], coarse_dim=8, fine_dim=12,
                                     text_emb_folder=tmp_path / "fine", dtype=dtype)
    assert detect_kind(folder) == "embeddings"
    source = open_source(folder, text_emb=tmp_path / "fine")
    source.check(8, 12)
    assert source.units() == ["0000", "0001"]
    assert source.estimate_rows("0001") == 7
    assert not source.computes_texts and not source.computes_images
    batches, keys, skipped = rows_of(source, "0000")
    assert [b.rows for b in batches] == [4, 4, 2] and skipped == {}
    assert keys == [f"0000/{i}" for i in range(10)]
    image = np.concatenate([b.image_vectors for b in batches])
    assert image.dtype == np.float32 and image.shape == (10, 8)
    np.testing.assert_allclose(image, np.load(folder / "img_emb" / "img_emb_0000.npy").astype(np.float32))
    assert np.concatenate([b.text_vectors for b in batches]).shape == (10, 12)
    assert batches[0].captions[0] == "synthetic caption 0 of partition 0000"


def test_embeddings_folder_uses_the_key_column_and_encodes_captions_without_text_emb(tmp_path):
    folder = write_embeddings_folder(tmp_path / "emb", [5], coarse_dim=8, key_column=True)
    source = open_source(folder)
    source.check(8, 12)
    assert source.computes_texts
    [batch] = list(source.read("0000", 100))
    assert batch.keys == [f"{i:09d}" for i in range(5)] and batch.text_vectors is None


def test_embeddings_row_count_mismatch_skips_the_unpaired_rows(tmp_path):
    folder = write_embeddings_folder(tmp_path / "emb", [6], coarse_dim=8)
    table = pq.read_table(folder / "metadata" / "metadata_0000.parquet").slice(0, 4)
    pq.write_table(table, folder / "metadata" / "metadata_0000.parquet")
    source = open_source(folder)
    source.check(8, 12)
    _, keys, skipped = rows_of(source, "0000", batch_rows=3)
    assert keys == [f"0000/{i}" for i in range(4)] and skipped == {"row_count_mismatch": 2}


def test_embeddings_wrong_size_partition_skips_its_rows_and_the_first_fails_the_run(tmp_path):
    folder = write_embeddings_folder(tmp_path / "emb", [3, 3], coarse_dim=8)
    np.save(folder / "img_emb" / "img_emb_0001.npy", np.ones((3, 9), np.float16))
    source = open_source(folder)
    source.check(8, 12)
    _, keys, skipped = rows_of(source, "0001")
    assert keys == [] and skipped == {"wrong_size_embedding": 3}
    with pytest.raises(BadInputError, match=r"img_emb_0000.npy holds 8-d vectors but the coarse model makes 16-d"):
        open_source(folder).check(16, 12)


def test_embeddings_unreadable_files_fail_the_unit(tmp_path):
    folder = write_embeddings_folder(tmp_path / "emb", [3, 3, 3], coarse_dim=8)
    (folder / "img_emb" / "img_emb_0000.npy").write_bytes(b"not numpy")
    (folder / "metadata" / "metadata_0001.parquet").unlink()
    np.save(folder / "img_emb" / "img_emb_0002.npy", np.ones((3, 8), np.int32))
    source = open_source(folder)
    with pytest.raises(UnitReadError, match="unit 0000: cannot read"):
        list(source.read("0000", 4))
    with pytest.raises(UnitReadError, match="unit 0001: missing file.*metadata_0001.parquet"):
        list(source.read("0001", 4))
    with pytest.raises(UnitReadError, match="expected float16 or float32, got int32"):
        list(source.read("0002", 4))


def test_webdataset_shards_group_members_by_key(tmp_path):
    write_shards(tmp_path / "wds", [5, 3])
    with tarfile.open(tmp_path / "wds" / "00001.tar", "a") as tar:
        add_member(tar, "extra1.txt", b"caption without an image")
        add_member(tar, "extra2.jpg", b"\xff\xd8 bytes")
        add_member(tar, "extra3.jpg", b"\xff\xd8 bytes")
        add_member(tar, "extra3.txt", b"   ")
    assert detect_kind(tmp_path / "wds") == "webdataset"
    source = open_source(tmp_path / "wds")
    source.check(8, 12)
    assert source.units() == ["00000.tar", "00001.tar"]
    assert source.estimate_rows("00000.tar") == 5
    batches, keys, _ = rows_of(source, "00000.tar", batch_rows=2)
    assert keys == [f"00000{i:04d}" for i in range(5)] and [b.rows for b in batches] == [2, 2, 1]
    assert batches[0].captions[0].startswith("a ") and batches[0].images[0].decode().size == (48, 48)
    _, keys, skipped = rows_of(source, "00001.tar", batch_rows=10)
    assert len(keys) == 3 and skipped == {"missing_image": 1, "empty_caption": 2}


def test_truncated_shard_fails_the_unit(tmp_path):
    [path] = write_shards(tmp_path / "wds", [6])
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(UnitReadError, match="unit 00000.tar: cannot read shard"):
        list(open_source(tmp_path / "wds").read("00000.tar", 100))


def test_image_folder_with_parquet_captions_skips_bad_rows(tmp_path, corpus_dir):
    import shutil

    folder = tmp_path / "folder"
    (folder / "images").mkdir(parents=True)
    for i in range(3):
        shutil.copy(corpus_dir / "images" / f"00000{i}.png", folder / "images")
    images = ["images/000000.png", "images/000001.png", "images/nope.png", "../outside.png",
              "images/000000.png", "images/000002.png"]
    pq.write_table(pa.table({"image_path": images, "caption": ["a", "b", "c", "d", "e", ""]}),
                   folder / "captions.parquet")
    assert detect_kind(folder) == "folder"
    source = open_source(folder)
    assert source.units() == ["rows-00000000-00000006"]
    _, keys, skipped = rows_of(source, source.units()[0], batch_rows=10)
    # The empty caption is the pipeline's to count; the source keeps the row.
    assert keys == ["images/000000.png", "images/000001.png", "images/000002.png"]
    assert skipped == {"missing_image": 2, "duplicate_key": 1}


def test_unknown_layout_and_missing_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CaptionsError, match="no captions file"):
        open_source(tmp_path / "empty")
    with pytest.raises(BadInputError, match="does not exist"):
        open_source(tmp_path / "nope")
    with pytest.raises(BadInputError, match="unknown source format 'zip'"):
        open_source(tmp_path / "empty", kind="zip")


def test_captions_columns_separators_and_byte_order_marks(tmp_path):
    from xmore_db.corpus import Columns, read_caption_rows

    (tmp_path / "a.png").write_bytes(b"")
    cases = {
        "tab.csv": "\ufefffilepath\ttitle\na.png\tone, with a comma\n",  # open_clip, saved with a BOM
        "semi.csv": "Image;Caption\r\na.png;one\r\n",  # Excel in a locale with decimal commas
        "hf.jsonl": '{"file_name": "a.png", "text": "one"}\n',  # Hugging Face imagefolder
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        captions = read_caption_rows(tmp_path, tmp_path / name)
        assert [(r.key, r.problem) for r in captions.rows] == [("a.png", None)], name
    assert read_caption_rows(tmp_path, tmp_path / "tab.csv").rows[0].caption == "one, with a comma"
    (tmp_path / "own.jsonl").write_text('{"pic": "a.png", "words": "one"}\n')
    with pytest.raises(CaptionsError, match=r"has no image column and no caption column: found pic, words"):
        read_caption_rows(tmp_path, tmp_path / "own.jsonl")
    named = read_caption_rows(tmp_path, tmp_path / "own.jsonl", Columns(image="pic", caption="WORDS"))
    assert (named.image_column, named.caption_column, named.rows[0].caption) == ("pic", "words", "one")
    with pytest.raises(CaptionsError, match=r"separated by ','\) has no image column and no caption column.*"
                                            r"try --separator tab"):
        read_caption_rows(tmp_path, tmp_path / "tab.csv", Columns(separator=","))
    with pytest.raises(CaptionsError, match="--separator applies to CSV captions files only"):
        read_caption_rows(tmp_path, tmp_path / "hf.jsonl", Columns(separator=";"))


def test_metadata_files_beside_the_images_are_captions_files(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "metadata.csv").write_text("file_name,text\na.png,one\n")
    assert detect_kind(tmp_path) == "folder"
    assert open_source(tmp_path).captions_path.name == "metadata.csv"


def test_partitions_and_shards_in_natural_order(tmp_path):
    folder = write_embeddings_folder(tmp_path / "emb", [1] * 11, coarse_dim=8, digits=1)
    assert open_source(folder).units() == [str(i) for i in range(11)]
    write_shards(tmp_path / "wds", [1, 1, 1])
    for old, new in (("00000", "2"), ("00001", "10"), ("00002", "1")):
        (tmp_path / "wds" / f"{old}.tar").rename(tmp_path / "wds" / f"{new}.tar")
    assert open_source(tmp_path / "wds").units() == ["1.tar", "2.tar", "10.tar"]


def test_a_tar_without_its_end_of_archive_blocks_is_incomplete(tmp_path):
    from xmore_db.sources.img2dataset import inspect_tar

    [path] = write_shards(tmp_path / "wds", [3])
    assert inspect_tar(path, "u") == (True, 3)
    with tarfile.open(path) as tar:
        cut = tar.getmembers()[3].offset  # the header of the second sample's first member
    path.write_bytes(path.read_bytes()[:cut])
    assert inspect_tar(path, "u") == (False, 1)
    with pytest.raises(UnitReadError, match="no end-of-archive blocks.*--allow-partial"):
        list(open_source(tmp_path / "wds").read("00000.tar", 10))
    batches = list(open_source(tmp_path / "wds", allow_partial=True).read("00000.tar", 10))
    assert sum(len(b) for b in batches) == 1 and batches[-1].partial and "1 samples" in batches[-1].note


def test_options_of_another_kind_of_source_are_refused(tmp_path):
    from xmore_db.corpus import Columns

    write_shards(tmp_path / "wds", [1])
    with pytest.raises(BadInputError, match="--image-column applies to image folders"):
        open_source(tmp_path / "wds", columns=Columns(image="x"))
    folder = write_embeddings_folder(tmp_path / "emb", [1], coarse_dim=8)
    with pytest.raises(BadInputError, match="--allow-partial applies to img2dataset shards only"):
        open_source(folder, allow_partial=True)
    with pytest.raises(BadInputError, match="no caption column 'words'; found caption, url"):
        open_source(folder, columns=Columns(caption="words")).check(8, 12)
