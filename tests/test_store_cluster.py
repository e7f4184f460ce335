"""The server backend against a cluster: the collection layout `xmore init` asks for, and the read-only key.

What is covered: the real CLI and the real qdrant-client over HTTP, against a
stand-in server on loopback (tests/qdrant_stub.py) that speaks Qdrant's REST paths
and JSON and checks the `api-key` header as a server with QDRANT__SERVICE__API_KEY
and QDRANT__SERVICE__READ_ONLY_API_KEY does (401 without a valid key, 403 with
Qdrant's words for a write with the read-only key). So these tests show which
shard, replication and write-consistency values reach the server's create request,
what `xmore status --json` reports back, that every writing command refuses with
one line under the read-only key and leaves the store and the SQL database as they
were, and that classification works under it.

What is not covered: a real Qdrant cluster placing shards and replicas, or a real
server's choice of which operations its read-only key may do (the stub counts
every PUT, PATCH, DELETE and points/delete as a write, as Qdrant does for the
routes used here). tests/test_docker.py runs the CLI against a real server where
a Docker engine exists.
"""

from __future__ import annotations

import httpx
import pytest
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.cli import fails, ok, ok_json, xmore
from tests.conftest import TINY_MODELS
from tests.qdrant_stub import QdrantStub
from xmore_db.config import Settings
from xmore_db.errors import ConfigError, StoreError, StoreReadOnlyError
from xmore_db.store.server import ServerStore

# qdrant-client warns that a key travels over plain HTTP: true of the loopback stub, and not what is tested.
pytestmark = pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
READ_WRITE_KEY = "rw-key-for-tests"
READ_ONLY_KEY = "ro-key-for-tests"
LAYOUT_3_2_2 = {"shard_number": 3, "replication_factor": 2, "write_consistency_factor": 2}


def read_only_line(action: str, stub: QdrantStub) -> str:
    return (f"Error: the Qdrant key is read-only: {action} needs a read-write key (XMORE_QDRANT_API_KEY set to "
            f"the server's api_key, not its read_only_api_key); Qdrant at {stub.url} answered 403")


@pytest.fixture
def stub():
    with QdrantStub(api_key=READ_WRITE_KEY, read_only_api_key=READ_ONLY_KEY) as server:
        yield server


@pytest.fixture
def server_env(stub, tmp_path, monkeypatch):
    """The CLI against the stub with the read-write key, tiny models, a fresh home for the SQLite history."""
    for name in ("XMORE_DATABASE_URL", "XMORE_DEBUG", "XMORE_QDRANT_SHARDS", "XMORE_QDRANT_REPLICAS",
                 "XMORE_QDRANT_WRITE_CONSISTENCY", "XMORE_CAPTION_CACHE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in dict(TINY_MODELS, XMORE_HOME=str(tmp_path / "home"), XMORE_QDRANT_URL=stub.url,
                            XMORE_QDRANT_API_KEY=READ_WRITE_KEY, XMORE_COARSE_K="16", XMORE_FINE_K="4").items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def sent_layout(stub: QdrantStub) -> dict[str, dict]:
    """The layout fields of each collection's create request, as the client sent them."""
    return {name: {field: body.get(field) for field in LAYOUT_3_2_2} for name, body in stub.created.items()}


# -- the layout ----------------------------------------------------------------------------

def test_init_sends_shards_replicas_and_write_consistency_and_status_reports_them(stub, server_env):
    result = ok("init", "--shards", "3", "--replicas", "2", "--write-consistency", "2")
    assert result.stderr == ""
    assert sent_layout(stub) == {"images": LAYOUT_3_2_2, "texts": LAYOUT_3_2_2}
    assert ok_json("status")["cluster"] == {"images": LAYOUT_3_2_2, "texts": LAYOUT_3_2_2}


def test_layout_from_the_environment(stub, server_env):
    server_env.setenv("XMORE_QDRANT_SHARDS", "6")
    server_env.setenv("XMORE_QDRANT_REPLICAS", "2")
    ok("init")
    assert sent_layout(stub)["images"] == {"shard_number": 6, "replication_factor": 2,
                                           "write_consistency_factor": None}


def test_without_layout_options_the_server_decides(stub, server_env):
    ok("init")
    assert sent_layout(stub)["images"] == {"shard_number": None, "replication_factor": None,
                                           "write_consistency_factor": None}
    assert ok_json("status")["cluster"]["texts"] == {"shard_number": 1, "replication_factor": 1,
                                                     "write_consistency_factor": 1}


def test_layout_options_on_existing_collections_are_noted_not_applied(stub, server_env):
    ok("init", "--shards", "3")
    result = ok("init", "--shards", "4")
    assert result.stderr.strip() == ("Note: the collections already existed and keep their shards and replicas: the "
                                     "layout options apply when they are created (`xmore status --json` shows it)")
    assert ok_json("status")["cluster"]["images"]["shard_number"] == 3


def test_write_consistency_above_the_replicas_is_refused_before_anything(stub, server_env):
    line = fails("init", "--replicas", "2", "--write-consistency", "3")
    assert line == ("Error: --write-consistency (3, XMORE_QDRANT_WRITE_CONSISTENCY) cannot exceed the replication "
                    "factor (2, --replicas, XMORE_QDRANT_REPLICAS): a write would wait for copies that do not exist")
    assert stub.created == {}
    assert "by default" in fails("init", "--write-consistency", "2")


def test_zero_shards_is_a_usage_error(server_env):
    result = xmore("init", "--shards", "0")
    assert result.exit_code == 2 and "--shards" in result.stderr


@pytest.mark.parametrize("where, note", [
    ("edge", "Note: --shards, --replicas ignored: the embedded Qdrant Edge store is one copy in one process; "
             "shards and replicas apply to a Qdrant server (XMORE_QDRANT_URL=http://HOST:6333)"),
    ("local", "Note: --shards, --replicas ignored: qdrant-client's local mode (file:{path}) accepts and ignores "
              "them, it keeps one copy in one process; they apply to a Qdrant server (http://HOST:6333)"),
])
def test_layout_is_ignored_with_a_note_on_edge_and_local_mode(where, note, tmp_path, tiny_env):
    path = tmp_path / "local-qdrant"
    if where == "local":
        tiny_env.setenv("XMORE_QDRANT_URL", f"file:{path}")
    result = ok("init", "--shards", "3", "--replicas", "2")
    assert result.stderr.strip() == note.format(path=path)
    assert ok_json("status")["cluster"] is None


def test_layout_settings_are_checked():
    with pytest.raises(ConfigError, match=r"^XMORE_QDRANT_SHARDS='three' is not a valid value for qdrant_shards$"):
        Settings.from_env({"XMORE_QDRANT_SHARDS": "three"})
    with pytest.raises(ConfigError, match=r"^--replicas \(XMORE_QDRANT_REPLICAS\) must be at least 1, got 0$"):
        Settings.from_env({"XMORE_QDRANT_REPLICAS": "0"})
    assert Settings.from_env({"XMORE_QDRANT_SHARDS": "6"}).qdrant_cluster == {"shard_number": 6}


# -- the read-only key ------------------------------------------------------------------

def test_query_only_deployment_reads_and_refuses_every_write(stub, server_env, corpus_dir, query_images,
                                                             labels_file):
    ok("init")
    server_env.setenv("XMORE_CAPTION_CACHE", "0")  # so that cache-captions has work left for the read-only key
    ok("ingest", corpus_dir, "--corpus", "shapes")
    server_env.delenv("XMORE_CAPTION_CACHE")
    before = ok_json("status")
    corpora_before = ok_json("corpora", "list")

    server_env.setenv("XMORE_QDRANT_API_KEY", READ_ONLY_KEY)
    results = ok_json("classify", *query_images, "--labels", labels_file, "--stream", "read-only")
    assert [r["seq"] for r in results] == list(range(1, len(query_images) + 1))
    assert ok_json("status")["collections"] == before["collections"] == {"images": 60, "texts": 60}
    ok("init")  # the collections exist: nothing to write, only checked

    assert fails("ingest", corpus_dir, "--corpus", "more") == read_only_line("writing to the collections", stub)
    assert fails("optimize") == read_only_line("recording the index build", stub)
    assert fails("cache-captions") == read_only_line("creating the caption cache", stub)
    assert fails("corpora", "delete", "shapes", "--yes") == read_only_line("deleting a corpus", stub)

    assert ok_json("corpora", "list") == corpora_before  # no `more`, `shapes` whole
    after = ok_json("status")
    assert (after["collections"], after["caption_cache"], after["index"]) == (
        before["collections"], before["caption_cache"], before["index"])
    assert {method for method, _ in stub.refused} <= {"PUT", "PATCH", "DELETE", "POST"}


def test_init_with_the_read_only_key_creates_nothing(stub, server_env):
    server_env.setenv("XMORE_QDRANT_API_KEY", READ_ONLY_KEY)
    assert fails("init") == read_only_line("creating collection 'texts'", stub)
    assert stub.created == {}
    assert ok_json("status")["database_revision"] is None  # not migrated either: the store comes first


def test_a_wrong_key_is_refused_in_one_line(stub, server_env):
    server_env.setenv("XMORE_QDRANT_API_KEY", "not-a-key")
    assert fails("init") == (f"Error: Qdrant at {stub.url} refused the request (401 Unauthorized) while reading "
                             "collection info: check XMORE_QDRANT_API_KEY")


def test_a_403_that_is_not_about_writing_is_not_called_read_only():
    """A JWT scoped to other collections is refused reads too; the server's words tell the two apart."""
    store = ServerStore.from_settings(Settings(qdrant_url="http://127.0.0.1:1", qdrant_api_key="k"))
    refusal = UnexpectedResponse(403, "Forbidden", b'{"status":{"error":"Forbidden: Access to collection images '
                                                   b'is required"},"time":0.0}', httpx.Headers())
    error = store._translate(refusal, "coarse search")
    assert type(error) is StoreError
    assert str(error) == ("Qdrant at http://127.0.0.1:1 refused the request (403 Forbidden) while coarse search: "
                          "check XMORE_QDRANT_API_KEY")
    write = UnexpectedResponse(403, "Forbidden", b'{"status":{"error":"Forbidden: Write access to collection images '
                                                 b'is required"},"time":0.0}', httpx.Headers())
    assert isinstance(store._translate(write, "deleting a corpus"), StoreReadOnlyError)
    store.close()
