"""Shared fixtures: a synthetic corpus, tiny models, and both vector backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures_db import *  # noqa: F403  (sqlite_url, postgres_url, history_url, …)
from xmore_db.toy import write_corpus, write_labels, write_queries

# The tiny built-in architectures: coarse and classifier share 32-d, fine is 48-d,
# so a role mix-up shows up as a size mismatch.
TINY_MODELS = {
    "XMORE_COARSE_MODEL": "xmore-tiny",
    "XMORE_FINE_MODEL": "xmore-tiny-wide",
    "XMORE_CLASSIFIER_MODEL": "xmore-tiny",
}


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    write_corpus(folder, 60, seed=0)
    return folder


@pytest.fixture(scope="session")
def query_images(tmp_path_factory) -> list[Path]:
    paths, _ = write_queries(tmp_path_factory.mktemp("queries"), 5, seed=1)
    return paths


@pytest.fixture(scope="session")
def labels_file(tmp_path_factory) -> Path:
    return write_labels(tmp_path_factory.mktemp("labels") / "labels.txt", "shape")


@pytest.fixture(params=["qdrant-edge", "qdrant-server"])
def backend_env(request, tmp_path, monkeypatch) -> dict[str, str]:
    """Environment for one backend: embedded Edge, or the server code path on qdrant-client's local mode."""
    env = dict(TINY_MODELS, XMORE_HOME=str(tmp_path / "home"), XMORE_COARSE_K="16", XMORE_FINE_K="4")
    if request.param == "qdrant-server":
        env["XMORE_QDRANT_URL"] = f"file:{tmp_path / 'qdrant-local'}"
    for name in ("XMORE_QDRANT_URL", "XMORE_DATABASE_URL", "XMORE_QDRANT_API_KEY", "XMORE_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def tiny_env(tmp_path, monkeypatch):
    """The embedded backend over a fresh home with the tiny models, K = 8 and k = 4 (no server, no PostgreSQL)."""
    for name in ("XMORE_QDRANT_URL", "XMORE_DATABASE_URL", "XMORE_QDRANT_API_KEY", "XMORE_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in dict(TINY_MODELS, XMORE_HOME=str(tmp_path / "home"), XMORE_COARSE_K="8",
                            XMORE_FINE_K="4").items():
        monkeypatch.setenv(name, value)
    return monkeypatch
