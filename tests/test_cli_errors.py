"""Bad input: one line on stderr, a non-zero exit, and nothing half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xmore_db.cli.app import app

runner = CliRunner()


def fails(*args: str, code: int = 1) -> str:
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert "Traceback" not in result.output
    return lines[0]


def ok_json(*args: str):
    result = runner.invoke(app, [str(a) for a in args] + ["--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def ready(backend_env, corpus_dir):
    ok_json("init")
    ok_json("ingest", corpus_dir, "--corpus", "shapes")
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
    [unit] = ok_json("corpora", "show", "bad")["units"]
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
    assert "images" in line and "32" in line and "48" in line
    assert "32" in fails("init")
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
