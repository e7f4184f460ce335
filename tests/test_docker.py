"""The shared deployment of docker-compose.yml: a real Qdrant server and PostgreSQL.

Runs the CLI end to end against the services pytest-docker starts from the
repository's compose file. Skipped, with the reason, where no Docker engine runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.cli import fails, ok_json

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parent.parent
# The compose file requires its secrets (.env in a deployment); values already in the environment win.
TEST_SECRETS = {"QDRANT_API_KEY": "docker-test-key", "QDRANT_READ_ONLY_API_KEY": "docker-test-read-only-key",
                "POSTGRES_PASSWORD": "dockertest"}


def _engine_problem() -> str | None:
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker CLI unusable: {exc}"
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["docker info failed"])[-1]
        return f"no Docker engine: {reason}"
    return None


@pytest.fixture(scope="session")
def docker_compose_file():
    return str(ROOT / "docker-compose.yml")


@pytest.fixture(scope="session")
def docker_setup():
    return ["up -d qdrant postgres"]


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def compose_services(request):
    problem = _engine_problem()
    if problem:
        pytest.skip(problem)
    for name, value in TEST_SECRETS.items():
        os.environ.setdefault(name, value)  # read by `docker compose` when pytest-docker starts it
    services = request.getfixturevalue("docker_services")
    ip = request.getfixturevalue("docker_ip")
    qdrant_port = services.port_for("qdrant", 6333)
    pg_port = services.port_for("postgres", 5432)
    services.wait_until_responsive(lambda: _port_open(ip, qdrant_port), timeout=120, pause=1)
    services.wait_until_responsive(lambda: _port_open(ip, pg_port), timeout=120, pause=1)
    return {
        "XMORE_QDRANT_URL": f"http://{ip}:{qdrant_port}",
        "XMORE_QDRANT_API_KEY": os.environ["QDRANT_API_KEY"],
        "XMORE_DATABASE_URL": f"postgresql+psycopg://xmore:{os.environ['POSTGRES_PASSWORD']}@{ip}:{pg_port}/xmore",
    }


def test_cli_against_qdrant_server_and_postgres(compose_services, monkeypatch, tmp_path, corpus_dir,
                                                query_images, labels_file):
    from tests.conftest import TINY_MODELS

    for name, value in {**TINY_MODELS, **compose_services, "XMORE_HOME": str(tmp_path),
                        "XMORE_COARSE_K": "16", "XMORE_FINE_K": "4"}.items():
        monkeypatch.setenv(name, value)
    assert ok_json("init")["vector_backend"] == "qdrant-server"
    assert ok_json("ingest", corpus_dir, "--corpus", "docker-shapes")["collections"]["images"] >= 60
    results = ok_json("classify", *query_images, "--labels", labels_file, "--stream", f"docker-{tmp_path.name}")
    assert [r["seq"] for r in results] == list(range(1, len(query_images) + 1))


def test_read_only_key_queries_and_refuses_writes(compose_services, monkeypatch, tmp_path, corpus_dir,
                                                  query_images, labels_file):
    """The real server's 403 for the read-only key (QDRANT__SERVICE__READ_ONLY_API_KEY) reads as one line."""
    from tests.conftest import TINY_MODELS

    for name, value in {**TINY_MODELS, **compose_services, "XMORE_HOME": str(tmp_path),
                        "XMORE_COARSE_K": "16", "XMORE_FINE_K": "4"}.items():
        monkeypatch.setenv(name, value)
    ok_json("init")
    ok_json("ingest", corpus_dir, "--corpus", "docker-read-only")
    monkeypatch.setenv("XMORE_QDRANT_API_KEY", os.environ["QDRANT_READ_ONLY_API_KEY"])
    assert len(ok_json("classify", *query_images, "--labels", labels_file, "--stream", f"ro-{tmp_path.name}")) == len(
        query_images)
    line = fails("ingest", corpus_dir, "--corpus", "docker-refused")
    assert line.startswith("Error: the Qdrant key is read-only: writing to the collections needs a read-write key")
