"""Resuming after kill -9, concurrent workers on PostgreSQL, and the single SQLite writer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli import fails, ok_json
from tests.conftest import TINY_MODELS
from xmore_db.config import Settings
from xmore_db.history import Database
from xmore_db.history.units import UnitLedger
from xmore_db.store import open_store, pair_id
from xmore_db.toy.formats import write_embeddings_folder

COARSE, FINE = 32, 48
HOOKED_INGEST = Path(__file__).with_name("ingest_with_hooks.py")  # ingest with the writer's test hook


def make_env(tmp_path: Path, name: str, monkeypatch=None, database_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("XMORE_QDRANT_URL", "XMORE_DATABASE_URL", "XMORE_QDRANT_API_KEY", "XMORE_DEBUG")}
    env |= dict(TINY_MODELS, XMORE_HOME=str(tmp_path / name))
    if database_url:
        env["XMORE_DATABASE_URL"] = database_url
    if monkeypatch is not None:
        for key in ("XMORE_QDRANT_URL", "XMORE_DATABASE_URL"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            if key.startswith("XMORE_"):
                monkeypatch.setenv(key, value)
    return env


def hooked_ingest(env: dict[str, str], *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HOOKED_INGEST), *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ledger(env) -> UnitLedger:
    settings = Settings.from_env(env)
    return UnitLedger(Database(settings.effective_database_url))


def statuses(env, corpus="c") -> dict[str, str]:
    return {u.unit: u.status for u in ledger(env).units(corpus)}


@pytest.fixture
def embeddings(tmp_path):
    folder = write_embeddings_folder(tmp_path / "emb", [12, 12, 12, 12], coarse_dim=COARSE, fine_dim=FINE,
                                     text_emb_folder=tmp_path / "fine")
    return folder, tmp_path / "fine"


def expected_ids(sizes) -> list[str]:
    return [pair_id("c", f"{p:04d}/{r}") for p, n in enumerate(sizes) for r in range(n)]


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_kill_9_mid_unit_then_rerun_finishes_without_duplicates_or_orphans(
        database, request, tmp_path, monkeypatch, embeddings):
    folder, fine = embeddings
    url = request.getfixturevalue("postgres_url") if database == "postgres" else None
    env = make_env(tmp_path, "home", monkeypatch, url)
    ok_json("init")
    marker = tmp_path / "hung"
    # 3 writes of 4 rows per unit, each made durable alone: after 5 writes unit 0000 is done and 0001
    # is half written.
    child = hooked_ingest(env, folder, "--corpus", "c", "--text-emb", fine, "--write-batch", "4",
                          "--flush-rows", "4", "--hang-after", "5", "--hang-marker", marker)
    try:
        deadline = time.monotonic() + 120
        while not (marker.exists() and statuses(env).get("0000") == "done"):
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the ingest never reached its hang point"
            time.sleep(0.2)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        child.stdout.close()
        child.stderr.close()
    # The attempt is on record on both databases (on PostgreSQL the dead worker's row lock went with it).
    # The worker does not wait for a unit's writes before claiming the next one, so 0002 may be claimed too;
    # nothing of it was written (the writer hung first).
    at_kill = statuses(env)
    assert at_kill.pop("0002") in ("pending", "running")
    assert at_kill == {"0000": "done", "0001": "running", "0003": "pending"}
    claimed_0002 = statuses(env)["0002"] == "running"

    report = ok_json("ingest", folder, "--corpus", "c", "--text-emb", fine, "--write-batch", "4")
    assert [o["unit"] for o in report["processed"]] == ["0001", "0002", "0003"]
    # Unit 0001's first 8 rows, written by the killed attempt, are its own: already present, not duplicates.
    assert report["already_present"] == 12 + 8 and report["ingested"] == 4 + 24
    assert report["skip_reasons"] == {}
    assert report["collections"] == {"images": 48, "texts": 48}
    assert set(statuses(env).values()) == {"done"}
    units = ledger(env).units("c")
    assert {u.unit: u.attempts for u in units} == {"0000": 1, "0001": 2, "0002": 2 if claimed_0002 else 1,
                                                   "0003": 1}
    assert [u.ingested for u in units] == [12] * 4  # the corpus' ingested equals its points

    store = open_store(Settings.from_env(env))
    try:
        ids = expected_ids([12] * 4)
        # Every expected pair has both points, and there is nothing else: no duplicate, no orphan.
        assert store.existing_ids(ids) == set(ids)
        assert store.counts() == {"images": 48, "texts": 48}
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_two_concurrent_workers_on_postgres_never_process_a_unit_twice(postgres_url, tmp_path):
    sizes = [8] * 8
    folder = write_embeddings_folder(tmp_path / "emb", sizes, coarse_dim=COARSE, fine_dim=FINE,
                                     text_emb_folder=tmp_path / "fine")
    # Two machines in miniature: one PostgreSQL, a vector store each (an embedded store is one process's).
    envs = [make_env(tmp_path, name, database_url=postgres_url) for name in ("a", "b")]
    for env in envs:
        init = subprocess.run([sys.executable, "-m", "xmore_db", "init"], env=env, capture_output=True, text=True)
        assert init.returncode == 0, init.stderr
    children = [hooked_ingest(env, folder, "--corpus", "c", "--text-emb", tmp_path / "fine", "--write-batch", "4",
                              "--write-delay", "0.25", "--barrier", tmp_path / "barrier", "--peers", "2")
                for env in envs]
    reports = []
    for child in children:
        out, err = child.communicate(timeout=180)
        assert child.returncode == 0, err
        reports.append(json.loads(out))
    done = [[o["unit"] for o in r["processed"]] for r in reports]
    assert all(done), f"one worker got no unit: {done}"
    assert set(done[0]).isdisjoint(done[1])
    assert sorted(done[0] + done[1]) == [f"{i:04d}" for i in range(8)]
    units = ledger(envs[0]).units("c")
    assert {u.status for u in units} == {"done"} and {u.attempts for u in units} == {1}
    assert len({u.worker.split(":")[1] for u in units}) == 2  # two processes
    for report, units_done in zip(reports, done, strict=True):
        assert report["collections"] == {"images": 8 * len(units_done), "texts": 8 * len(units_done)}


@pytest.mark.postgres
def test_claims_skip_locked_units_and_a_dropped_claim_is_pending_again(postgres_url):
    database = Database(postgres_url)
    database.migrate()
    units = UnitLedger(database)
    units.register("c", "embeddings", "/data", ["0000", "0001", "0002"])
    first, second = units.claim("c", "w1"), units.claim("c", "w2")
    assert (first.unit, second.unit) == ("0000", "0001")
    first.done(rows=3, ingested=3, skip_reasons={}, seconds=0.1)
    second.release()  # as a killed worker's dropped connection would
    third = units.claim("c", "w3")
    assert third.unit == "0001"
    third.failed("unit 0001: broken", rows=0, ingested=0, skip_reasons={"nan_embedding": 2}, seconds=0.1)
    last = units.claim("c", "w4")
    assert last.unit == "0002" and units.claim("c", "w5") is None
    last.done(rows=1, ingested=1, skip_reasons={}, seconds=0.1)
    records = {u.unit: u for u in units.units("c")}
    assert [records[u].status for u in ("0000", "0001", "0002")] == ["done", "failed", "done"]
    assert records["0001"].skip_reasons == {"nan_embedding": 2} and records["0001"].skipped == 2
    units.prepare_run("c")
    assert units.units("c")[1].status == "pending"
    database.close()


@pytest.mark.postgres
def test_a_dead_workers_unit_stays_running_with_its_attempt_counted_and_is_claimed_again(postgres_url):
    database = Database(postgres_url)
    database.migrate()
    units = UnitLedger(database)
    units.register("c", "embeddings", "/data", ["0", "1"])
    first = units.claim("c", "w1")
    assert (first.unit, first.attempts, first.recorded) == ("0", 1, None)
    assert units.claim("c", "w2").unit == "1"  # "0" is locked by its live worker
    first._conn.close()  # the worker dies: its connection, and the row lock, go
    assert units.units("c")[0].status == "running"
    again = units.claim("c", "w3")
    assert (again.unit, again.attempts) == ("0", 2)  # an earlier attempt may have written its rows
    again.done(rows=1, ingested=1, skip_reasons={}, seconds=0.1, source=(10, 1.5))
    assert (units.units("c")[0].source_size, units.units("c")[0].source_mtime) == (10, 1.5)
    database.close()


def test_second_writer_on_sqlite_is_refused_with_one_line(tmp_path, monkeypatch, embeddings):
    folder, fine = embeddings
    env = make_env(tmp_path, "home", monkeypatch)
    ok_json("init")
    with ledger(env).writer_lock():
        line = fails("ingest", folder, "--corpus", "c", "--text-emb", fine)
    assert "another xmore ingest is writing" in line and "PostgreSQL" in line
    assert ok_json("ingest", folder, "--corpus", "c", "--text-emb", fine)["ingested"] == 48


class _Interrupted(Exception):
    pass


def test_a_rerun_with_nothing_pending_finishes_an_interrupted_index_build(tmp_path, monkeypatch, embeddings):
    folder, fine = embeddings
    env = make_env(tmp_path, "home", monkeypatch)
    ok_json("init")
    assert ok_json("ingest", folder, "--corpus", "c", "--text-emb", fine)["units_pending"] == 0
    store = open_store(Settings.from_env(env))
    store.open(_provenance(env))
    try:
        with pytest.raises(_Interrupted), store.bulk_load():
            raise _Interrupted()  # as a kill before the final build: the build stays owed
        assert store.index_state()["images"].needs_build
    finally:
        store.close()
    report = ok_json("ingest", folder, "--corpus", "c", "--text-emb", fine)
    assert report["processed"] == [] and report["already_present"] == 48
    store = open_store(Settings.from_env(env))
    store.open(_provenance(env))
    try:
        assert not any(state.needs_build for state in store.index_state().values())
    finally:
        store.close()


def _provenance(env):
    from xmore_db.workspace import Workspace

    return Workspace(Settings.from_env(env)).provenance()
