"""`xmore serve`'s corpora, ingest over HTTP and label sets: a real uvicorn server on a loopback port."""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import xmore_db
from tests.cli import fails, ok_json
from tests.service_server import client, running
from xmore_db.history.keys import KeyStore
from xmore_db.history.owners import CorpusOwners
from xmore_db.service import create_app
from xmore_db.service.auth import Keys
from xmore_db.service.settings import ServiceSettings
from xmore_db.toy import write_corpus

LABELS = ["circle", "square", "triangle", "star", "cross"]
TINY = {"coarse_model": "xmore-tiny", "fine_model": "xmore-tiny-wide", "classifier_model": "xmore-tiny",
        "coarse_k": 16, "fine_k": 4}


class Gate:
    """The HTTP ingests' writer hook: once armed, the writer stops after its first write until released."""

    def __init__(self):
        self.armed = False
        self.reached = threading.Event()
        self.released = threading.Event()

    def __call__(self, writes: int) -> None:
        if self.armed and writes == 1:
            self.reached.set()
            self.released.wait(60)


@pytest.fixture(scope="module")
def index(tmp_path_factory, corpus_dir):
    with pytest.MonkeyPatch.context() as mp:
        for name in ("XMORE_QDRANT_URL", "XMORE_DATABASE_URL", "XMORE_QDRANT_API_KEY", "XMORE_HOME", "XMORE_DEBUG"):
            mp.delenv(name, raising=False)
        with xmore_db.open(home=tmp_path_factory.mktemp("serve-corpora") / "home", **TINY) as index:
            index.init()
            index.ingest(corpus_dir, corpus="toy")  # the Python API: no team, the open team's
            yield index


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ingest-root")
    for name, n, seed in (("shapes", 30, 3), ("circles", 8, 4), ("squares", 8, 5), ("beta-own", 8, 6)):
        write_corpus(folder / name, n, seed=seed)
    (folder / "empty").mkdir()
    return folder


@pytest.fixture(scope="module")
def keys(index):
    store = KeyStore(index._workspace.database)
    made = {f"{team}_{role}": store.create(team, role).api_key
            for team, role in (("alpha", "query"), ("alpha", "ingest"), ("beta", "query"), ("beta", "ingest"),
                               ("ops", "admin"))}
    return SimpleNamespace(**made)


@pytest.fixture(scope="module")
def gate():
    return Gate()


@pytest.fixture(scope="module")
def url(index, root, gate):
    settings = ServiceSettings(max_wait_ms=5, ingest_roots=(root.resolve(),))
    app = create_app(index, keys=Keys(KeyStore(index._workspace.database)), settings=settings, ingest_hook=gate)
    with running(app) as base:
        yield base


def one_line_error(response, status):
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == {"error"} and payload["error"] and "\n" not in payload["error"], payload
    return payload["error"]


def uploads(paths):
    return [("images", (p.name, p.read_bytes(), "image/png")) for p in paths]


def wait_until_done(http, name, timeout=120.0) -> dict:
    """The corpus once its ingest is no longer running (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        shown = http.get(f"/v1/corpora/{name}").json()
        if shown.get("ingest", {}).get("status") != "running":
            return shown
        assert time.monotonic() < deadline, f"the ingest of {name} did not finish: {shown}"
        time.sleep(0.05)


def ingest_and_wait(url, key, name, source, **options) -> dict:
    with client(url, key) as http:
        response = http.post(f"/v1/corpora/{name}/ingest", json={"source": source, **options})
        assert response.status_code == 202, response.text
        return wait_until_done(http, name)


# ---- ingest over HTTP ------------------------------------------------------------------------------------------

def test_ingest_over_http_is_off_without_an_ingest_root(index, keys, root):
    app = create_app(index, keys=Keys(KeyStore(index._workspace.database)))
    with running(app) as base, client(base, keys.ops_admin) as http:
        response = http.post("/v1/corpora/web/ingest", json={"source": str(root / "shapes")})
        assert one_line_error(response, 403) == "ingest over HTTP is off: start xmore serve with --ingest-root DIR"
        one_line_error(http.get("/v1/corpora/web"), 404)


def test_only_ingest_keys_and_paths_under_the_root_are_taken(url, keys, root, tmp_path, index):
    outside = tmp_path / "elsewhere"
    write_corpus(outside, 4, seed=9)
    link = root / "link-out"
    os.symlink(outside, link)
    try:
        with client(url, keys.alpha_query) as query:
            assert one_line_error(query.post("/v1/corpora/web/ingest", json={"source": "shapes"}), 403) == (
                "this request needs an ingest key; the key sent is a query key")
        with client(url, keys.alpha_ingest) as http:
            for source in (str(outside), f"{root}/../{outside.parent.name}/elsewhere", "link-out", "/etc"):
                message = one_line_error(http.post("/v1/corpora/web/ingest", json={"source": source}), 403)
                assert message.startswith(f"source {source} is outside the directories this service ingests from")
            message = one_line_error(http.post("/v1/corpora/web/ingest", json={"source": "link-out"}), 403)
            assert f"(it resolves to {outside.resolve()})" in message
            message = one_line_error(http.post("/v1/corpora/web/ingest",
                                               json={"source": "shapes", "captions": str(outside / "captions.csv")}),
                                     403)
            assert message.startswith(f"captions {outside / 'captions.csv'} is outside")
            assert one_line_error(http.post("/v1/corpora/web/ingest", json={"source": "no-such-folder"}), 400) == (
                "source no-such-folder does not exist on the server")
            assert "device" in one_line_error(http.post("/v1/corpora/web/ingest",
                                                        json={"source": "shapes", "device": "cuda"}), 422)
            one_line_error(http.get("/v1/corpora/web"), 404)  # nothing registered
    finally:
        link.unlink()
    assert CorpusOwners(index._workspace.database).owner("web") is None


def test_a_source_that_fails_its_checks_is_answered_at_once_and_claims_nothing(url, keys, index, root):
    with client(url, keys.alpha_ingest) as http:
        message = one_line_error(http.post("/v1/corpora/nothing/ingest", json={"source": "empty"}), 400)
        assert message.startswith(f"no captions file in {root.resolve() / 'empty'}: expected captions.csv")
        one_line_error(http.get("/v1/corpora/nothing"), 404)
        assert "nothing" not in {c["corpus"] for c in http.get("/v1/corpora").json()}
    assert CorpusOwners(index._workspace.database).owner("nothing") is None


def test_ingest_runs_in_the_background_while_classify_answers(url, keys, gate, query_images):
    gate.armed = True
    try:
        with client(url, keys.alpha_ingest) as http:
            started = http.post("/v1/corpora/shapes/ingest", json={"source": "shapes", "write_batch": 10})
            assert started.status_code == 202, started.text
            answer = started.json()
            assert (answer["corpus"], answer["team"], answer["status"]) == ("shapes", "alpha", "running")
            assert gate.reached.wait(60), "the ingest wrote nothing"
            # The ingest is held after its first durable write: classification still answers.
            with client(url, keys.alpha_query) as query:
                response = query.post("/v1/classify", files=uploads(query_images[:2]),
                                      data={"labels": ",".join(LABELS), "stream": "during-ingest"}, timeout=20)
            assert response.status_code == 200, response.text
            assert [r["seq"] for r in response.json()] == [1, 2]
            shown = http.get("/v1/corpora/shapes").json()
            assert shown["team"] == "alpha" and shown["ingest"]["status"] == "running"
            assert shown["ingest"]["rows"] >= 10 and shown["ingest"]["rows_expected"] == 30
            message = one_line_error(http.post("/v1/corpora/shapes/ingest", json={"source": "shapes"}), 409)
            assert message.startswith("an ingest of corpus 'shapes' is running")
    finally:
        gate.armed = False
        gate.released.set()
    with client(url, keys.alpha_query) as http:
        done = wait_until_done(http, "shapes")
        assert done["ingest"]["status"] == "idle", done["ingest"]
        assert done["units_by_status"]["done"] == done["units"] and done["rows"] == 30
        assert done["ingest"]["last"]["ingested"] == done["ingested"] == 30 - done["skipped"]
        assert done["points"] == {"images": done["ingested"], "texts": done["ingested"]}
        hits = http.post("/v1/search", json={"text": "a red striped star", "n": 5, "corpora": ["shapes"]}).json()
        assert len(hits) == 5 and {h["corpus"] for h in hits} == {"shapes"}
        listed = {c["corpus"]: c for c in http.get("/v1/corpora").json()}
    assert listed["shapes"]["team"] == "alpha" and listed["toy"]["team"] is None
    assert listed["toy"]["units_by_status"]["done"] >= 1 and listed["toy"]["points"]["images"] == 60


def test_deleting_or_ingesting_another_teams_corpus_needs_admin(url, keys):
    ingest_and_wait(url, keys.alpha_ingest, "circles", "circles")
    ingest_and_wait(url, keys.alpha_ingest, "alpha/squares", "squares")  # a `/` in a name, as the CLI allows
    with client(url, keys.beta_ingest) as beta:
        assert one_line_error(beta.delete("/v1/corpora/circles"), 403) == (
            "corpus 'circles' belongs to team 'alpha': deleting it needs an admin key")
        assert one_line_error(beta.post("/v1/corpora/circles/ingest", json={"source": "beta-own"}), 403) == (
            "corpus 'circles' belongs to team 'alpha': ingesting into it needs an admin key")
        message = one_line_error(beta.delete("/v1/corpora/toy"), 403)
        assert message.startswith("corpus 'toy' belongs to the open team")
    with client(url, keys.alpha_query) as query:
        one_line_error(query.delete("/v1/corpora/circles"), 403)
    with client(url, keys.alpha_ingest) as alpha:
        removed = alpha.delete("/v1/corpora/alpha/squares")
        assert removed.status_code == 200, removed.text
        assert removed.json()["points_removed"]["images"] > 0 and removed.json()["units_removed"] == 1
        one_line_error(alpha.get("/v1/corpora/alpha/squares"), 404)
        one_line_error(alpha.delete("/v1/corpora/alpha/squares"), 404)
    again = ingest_and_wait(url, keys.ops_admin, "circles", "circles")  # an admin may; the corpus stays alpha's
    assert again["team"] == "alpha" and again["ingest"]["status"] == "idle"
    with client(url, keys.ops_admin) as admin:
        removed = admin.delete("/v1/corpora/circles")
        assert removed.status_code == 200, removed.text
        one_line_error(admin.get("/v1/corpora/circles"), 404)
    # Deleted, the name is free again: team beta's ingest now makes it beta's.
    done = ingest_and_wait(url, keys.beta_ingest, "circles", "beta-own")
    assert done["team"] == "beta" and done["ingest"]["status"] == "idle"


# ---- label sets ----------------------------------------------------------------------------------------------

def test_label_sets_belong_to_a_team_and_name_a_classify_requests_labels(url, keys, query_images):
    with client(url, keys.alpha_query) as query:
        assert one_line_error(query.put("/v1/labelsets/shapes", json={"labels": LABELS}), 403) == (
            "this request needs an ingest key; the key sent is a query key")
    with client(url, keys.alpha_ingest) as alpha:
        created = alpha.put("/v1/labelsets/shapes", json={"labels": LABELS[:3]})
        assert created.status_code == 201, created.text
        replaced = alpha.put("/v1/labelsets/shapes", json={"labels": LABELS})
        assert replaced.status_code == 200 and replaced.json()["labels"] == LABELS
        assert replaced.json()["created_at"] == created.json()["created_at"]
        assert [s["name"] for s in alpha.get("/v1/labelsets").json()] == ["shapes"]
        assert alpha.get("/v1/labelsets/shapes").json()["labels"] == LABELS
        assert one_line_error(alpha.put("/v1/labelsets/one", json={"labels": ["circle"]}), 400) == (
            "classification needs at least 2 labels")
        assert "repeat" in one_line_error(alpha.put("/v1/labelsets/two", json={"labels": ["a", "a"]}), 400)
        assert one_line_error(alpha.put("/v1/labelsets/.hidden", json={"labels": LABELS}), 400).startswith(
            "label set name '.hidden' must be")
        one_line_error(alpha.put("/v1/labelsets/x", json={"labels": "circle,square"}), 422)
        one_line_error(alpha.get("/v1/labelsets/one"), 404)  # nothing was written

    with client(url, keys.alpha_query) as query:
        form = {"label_set": "shapes", "stream": "by-set"}
        response = query.post("/v1/classify", files=uploads(query_images[:1]), data=form)
        assert response.status_code == 200, response.text
        assert response.json()[0]["labels"] == LABELS
        both = query.post("/v1/classify", files=uploads(query_images[:1]),
                          data=form | {"labels": ",".join(LABELS)})
        assert one_line_error(both, 422) == "give either `labels` or `label_set`, not both"
        neither = query.post("/v1/classify", files=uploads(query_images[:1]), data={"stream": "by-set"})
        assert one_line_error(neither, 422).startswith("no labels: give `labels`")
        unknown = query.post("/v1/classify", files=uploads(query_images[:1]), data={"label_set": "nope"})
        assert one_line_error(unknown, 404) == (
            "no label set named 'nope' of team 'alpha' (GET /v1/labelsets lists them)")
        assert query.get("/v1/streams/by-set").json()["n_events"] == 1  # the refused requests wrote nothing

    with client(url, keys.beta_ingest) as beta:
        assert beta.get("/v1/labelsets").json() == []
        one_line_error(beta.get("/v1/labelsets/shapes"), 404)
        one_line_error(beta.delete("/v1/labelsets/shapes"), 404)
        refused = beta.post("/v1/classify", files=uploads(query_images[:1]), data={"label_set": "shapes"})
        assert one_line_error(refused, 404) == (
            "no label set named 'shapes' of team 'beta' (GET /v1/labelsets lists them)")
        assert beta.put("/v1/labelsets/shapes", json={"labels": ["red", "green"]}).status_code == 201

    with client(url, keys.alpha_ingest) as alpha:
        assert alpha.get("/v1/labelsets/shapes").json()["labels"] == LABELS  # beta's is another set
        assert alpha.delete("/v1/labelsets/shapes").json() == {"name": "shapes", "deleted": True}
        one_line_error(alpha.get("/v1/labelsets/shapes"), 404)
    with client(url, keys.beta_query) as beta:
        assert beta.get("/v1/labelsets/shapes").json()["labels"] == ["red", "green"]


# ---- the CLI beside it ---------------------------------------------------------------------------------------

def test_the_cli_shows_the_team_and_its_delete_frees_the_name(tiny_env, tmp_path, corpus_dir):
    ok_json("init")
    ok_json("ingest", corpus_dir, "--corpus", "by-cli")
    write_corpus(tmp_path / "root" / "web", 6, seed=2)
    with xmore_db.open() as index:
        store = KeyStore(index._workspace.database)
        key = store.create("vision", "ingest").api_key
        settings = ServiceSettings(ingest_roots=((tmp_path / "root").resolve(),))
        with running(create_app(index, keys=Keys(store), settings=settings)) as base:
            done = ingest_and_wait(base, key, "web", "web")
            assert done["team"] == "vision" and done["ingest"]["status"] == "idle"
    teams = {c["corpus"]: c["team"] for c in ok_json("corpora", "list")}
    assert teams == {"by-cli": None, "web": "vision"}
    assert ok_json("corpora", "show", "web")["team"] == "vision"
    ok_json("corpora", "delete", "web", "--yes")
    ok_json("ingest", tmp_path / "root" / "web", "--corpus", "web")  # the CLI records no team
    assert {c["corpus"]: c["team"] for c in ok_json("corpora", "list")} == {"by-cli": None, "web": None}


def test_serve_refuses_an_ingest_root_that_is_not_a_directory(tiny_env, tmp_path):
    missing = tmp_path / "missing"
    assert fails("serve", "--open", "--ingest-root", missing) == f"Error: --ingest-root {missing} is not a directory"
    tiny_env.setenv("XMORE_SERVE_INGEST_ROOT", f"{tmp_path}:{missing}")  # the variable: paths separated by ':'
    assert fails("serve", "--open") == f"Error: --ingest-root {missing} is not a directory"


def test_stopping_the_service_stops_an_ingest_between_batches_and_the_next_resumes_it(index, keys, root):
    gate = Gate()
    gate.armed = True
    settings = ServiceSettings(ingest_roots=(root.resolve(),))
    app = create_app(index, keys=Keys(KeyStore(index._workspace.database)), settings=settings, ingest_hook=gate)
    with running(app) as base:
        with client(base, keys.beta_ingest) as http:
            started = http.post("/v1/corpora/stopped/ingest", json={"source": "beta-own", "write_batch": 2,
                                                                       "flush_rows": 2})
            assert started.status_code == 202, started.text
        assert gate.reached.wait(60)
        # The writer lets go only once the service is closing, so the ingest cannot finish first.
        threading.Thread(target=lambda: app.state.ingests.closing.wait(60) and gate.released.set(),
                         daemon=True).start()
    job = app.state.ingests.job("stopped")
    assert not job.running and job.error == "stopped: the service shut down; ingest again to finish the pending units"
    assert [u.status for u in index._workspace.ledger.units("stopped")] == ["pending"]
    done = ingest_and_wait_on(index, keys.beta_ingest, root, "stopped", "beta-own")
    assert done["ingest"]["status"] == "idle" and done["units_by_status"]["done"] == 1
    assert done["team"] == "beta" and done["points"]["images"] == done["ingested"] == 8 - done["skipped"]


def ingest_and_wait_on(index, key, root, name, source) -> dict:
    settings = ServiceSettings(ingest_roots=(root.resolve(),))
    with running(create_app(index, keys=Keys(KeyStore(index._workspace.database)), settings=settings)) as base:
        return ingest_and_wait(base, key, name, source)


# ---- the tables behind them, on both databases ---------------------------------------------------------------

def test_owners_and_label_sets_on_both_databases(history_url):
    from xmore_db.history import ConfidenceHistory
    from xmore_db.history.labelsets import LabelSets

    ConfidenceHistory(history_url).migrate()
    owners = CorpusOwners(history_url)
    first, created = owners.claim("web", "alpha")
    assert (first.team, created) == ("alpha", True)
    again, created = owners.claim("web", "beta")  # the first claim stands
    assert (again.team, created) == ("alpha", False)
    assert owners.claim("open", None)[0].team is None
    assert owners.teams() == {"web": "alpha", "open": None}
    assert owners.forget("web") and not owners.forget("web") and owners.owner("web") is None

    sets = LabelSets(history_url)
    made, created = sets.put(None, "shapes", ["circle", "square"])
    assert created and made.team is None and made.labels == ["circle", "square"]
    replaced, created = sets.put(None, "shapes", [" star ", "cross"])
    assert not created and replaced.labels == ["star", "cross"] and replaced.created_at == made.created_at
    sets.put("alpha", "shapes", ["red", "green"])
    assert [s.labels for s in sets.sets(None)] == [["star", "cross"]]
    assert sets.get("alpha", "shapes").labels == ["red", "green"] and sets.get("beta", "shapes") is None
    assert sets.delete("alpha", "shapes") and not sets.delete("alpha", "shapes")
    assert sets.get(None, "shapes") is not None
    owners.database.close()
    sets.database.close()
