"""The CODER methods through `xmore classify` and `xmore eval`, on tiny models and toy data."""

from __future__ import annotations

import json

import pytest

from tests.cli import fails, ok, ok_json
from tests.conftest import TINY_MODELS
from xmore_db.coder import encode
from xmore_db.methods.inputs import MethodFiles, available_methods
from xmore_db.toy import write_corpus, write_test_set
from xmore_db.toy.textbank import write_toy_banks

SWEEP = ["--ks", "1,2,4", "-k", "2", "-K", "16"]
CODER = ["coder", "coder-star", "coder+captions"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("coder-data")
    write_corpus(root / "corpus", 40, seed=3)
    return {"corpus": root / "corpus", "shape": write_test_set(root / "shape", "shape", 10, seed=4),
            "colour": write_test_set(root / "colour", "colour", 12, seed=5), "banks": write_toy_banks(root / "banks")}


@pytest.fixture
def env(tmp_path, monkeypatch):
    for name in ("XMORE_QDRANT_URL", "XMORE_DATABASE_URL", "XMORE_DEBUG", "XMORE_COARSE_K", "XMORE_FINE_K",
                 "XMORE_CODER_THRESHOLD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in dict(TINY_MODELS, XMORE_HOME=str(tmp_path / "home"), XMORE_COARSE_K="16",
                            XMORE_FINE_K="4").items():
        monkeypatch.setenv(name, value)
    encode.clear_memo()
    return tmp_path


def test_eval_prints_the_coder_methods_beside_xmore_with_intervals(env, data):
    ok("init")
    ok("ingest", data["corpus"], "--corpus", "toy")
    banks = data["banks"]
    out = env / "run"
    result = ok("eval", "--dataset", data["shape"], "--dataset", data["colour"], "--textbank",
                f"shape={banks['shape']}", "--textbank", f"colour={banks['colour']}", "--methods",
                "zeroshot,captions,coder,coder-star,coder+captions,xmore", *SWEEP, "--seeds", "0,1", "--out", out)
    for title in ("CODER (image only)", "CODER* (one-vs-one re-rank)", "CODER + retrieved captions (minmax)",
                  "X-MoRe (minmax)", "CLIP zero-shot (image only)"):
        assert f"| {title} |" in result.stdout, title
    results = json.loads((out / "results.json").read_text())
    assert set(results["table"]) == {"zeroshot", "captions", "xmore", *CODER}
    delta = results["comparisons"]["zeroshot"]["coder+captions"]["Avg"]
    assert delta["low"] <= delta["difference"] <= delta["high"]
    shape = results["datasets"]["shape"]["accuracy"]
    assert shape["coder"]["1"] == shape["coder"]["4"]  # image only: the same at every k
    assert 0 <= shape["coder+captions"]["2"]["mean"] <= 1

    # Wrong or missing banks: one line, before any work.
    line = fails("eval", "--dataset", data["shape"], "--methods", "coder", *SWEEP, "--out", env / "bad")
    assert "dataset 'shape' has no text bank for the CODER methods: pass --textbank shape=BANK.json" in line
    line = fails("eval", "--dataset", data["shape"], "--textbank", banks["colour"], "--methods", "coder", *SWEEP,
                 "--out", env / "bad")
    assert "does not match the labels (missing from the bank: circle, square" in line
    assert not (env / "bad").exists()


def test_eval_runs_the_coder_methods_by_default_when_a_bank_is_given():
    assert set(CODER) <= set(available_methods(MethodFiles(textbanks={"shape": "b.json"})))
    assert not set(CODER) & set(available_methods(MethodFiles()))


def test_classify_with_coder_records_the_method_and_encodes_the_bank_once(env, data, query_images, labels_file,
                                                                           monkeypatch):
    ok("init")
    ok("ingest", data["corpus"], "--corpus", "toy")
    bank = data["banks"]["shape"]
    results = ok_json("classify", *query_images, "--labels", labels_file, "--stream", "c1", "--method", "coder",
                      "--textbank", bank)
    assert [r["method"] for r in results] == ["coder"] * len(query_images)
    assert all(r["p_text"] is None and r["w_text"] == 0 and abs(sum(r["probabilities"]) - 1) < 1e-6
               for r in results)
    assert len(list((env / "home" / "cache" / "textbanks").glob("*.npy"))) == 1
    stream = ok_json("streams", "show", "c1")
    assert stream["method"] == "coder" and stream["n_events"] == len(query_images)

    # A second run (a fresh process would start with an empty memo) reads the bank's embeddings from disk.
    from xmore_db.models import ClipEncoder

    def refuse(self, texts):
        raise AssertionError(f"encoded {len(texts)} texts on a second run")

    encode.clear_memo()
    with monkeypatch.context() as patch:
        patch.setattr(ClipEncoder, "encode_texts", refuse)
        again = ok_json("classify", *query_images, "--labels", labels_file, "--stream", "c2", "--method", "coder",
                        "--textbank", bank)
    assert [r["prediction"] for r in again] == [r["prediction"] for r in results]

    star = ok_json("--coder-threshold", "1", "classify", *query_images[:2], "--labels", labels_file, "--stream",
                   "c3", "--method", "coder-star", "--textbank", bank)
    assert [r["method"] for r in star] == ["coder-star"] * 2
    both = ok_json("classify", *query_images[:2], "--labels", labels_file, "--stream", "c4", "--method",
                   "coder+captions", "--textbank", bank)
    assert all(r["p_text"] is not None and r["c_text"] is not None for r in both)

    # The CODER methods need a bank; a stream holds one method.
    line = fails("classify", *query_images, "--labels", labels_file, "--stream", "c5", "--method", "coder")
    assert "the CODER methods need a text bank: pass --textbank BANK.json" in line
    assert "c5" not in [s["stream"] for s in ok_json("streams", "list")]
    line = fails("classify", query_images[0], "--labels", labels_file, "--stream", "c1", "--method", "xmore")
    assert "stream 'c1' holds coder results" in line
