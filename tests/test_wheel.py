"""A built wheel, installed without the checkout, runs `xmore init` on a fresh home.

The migrations live at the top level of the repository and are mapped into the
package at build time (setup.py); this is the test that they really ship.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import TINY_MODELS
from xmore_db.history import head_revision

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(ROOT),
                    "-w", str(out)], check=True, capture_output=True)
    (found,) = out.glob("xmore_db-*.whl")
    return found


def test_wheel_carries_the_migrations_and_the_toy_checkpoints(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    versions = sorted(p.name for p in (ROOT / "migrations" / "versions").glob("*.py"))
    assert {"xmore_db/migrations/env.py", "xmore_db/migrations/script.py.mako"} <= names
    assert {f"xmore_db/migrations/versions/{v}" for v in versions} <= names
    assert any(n.startswith("xmore_db/models/checkpoints/") and n.endswith(".safetensors") for n in names)


def test_installed_wheel_inits_a_fresh_home(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, capture_output=True)
    # The installed copy comes first on the path; the dependencies come from this environment.
    # Run from an empty folder, so nothing of the checkout can be picked up by accident.
    env = {**os.environ, **TINY_MODELS, "PYTHONPATH": str(site), "XMORE_HOME": str(tmp_path / "home")}
    for name in ("XMORE_QDRANT_URL", "XMORE_DATABASE_URL"):
        env.pop(name, None)
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run([sys.executable, "-c", "import xmore_db; print(xmore_db.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True)
    assert where.stdout.strip().startswith(str(site))
    result = subprocess.run([sys.executable, "-m", "xmore_db", "init"], cwd=work, env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    status = subprocess.run([sys.executable, "-m", "xmore_db", "status", "--json"], cwd=work, env=env,
                            capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["database_revision"] == head_revision()
