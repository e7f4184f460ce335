"""`xmore eval` on CoOp split files as the paper's datasets ship them (split_zhou_*.json).

Class names come from the split; a labels file must agree with it; underscores
are spaces in prompts; missing images name the path tried or are skipped and
counted; the split is recorded and an unknown one lists those the file has.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.cli import fails, ok, ok_json
from tests.conftest import TINY_MODELS
from xmore_db.evaluation import load_dataset
from xmore_db.toy import write_corpus, write_test_set

SWEEP = ["--ks", "1,2", "-k", "2", "-K", "8", "--methods", "zeroshot,captions,xmore", "--resamples", "100"]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("coop")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("XMORE_QDRANT_URL", "XMORE_DATABASE_URL", "XMORE_DEBUG", "XMORE_COARSE_K", "XMORE_FINE_K"):
            mp.delenv(name, raising=False)
        for name, value in dict(TINY_MODELS, XMORE_HOME=str(root / "home")).items():
            mp.setenv(name, value)
        write_corpus(root / "corpus", 24, seed=3)
        ok("init")
        ok("ingest", root / "corpus", "--corpus", "toy")
        yield root


@pytest.fixture
def split(home, tmp_path):
    """A CoOp split of 12 colour images with train/val/test lists, and no labels.txt beside it."""
    path = write_test_set(tmp_path / "colour", "colour", 12, seed=5, layout="coop")
    (path.parent / "labels.txt").unlink()
    data = json.loads(path.read_text())
    data["val"] = data["test"][:4]
    path.write_text(json.dumps(data))
    return path


def rewrite(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def class_names(split) -> list[str]:
    return list(dict.fromkeys(row[2] for row in sorted(json.loads(split.read_text())["test"], key=lambda r: r[1])))


def results(split, tmp_path, *args) -> dict:
    out = ok_json("eval", "--dataset", split, *SWEEP, "--out", tmp_path / "out", *args)
    return out["datasets"][split.stem.removeprefix("split_zhou_")]


def test_class_names_come_from_the_split_and_the_split_is_recorded(split, tmp_path):
    got = results(split, tmp_path)
    assert (got["classes"], got["n"], got["split"], got["missing"]) == (6, 12, "test", 0)
    assert got["class_names"] == class_names(split)
    assert got["class_source"] == f"split file {split}"
    assert results(split, tmp_path, "--split", "val")["split"] == "val"


def test_an_unknown_split_lists_the_ones_the_file_has(split):
    line = fails("eval", "--dataset", split, "--split", "valid", *SWEEP)
    assert "no split 'valid'" in line and "it has train, val, test" in line


def test_a_split_naming_one_index_two_ways_fails(split):
    def rename(data):
        data["test"][6][2] = "purple"  # label 0 again (12 images over 6 classes), another name
    rewrite(split, rename)
    line = fails("eval", "--dataset", split, *SWEEP)
    assert "names label index 0 both" in line and "'purple' (test[6])" in line


def test_a_labels_file_that_disagrees_with_the_split_fails_at_the_first_differing_index(split, tmp_path):
    names = class_names(split)
    reversed_file = tmp_path / "reversed.txt"
    reversed_file.write_text("\n".join(reversed(names)) + "\n")
    line = fails("eval", "--dataset", split, "--labels", reversed_file, *SWEEP)
    assert f"disagrees with {split} at label index 0: {names[-1]!r} there, {names[0]!r} in the split" in line
    agreeing = tmp_path / "agreeing.txt"
    agreeing.write_text("\n".join(n.upper() for n in names) + "\n")  # case and '_' for ' ' are not differences
    got = results(split, tmp_path, "--labels", agreeing)
    assert got["class_names"] == [n.upper() for n in names] and got["class_source"] == f"labels file {agreeing}"


def test_underscores_become_spaces_in_prompts(split, tmp_path):
    def underscored(data):
        for rows in data.values():
            for row in rows:
                row[2] = f"deep_{row[2]}_colour"
    rewrite(split, underscored)
    dataset = load_dataset("colour", split, None)
    assert dataset.labels[0].startswith("deep_") and dataset.prompt_labels[0] == dataset.labels[0].replace("_", " ")
    got = results(split, tmp_path)
    assert all(" " in name and "_" not in name for name in got["class_names"])
    # ImageFolder: the labels file's names, '_' written as ' ' too.
    folder = write_test_set(tmp_path / "shape", "shape", 6, seed=1)
    labels = (folder / "labels.txt").read_text().split()
    (folder / "labels.txt").write_text("\n".join(f"{name}_shape" for name in labels) + "\n")
    for name in labels:
        (folder / name).rename(folder / f"{name}_shape")
    assert load_dataset("shape", folder, None).prompt_labels[0] == f"{labels[0]} shape"


def test_missing_images_name_the_path_tried_or_are_skipped_and_counted(split, tmp_path):
    data = json.loads(split.read_text())
    root = split.parent / "images"
    (root / data["test"][3][0]).unlink()
    line = fails("eval", "--dataset", split, *SWEEP)
    assert f"1 of 12 images of {split} (test) do not exist, the first tried at {root / data['test'][3][0]}" in line
    assert "--images-root DIR" in line and "--skip-missing" in line
    moved = tmp_path / "elsewhere"
    shutil.copytree(root, moved)
    line = fails("eval", "--dataset", split, "--images-root", moved, *SWEEP)
    assert f"the first tried at {moved / data['test'][3][0]} (--images-root {moved} was given)" in line
    got = results(split, tmp_path, "--skip-missing")
    assert (got["n"], got["missing"]) == (11, 1)
    text = ok("eval", "--dataset", split, *SWEEP, "--out", tmp_path / "o2", "--skip-missing").stdout
    assert "missing images left out (--skip-missing): colour 1 of 12" in text
