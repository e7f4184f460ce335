"""While another process (a running ingest) holds the embedded store, `status` and `corpora list|show`
still show the SQL part (revision, streams, the ledger's corpora and units), report the store busy, exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.cli import ok, ok_json, xmore
from xmore_db.history import head_revision
from xmore_db.toy.formats import write_embeddings_folder

HOLD = textwrap.dedent("""
    import sys
    from xmore_db.config import Settings
    from xmore_db.workspace import Workspace
    ws = Workspace(Settings.from_env())
    ws.store()
    print("ready", flush=True)
    sys.stdin.read()
""")


@pytest.fixture
def held(backend_env, tmp_path):
    """An initialised embedded store with one ingested corpus, held open by a child process."""
    if "XMORE_QDRANT_URL" in backend_env:
        pytest.skip("the one-process lock is the embedded engine's")
    ok_json("init")
    folder = write_embeddings_folder(tmp_path / "a", [5, 4], coarse_dim=32, fine_dim=48,
                                     text_emb_folder=tmp_path / "a-fine", seed=3)
    ok_json("ingest", folder, "--corpus", "a", "--text-emb", tmp_path / "a-fine")
    assert ok_json("status")["store"]["busy"] is False
    holder = subprocess.Popen([sys.executable, "-c", HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ))
    try:
        assert holder.stdout.readline().strip() == "ready"
        yield backend_env
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def test_status_and_corpora_while_the_store_is_held(held):
    status = ok_json("status")
    assert status["store"]["busy"] is True and "another process" in status["store"]["message"]
    assert status["collections"] is None and status["index"] is None
    assert status["database_revision"] == head_revision() and status["streams"] == 0
    text = ok("status").stdout
    assert "busy" in text and "running ingest" in text and head_revision() in text

    [listed] = ok_json("corpora", "list")
    assert listed["corpus"] == "a" and listed["store"]["busy"] is True and listed["points"] is None
    assert listed["rows"] == 9 and listed["ingested"] == 9
    text = ok("corpora", "list").stdout
    assert "a" in text and "busy" in text

    shown = ok_json("corpora", "show", "a")
    assert shown["store"]["busy"] is True and shown["points"] is None
    records = next(v for k, v in shown.items() if isinstance(v, list))  # the unit records
    assert [(u["unit"], u["status"], u["ingested"]) for u in records] == [("0000", "done", 5), ("0001", "done", 4)]
    text = ok("corpora", "show", "a").stdout
    assert "busy" in text and "0001" in text

    # Other commands still need the store: one error line, exit 1.
    assert xmore("corpora", "delete", "a", "--yes").exit_code == 1


def test_store_not_busy(backend_env):
    ok_json("init")
    status = ok_json("status")
    assert status["store"] == {"busy": False, "message": None}
