"""`xmore eval` end to end on tiny datasets, in the ImageFolder and CoOp-split layouts."""

from __future__ import annotations

import csv
import json
import re
import shutil

import pytest

from tests.cli import fails, ok, ok_json, xmore
from tests.conftest import TINY_MODELS
from xmore_db.methods.inputs import MethodFiles, available_methods
from xmore_db.toy import write_corpus, write_test_set

# What eval runs without a text bank or a fusion file: X-MoRe, its baselines and ablations, reco-mean.
METHODS = available_methods(MethodFiles())

SWEEP = ["--ks", "1,2,4", "-k", "2", "-K", "16"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-data")
    write_corpus(root / "corpus", 40, seed=3)
    shape = write_test_set(root / "shape", "shape", 10, seed=4)
    colour_split = write_test_set(root / "colour", "colour", 12, seed=5, layout="coop")
    return {"root": root, "corpus": root / "corpus", "shape": shape, "colour": colour_split}


@pytest.fixture
def env(tmp_path, monkeypatch):
    for name in ("XMORE_QDRANT_URL", "XMORE_DATABASE_URL", "XMORE_DEBUG", "XMORE_COARSE_K", "XMORE_FINE_K"):
        monkeypatch.delenv(name, raising=False)
    for name, value in dict(TINY_MODELS, XMORE_HOME=str(tmp_path / "home")).items():
        monkeypatch.setenv(name, value)
    return tmp_path


def test_eval_both_layouts_writes_every_output_and_reuses_the_cache(env, data, monkeypatch):
    ok("init")
    ok("ingest", data["corpus"], "--corpus", "toy")
    out = env / "run1"
    result = ok("eval", "--dataset", f"shape={data['shape']}", "--dataset", data["colour"], *SWEEP,
                "--seeds", "0,1", "--out", out, "--corpus-attributes", f"toy={data['corpus'] / 'attributes.csv'}",
                "--diagnose")
    lines = result.stdout.splitlines()
    assert lines[1].startswith("| Method | shape | colour | Avg |")
    main = lines[:lines.index("")]
    assert sum(line.startswith("| X-MoRe") for line in main) == 4 and "Caption ensemble" in result.stdout
    # The printed differences: one table per baseline, every cell a difference with its interval.
    assert "Difference against CLIP zero-shot (image only)" in result.stdout
    assert "Difference against Caption ensemble (text only)" in result.stdout
    assert re.search(r"\| X-MoRe \(minmax\) \| [+-]\d+\.\d\d \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\]", result.stdout)
    assert "Diagnosis at k = 2" in result.stdout and "| shape | shape |" in result.stdout
    for name in ("results.md", "results.csv", "results.json", "accuracy_vs_k.png", "confidence_by_case.png",
                 "entropy_by_k.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "accuracy_vs_k.png").read_bytes()[:4] == b"\x89PNG"
    results = json.loads((out / "results.json").read_text())
    assert set(results["datasets"]) == {"shape", "colour"}
    shape, colour = results["datasets"]["shape"], results["datasets"]["colour"]
    assert (shape["layout"], shape["n"], shape["classes"]) == ("imagefolder", 10, 5)
    assert (colour["layout"], colour["n"], colour["classes"]) == ("coop", 12, 6)
    assert results["settings"]["seeds"] == [0, 1] and results["settings"]["ks"] == [1, 2, 4]
    assert shape["no_captions"] == {"fine": 0, "indirect": 0}
    assert set(shape["accuracy"]) == set(METHODS) and set(shape["accuracy"]["xmore"]) == {"1", "2", "4"}
    assert set(results["table"]["xmore"]) == {"shape", "colour", "Avg"}
    assert results["settings"]["models"]["classifier"] == "xmore-tiny:random-init(seed=0)"
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * len(METHODS) * 3 * 3  # datasets × methods × ks × (2 seeds + mean)
    assert "Table 8" in (out / "results.md").read_text()
    # Intervals in results.json: each method against both baselines, per dataset and on Avg.
    delta = results["comparisons"]["zeroshot"]["xmore"]["Avg"]
    assert delta["low"] <= delta["difference"] <= delta["high"] and delta["resamples"] == 2000
    assert set(results["comparisons"]) == {"zeroshot", "captions"}
    assert set(results["comparisons"]["captions"]) == set(METHODS) - {"captions"}
    assert "test images" in results["settings"]["intervals"]
    markdown = (out / "results.md").read_text()
    assert "Difference against CLIP zero-shot" in markdown and "## Diagnosis at k = 2" in markdown
    # The diagnosis: shape queries against the corpus' shape column, colour against colour.
    assert shape["diagnosis"]["attribute"] == "shape" and colour["diagnosis"]["attribute"] == "colour"
    assert 0 <= shape["diagnosis"]["coarse_same_class"] <= 1 and shape["diagnosis"]["captions"] == 20

    # Eval replays streams offline: the history stays empty.
    assert ok_json("streams", "list") == []

    # A second eval with other methods, k and seeds encodes nothing.
    from xmore_db.models import ClipEncoder

    def refuse(*args, **kwargs):
        raise AssertionError("encoded on a cached eval")

    monkeypatch.setattr(ClipEncoder, "encode_images", refuse)
    monkeypatch.setattr(ClipEncoder, "encode_texts", refuse)
    second = ok_json("eval", "--dataset", f"shape={data['shape']}", "--dataset", data["colour"], "--ks", "1,4",
                     "-k", "4", "-K", "16", "--methods", "zeroshot,xmore-l1", "--seeds", "2", "--out", env / "run2")
    assert all(d["cache"]["hit"] for d in second["datasets"].values())
    assert set(second["table"]) == {"zeroshot", "xmore-l1"}
    assert second["table"]["zeroshot"] == {k: v for k, v in results["table"]["zeroshot"].items()}


def test_eval_with_an_empty_store_classifies_by_the_image_alone(env, data):
    ok("init")
    results = ok_json("eval", "--dataset", data["shape"], *SWEEP, "--out", env / "out")
    shape = results["datasets"]["shape"]
    assert shape["no_captions"] == {"fine": 10, "indirect": 10}
    for name in METHODS:
        assert shape["accuracy"][name]["2"]["mean"] == shape["accuracy"]["zeroshot"]["2"]["mean"]
    assert "shape 10/10" in (env / "out" / "results.md").read_text()


def test_eval_rejects_bad_input_with_one_line(env, data, tmp_path):
    ok("init")
    line = fails("eval", "--dataset", data["shape"], "--methods", "zeroshot,magic", *SWEEP, code=2)
    assert "unknown methods magic: choose from zeroshot, captions, xmore" in line
    assert "cannot exceed K (16)" in fails("eval", "--dataset", data["shape"], "--ks", "1,32", "-K", "16")
    odd = tmp_path / "odd"
    shutil.copytree(data["shape"], odd)
    (odd / "hexagon").mkdir()
    line = fails("eval", "--dataset", odd, *SWEEP)
    assert "sub-folders of" in line and "hexagon" in line
    result = xmore("eval", "--dataset", data["shape"], "--labels", f"nope={odd / 'labels.txt'}", *SWEEP)
    assert result.exit_code == 2 and "no dataset named nope" in result.stderr
    split = json.loads(data["colour"].read_text())
    split["test"][0][1] = 99
    bad = tmp_path / "split_zhou_bad.json"
    bad.write_text(json.dumps(split))
    assert "label index 99" in fails("eval", "--dataset", bad, "--labels", data["colour"].parent / "labels.txt",
                                     "--images-root", data["colour"].parent / "images", *SWEEP)
