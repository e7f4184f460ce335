"""`xmore serve` over HTTP: a real uvicorn server on a loopback port, a tiny home, httpx as the client."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from PIL import Image  # noqa: E402

import xmore_db  # noqa: E402
from tests.service_server import client, running  # noqa: E402
from xmore_db.history.keys import KeyStore  # noqa: E402
from xmore_db.service import create_app  # noqa: E402
from xmore_db.service.auth import Keys  # noqa: E402
from xmore_db.service.settings import ServiceSettings  # noqa: E402

LABELS = "circle, square, triangle, star, cross"


@pytest.fixture(scope="module")
def index(tmp_path_factory, corpus_dir):
    with pytest.MonkeyPatch.context() as mp:
        for name in ("XMORE_QDRANT_URL", "XMORE_DATABASE_URL", "XMORE_QDRANT_API_KEY", "XMORE_HOME", "XMORE_DEBUG"):
            mp.delenv(name, raising=False)
        with xmore_db.open(home=tmp_path_factory.mktemp("serve") / "home", coarse_model="xmore-tiny",
                           fine_model="xmore-tiny-wide", classifier_model="xmore-tiny",
                           coarse_k=16, fine_k=4) as index:
            index.init()
            index.ingest(corpus_dir, corpus="toy")
            yield index


@dataclass(frozen=True)
class TeamKeys:
    """Keys made through the key store, as `xmore keys create` makes them; `ids` maps each to its id."""

    a: str  # team alpha, role query
    a_ingest: str
    a_admin: str
    b: str  # team beta, role query
    b_admin: str
    ids: dict[str, int]


@pytest.fixture(scope="module")
def keys(index) -> TeamKeys:
    store = KeyStore(index._workspace.database)
    made = {name: store.create(team, role) for name, team, role in [
        ("a", "alpha", "query"), ("a_ingest", "alpha", "ingest"), ("a_admin", "alpha", "admin"),
        ("b", "beta", "query"), ("b_admin", "beta", "admin")]}
    return TeamKeys(**{name: c.api_key for name, c in made.items()},
                    ids={c.api_key: c.record.key_id for c in made.values()})


@pytest.fixture(scope="module")
def url(index, keys):
    limits = ServiceSettings(max_upload_bytes=2 * 1024 * 1024, max_images=40, max_pixels=512 * 512,
                             max_batch=16, max_wait_ms=20)
    store = KeyStore(index._workspace.database)
    with running(create_app(index, keys=Keys(store), settings=limits)) as base:
        yield base


def uploads(paths):
    return [("images", (p.name, p.read_bytes(), "image/png")) for p in paths]


def classify(url, key, paths, stream, **form):
    with client(url, key) as http:
        return http.post("/v1/classify", files=uploads(paths), data={"labels": LABELS, "stream": stream, **form})


def one_line_error(response, status):
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == {"error"} and payload["error"] and "\n" not in payload["error"], payload
    assert "Traceback" not in response.text
    return payload["error"]


def test_classify_returns_the_cli_json_and_writes_the_stream(url, query_images, keys):
    response = classify(url, keys.a, query_images[:3], "flowers")
    assert response.status_code == 200, response.text
    results = response.json()
    assert [r["seq"] for r in results] == [1, 2, 3]
    assert [r["query"] for r in results] == [p.name for p in query_images[:3]]
    first = results[0]
    assert first["stream"] == "flowers"  # the caller's name, not the stored `alpha/flowers`
    for key in ("prediction", "method", "normalize", "labels", "probabilities", "p_image", "p_text",
                "c_image", "c_text", "w_image", "w_text", "no_captions", "captions"):
        assert key in first
    assert first["labels"] == ["circle", "square", "triangle", "star", "cross"]
    with client(url, keys.a) as http:
        shown = http.get("/v1/streams/flowers", params={"last": 2}).json()
    assert shown["stream"] == "flowers" and shown["n_events"] == 3
    assert [e["seq"] for e in shown["events"]] == [2, 3] and {e["stream"] for e in shown["events"]} == {"flowers"}
    assert {e["key_id"] for e in shown["events"]} == {keys.ids[keys.a]}  # each event names the key that wrote it


def test_teams_see_and_touch_only_their_own_streams(url, query_images, keys):
    assert classify(url, keys.a, query_images[:1], "shared-name").status_code == 200
    assert classify(url, keys.b, query_images[:2], "shared-name").status_code == 200
    with client(url, keys.a) as a, client(url, keys.b) as b, client(url, keys.a_admin) as admin:
        a_streams = {s["stream"]: s["n_events"] for s in a.get("/v1/streams").json()}
        b_streams = {s["stream"]: s["n_events"] for s in b.get("/v1/streams").json()}
        assert a_streams["shared-name"] == 1 and b_streams == {"shared-name": 2}
        assert "flowers" not in b_streams
        one_line_error(b.get("/v1/streams/flowers"), 404)
        assert one_line_error(a.post("/v1/streams/shared-name/reset"), 403) == (
            "this request needs an admin key; the key sent is a query key")
        assert admin.post("/v1/streams/shared-name/reset").json() == {"stream": "shared-name", "events_removed": 1}
        one_line_error(a.get("/v1/streams/shared-name"), 404)
        assert b.get("/v1/streams/shared-name").json()["n_events"] == 2  # team B's is untouched
        one_line_error(admin.post("/v1/streams/never-written/reset"), 404)
    with client(url, keys.b_admin) as b_admin:  # an admin too resets only its own team's streams
        one_line_error(b_admin.post("/v1/streams/flowers/reset"), 404)
        one_line_error(b_admin.get("/v1/streams/flowers"), 404)
        assert "flowers" not in {s["stream"] for s in b_admin.get("/v1/streams").json()}
    with client(url, keys.a) as a:
        assert a.get("/v1/streams/flowers").json()["n_events"] >= 3


def test_keys_are_required(url, index):
    store = KeyStore(index._workspace.database)
    revoked = store.create("alpha", "admin").api_key
    store.revoke(store.find(revoked).key_id)
    cases = {None: "a valid API key is needed: send `Authorization: Bearer KEY`",
             "not-a-key-at-all-000": "unknown API key", revoked: "revoked API key"}
    for key, message in cases.items():
        with client(url, key) as http:
            response = http.get("/v1/streams")
            assert one_line_error(response, 401) == message
            assert response.headers["www-authenticate"] == "Bearer"
            assert one_line_error(http.post("/v1/search", json={"text": "a red star"}), 401) == message
            assert http.get("/healthz").json() == {"status": "ok"}  # probes need no key


def test_each_role_is_allowed_and_refused_where_it_should_be(url, query_images, keys):
    for key in (keys.a, keys.a_ingest, keys.a_admin):  # every role may query
        assert classify(url, key, query_images[:1], "roles").status_code == 200
        with client(url, key) as http:
            assert http.post("/v1/search", json={"text": "a star", "n": 1}).status_code == 200
            assert http.get("/v1/status").status_code == 200 and http.get("/v1/streams/roles").status_code == 200
    with client(url, keys.a) as query, client(url, keys.a_ingest) as ingest:
        for http, role in ((query, "query"), (ingest, "ingest")):
            refusal = f"this request needs an admin key; the key sent is {'an' if role == 'ingest' else 'a'} {role} key"
            assert one_line_error(http.post("/v1/streams/roles/reset"), 403) == refusal
            assert one_line_error(http.get("/v1/keys"), 403) == refusal
            assert one_line_error(http.post("/v1/keys", json={"team": "alpha", "role": "admin"}), 403) == refusal
            assert one_line_error(http.post("/v1/keys", json={"bad": "body"}), 403) == refusal  # 403 before 422
            assert one_line_error(http.delete(f"/v1/keys/{keys.ids[keys.a]}"), 403) == refusal
    with client(url, keys.a) as http:
        shown = http.get("/v1/streams/roles", params={"last": 3}).json()
    assert [e["key_id"] for e in shown["events"]] == [keys.ids[k] for k in (keys.a, keys.a_ingest, keys.a_admin)]
    with client(url, keys.a_admin) as admin:
        assert admin.post("/v1/streams/roles/reset").json()["events_removed"] == 3


def test_admin_manages_keys_over_http(url, keys, query_images):
    with client(url, keys.a_admin) as admin:
        response = admin.post("/v1/keys", json={"team": "gamma", "role": "query", "note": "made over HTTP"})
        assert response.status_code == 201, response.text
        created = response.json()
        new_key, new_id = created["api_key"], created["key_id"]
        assert new_key.startswith("xmk_") and created["prefix"] == new_key[:8] and created["team"] == "gamma"
        listed = admin.get("/v1/keys").json()
        assert {"key_id", "team", "role", "prefix", "note", "created_at", "revoked_at"} == set(listed[0])
        assert new_id in {k["key_id"] for k in listed} and new_key not in admin.get("/v1/keys").text
        assert classify(url, new_key, query_images[:1], "gamma-stream").status_code == 200  # usable at once

        revoked = admin.delete(f"/v1/keys/{new_id}").json()
        assert revoked["revoked_at"] and revoked["already_revoked"] is False
        assert admin.delete(f"/v1/keys/{new_id}").json()["already_revoked"] is True
        assert one_line_error(classify(url, new_key, query_images[:1], "gamma-stream"), 401) == "revoked API key"
        assert new_id not in {k["key_id"] for k in admin.get("/v1/keys").json()}
        assert new_id in {k["key_id"] for k in admin.get("/v1/keys", params={"all": "true"}).json()}

        assert "no API key with id 99999" in one_line_error(admin.delete("/v1/keys/99999"), 404)
        assert "role 'owner' is not one of" in one_line_error(
            admin.post("/v1/keys", json={"team": "gamma", "role": "owner"}), 400)
        assert "team 'a/b' must be" in one_line_error(admin.post("/v1/keys", json={"team": "a/b", "role": "query"}),
                                                      400)
        one_line_error(admin.post("/v1/keys", json={"role": "query"}), 422)
        one_line_error(admin.delete("/v1/keys/x"), 422)


def test_search_and_retrieve(url, query_images, keys):
    with client(url, keys.a) as http:
        hits = http.post("/v1/search", json={"text": "a red striped star", "n": 3}).json()
        assert [h["rank"] for h in hits] == [1, 2, 3]
        assert {"score", "corpus", "key", "pair_id", "caption", "url", "path", "metadata"} <= set(hits[0])
        one_line_error(http.post("/v1/search", json={"text": "x", "n": 0}), 422)
        one_line_error(http.post("/v1/search", content=b"not json", headers={"content-type": "application/json"}),
                       422)
        retrieved = http.post("/v1/retrieve", files=uploads(query_images[:2]), data={"coarse": "true"}).json()
    assert [r["query"] for r in retrieved] == [p.name for p in query_images[:2]]
    assert len(retrieved[0]["captions"]) == 4 and len(retrieved[0]["coarse"]) == 16
    fields = {"pair_id", "score", "caption", "corpus", "key", "url", "path", "metadata"}
    assert fields <= set(retrieved[0]["captions"][0])


def test_bad_requests_get_one_line_and_write_nothing(url, query_images, keys):
    good = [("images", (query_images[0].name, query_images[0].read_bytes(), "image/png"))]
    bad = [("images", ("broken.png", b"\x89PNG not really", "image/png"))]
    buffer = io.BytesIO()
    Image.new("RGB", (1024, 1024)).save(buffer, format="PNG")  # over the test's 512 x 512 pixel limit
    huge = [("images", ("huge.png", buffer.getvalue(), "image/png"))]
    with client(url, keys.a) as http:
        message = one_line_error(http.post("/v1/classify", files=good + bad, data={"labels": LABELS,
                                                                                  "stream": "careful"}), 400)
        assert "broken.png" in message and "not an image format" in message
        assert "pixels" in one_line_error(http.post("/v1/classify", files=huge,
                                                    data={"labels": LABELS, "stream": "careful"}), 413)
        one_line_error(http.post("/v1/classify", files=good, data={"labels": "only-one", "stream": "careful"}), 400)
        one_line_error(http.post("/v1/classify", files=good, data={"labels": LABELS, "stream": " padded"}), 400)
        one_line_error(http.post("/v1/classify", files=good, data={"labels": LABELS, "stream": "careful",
                                                                  "method": "nope"}), 400)
        one_line_error(http.post("/v1/classify", data={"labels": LABELS, "stream": "careful"}), 422)
        big = [("images", ("big.bin", b"\0" * (3 * 1024 * 1024), "image/png"))]
        one_line_error(http.post("/v1/classify", files=big, data={"labels": LABELS, "stream": "careful"}), 413)
        too_many = good * 41
        one_line_error(http.post("/v1/classify", files=too_many, data={"labels": LABELS, "stream": "careful"}), 413)
        one_line_error(http.get("/v1/streams/careful"), 404)  # nothing was written
        one_line_error(http.get("/v1/no-such-route"), 404)


def test_another_method_on_a_stream_is_refused(url, query_images, keys):
    assert classify(url, keys.a, query_images[:1], "one-method").status_code == 200
    message = one_line_error(classify(url, keys.a, query_images[:1], "one-method", method="zeroshot"), 409)
    assert "alpha/" not in message
    with client(url, keys.a) as http:
        assert http.get("/v1/streams/one-method").json()["n_events"] == 1


def test_concurrent_classify_requests_lose_nothing(url, query_images, keys):
    n = 24
    paths = [query_images[i % len(query_images)] for i in range(n)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda p: classify(url, keys.b, [p], "busy"), paths))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    seqs = sorted(r.json()[0]["seq"] for r in responses)
    assert seqs == list(range(1, n + 1))
    with client(url, keys.b) as http:
        shown = http.get("/v1/streams/busy", params={"last": n}).json()
        metrics = http.get("/metrics").text
    assert shown["n_events"] == n and shown["image"]["count"] == n
    assert [e["seq"] for e in shown["events"]] == list(range(1, n + 1))
    assert "xmore_batch_images_count" in metrics and "xmore_queue_depth" in metrics


def test_probes_status_metrics_and_openapi(url, keys):
    with client(url, keys.a) as http:
        assert http.get("/readyz").json() == {"status": "ready"}
        status = http.get("/v1/status").json()
        assert status["team"] == "alpha" and status["role"] == "query" and status["admin"] is False
        assert status["keys_required"] is True
        assert status["collections"]["images"] == 60 and status["database_revision"]
        assert status["storage"]["profile"] == "exact"
        assert "xmore" in status["methods"] and "coder" not in status["methods"]  # started without a text bank
        metrics = http.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert 'xmore_requests_total{method="GET",route="/v1/status",status="200"}' in metrics.text
        assert "xmore_request_seconds_bucket" in metrics.text
        paths = http.get("/openapi.json").json()["paths"]
    assert {"/v1/classify", "/v1/retrieve", "/v1/search", "/v1/streams", "/v1/status", "/healthz",
            "/readyz", "/metrics"} <= set(paths)


def test_without_keys_one_open_team_uses_the_stored_names(index, query_images):
    with running(create_app(index)) as base, client(base) as http:
        response = http.post("/v1/classify", files=uploads(query_images[:1]),
                             data={"labels": "circle\nsquare\ntriangle\nstar\ncross", "stream": "open"})
        assert response.status_code == 200, response.text
        names = {s["stream"] for s in http.get("/v1/streams").json()}
        assert {"open", "alpha/flowers", "beta/busy"} <= names  # the open team sees the stored names
        assert [e["key_id"] for e in http.get("/v1/streams/open").json()["events"]] == [None]
        assert http.get("/v1/status").json()["role"] == "admin"
        assert "runs with --open, without keys" in one_line_error(http.get("/v1/keys"), 404)
        assert http.post("/v1/streams/open/reset").json()["events_removed"] == 1
