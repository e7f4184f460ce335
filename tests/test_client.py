"""`xmore_db.client` and `xmore --server URL …` against a real `xmore serve` (uvicorn on loopback).

The local outputs are made first, by the local CLI over the same home; then one
process (the service) holds the embedded store, and the remote commands must
print the same thing without touching it.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi import FastAPI  # noqa: E402
from fastapi.responses import PlainTextResponse  # noqa: E402
from PIL import Image  # noqa: E402

import xmore_db  # noqa: E402
from tests.cli import fails, ok, ok_json, xmore  # noqa: E402
from tests.conftest import TINY_MODELS  # noqa: E402
from tests.service_server import running  # noqa: E402
from xmore_db.client import Client  # noqa: E402
from xmore_db.errors import ConfigError, ImageError, ServerAuthError, ServerError, ServerUnreachableError  # noqa: E402
from xmore_db.history.keys import KeyStore  # noqa: E402
from xmore_db.service import create_app  # noqa: E402
from xmore_db.service.auth import Keys  # noqa: E402

SHAPES = ["circle", "square", "triangle", "star", "cross"]
NO_KEY = "Error: a valid API key is needed: send `Authorization: Bearer KEY` (give one with --api-key KEY or " \
         "XMORE_API_KEY)"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """The tiny models over a fresh home, for the whole module: the local CLI and the service read the same."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("XMORE_QDRANT_URL", "XMORE_DATABASE_URL", "XMORE_QDRANT_API_KEY", "XMORE_DEBUG",
                     "XMORE_SERVER", "XMORE_API_KEY", "XMORE_STREAM", "XMORE_NORMALIZE", "XMORE_TEMPLATE"):
            mp.delenv(name, raising=False)
        path = tmp_path_factory.mktemp("client") / "home"
        for name, value in dict(TINY_MODELS, XMORE_HOME=str(path), XMORE_COARSE_K="16", XMORE_FINE_K="4").items():
            mp.setenv(name, value)
        yield path


@pytest.fixture(scope="module")
def local(home, corpus_dir, query_images, labels_file) -> dict:
    """What the local CLI prints, before the service opens the store."""
    ok("init")
    ok("ingest", corpus_dir, "--corpus", "toy")
    classify = ("classify", *query_images[:3], "--labels", labels_file)
    return {
        "classify_json": ok_json(*classify, "--stream", "local-json"),
        "classify_text": ok(*classify, "--stream", "local-text").stdout,
        "retrieve_json": ok_json("retrieve", query_images[0], "--coarse"),
        "retrieve_text": ok("retrieve", query_images[0], "--coarse").stdout,
        "search_json": ok_json("search", "a red striped star", "-n", "5"),
        "search_text": ok("search", "a red striped star", "-n", "5").stdout,
        "search_image_json": ok_json("search", "--image", query_images[1], "-n", "3"),
    }


@pytest.fixture(scope="module")
def index(local):
    with xmore_db.open() as index:  # the home and models of the module's environment, as the CLI had them
        yield index


@pytest.fixture(scope="module")
def url(index):
    """A service without keys: one open team, stream names as the local CLI stores them."""
    with running(create_app(index)) as base:
        yield base


@pytest.fixture(scope="module")
def keyed(index):
    """A service asking for keys; yields (url, {"query": key, "admin": key}) of team alpha."""
    store = KeyStore(index._workspace.database)
    made = {role: store.create("alpha", role).api_key for role in ("query", "admin")}
    with running(create_app(index, keys=Keys(store))) as base:
        yield base, made


def _renamed(results: list[dict], stream: str) -> list[dict]:
    return [r | {"stream": stream} for r in results]


# ---- the CLI with --server prints what it prints locally -------------------------------------------------------

def test_remote_classify_prints_what_local_classify_prints(url, local, query_images, labels_file):
    classify = ("--server", url, "classify", *query_images[:3], "--labels", labels_file)
    remote = ok_json(*classify, "--stream", "remote-json")
    assert remote == _renamed(local["classify_json"], "remote-json")  # same store, a fresh stream each
    assert [r["query"] for r in remote] == [str(p) for p in query_images[:3]]
    assert ok(*classify, "--stream", "remote-text").stdout == local["classify_text"]


def test_remote_streams_print_what_local_streams_print(url, local):
    # The history is SQLite, which both may open while the service holds the embedded store.
    assert ok_json("--server", url, "streams", "list") == ok_json("streams", "list")
    assert ok("--server", url, "streams", "list").stdout == ok("streams", "list").stdout
    for args in (("local-text",), ("local-json", "--last", "2"), ("local-json", "--last", "0")):
        assert ok_json("--server", url, "streams", "show", *args) == ok_json("streams", "show", *args)
        assert ok("--server", url, "streams", "show", *args).stdout == ok("streams", "show", *args).stdout


def test_remote_retrieve_and_search_print_what_local_ones_print(url, local, query_images, tmp_path):
    assert ok_json("--server", url, "retrieve", query_images[0], "--coarse") == local["retrieve_json"]
    assert ok("--server", url, "retrieve", query_images[0], "--coarse").stdout == local["retrieve_text"]
    assert ok_json("--server", url, "search", "a red striped star", "-n", "5") == local["search_json"]
    assert ok("--server", url, "search", "a red striped star", "-n", "5").stdout == local["search_text"]
    assert ok_json("--server", url, "search", "--image", query_images[1], "-n", "3") == local["search_image_json"]
    ok("--server", url, "search", "a red striped star", "-n", "5", "--output", tmp_path / "hits.jsonl")
    written = [json.loads(line) for line in (tmp_path / "hits.jsonl").read_text().splitlines()]
    assert written == local["search_json"]


def test_remote_reset_asks_then_resets(url, query_images, labels_file):
    ok("--server", url, "classify", *query_images[:2], "--labels", labels_file, "--stream", "to-reset")
    asked = xmore("--server", url, "streams", "reset", "to-reset", input="n\n")
    assert asked.exit_code == 1 and "Delete stream 'to-reset' and its 2 events?" in asked.stderr
    assert ok_json("--server", url, "streams", "show", "to-reset")["n_events"] == 2
    assert ok("--server", url, "streams", "reset", "to-reset", "--yes").stdout == \
        "Reset stream 'to-reset': removed 2 events\n"
    assert fails("--server", url, "streams", "show", "to-reset") == \
        "Error: no stream named 'to-reset' for your team (GET /v1/streams or `xmore streams list` lists them)"


def test_remote_status_is_the_servers(url):
    status = ok_json("--server", url, "status")
    assert status["collections"] == {"images": 60, "texts": 60} and status["keys_required"] is False
    text = ok("--server", url, "status").stdout.splitlines()
    assert text[0] == f"server:        {url} (open, no keys)"
    assert text[1].startswith("vector store:  qdrant-edge at ")
    assert text[2] == "  images:      60 points (xmore-tiny, 32-d)"


def test_a_remote_run_loads_no_model_and_opens_no_store(url, query_images, labels_file, tmp_path):
    # The service holds the embedded store (one process at a time): a run that opened it would fail.
    script = (
        "import sys\n"
        "from xmore_db.cli.app import app\n"
        "try:\n"
        "    app(prog_name='xmore', args=sys.argv[1:])\n"
        "finally:\n"
        "    heavy = ('torch', 'open_clip', 'qdrant_edge', 'qdrant_client', 'sqlalchemy', 'alembic')\n"
        "    print('LOADED', [m for m in heavy if m in sys.modules], file=sys.stderr)\n"
    )
    for args in (["classify", *query_images[:2], "--labels", labels_file, "--stream", "subprocess", "--json"],
                 ["streams", "show", "subprocess", "--json"], ["status"]):
        run = subprocess.run([sys.executable, "-c", script, "--server", url, *map(str, args)], capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert run.stderr.strip().splitlines()[-1] == "LOADED []"
    assert ok_json("--server", url, "streams", "show", "subprocess")["n_events"] == 2


# ---- errors ------------------------------------------------------------------------------------------------------

def test_service_errors_are_one_line_and_exit_1(url, query_images, labels_file, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    assert fails("--server", url, "classify", query_images[0], broken, "--labels", labels_file,
                 "--stream", "careful") == f"Error: cannot read image {broken}: not an image format Pillow can read"
    assert fails("--server", url, "classify", query_images[0], "--labels", labels_file, "--stream", "careful",
                 "--method", "nope").startswith("Error: unknown method 'nope': choose from ")
    assert fails("--server", url, "classify", tmp_path / "missing.png", "--labels", labels_file) == \
        f"Error: cannot read image {tmp_path / 'missing.png'}: no such file"  # read here, before sending
    assert fails("--server", url, "streams", "show", "careful") == (  # nothing was written
        "Error: no stream named 'careful' for your team (GET /v1/streams or `xmore streams list` lists them)")


def test_local_options_and_local_commands_are_refused_with_server(url, query_images, labels_file, monkeypatch):
    assert fails("--server", url, "classify", query_images[0], "--labels", labels_file, "-K", "8", code=2) == \
        "Error: --coarse-k is the server's setting here: it cannot be given with --server"
    for command in (["init"], ["ingest", "somewhere", "--corpus", "c"], ["eval"], ["optimize"], ["config"],
                    ["textbank", "list"], ["keys", "list"], ["serve"], ["corpora", "list"]):
        assert fails("--server", url, *command, code=2) == \
            f"Error: xmore {command[0]} runs locally: --server is not supported here"
    monkeypatch.setenv("XMORE_SERVER", url)
    assert fails("init", code=2) == "Error: xmore init runs locally: XMORE_SERVER is not supported here"
    assert " eval [OPTIONS]" in ok("eval", "--help").stdout  # help still works


def test_unreachable_server_and_bad_url(url):
    with socket.socket() as sock:  # a port that nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    line = fails("--server", f"http://127.0.0.1:{port}", "streams", "list")
    assert line.startswith(f"Error: cannot reach the server at http://127.0.0.1:{port}: ")
    assert fails("--server", "localhost:8000", "status") == \
        "Error: server URL 'localhost:8000' is not http://HOST[:PORT] or https://HOST[:PORT]"
    assert fails("--server", "http://user:hunter2@127.0.0.1:1/", "status").startswith(
        "Error: cannot reach the server at http://user:****@127.0.0.1:1: ")


def test_keys_are_sent_and_never_shown(keyed, query_images, labels_file):
    base, key = keyed
    assert fails("--server", base, "streams", "list") == NO_KEY
    assert fails("--server", base, "--api-key", "xmk_not-a-key-at-all", "streams", "list") == "Error: unknown API key"
    ok("--server", base, "--api-key", key["query"], "classify", query_images[0], "--labels", labels_file,
       "--stream", "team-stream")
    listed = ok_json("--server", base, "--api-key", key["query"], "streams", "list")
    assert [s["stream"] for s in listed] == ["team-stream"]  # the team's name for its `alpha/team-stream`
    refused = xmore("--server", base, "--api-key", key["query"], "streams", "reset", "team-stream", "--yes")
    assert refused.exit_code == 1
    assert refused.stderr == "Error: this request needs an admin key; the key sent is a query key\n"
    status = ok("--server", base, "--api-key", key["admin"], "status")
    assert status.stdout.splitlines()[0] == f"server:        {base} (team alpha, admin key)"
    for result in (refused, status):
        assert key["query"] not in result.output + result.stderr and key["admin"] not in result.output
    with Client(base, api_key=key["admin"]) as client:
        assert key["admin"] not in repr(client) and "****" in repr(client)
        assert client.reset("team-stream") == {"stream": "team-stream", "events_removed": 1}


def test_a_server_that_is_not_xmore(tmp_path):
    other = FastAPI()

    @other.get("/v1/status")
    def page():
        return PlainTextResponse("<html>hello</html>")

    with running(other) as base, Client(base) as client:
        with pytest.raises(ServerError, match=r"answered 200 with something that is not JSON"):
            client.status()
        with pytest.raises(ServerError, match=r"^the server at http://127\.0\.0\.1:\d+ answered 404 Not Found$") \
                as raised:
            client.streams()  # FastAPI's own 404 body is JSON, but not {"error": …}
    assert raised.value.status == 404


# ---- the Python client -----------------------------------------------------------------------------------------

def test_client_takes_paths_bytes_pil_images_and_arrays(url, query_images, local):
    import numpy as np

    pil = Image.open(query_images[0]).convert("RGB")
    with Client(url) as server:
        results = server.classify([query_images[0], query_images[0].read_bytes(), pil, np.asarray(pil)],
                                  labels=SHAPES, stream="python")
        assert [r["query"] for r in results] == [str(query_images[0]), "<image 1>", "<image 2>", "<image 3>"]
        assert [r["seq"] for r in results] == [1, 2, 3, 4]
        assert len({json.dumps(r["probabilities"]) for r in results[1:]}) == 1  # the same pixels, sent three ways
        assert server.events("python", last=None)[-1]["seq"] == 4 and len(server.events("python")) == 4
        assert [e["seq"] for e in server.events("python", last=2)] == [3, 4]
        assert server.stream("python", last=0)["n_events"] == 4
        [retrieved] = server.retrieve(query_images[0], coarse=True)
        assert retrieved == local["retrieve_json"]
        assert server.search("a red striped star", n=5) == local["search_json"]
        assert server.search(image=query_images[1], n=3) == local["search_image_json"]
        assert server.health() == {"status": "ok"} and server.ready() == {"status": "ready"}
        assert server.status()["streams"] >= 1


def test_client_names_with_slashes_and_spaces(url, query_images):
    with Client(url + "/") as server:
        [result] = server.classify(query_images[:1], labels=SHAPES, stream="team a/run 1?#")
        assert result["stream"] == "team a/run 1?#"
        assert server.stream("team a/run 1?#")["n_events"] == 1
        assert server.reset("team a/run 1?#") == {"stream": "team a/run 1?#", "events_removed": 1}


def test_client_errors_are_typed(url, keyed, query_images, tmp_path):
    base, key = keyed
    with Client(url) as server:
        with pytest.raises(ServerError, match=r"^no stream named 'never' ") as raised:
            server.stream("never")
        assert raised.value.status == 404 and not isinstance(raised.value, ServerAuthError)
        with pytest.raises(ImageError, match="no such file"):
            server.classify([tmp_path / "missing.png"], labels=SHAPES)
        with pytest.raises(ServerError) as raised:
            server.classify([io.BytesIO(b"x").getvalue()], labels=SHAPES, stream="bad bytes")
        assert raised.value.status == 400 and "<image 0>" in str(raised.value)
    with Client(base) as anonymous, pytest.raises(ServerAuthError) as raised:
        anonymous.streams()
    assert raised.value.status == 401 and str(raised.value).startswith("a valid API key is needed")
    with Client(base, api_key=key["query"]) as query, pytest.raises(ServerAuthError) as raised:
        query.reset("anything")
    assert raised.value.status == 403
    with pytest.raises(ConfigError):
        Client("ftp://example.org")
    with Client("http://127.0.0.1:1", timeout=2) as nowhere, pytest.raises(ServerUnreachableError) as raised:
        nowhere.status()
    assert raised.value.status is None and "cannot reach the server at http://127.0.0.1:1: " in str(raised.value)


def test_client_label_sets_corpora_and_keys(url, keyed, query_images, corpus_dir):
    with Client(url) as server:  # the open team: an admin
        assert server.put_labelset("shapes", SHAPES)["labels"] == SHAPES
        assert [(s["name"], s["labels"]) for s in server.labelsets()] == [("shapes", SHAPES)]
        [result] = server.classify(query_images[:1], label_set="shapes", stream="by-label-set")
        assert result["labels"] == SHAPES and result["seq"] == 1
        by_cli = ok_json("--server", url, "classify", query_images[1], "--label-set", "shapes", "--stream",
                         "by-label-set")
        assert [(r["labels"], r["seq"]) for r in by_cli] == [(SHAPES, 2)]
        assert server.delete_labelset("shapes") == {"name": "shapes", "deleted": True}
        with pytest.raises(ServerError, match=r"^no label set named 'shapes'") as raised:
            server.labelset("shapes")
        assert raised.value.status == 404
        [toy] = server.corpora()
        assert toy["corpus"] == "toy" and server.corpus("toy")["ingested"] == 60
        with pytest.raises(ServerError, match=r"^ingest over HTTP is off: ") as raised:
            server.ingest(corpus_dir, corpus="toy")
        assert raised.value.status == 403
    base, key = keyed
    with Client(base, api_key=key["admin"]) as admin:
        made = admin.create_key(team="beta", role="query", note="made over HTTP")
        assert made["team"] == "beta" and made["api_key"].startswith(made["prefix"])
        assert made["key_id"] in {k["key_id"] for k in admin.keys()}
        with Client(base, api_key=made["api_key"]) as beta:
            assert beta.streams() == []
            assert admin.revoke_key(made["key_id"])["already_revoked"] is False
            with pytest.raises(ServerAuthError, match="^revoked API key$"):
                beta.streams()
        assert made["key_id"] not in {k["key_id"] for k in admin.keys()}
        assert made["key_id"] in {k["key_id"] for k in admin.keys(include_revoked=True)}


def test_client_ingests_over_http(index, corpus_dir):
    import time

    from xmore_db.service.settings import ServiceSettings

    allowed = ServiceSettings(ingest_roots=(corpus_dir.resolve(),))
    with running(create_app(index, settings=allowed)) as base, Client(base) as server:
        started = server.ingest(corpus_dir, corpus="toy")  # again: every pair is already there
        assert started["corpus"] == "toy" and started["status"] in ("running", "idle")
        deadline = time.monotonic() + 60
        while (state := server.corpus("toy")["ingest"])["status"] == "running":
            assert time.monotonic() < deadline, state
            time.sleep(0.1)
    assert state["status"] == "idle", state
    assert (state["last"]["ingested"], state["last"]["already_present"]) == (0, 60)
