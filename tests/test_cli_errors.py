"""Bad input: one line on stderr, a non-zero exit, and nothing half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.cli import fails, ok_json, xmore


@pytest.fixture
def ready(backend_env):
    """An initialised, empty store: every error below is raised before a search would matter."""
    ok_json("init")
    return backend_env


def test_corrupt_image_in_classify_writes_no_event(ready, query_images, labels_file, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    line = fails("classify", query_images[0], broken, "--labels", labels_file, "--stream", "s")
    assert line.startswith("Error: cannot read image") and "broken.jpg" in line
    assert ok_json("streams", "list") == []


def test_missing_image_in_classify(ready, labels_file, tmp_path):
    line = fails("classify", tmp_path / "nope.png", "--labels", labels_file)
    assert "nope.png" in line


def test_corrupt_image_in_corpus_is_skipped_and_counted(backend_env, corpus_dir, tmp_path):
    import shutil

    folder = tmp_path / "corpus"
    shutil.copytree(corpus_dir, folder)
    (folder / "images" / "000007.png").write_bytes(b"garbage")
    ok_json("init")
    report = ok_json("ingest", folder, "--corpus", "bad")
    assert (report["ingested"], report["skipped"]) == (59, 1)
    assert report["skip_reasons"] == {"undecodable_image": 1}
    assert report["collections"] == {"images": 59, "texts": 59}
    [unit] = ok_json("corpora", "show", "bad")["unit_records"]
    assert unit["status"] == "done" and unit["skip_reasons"] == {"undecodable_image": 1}


def test_missing_captions_file(backend_env, tmp_path):
    ok_json("init")
    (tmp_path / "empty").mkdir()
    line = fails("ingest", tmp_path / "empty", "--corpus", "c")
    assert "no captions file" in line
    assert "captions file" in fails("ingest", tmp_path / "empty", "--corpus", "c", "--captions", tmp_path / "x.csv")


def test_labels_file_empty_or_duplicated(ready, query_images, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing\n")
    assert "has no labels" in fails("classify", query_images[0], "--labels", empty)
    dup = tmp_path / "dup.txt"
    dup.write_text("circle\nsquare\ncircle\n")
    assert "repeats 'circle' (lines 1 and 3)" in fails("classify", query_images[0], "--labels", dup)
    assert ok_json("streams", "list") == []


def test_unknown_stream(ready):
    assert "no stream named 'ghost'" in fails("streams", "show", "ghost")
    assert "no stream named 'ghost'" in fails("streams", "reset", "ghost", "--yes")


def test_database_unreachable_leaves_store_untouched(backend_env, monkeypatch):
    monkeypatch.setenv("XMORE_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    line = fails("init")
    assert line.startswith("Error: cannot connect to database")
    home = Path(backend_env["XMORE_HOME"])
    assert not (home / "qdrant").exists()


def test_qdrant_unreachable(backend_env, monkeypatch):
    monkeypatch.setenv("XMORE_QDRANT_URL", "http://127.0.0.1:1")
    line = fails("init")
    assert "cannot reach Qdrant at http://127.0.0.1:1" in line
    assert "cannot reach Qdrant" in fails("status")


def test_vector_size_mismatch_is_refused_before_any_write(ready, query_images, labels_file, monkeypatch):
    monkeypatch.setenv("XMORE_COARSE_MODEL", "xmore-tiny-wide")  # 48-d against a 32-d images collection
    line = fails("classify", query_images[0], "--labels", labels_file, "--stream", "s")
    assert line.startswith("Error: the vector store at ") and (
        "does not match the configured models: collection 'images' was built with xmore-tiny (32-d) "
        "but the configured coarse model is xmore-tiny-wide (48-d)") in line
    assert fails("init") == line
    assert ok_json("streams", "list") == []


def test_missing_weights_say_how_to_point_at_a_checkpoint(ready, query_images, labels_file, monkeypatch):
    monkeypatch.setenv("XMORE_CLASSIFIER_MODEL", "RN50:openai")
    line = fails("classify", query_images[0], "--labels", labels_file)
    assert "RN50:openai" in line and "XMORE_CLASSIFIER_MODEL" in line


def test_unknown_architecture(backend_env, monkeypatch):
    monkeypatch.setenv("XMORE_FINE_MODEL", "ViT-Q-99")
    assert "ViT-Q-99" in fails("init")


def test_bad_setting_value(backend_env, monkeypatch):
    monkeypatch.setenv("XMORE_NORMALIZE", "softmax")
    assert "unknown normalisation 'softmax'" in fails("config")


def test_embedded_store_open_elsewhere(backend_env, query_images, labels_file):
    if "XMORE_QDRANT_URL" in backend_env:
        pytest.skip("the lock is the embedded engine's")
    ok_json("init")
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, time
            from xmore_db.config import Settings
            from xmore_db.store import open_store
            from xmore_db.workspace import Workspace
            ws = Workspace(Settings.from_env())
            ws.store()
            print("ready", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dict(os.environ),
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        line = fails("classify", query_images[0], "--labels", labels_file)
        assert "open in another process" in line and "XMORE_QDRANT_URL" in line
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


# -- init checks every model's weights before creating anything (issue 9, bug 3) --

def _nothing_created(env) -> None:
    home = Path(env["XMORE_HOME"])
    assert not home.exists(), sorted(p.name for p in home.iterdir())
    if env.get("XMORE_QDRANT_URL", "").startswith("file:"):
        assert not Path(env["XMORE_QDRANT_URL"][len("file:"):]).exists()


def _garbage(path: Path) -> Path:
    path.write_bytes(b"junk\n" * 20)
    return path


def _not_a_state_dict(path: Path) -> Path:
    import torch

    torch.save([1, 2, 3], path)
    return path


@pytest.mark.parametrize(("variable", "make", "says"), [
    ("XMORE_FINE_MODEL", lambda d: d / "nope" / "open_clip_model.safetensors", "does not exist"),
    ("XMORE_COARSE_MODEL", lambda d: d / "missing.pt", "does not exist"),
    ("XMORE_CLASSIFIER_MODEL", lambda d: _garbage(d / "garbage.pt"), "not a PyTorch checkpoint"),
    ("XMORE_FINE_MODEL", lambda d: _garbage(d / "garbage.safetensors"), "not a valid safetensors file"),
    ("XMORE_FINE_MODEL", lambda d: _not_a_state_dict(d / "list.pt"), "does not hold a state_dict"),
    ("XMORE_COARSE_MODEL", lambda d: d, "is not a file"),
])
def test_init_refuses_weights_that_do_not_load_and_creates_nothing(backend_env, monkeypatch, tmp_path,
                                                                    variable, make, says):
    folder = tmp_path / "weights"
    folder.mkdir()
    path = make(folder)
    arch = {"XMORE_FINE_MODEL": "xmore-tiny-wide"}.get(variable, "xmore-tiny")
    monkeypatch.setenv(variable, f"{arch}:{path}")
    line = fails("init")
    assert line.startswith("Error: ") and says in line
    assert variable in line and str(path) in line
    _nothing_created(backend_env)


def test_init_refuses_an_uncached_tag_and_creates_nothing(backend_env, monkeypatch, tmp_path):
    monkeypatch.setenv("XMORE_MODEL_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("XMORE_CLASSIFIER_MODEL", "RN50:openai")
    line = fails("init")
    assert "not in the local cache" in line and "XMORE_CLASSIFIER_MODEL" in line
    _nothing_created(backend_env)


def test_check_weights_reads_only_what_it_must(tmp_path):
    import torch
    from safetensors.torch import save_file

    from xmore_db.models.weights import check_state_dict, check_weights

    state = {"a.weight": torch.zeros(3, 2), "a.bias": torch.ones(3)}
    torch.save(state, tmp_path / "zip.pt")
    torch.save({"state_dict": state}, tmp_path / "wrapped.pt")
    save_file(state, str(tmp_path / "w.safetensors"))
    for name in ("zip.pt", "wrapped.pt", "w.safetensors"):
        assert check_state_dict(tmp_path / name) == 2
    weights = check_weights(f"xmore-tiny:{tmp_path / 'w.safetensors'}", role="coarse")
    assert weights.source == "file" and weights.path == tmp_path / "w.safetensors"
    assert check_weights("xmore-tiny").source == "random"


# -- status exits 1 when the database cannot be reached (issue 9, bug 7) --------

def test_status_exits_1_when_the_database_is_unreachable(backend_env, monkeypatch):
    monkeypatch.setenv("XMORE_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    result = xmore("status")
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("Error: cannot connect to database postgresql+psycopg://")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "vector store:" in result.stdout and "revision:    unknown" in result.stdout  # what it learned first
    result = xmore("status", "--json")
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    out = json.loads(result.stdout)
    assert out["database_revision"] is None and out["database_error"].startswith("cannot connect to database")


def test_status_of_a_home_never_initialised_is_not_an_error(backend_env):
    status = ok_json("status")
    assert status["database_revision"] is None and status["collections"] is None
    assert "database_error" not in status
