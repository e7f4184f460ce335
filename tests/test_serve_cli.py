"""`xmore serve`'s command line: help, --open and its refusal, and keys from the database."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.cli import fails, ok


def test_serve_is_listed_and_has_help():
    assert "serve" in ok("--help").stdout
    text = ok("serve", "--help").stdout
    assert "--open" in text and "--port" in text and "--host" in text
    assert "--keys" not in text  # keys live in the database, hashed (`xmore keys`), never in a plaintext file


def test_missing_extra_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # `import fastapi` raises ImportError
    line = fails("serve")
    assert "pip install 'xmore-db[serve]'" in line


def test_open_refuses_a_public_address():
    assert fails("serve", "--open", "--host", "0.0.0.0") == (
        "Error: refusing to serve 0.0.0.0 with --open: anyone who can reach it could reset streams; drop --open "
        "and give each client a key (`xmore keys create`), or bind 127.0.0.1")


def test_the_old_keys_file_option_is_gone(tmp_path):
    assert "No such option: --keys" in fails("serve", "--keys", tmp_path / "keys.json", code=2)


def _lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line.rstrip("\n"))


def _next_line(lines: queue.Queue, server: subprocess.Popen, deadline: float) -> str:
    while True:  # bounded: the deadline
        assert time.monotonic() < deadline and server.poll() is None, "xmore serve did not start"
        try:
            return lines.get(timeout=0.5)
        except queue.Empty:
            continue


def test_serve_takes_its_keys_from_the_database(tiny_env):
    httpx = pytest.importorskip("httpx")
    ok("init")
    server = subprocess.Popen([sys.executable, "-m", "xmore_db", "serve", "--port", "0"], env=dict(os.environ),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(server.stderr, lines), daemon=True).start()
    try:
        deadline = time.monotonic() + 120
        assert _next_line(lines, server, deadline) == (
            "No API key yet, so every request gets 401: `xmore keys create --team T --role admin` makes the first.")
        started = _next_line(lines, server, deadline)
        assert started.startswith("xmore serve on http://127.0.0.1:") and started.endswith("(API keys required)")
        base = started.split()[3]
        while True:  # bounded: the deadline; the encoders load before the first answer
            assert time.monotonic() < deadline and server.poll() is None, "xmore serve did not answer"
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert httpx.get(f"{base}/v1/streams", timeout=10).status_code == 401

        key = ok("keys", "create", "--team", "vision", "--role", "query").stdout.strip()  # while it runs
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10) as http:
            assert http.get("/v1/streams").json() == []
            assert http.get("/v1/status").json()["team"] == "vision"
            ok("keys", "revoke", "1", "--yes")
            assert http.get("/v1/streams").json() == {"error": "revoked API key"}
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
