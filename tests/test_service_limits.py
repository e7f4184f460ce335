"""`xmore serve`'s limits and methods over HTTP: 429 on a full queue, the request timeout and what it records,
micro-batching held to one batch, CODER and RECO with the files the service was started with, image search.

The micro-batcher's `on_batch` hook holds the worker (and the index) while a test fills the queue, so the
queued, started and refused cases are set up deterministically rather than by racing the clock.
"""

from __future__ import annotations

import io
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from PIL import Image  # noqa: E402

import xmore_db  # noqa: E402
from tests.cli import fails, ok  # noqa: E402
from tests.conftest import TINY_MODELS  # noqa: E402
from tests.service_server import client, running  # noqa: E402
from xmore_db.service import create_app  # noqa: E402
from xmore_db.service.method_files import ServedFiles  # noqa: E402
from xmore_db.service.settings import ServiceSettings  # noqa: E402
from xmore_db.toy.textbank import write_toy_banks  # noqa: E402

LABELS = "circle, square, triangle, star, cross"


@pytest.fixture(scope="module")
def home(tmp_path_factory, corpus_dir):
    """A tiny home made with the CLI, a RECO fusion layer trained on it, and the toy text banks; the XMORE_*
    variables stay set for the module."""
    root = tmp_path_factory.mktemp("limits")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("XMORE_QDRANT_URL", "XMORE_DATABASE_URL", "XMORE_QDRANT_API_KEY", "XMORE_DEBUG"):
            mp.delenv(name, raising=False)
        for name, value in dict(TINY_MODELS, XMORE_HOME=str(root / "home"), XMORE_COARSE_K="16",
                                XMORE_FINE_K="4").items():
            mp.setenv(name, value)
        ok("init")
        ok("ingest", corpus_dir, "--corpus", "toy")
        ok("reco", "train", "--corpus", "toy", "--k", "3", "--steps", "2", "--batch", "16", "--out",
           root / "fusion.safetensors")
        yield {"fusion": root / "fusion.safetensors", "banks": write_toy_banks(root / "banks"), "root": root}


@pytest.fixture(scope="module")
def index(home):
    with xmore_db.open() as index:
        yield index


class Gate:
    """An `on_batch` hook that holds the worker, with the index, on its first batch until `release()`."""

    def __init__(self):
        self.entered, self.released = threading.Event(), threading.Event()
        self.batches: list[int] = []

    def __call__(self, jobs):
        self.batches.append(len(jobs))
        if len(self.batches) == 1:
            self.entered.set()
            assert self.released.wait(300), "the test never released the batcher"

    def release(self):
        self.released.set()


def uploads(paths):
    return [("images", (p.name, p.read_bytes(), "image/png")) for p in paths]


def classify(url, paths, stream, labels=LABELS, **form):
    with client(url) as http:
        return http.post("/v1/classify", files=uploads(paths), data={"labels": labels, "stream": stream, **form})


def one_line_error(response, status):
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == {"error"} and payload["error"] and "\n" not in payload["error"], payload
    return payload["error"]


def metric(url, name):
    """One sample's value from /metrics, e.g. metric(url, 'xmore_queue_images'); None when absent."""
    with client(url) as http:
        text = http.get("/metrics").text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, flags=re.MULTILINE)
    return None if found is None else float(found.group(1))


def wait_for(condition, what, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def events(url, stream):
    with client(url) as http:
        return http.get(f"/v1/streams/{stream}")


def test_a_full_queue_gets_429_with_retry_after_and_records_nothing(index, query_images):
    gate = Gate()
    limits = ServiceSettings(max_images=2, max_queue=2, max_wait_ms=0)
    with running(create_app(index, settings=limits, on_batch=gate)) as url, ThreadPoolExecutor(2) as pool:
        held = pool.submit(classify, url, query_images[:1], "q-held")
        assert gate.entered.wait(30)
        queued = pool.submit(classify, url, query_images[1:3], "q-queued")
        wait_for(lambda: metric(url, "xmore_queue_images") == 2, "two images in the queue")

        refused = classify(url, query_images[3:4], "q-refused")
        assert one_line_error(refused, 429) == ("the classify queue is full (2 images waiting, limit 2); "
                                                "nothing was recorded: retry later")
        assert int(refused.headers["retry-after"]) >= 1
        assert metric(url, 'xmore_rejected_requests_total{reason="queue_full"}') == 1

        gate.release()
        assert [r["seq"] for r in held.result().json()] == [1]
        assert [r["seq"] for r in queued.result().json()] == [1, 2]
        one_line_error(events(url, "q-refused"), 404)
        assert metric(url, "xmore_queue_images") == 0


def test_a_request_timed_out_in_the_queue_records_nothing_and_a_started_one_finishes(index, query_images):
    gate = Gate()
    limits = ServiceSettings(request_timeout=0.5, max_wait_ms=0)
    with running(create_app(index, settings=limits, on_batch=gate)) as url, ThreadPoolExecutor(1) as pool:
        started = pool.submit(classify, url, query_images[:2], "t-started")
        assert gate.entered.wait(30)

        late = classify(url, query_images[2:3], "t-late")  # waits 0.5 s behind the held batch
        assert one_line_error(late, 503) == ("timed out after 0.5 s waiting in the queue; nothing was recorded: "
                                             "retry later")
        assert int(late.headers["retry-after"]) >= 1
        with client(url) as http:  # the held batch holds the index too: search and retrieve time out alike
            busy = http.post("/v1/search", json={"text": "a red star"})
        assert one_line_error(busy, 503) == ("timed out after 0.5 s waiting for the index; nothing was done: "
                                             "retry later")
        assert metric(url, 'xmore_rejected_requests_total{reason="timeout"}') == 2

        time.sleep(0.6)  # the started request is now past its timeout too
        gate.release()
        response = started.result()
        assert response.status_code == 200, response.text  # started: scored, recorded and answered in full
        assert [r["seq"] for r in response.json()] == [1, 2]
        assert events(url, "t-started").json()["n_events"] == 2
        one_line_error(events(url, "t-late"), 404)  # withdrawn before it started: never recorded
        assert gate.batches == [1], "the withdrawn request must not reach the worker"


def test_64_concurrent_requests_are_batched_together_and_lose_nothing(index, query_images):
    n = 64
    gate = Gate()
    limits = ServiceSettings(max_batch=n, max_wait_ms=0)
    paths = [query_images[i % len(query_images)] for i in range(n)]
    with running(create_app(index, settings=limits, on_batch=gate)) as url, ThreadPoolExecutor(n) as pool:
        first = pool.submit(classify, url, paths[:1], "busy")
        assert gate.entered.wait(30)
        rest = [pool.submit(classify, url, [p], "busy") for p in paths[1:]]
        wait_for(lambda: metric(url, "xmore_queue_depth") == n - 1, f"{n - 1} requests in the queue")
        gate.release()
        responses = [first.result()] + [f.result() for f in rest]
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
        results = [r.json()[0] for r in responses]
        shown = events(url, "busy").json()
        batch_count = metric(url, "xmore_batch_requests_count")
        batch_sum = metric(url, "xmore_batch_requests_sum")

    assert gate.batches == [1, n - 1]  # the 63 that waited went through as one batch
    assert (batch_count, batch_sum) == (2, n)
    assert sorted(r["seq"] for r in results) == list(range(1, n + 1))
    c_image = np.array([r["c_image"] for r in results])
    assert shown["n_events"] == n and shown["image"]["count"] == n
    assert shown["image"]["min"] == c_image.min() and shown["image"]["max"] == c_image.max()
    assert np.isclose(shown["image"]["sum"], c_image.sum(), rtol=1e-12)


def test_coder_and_reco_run_with_the_files_the_service_was_started_with(index, home, query_images):
    files = ServedFiles.check(index._workspace, textbanks=[home["banks"]["shape"], home["banks"]["colour"]],
                              fusion=home["fusion"])
    with running(create_app(index, files=files)) as url:
        with client(url) as http:
            served = set(http.get("/v1/status").json()["methods"])
        assert {"xmore", "coder", "coder-star", "coder+captions", "reco", "xmore+reco"} <= served
        for method in ("coder", "coder-star", "coder+captions", "reco", "xmore+reco"):
            response = classify(url, query_images[:2], f"m-{method}", method=method)
            assert response.status_code == 200, (method, response.text)
            rows = response.json()
            assert [r["method"] for r in rows] == [method] * 2 and [r["seq"] for r in rows] == [1, 2]
        # The bank is the one holding exactly the labels, in whatever order they come.
        reordered = "cross, star, triangle, square, circle"
        assert classify(url, query_images[:1], "m-order", labels=reordered, method="coder").status_code == 200
        message = one_line_error(classify(url, query_images[:1], "m-few", labels="circle, square",
                                          method="coder"), 422)
        assert message == ("method coder needs a text bank holding exactly the 2 labels given, and none of this "
                           "service's 2 does: start `xmore serve` with --textbank FILE for these classes")
        one_line_error(events(url, "m-few"), 404)

    # The same images through the Python API give the same distributions (one-modality methods: no stream
    # weighting, so the stream's history does not enter).
    direct = {m: index.classify(query_images[:2], labels=[s.strip() for s in LABELS.split(",")],
                                stream=f"direct-{m}", method=m, textbank=home["banks"]["shape"],
                                fusion=home["fusion"]) for m in ("coder", "reco")}
    with running(create_app(index, files=files)) as url:
        for method, rows in direct.items():
            served = classify(url, query_images[:2], f"again-{method}", method=method).json()
            assert np.allclose([r["probabilities"] for r in served], [r.probabilities for r in rows])


def test_methods_needing_files_the_service_lacks_get_422_naming_the_option(index, query_images):
    with running(create_app(index)) as url:
        coder = one_line_error(classify(url, query_images[:1], "lacking", method="coder"), 422)
        reco = one_line_error(classify(url, query_images[:1], "lacking", method="xmore+reco"), 422)
        assert coder == ("method coder needs a CODER text bank, and this service was started without one: "
                         "start `xmore serve` with --textbank FILE")
        assert reco == ("method xmore+reco needs a RECO fusion layer, and this service was started without one: "
                        "start `xmore serve` with --fusion FILE")
        assert classify(url, query_images[:1], "lacking", method="reco-mean").status_code == 200  # needs no file
        one_line_error(classify(url, query_images[:1], "other", method="nope"), 400)


def test_image_search_over_http_is_xmore_search_image(index, query_images):
    query = query_images[0]
    expected = [h.to_dict() for h in index.search(image=query, n=3, offset=1)]
    with running(create_app(index)) as url, client(url) as http:
        image = [("image", (query.name, query.read_bytes(), "image/png"))]
        hits = http.post("/v1/search/image", files=image, data={"n": "3", "offset": "1"})
        assert hits.status_code == 200, hits.text
        assert hits.json() == expected and [h["rank"] for h in expected] == [2, 3, 4]
        deduped = http.post("/v1/search/image", files=image, data={"n": "3", "dedup": "0.5", "corpora": "toy"})
        assert [h["pair_id"] for h in deduped.json()] == [
            h.pair_id for h in index.search(image=query, n=3, dedup=0.5, corpora=["toy"])]
        assert http.post("/v1/search/image", files=image, data={"corpora": "elsewhere"}).json() == []
        assert one_line_error(http.post("/v1/search/image", files=image, data={"n": "0"}), 422) == (
            "n: Input should be greater than or equal to 1")
        one_line_error(http.post("/v1/search/image", data={"n": "3"}), 422)  # no image
        broken = [("image", ("broken.png", b"\x89PNG not really", "image/png"))]
        assert "broken.png" in one_line_error(http.post("/v1/search/image", files=broken), 400)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, format="PNG")
    with running(create_app(index, settings=ServiceSettings(max_pixels=32 * 32))) as url, client(url) as http:
        huge = [("image", ("big.png", buffer.getvalue(), "image/png"))]
        assert "pixels" in one_line_error(http.post("/v1/search/image", files=huge), 413)


# ---- the command line: limits and files checked before serving ------------------------------------------------

def test_serve_refuses_bad_limits_and_files_with_one_line(tiny_env, tmp_path, home):
    assert fails("serve", "--open", "--max-queue", "8") == (
        "Error: the queue limit (8 images) is below the images per request (64), so the largest request could "
        "never be queued: raise --max-queue or lower --max-images")
    assert "Invalid value for '--request-timeout'" in fails("serve", "--request-timeout", "0", code=2)
    assert fails("serve", "--open", "--port", "0", "--textbank", tmp_path / "none.json") == (
        f"Error: text bank {tmp_path / 'none.json'} does not exist")
    shape = home["banks"]["shape"]
    copy = tmp_path / "copy.json"
    copy.write_bytes(shape.read_bytes())
    assert fails("serve", "--open", "--port", "0", "--textbank", shape, "--textbank", copy) == (
        f"Error: text banks {shape} and {copy} hold the same classes, so a request could not tell which to use: "
        "give one of them")
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    assert "cannot be read" in fails("serve", "--open", "--port", "0", "--fusion", tmp_path / "bad.safetensors")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert fails("serve", "--open", "--port", port) == (
            f"Error: cannot listen on 127.0.0.1:{port}: Address already in use")
