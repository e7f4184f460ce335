"""The web pages of `xmore serve` in a real headless Chromium, and the thumbnail route they show hits with.

A real uvicorn serves the app on a loopback port over a tiny home holding three
corpora: an image folder, webdataset shards, and an embeddings folder whose
pairs keep only a url. Browser tests drive Debian's chromium through its
chromedriver with Selenium (nothing downloads a browser); each saves a
screenshot, under $XMORE_SCREENSHOTS_DIR or a temporary folder; `make screenshots`
sets it to docs/screenshots/, the README's (a plain test run leaves git clean). Without
/usr/bin/chromium or /usr/bin/chromedriver they skip, saying which is missing.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("jinja2")

from PIL import Image  # noqa: E402

import xmore_db  # noqa: E402
from tests.service_server import client, running  # noqa: E402
from xmore_db.evaluation.scoring import CASES  # noqa: E402
from xmore_db.history.keys import KeyStore  # noqa: E402
from xmore_db.service import create_app  # noqa: E402
from xmore_db.service.auth import Keys  # noqa: E402
from xmore_db.service.settings import ServiceSettings  # noqa: E402
from xmore_db.store import PairBatch, pair_id  # noqa: E402
from xmore_db.thumbnails import make_thumbnail  # noqa: E402
from xmore_db.toy.formats import write_embeddings_folder, write_shards  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = Path(os.environ.get("XMORE_SCREENSHOTS_DIR") or Path(tempfile.gettempdir()) / "xmore-screenshots")
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
LABELS = "circle, square, triangle, star, cross"
WAIT_S = 30  # explicit waits end as soon as their condition holds; this only bounds a broken page


@pytest.fixture(scope="module")
def served(tmp_path_factory, corpus_dir):
    """The service over folder, shard and url-only corpora, with keys for two teams."""
    work = tmp_path_factory.mktemp("web")
    folder = shutil.copytree(corpus_dir, work / "corpus")  # a copy: tests here move files about
    write_shards(work / "shards", [3, 2])
    write_embeddings_folder(work / "urls", [3], coarse_dim=32)
    Image.new("RGB", (8, 8), (255, 0, 0)).save(work / "outside.png")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("XMORE_QDRANT_URL", "XMORE_DATABASE_URL", "XMORE_QDRANT_API_KEY", "XMORE_HOME", "XMORE_DEBUG"):
            mp.delenv(name, raising=False)
        with xmore_db.open(home=work / "home", coarse_model="xmore-tiny", fine_model="xmore-tiny-wide",
                           classifier_model="xmore-tiny", coarse_k=16, fine_k=4) as index:
            index.init()
            index.ingest(folder, corpus="toy")
            index.ingest(work / "shards", corpus="shards")
            index.ingest(work / "urls", corpus="urls")
            # A pair whose recorded path leads out of its corpus' folder, to an image that is really there.
            rng = np.random.default_rng(0)
            index._workspace.store().upsert_pairs(PairBatch(
                corpus="toy", keys=["escapes"], captions=["a pair pointing outside"],
                image_vectors=rng.standard_normal((1, 32)), text_vectors=rng.standard_normal((1, 48)),
                extras=[{"path": "../outside.png"}]))
            made = KeyStore(index._workspace.database)
            keys = {name: made.create(team, role).api_key
                    for name, team, role in (("a", "alpha", "query"), ("a_admin", "alpha", "admin"),
                                             ("b", "beta", "query"))}
            limits = ServiceSettings(max_batch=16, max_wait_ms=5)
            app = create_app(index, keys=Keys(KeyStore(index._workspace.database)), settings=limits)
            with running(app) as url:
                yield SimpleNamespace(url=url, home=work / "home", folder=folder, shards=work / "shards", **keys)


# ---- the thumbnail route, over plain HTTP ---------------------------------------------------------------------


def one_line_error(response, status):
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == {"error"} and "\n" not in payload["error"] and "Traceback" not in response.text
    return payload["error"]


def thumbnail_of(response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    return Image.open(io.BytesIO(response.content))


def test_thumbnails_of_folder_files_and_shard_members(served):
    with client(served.url, served.a) as http:
        small = http.get("/v1/pairs/toy:images/000001.png/image", params={"size": 48})
        image = thumbnail_of(small)
        assert max(image.size) == 48
        original = (served.folder / "images" / "000001.png").read_bytes()
        assert small.content == make_thumbnail(original, 48)
        cached = served.home / "cache" / "thumbnails" / "48"
        assert [p.read_bytes() for p in cached.rglob("*.jpg")] == [small.content]
        assert http.get("/v1/pairs/toy:images/000001.png/image", params={"size": 48}).content == small.content

        member = pair_id("shards", "000000001")  # the second sample of the first shard, read at its offset
        with tarfile.open(served.shards / "00000.tar") as tar:
            stored = tar.extractfile("000000001.jpg").read()
        shard_thumbnail = http.get(f"/v1/pairs/{member}/image")
        assert thumbnail_of(shard_thumbnail).size == (48, 48)  # the 48 px sample, never enlarged
        assert shard_thumbnail.content == make_thumbnail(stored, 256)


def test_a_pair_without_an_image_here_gets_404_saying_why(served):
    with client(served.url, served.a) as http:
        only_url = one_line_error(http.get("/v1/pairs/urls:0000/0/image"), 404)
        assert only_url.endswith("keeps no image on this server, only its url https://example.com/0.jpg")
        outside = one_line_error(http.get("/v1/pairs/toy:escapes/image"), 404)
        assert "is outside its corpus' folder" in outside and "not served" in outside
        assert one_line_error(http.get("/v1/pairs/toy:no-such-key/image"), 404) == \
            "no pair toy:no-such-key in the vector store"
        one_line_error(http.get("/v1/pairs/not-a-pair/image"), 400)
        one_line_error(http.get("/v1/pairs/toy:images/000001.png/image", params={"size": 4096}), 422)
        moved = served.folder / "images" / "000002.png"
        moved.rename(moved.with_suffix(".moved"))
        try:
            gone = one_line_error(http.get("/v1/pairs/toy:images/000002.png/image"), 404)
        finally:
            moved.with_suffix(".moved").rename(moved)
        assert gone.endswith("000002.png is not on this server (moved or deleted?)")
    with client(served.url) as anonymous:
        one_line_error(anonymous.get("/v1/pairs/toy:images/000001.png/image"), 401)


def test_pages_and_assets_are_served_without_a_key(served):
    with client(served.url) as http:
        for path in ("/", "/classify", "/streams", "/streams/some/stream", "/corpora"):
            page = http.get(path)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert "script-src 'self'" in page.headers["content-security-policy"]
        assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', http.get("/").text)
        assert {a.split("?")[0] for a in assets} == {"/static/xmore.css", "/static/xmore.js", "/static/search.js"}
        for asset in assets:
            response = http.get(asset)
            assert response.status_code == 200 and "immutable" in response.headers["cache-control"]
        one_line_error(http.get("/static/nothing.js"), 404)
        assert "/v1/pairs/{pair}/image" in http.get("/openapi.json").json()["paths"]


def test_the_wheel_carries_the_templates_and_static_files(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(ROOT),
                    "-w", str(tmp_path)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("xmore_db-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    web = ROOT / "xmore_db" / "web"
    files = [p for folder in ("templates", "static") for p in (web / folder).iterdir() if p.is_file()]
    assert files and {f"xmore_db/web/{p.relative_to(web).as_posix()}" for p in files} <= names


# ---- the pages, in a real browser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.skip(f"no headless browser here: {' and '.join(missing)} missing "
                    "(Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[test]'")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)  # with the driver's path given too, Selenium looks nothing up
    for argument in ("--headless=new", "--window-size=1280,900", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", "--disable-extensions", "--lang=en-US"):
        options.add_argument(argument)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium's sandbox refuses to run as root (CI containers)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def wait(driver, condition, message: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.05).until(condition, message)


def find(driver, css: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css)


def find_all(driver, css: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, css)


def use_key(driver, url: str, key: str) -> None:
    """This tab's key, as the key form leaves it (sessionStorage belongs to the origin)."""
    driver.get(f"{url}/healthz")
    driver.execute_script("sessionStorage.setItem('xmore-api-key', arguments[0])", key)


def screenshot(driver, name: str, *, width: int = 1280) -> None:
    """The whole page (up to 2400 px tall) at `width` CSS pixels as docs/screenshots/NAME.png, from the top."""
    def viewport(height: int) -> None:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})

    viewport(900)
    driver.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    viewport(min(driver.execute_script("return document.documentElement.scrollHeight"), 2400))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_search_page_asks_for_a_key_then_shows_hits_with_captions(browser, served):
    browser.get(f"{served.url}/healthz")
    browser.execute_script("sessionStorage.clear()")
    browser.get(f"{served.url}/")
    wait(browser, lambda d: find(d, "#key-form").is_displayed(), "the page did not ask for a key")
    assert find(browser, "#key-reason").text == "This service needs an API key."
    find(browser, "#api-key").send_keys(served.a)
    find(browser, "#key-form button[type=submit]").click()
    wait(browser, lambda d: find(d, "#who").text == "team alpha · query key", "the key was not taken")

    find(browser, "#q").send_keys("a red striped star")
    find(browser, "#corpora").send_keys("toy, shards")
    find(browser, "#search-form button[type=submit]").click()
    wait(browser, lambda d: "images in" in find(d, "#timing").text, "the hits' images did not settle")
    cards = find_all(browser, "#hits .hit")
    shown = [(find_in(c, ".caption").text, find_in(c, ".key").text) for c in cards]
    with client(served.url, served.a) as http:
        hits = http.post("/v1/search", json={"text": "a red striped star", "n": 40,
                                             "corpora": ["toy", "shards"]}).json()
    assert shown == [(h["caption"], h["key"]) for h in hits] and len(shown) == 40
    assert {c.get_attribute("data-thumb") for c in cards if find_in(c, ".key").text != "escapes"} == {"loaded"}
    assert re.fullmatch(r"40 hits in \d+ ms · images in \d+ ms", find(browser, "#timing").text)
    assert find(browser, "#page-line").text == "hits 1–40"
    screenshot(browser, "search")
    screenshot(browser, "search-390", width=390)

    walked_to = hits[5]["caption"]  # a hit's caption is a search of its own
    find_in(cards[5], ".caption").click()
    wait(browser, lambda d: find(d, "#query-line").text == f"text: “{walked_to}”", "the caption was not searched")
    assert find(browser, "#q").get_attribute("value") == walked_to
    assert browser.current_url.startswith(f"{served.url}/?q=")


def find_in(element, css: str):
    from selenium.webdriver.common.by import By

    return element.find_element(By.CSS_SELECTOR, css)


def test_classify_page_shows_the_prediction_and_the_retrieved_captions(browser, served, query_images):
    from selenium.webdriver.support.ui import Select

    use_key(browser, served.url, served.a)
    browser.get(f"{served.url}/classify")
    wait(browser, lambda d: find(d, "#who").text.startswith("team alpha"), "the page did not start")
    find(browser, "#images").send_keys("\n".join(str(p) for p in query_images[:2]))
    find(browser, "#labels").send_keys(LABELS)
    stream = find(browser, "#stream")
    stream.clear()
    stream.send_keys("web-classify")
    find(browser, "#classify-button").click()
    wait(browser, lambda d: len(find_all(d, "#results .result")) == 2, "no results shown")

    labels = [label.strip() for label in LABELS.split(",")]
    first = find_all(browser, "#results .result")[0]
    assert find_in(first, "h2").text == query_images[0].name
    prediction = find_in(first, ".prediction strong").text
    assert prediction in labels
    assert [find_in(b, "h3").text for b in first.find_elements("css selector", ".bars")] == \
        ["Image alone (p_I)", "Captions (p_T)", "Ensemble"]
    assert len(first.find_elements("css selector", ".bars li")) == 15  # the top 5 of each
    captions = [c.text for c in first.find_elements("css selector", ".captions .caption-text")]
    assert len(captions) == 4 and all(captions)  # k = 4

    for result, path in zip(find_all(browser, "#results .result"), query_images[:2], strict=True):
        truth = path.stem.rsplit("-", 1)[1]  # query-000-square.png: a square
        Select(find_in(result, "select.truth")).select_by_visible_text(truth)
        image_top, text_top, _ = [find_in(b, "li .bar-label").text for b in result.find_elements("css selector",
                                                                                                   ".bars")]
        case = CASES[[(True, True), (True, False), (False, True), (False, False)].index(
            (image_top == truth, text_top == truth))]
        right = "right" if find_in(result, ".prediction strong").text == truth else "wrong"
        assert find_in(result, ".case").text == f"Table-8 case: {case} · the final label is {right}"
    with client(served.url, served.a) as http:
        stored = http.get("/v1/streams/web-classify", params={"last": 2}).json()
    assert [e["prediction"] for e in stored["events"]][0] == prediction
    screenshot(browser, "classify")


def test_stream_page_shows_the_new_event_and_refuses_a_reset_to_a_query_key(browser, served, query_images):
    def classify(paths):
        with client(served.url, served.a) as http:
            files = [("images", (p.name, p.read_bytes(), "image/png")) for p in paths]
            response = http.post("/v1/classify", files=files, data={"labels": LABELS, "stream": "web-stream"})
        assert response.status_code == 200, response.text

    classify(query_images[:3])
    use_key(browser, served.url, served.a)
    browser.get(f"{served.url}/streams")
    wait(browser, lambda d: find_all(d, "#streams a"), "no streams listed")
    [link] = [a for a in find_all(browser, "#streams a") if a.text == "web-stream"]
    link.click()
    wait(browser, lambda d: len(find_all(d, "#events tbody tr")) == 3, "the events were not shown")

    classify(query_images[3:4])  # a new event, then the page again
    browser.refresh()
    wait(browser, lambda d: len(find_all(d, "#events tbody tr")) == 4, "the new event was not shown")
    newest = find(browser, "#events tbody tr")
    assert newest.get_attribute("data-seq") == "4"
    assert query_images[3].name in newest.text
    points = find(browser, "#plot polyline.series-image").get_attribute("points").split()
    assert len(points) == 4  # c_I of each event
    assert len(find_all(browser, "#plot polyline.bound-image")) == 2  # its running min and max
    screenshot(browser, "stream")

    find(browser, "#reset").click()
    wait(browser, lambda d: find(d, "#reset-yes").is_displayed(), "no confirmation asked")
    assert find(browser, "#reset-question").text.startswith("Delete all 4 events of stream web-stream?")
    find(browser, "#reset-yes").click()
    wait(browser, lambda d: find(d, "#error").is_displayed(), "the API's refusal was not shown")
    assert find(browser, "#error").text == ("this request needs an admin key; the key sent is a query key "
                                            "(HTTP 403)")
    with client(served.url, served.a) as http:
        assert http.get("/v1/streams/web-stream").json()["n_events"] == 4  # nothing was reset

    use_key(browser, served.url, served.a_admin)  # the same request with an admin key
    browser.get(f"{served.url}/streams/web-stream")
    wait(browser, lambda d: len(find_all(d, "#events tbody tr")) == 4, "the events were not shown")
    find(browser, "#reset").click()
    find(browser, "#reset-yes").click()
    wait(browser, lambda d: find(d, "#reset-done").text, "the reset was not reported")
    assert find(browser, "#reset-done").text == "Stream web-stream reset: 4 events removed."
    assert find_all(browser, "#events tbody tr") == [] and not find(browser, "#error").is_displayed()
    with client(served.url, served.a) as http:
        one_line_error(http.get("/v1/streams/web-stream"), 404)


def test_another_teams_stream_is_refused(browser, served, query_images):
    with client(served.url, served.a) as http:
        files = [("images", (query_images[0].name, query_images[0].read_bytes(), "image/png"))]
        assert http.post("/v1/classify", files=files,
                         data={"labels": LABELS, "stream": "alpha-only"}).status_code == 200
    use_key(browser, served.url, served.b)
    browser.get(f"{served.url}/streams/alpha-only")
    wait(browser, lambda d: find(d, "#error").is_displayed(), "no error shown")
    message = find(browser, "#error").text
    assert "no stream named 'alpha-only' for your team" in message and message.endswith("(HTTP 404)")
    assert "\n" not in message and "alpha/" not in message  # the caller's name, not the stored one
    assert not find(browser, "#stream-view").is_displayed()
    screenshot(browser, "stream-refused")
    browser.get(f"{served.url}/streams")
    wait(browser, lambda d: find(d, "#streams-note").text, "the streams were not listed")
    assert "alpha-only" not in find(browser, "#streams").text


def test_corpora_page_shows_units_rows_and_the_store(browser, served):
    use_key(browser, served.url, served.a)
    browser.get(f"{served.url}/corpora")
    wait(browser, lambda d: len(find_all(d, "#corpora .corpus")) == 3, "the corpora were not shown")
    toy = find(browser, ".corpus[data-corpus=toy]")
    assert "1 of 1 units done" in toy.text and "61 images, 61 texts" in toy.text
    store = find(browser, "#store").text
    assert "xmore-tiny (32-d)" in store and "xmore-tiny-wide (48-d)" in store
    screenshot(browser, "corpora")
