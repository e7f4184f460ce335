"""The search page in headless Chromium: first load (bytes, requests) and the time to show 40 hits.

    .venv/bin/python benchmarks/web.py                      # 100k pairs
    .venv/bin/python benchmarks/web.py --pairs 20000 --queries 3 --json out.json

A synthetic store of `--pairs` pairs (random unit vectors in the tiny models' sizes,
32-d images and 48-d texts: the page's cost does not depend on the vectors' width)
whose payload paths point, in turn, at `--images` real images (PNG, `--image-size`
px a side) of a toy folder corpus, so every hit has a thumbnail to make. The service (`create_app`, uvicorn on a
loopback port, with an API key) and Debian's chromium (Selenium, through chromedriver;
nothing is downloaded) run on this machine.

- first load: `/` with an empty browser cache, until the page has checked its key
  (GET /v1/status) and listed the corpora; requests and bytes from the browser's
  performance entries (transferSize: what crossed the wire, headers included;
  decodedBodySize: the bodies), the page's own files apart from its API calls.
- 40 hits: a text typed and submitted on the loaded page, until the 40 cards are
  drawn and each thumbnail is decoded, by the page's own clock (its "images in N ms",
  from the submit). Three cases per query: `cold` (no thumbnail made yet: the server
  reads, shrinks and caches 40 images), `server cache` (the same query in a reloaded
  page, the browser's cache off) and `browser cache` (again, reloaded, the browser's
  HTTP cache on: no thumbnail comes from the server). The search call alone is the
  page's other figure ("40 hits in N ms"). Medians over `--queries` distinct texts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CORPUS = "bench"
WRITE_BATCH = 4096
HITS = 40
QUERIES = ["a red striped star", "a blue circle on a beige backdrop", "pencil drawing of a square",
           "green polka dot cross", "an orange triangle sticker", "purple checkerboard shape", "a yellow plain circle"]


def build_home(work: Path, pairs: int, images: int, image_size: int) -> None:
    """A home with the tiny models' store: `pairs` synthetic pairs over `images` real image files."""
    import xmore_db
    from xmore_db.store import PairBatch
    from xmore_db.toy import write_corpus

    folder = work / "images"
    write_corpus(folder, images, seed=0, size=image_size)
    rng = np.random.default_rng(0)
    with xmore_db.open(home=work / "home", **tiny_models()) as index:
        index.init()
        ws = index._workspace
        ws.ledger.register(CORPUS, "folder", str(folder.resolve()), ["rows-00000000-00000001"])
        store = ws.store()
        started = time.perf_counter()
        for start in range(0, pairs, WRITE_BATCH):
            keys = [str(i) for i in range(start, min(start + WRITE_BATCH, pairs))]
            store.upsert_pairs(PairBatch(
                corpus=CORPUS, keys=keys, captions=[f"synthetic caption {k}" for k in keys],
                image_vectors=unit_rows(rng, len(keys), 32), text_vectors=unit_rows(rng, len(keys), 48),
                extras=[{"path": f"images/{int(k) % images:06d}.png"} for k in keys]))
        store.optimize()
        print(f"{pairs:,} pairs written in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def tiny_models() -> dict:
    return dict(coarse_model="xmore-tiny", fine_model="xmore-tiny-wide", classifier_model="xmore-tiny",
                coarse_k=16, fine_k=4)


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@contextmanager
def serving(app, *, tcp_socket: bool):
    """uvicorn on a loopback port, on a socket bound as `xmore serve` binds it, or (`tcp_socket`) made with
    IPPROTO_TCP: asyncio sets TCP_NODELAY only on connections of such a socket, and without it each answer
    on a kept-alive connection can wait ~40 ms for the client's delayed ACK (Nagle)."""
    import uvicorn

    from xmore_db.cli.serve import _listen

    if tcp_socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
    else:
        sock = _listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SystemExit("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--window-size=1280,900", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def wait_for(driver, script: str, timeout: float = 120.0):
    """Polls a JS expression until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        time.sleep(0.05)  # coarse on purpose: polling competes with the page for the CPUs; times come from the page
    raise SystemExit(f"timed out waiting for: {script}")


def first_load(driver, url: str) -> dict:
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    driver.get(f"{url}/")
    wait_for(driver, "document.getElementById('who').textContent !== ''")
    wait_for(driver, "document.getElementById('corpus-names').children.length > 0")
    entries = driver.execute_script("""
        const nav = performance.getEntriesByType('navigation')[0];
        const all = [nav, ...performance.getEntriesByType('resource')];
        return {ready_ms: nav.domContentLoadedEventEnd, load_ms: nav.loadEventEnd,
                entries: all.map(e => ({name: e.name, kind: e.initiatorType || 'navigation',
                                         transfer: e.transferSize, body: e.decodedBodySize}))};""")
    page = [e for e in entries["entries"] if "/v1/" not in e["name"]]
    api = [e for e in entries["entries"] if "/v1/" in e["name"]]
    return {"page_requests": len(page), "page_transfer_bytes": sum(e["transfer"] for e in page),
            "page_body_bytes": sum(e["body"] for e in page), "api_requests": len(api),
            "api_transfer_bytes": sum(e["transfer"] for e in api), "dom_content_loaded_ms": entries["ready_ms"],
            "load_event_ms": entries["load_ms"],
            "files": {e["name"].split("/")[-1].split("?")[0] or "/": e["body"] for e in page}}


def reload(driver, url: str) -> None:
    driver.get(f"{url}/")  # not a refresh: that would run the query in the address bar at once
    wait_for(driver, "document.getElementById('who').textContent !== ''")


def show_hits(driver, text: str) -> dict:
    """Types `text`, submits, and times until 40 cards have settled thumbnails (page clock, ms)."""
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys(text)
    driver.execute_script("performance.clearResourceTimings()")
    driver.find_element(By.CSS_SELECTOR, "#search-form button[type=submit]").click()
    wait_for(driver, "document.getElementById('timing').textContent.includes('images in')")
    shown = driver.execute_script("""
        const cards = [...document.querySelectorAll('#hits .hit')];
        return {cards: cards.length,
                 loaded: cards.filter(c => c.dataset.thumb === 'loaded').length,
                 from_server: performance.getEntriesByType('resource')
                   .filter(e => e.name.includes('/image') && e.transferSize > 0).length,
                 timing: document.getElementById('timing').textContent}""")
    if shown["cards"] != HITS or shown["loaded"] != HITS:
        raise SystemExit(f"expected {HITS} hits with thumbnails, got {shown}")
    # The page's own clock, from its submit to the last thumbnail decoded: "40 hits in A ms · images in B ms".
    numbers = re.findall(r"(\d+) ms", shown["timing"])
    shown["search_ms"], shown["ms"] = float(numbers[0]), float(numbers[1])
    return shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--images", type=int, default=400, help="distinct image files the pairs point at")
    parser.add_argument("--image-size", type=int, default=384, help="pixels a side of the image files (PNG)")
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the store here (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--tcp-socket", action="store_true",
                        help="listen on a socket made with IPPROTO_TCP instead of the one `xmore serve` makes")
    args = parser.parse_args()
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        raise SystemExit(f"needs {' and '.join(missing)}: apt-get install chromium chromium-driver")
    for name in ("XMORE_QDRANT_URL", "XMORE_DATABASE_URL", "XMORE_QDRANT_API_KEY", "XMORE_HOME"):
        os.environ.pop(name, None)

    import xmore_db
    from xmore_db.history.keys import KeyStore
    from xmore_db.service import create_app
    from xmore_db.service.auth import Keys

    work = args.workdir or Path(tempfile.mkdtemp(prefix="xmore-web-bench-"))
    if not (work / "home").exists():
        build_home(work, args.pairs, args.images, args.image_size)
    shutil.rmtree(work / "home" / "cache" / "thumbnails", ignore_errors=True)  # `cold` means no thumbnail made yet
    report: dict = {"pairs": args.pairs, "images": args.images, "image_size": args.image_size,
                    "machine": platform.platform(), "cpus": os.cpu_count(), "tcp_socket": args.tcp_socket}
    with xmore_db.open(home=work / "home", **tiny_models()) as index:
        key = KeyStore(index._workspace.database).create("bench", "query").api_key
        app = create_app(index, keys=Keys(KeyStore(index._workspace.database)), preload=True)
        driver = chromium()
        try:
            with serving(app, tcp_socket=args.tcp_socket) as url:
                driver.get(f"{url}/healthz")
                driver.execute_script("sessionStorage.setItem('xmore-api-key', arguments[0])", key)
                report["first_load"] = first_load(driver, url)
                runs = {"cold": [], "server cache": [], "browser cache": []}
                for text in QUERIES[:args.queries]:
                    runs["cold"].append(show_hits(driver, text))
                    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
                    reload(driver, url)  # the page's blobs go; the browser's cache is bypassed
                    runs["server cache"].append(show_hits(driver, text))
                    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": False})
                    reload(driver, url)  # the blobs go, the browser's HTTP cache serves
                    runs["browser cache"].append(show_hits(driver, text))
        finally:
            driver.quit()
    report["show_40_hits"] = {case: {"median_ms": statistics.median(r["ms"] for r in rs),
                                     "search_call_median_ms": statistics.median(r["search_ms"] for r in rs),
                                     "thumbnails_from_server": [r["from_server"] for r in rs],
                                     "runs_ms": [round(r["ms"], 1) for r in rs]} for case, rs in runs.items()}
    load = report["first_load"]
    print(f"store: {args.pairs:,} pairs over {args.images} image files of {args.image_size} px; "
          f"{report['cpus']} CPUs")
    print(f"first load of /: {load['page_requests']} requests, {load['page_transfer_bytes']:,} bytes transferred "
          f"({load['page_body_bytes']:,} decoded) + {load['api_requests']} API calls "
          f"({load['api_transfer_bytes']:,} bytes); DOMContentLoaded {load['dom_content_loaded_ms']:.0f} ms")
    for name, size in load["files"].items():
        print(f"  {name}: {size:,} bytes")
    for case, r in report["show_40_hits"].items():
        print(f"40 hits shown, {case}: median {r['median_ms']:.0f} ms (search call {r['search_call_median_ms']:.0f} "
              f"ms); runs {r['runs_ms']}, thumbnails from the server {r['thumbnails_from_server']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
