"""`xmore serve` as a user starts it: its own process on a port the system picks, driven over HTTP, stopped
with SIGTERM; it exits 0 and leaves the embedded store to the next command."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import httpx  # noqa: E402

from tests.cli import ok, ok_json  # noqa: E402

STARTUP = 120.0  # seconds; loading torch on a busy two-core machine is most of it


def start_serve(*args: str) -> tuple[subprocess.Popen, str, queue.Queue]:
    """`python -m xmore_db serve ARGS…` with this test's XMORE_* variables; the URL it says it serves on."""
    process = subprocess.Popen([sys.executable, "-m", "xmore_db", "serve", *args], env=dict(os.environ),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()
    deadline = time.monotonic() + STARTUP
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            process.kill()
            pytest.fail("xmore serve did not say where it serves")
        found = re.match(r"xmore serve on (http://127\.0\.0\.1:(\d+)) \(open, no keys\)$", line.strip())
        if found:
            assert int(found.group(2)) > 0
            return process, found.group(1), lines


def wait_ready(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        assert process.poll() is None, f"xmore serve exited with {process.returncode}"
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("xmore serve was not ready in time")


def test_serve_in_its_own_process_classifies_and_stops_cleanly_on_sigterm(tiny_env, corpus_dir, query_images):
    ok("init")
    ok("ingest", corpus_dir, "--corpus", "toy")
    process, url, stderr = start_serve("--open", "--port", "0")
    try:
        wait_ready(url, process)
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        files = [("images", (p.name, p.read_bytes(), "image/png")) for p in query_images[:3]]
        response = httpx.post(f"{url}/v1/classify", files=files, timeout=60,
                              data={"labels": "circle\nsquare\ntriangle\nstar\ncross", "stream": "served"})
        assert response.status_code == 200, response.text
        assert [r["seq"] for r in response.json()] == [1, 2, 3]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    said = []
    while not stderr.empty():
        said.append(stderr.get())
    assert not any("Traceback" in line or "Error" in line for line in said), said

    # The store was released: the next command opens it, and sees what the service recorded.
    status = ok_json("status")
    assert status["collections"] == {"images": 60, "texts": 60}
    assert ok_json("streams", "show", "served")["n_events"] == 3
