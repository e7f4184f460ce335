"""`xmore search`, the --corpus filter, and the Python API (the README's example runs as written)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.cli import fails, ok, ok_json, xmore
from xmore_db.search import near_duplicates
from xmore_db.toy import write_corpus

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture
def two_corpora(backend_env, corpus_dir, tmp_path):
    ok("init")
    ok("ingest", corpus_dir, "--corpus", "shapes")
    other = write_corpus(tmp_path / "other", 20, seed=9).parent
    ok("ingest", other, "--corpus", "other")
    return backend_env


def test_search_by_text_and_image_pages_and_filters(two_corpora, query_images, tmp_path):
    hits = ok_json("search", "a red circle", "-n", "10")
    assert [h["rank"] for h in hits] == list(range(1, 11))
    assert all(hits[i]["score"] >= hits[i + 1]["score"] for i in range(9))
    assert {"corpus", "key", "caption", "url", "path", "pair_id"} <= set(hits[0])
    assert {h["corpus"] for h in hits} <= {"shapes", "other"}
    # Paging: the second page continues the first.
    page2 = ok_json("search", "a red circle", "-n", "5", "--offset", "5")
    assert [h["pair_id"] for h in page2] == [h["pair_id"] for h in hits[5:10]]
    assert [h["rank"] for h in page2] == [6, 7, 8, 9, 10]
    # --corpus keeps only that corpus, repeated for several.
    only = ok_json("search", "a red circle", "-n", "30", "--corpus", "other")
    assert len(only) == 20 and {h["corpus"] for h in only} == {"other"}
    both = ok_json("search", "a red circle", "-n", "100", "--corpus", "other", "--corpus", "shapes")
    assert len(both) == 80
    by_image = ok_json("search", "--image", query_images[0], "-n", "3")
    assert len(by_image) == 3
    # Many hits to a file, for building a subset.
    ok("search", "a red circle", "-n", "50", "--output", tmp_path / "hits.parquet")
    table = pq.read_table(tmp_path / "hits.parquet").to_pylist()
    assert len(table) == 50 and table[0]["rank"] == 1 and set(table[0]) >= {"corpus", "key", "caption", "url"}
    ok("search", "a red circle", "-n", "7", "--output", tmp_path / "hits.jsonl")
    lines = (tmp_path / "hits.jsonl").read_text().splitlines()
    assert [json.loads(line)["rank"] for line in lines] == list(range(1, 8))
    # The table a person reads.
    text = ok("search", "a red circle", "-n", "2").stdout.splitlines()
    assert text[0].split() == ["rank", "score", "corpus", "key", "caption", "url"]
    assert re.match(r"1\s+\d\.\d{3}\s+(shapes|other)\s+images/\d{6}\.png\s+", text[1])


def test_search_dedup_drops_near_duplicates(two_corpora):
    plain = ok_json("search", "a star", "-n", "20")
    deduped = ok_json("search", "a star", "-n", "20", "--dedup", "0.5")
    assert len(deduped) <= 20 and deduped[0]["pair_id"] == plain[0]["pair_id"]
    assert [h["pair_id"] for h in deduped] != [h["pair_id"] for h in plain]


def test_near_duplicates_by_hand():
    v = np.array([[1.0, 0.0], [0.99, 0.141], [0.0, 1.0], [np.nan, np.nan]])
    v[:3] /= np.linalg.norm(v[:3], axis=1, keepdims=True)
    assert near_duplicates(v, 0.95).tolist() == [False, True, False, False]
    assert near_duplicates(v, 0.999).tolist() == [False, False, False, False]


def test_search_bad_input(two_corpora, query_images, tmp_path):
    assert xmore("search").exit_code == 2
    assert xmore("search", "x", "--image", query_images[0]).exit_code == 2
    assert "the search text is empty" in fails("search", "  ")
    assert "--dedup is a cosine similarity in (0, 1]" in fails("search", "x", "--dedup", "2")
    assert "write .parquet or .jsonl" in fails("search", "x", "--output", tmp_path / "hits.csv")
    assert not (tmp_path / "hits.csv").exists()


def test_retrieve_and_classify_take_the_corpus_filter(two_corpora, query_images, labels_file):
    got = ok_json("retrieve", query_images[0], "--coarse", "--corpus", "other")
    assert got["coarse"] and {h["corpus"] for h in got["coarse"]} == {"other"}
    assert {h["corpus"] for h in got["captions"]} == {"other"}
    result = ok_json("classify", query_images[0], "--labels", labels_file, "--corpus", "other", "--stream", "o")
    assert {h["corpus"] for h in result[0]["captions"]} == {"other"}


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    for name in ("XMORE_HOME", "XMORE_QDRANT_URL", "XMORE_DATABASE_URL", "XMORE_COARSE_K", "XMORE_FINE_K"):
        monkeypatch.delenv(name, raising=False)
    section = README.read_text().split("## From Python", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md (From Python)", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "200 pairs"
    assert [line.split()[0] for line in out[1:4]] == ["1", "2", "3"]
    assert out[-1] == "4 events in the stream"


def test_api_takes_arrays_and_pil_images_and_checks_labels(two_corpora, query_images):
    from PIL import Image

    import xmore_db
    from xmore_db.errors import LabelsError

    with xmore_db.open() as index:  # the settings come from the XMORE_* variables of the fixture
        array = np.asarray(Image.open(query_images[0]).convert("RGB"))
        results = index.classify([array, Image.open(query_images[1]), query_images[2]],
                                 labels=["circle", "square"], stream="api")
        assert [r.seq for r in results] == [1, 2, 3] and results[0].query == "<image 0>"
        assert results[2].query == str(query_images[2])
        assert index.stream("api").n_events == 3 and len(index.events("api")) == 3
        [r] = index.retrieve([array])
        assert r.captions and r.coarse
        with pytest.raises(LabelsError, match="repeat 'circle'"):
            index.classify([array], labels=["circle", "circle"])
