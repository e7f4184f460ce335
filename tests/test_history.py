"""ConfidenceHistory: what a classifier (and a user of `xmore streams`) relies on."""

from __future__ import annotations

import math
import multiprocessing
import random
import re
import threading
from datetime import timedelta, timezone

import pytest

from xmore_db.errors import (
    ConfigError,
    DatabaseNotMigratedError,
    DatabaseUnreachableError,
    HistoryError,
    UnknownStreamError,
)
from xmore_db.history import ConfidenceHistory, Database, Decision, Event, StreamStats, create_history_engine
from xmore_db.history.units import UnitLedger


def _fixed(stats: StreamStats) -> Decision:
    return Decision(w_image=0.75, w_text=0.25, prediction="cat")


def _record(history, stream, c_image, c_text=None, *, decide=_fixed, query=None) -> Event:
    return history.record(stream, c_image=c_image, c_text=c_text, normalize="minmax", query=query, decide=decide)


def _assert_stats_match_events(stats: StreamStats, events: list[Event]) -> None:
    images = [e.c_image for e in events]
    texts = [e.c_text for e in events if e.c_text is not None]
    assert stats.n_events == stats.image.count == len(events)
    assert (stats.image.min, stats.image.max) == (min(images), max(images))
    assert stats.image.sum == pytest.approx(math.fsum(images), abs=1e-9)
    assert stats.text.count == len(texts)
    if texts:
        assert (stats.text.min, stats.text.max) == (min(texts), max(texts))
    else:
        assert (stats.text.min, stats.text.max) == (None, None)
    assert stats.text.sum == pytest.approx(math.fsum(texts), abs=1e-9)


def test_record_creates_the_stream_and_numbers_events_from_one(history):
    assert history.streams() == []
    confidences = [(0.5, 0.25), (0.2, None), (0.9, 0.75), (0.4, 0.1), (0.6, None)]
    recorded = [_record(history, "flowers", ci, ct, query=f"img{i}.jpg") for i, (ci, ct) in enumerate(confidences)]
    assert [e.seq for e in recorded] == [1, 2, 3, 4, 5]
    stored = history.events("flowers")
    assert stored == recorded
    assert [(e.c_image, e.c_text) for e in stored] == confidences
    assert stored[0].query == "img0.jpg"
    assert (stored[0].w_image, stored[0].w_text, stored[0].prediction) == (0.75, 0.25, "cat")
    assert stored[0].normalize == "minmax"
    stats = history.stream("flowers")
    assert stats.name == "flowers"
    _assert_stats_match_events(stats, stored)
    assert [s.name for s in history.streams()] == ["flowers"]


def test_streams_are_independent_and_listed_by_name(history):
    _record(history, "b", 0.3)
    _record(history, "a", 0.9, 0.8)
    _record(history, "b", 0.1)
    listed = history.streams()
    assert [(s.name, s.n_events) for s in listed] == [("a", 1), ("b", 2)]
    assert history.stream("b").image.min == 0.1
    assert [e.seq for e in history.events("a")] == [1]


def test_query_without_caption_counts_but_leaves_text_stats_alone(history):
    _record(history, "s", 0.5, None)
    first = history.stream("s")
    assert first.n_events == 1
    assert first.text.count == 0
    assert (first.text.min, first.text.max, first.text.sum) == (None, None, 0.0)

    _record(history, "s", 0.4, 0.6)
    _record(history, "s", 0.3, None)
    stats = history.stream("s")
    assert stats.n_events == stats.image.count == 3
    assert stats.text.count == 1
    assert (stats.text.min, stats.text.max) == (0.6, 0.6)
    assert stats.text.sum == pytest.approx(0.6)
    assert history.events("s")[-1].c_text is None


def test_decide_sees_statistics_that_include_the_current_query(history):
    seen: list[StreamStats] = []

    def decide(stats: StreamStats) -> Decision:
        seen.append(stats)
        return Decision(1.0, 1.0, "x")

    _record(history, "s", 0.4, 0.7, decide=decide)
    first = seen[0]
    assert first.n_events == 1
    assert first.image.min == first.image.max == first.image.sum == 0.4
    assert first.text.min == first.text.max == 0.7

    _record(history, "s", 0.8, None, decide=decide)
    _record(history, "s", 0.1, 0.9, decide=decide)
    assert [s.n_events for s in seen] == [1, 2, 3]
    assert (seen[1].image.min, seen[1].image.max) == (0.4, 0.8)
    assert (seen[1].text.count, seen[1].text.max) == (1, 0.7)
    assert (seen[2].image.min, seen[2].text.max) == (0.1, 0.9)
    assert seen[2].image.sum == pytest.approx(1.3)


def test_a_failing_decide_records_nothing(history):
    _record(history, "s", 0.5, 0.5)

    def broken(stats: StreamStats) -> Decision:
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError, match="model crashed"):
        _record(history, "s", 0.0, 1.0, decide=broken)
    with pytest.raises(RuntimeError):
        _record(history, "new", 0.1, decide=broken)
    stats = history.stream("s")
    assert (stats.n_events, stats.image.min, stats.text.max) == (1, 0.5, 0.5)
    assert [s.name for s in history.streams()] == ["s"]
    assert _record(history, "s", 0.2).seq == 2


def test_events_last_returns_the_most_recent_in_order(history):
    for i in range(6):
        _record(history, "s", i / 10)
    assert [e.seq for e in history.events("s", last=3)] == [4, 5, 6]
    assert [e.seq for e in history.events("s", last=10)] == [1, 2, 3, 4, 5, 6]
    assert history.events("s", last=0) == []


def test_timestamps_are_utc(history):
    event = _record(history, "s", 0.5)
    stored = history.events("s")[0]
    stats = history.stream("s")
    for stamp in (event.created_at, stored.created_at, stats.created_at):
        assert stamp.utcoffset() == timedelta(0)
        assert stamp.tzinfo == timezone.utc
    assert abs(stored.created_at - event.created_at) < timedelta(milliseconds=1)


def test_reset_removes_the_stream_and_a_new_record_starts_at_one(history):
    for c in (0.2, 0.4, 0.6):
        _record(history, "s", c, c)
    _record(history, "other", 0.5)
    assert history.reset("s") == 3
    assert [s.name for s in history.streams()] == ["other"]
    with pytest.raises(UnknownStreamError):
        history.events("s")
    again = _record(history, "s", 0.9, None)
    assert again.seq == 1
    stats = history.stream("s")
    assert (stats.n_events, stats.image.min, stats.image.max) == (1, 0.9, 0.9)
    assert stats.text.count == 0
    assert history.stream("other").n_events == 1


def test_a_second_process_sees_what_was_recorded(history, history_url):
    _record(history, "s", 0.3, 0.2)
    other = ConfidenceHistory(history_url)
    assert other.stream("s").n_events == 1
    assert _record(other, "s", 0.4).seq == 2
    other.close()
    assert history.stream("s").n_events == 2


def test_unknown_stream(history):
    message = "no stream named 'nope' (xmore streams list shows the streams)"
    for call in (
        lambda: history.stream("nope"),
        lambda: history.events("nope"),
        lambda: history.reset("nope"),
    ):
        with pytest.raises(UnknownStreamError) as caught:
            call()
        assert str(caught.value) == message


def test_bad_arguments_are_refused_before_writing(history):
    with pytest.raises(ValueError, match=r"c_image must be a confidence in \[0, 1\]"):
        _record(history, "s", 1.5)
    with pytest.raises(ValueError, match="c_text"):
        _record(history, "s", 0.5, float("nan"))
    with pytest.raises(ConfigError, match="unknown normalisation 'softmax'"):
        history.record("s", c_image=0.5, c_text=None, normalize="softmax", query=None, decide=_fixed)
    assert history.streams() == []


def test_the_history_and_the_unit_ledger_share_one_database(history_url):
    database = Database(history_url)
    with pytest.raises(DatabaseNotMigratedError):
        UnitLedger(database).corpora()  # errors are translated the same way for both
    database.migrate()
    history, ledger = ConfidenceHistory(database), UnitLedger(database)
    assert history.database is ledger.database
    _record(history, "s", 0.5)
    ledger.register("c", "folder", "/data", ["0000", "0001"])
    assert ledger.done_units("c") == set() and ledger.done_units("unknown") == set()
    ledger.claim("c", "w").done(rows=1, ingested=1, skip_reasons={}, seconds=0.1)
    assert ledger.done_units("c") == {"0000"}
    assert history.stream("s").n_events == 1
    history.close()  # closes the shared database; it reconnects lazily
    assert [c.corpus for c in ledger.corpora()] == ["c"]
    database.close()


def test_unmigrated_database_says_run_xmore_init(history_url):
    engine = create_history_engine(history_url)  # a database, but not an xmore one
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE unrelated (x INTEGER)")
    engine.dispose()
    history = ConfidenceHistory(history_url)
    assert history.revision() is None
    for call in (
        lambda: _record(history, "s", 0.5),
        history.streams,
        lambda: history.stream("s"),
    ):
        with pytest.raises(DatabaseNotMigratedError) as caught:
            call()
        assert str(caught.value).endswith("has no xmore schema: run `xmore init`")
    history.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://postgres@127.0.0.1:1/x", "postgresql+psycopg://postgres@127.0.0.1:1/x"),
        (
            "postgresql+psycopg://xmore:s3cret@127.0.0.1:1/x",
            "postgresql+psycopg://xmore:****@127.0.0.1:1/x",
        ),
    ],
)
def test_unreachable_postgres_is_one_clear_line(url, shown):
    history = ConfidenceHistory(url)  # lazy: constructing it does not connect
    for call in (
        history.check,
        history.revision,
        history.migrate,
        history.streams,
        lambda: _record(history, "s", 0.5),
    ):
        with pytest.raises(DatabaseUnreachableError) as caught:
            call()
        message = str(caught.value)
        # libpq's words, then the OS's: Windows adds the socket error code, "(0x0000274D/10061)".
        assert re.fullmatch(rf"cannot connect to database {re.escape(shown)}: connection failed: connection to "
                            r'server at "127\.0\.0\.1", port 1 failed: Connection refused(?: \(0x[0-9A-F]+/\d+\))?',
                            message), message
        assert "\n" not in message
        assert "s3cret" not in message


def test_sqlite_in_a_missing_directory_is_unreachable_until_migrate(tmp_path):
    directory = tmp_path / "not-yet"
    url = f"sqlite:///{directory / 'history.sqlite3'}"
    history = ConfidenceHistory(url)
    for call in (lambda: _record(history, "s", 0.5), history.check, history.revision, history.streams):
        with pytest.raises(DatabaseUnreachableError) as caught:
            call()
        assert str(caught.value) == (
            f"cannot connect to database {url}: directory {directory} does not exist (run `xmore init`)"
        )
    assert not directory.exists()
    history.migrate()
    assert _record(history, "s", 0.5).seq == 1
    history.close()


def test_reading_a_missing_sqlite_file_does_not_create_it(tmp_path):
    path = tmp_path / "history.sqlite3"
    history = ConfidenceHistory(f"sqlite:///{path}")
    assert history.revision() is None
    with pytest.raises(DatabaseNotMigratedError):
        history.streams()
    with pytest.raises(DatabaseNotMigratedError):
        _record(history, "s", 0.5)
    assert not path.exists()


def test_sqlite_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "history.sqlite3"
    path.write_text("not a database")
    with pytest.raises(HistoryError) as caught:
        ConfidenceHistory(f"sqlite:///{path}").streams()
    assert "file is not a database" in str(caught.value)
    assert "\n" not in str(caught.value)


# -- concurrency: no lost update, no duplicate or missing seq ---------------

EVENTS_PER_WRITER = 50


def _random_confidences(seed: int, n: int) -> list[tuple[float, float | None]]:
    rng = random.Random(seed)
    return [(rng.random(), None if rng.random() < 0.3 else rng.random()) for _ in range(n)]


def _weights(stats: StreamStats) -> Decision:
    assert stats.image.min <= stats.image.max
    return Decision(w_image=stats.image.max, w_text=stats.text.max or 0.0, prediction="x")


def _write(history: ConfidenceHistory, seed: int) -> list[int]:
    return [
        _record(history, "shared", ci, ct, decide=_weights, query=f"{seed}/{i}").seq
        for i, (ci, ct) in enumerate(_random_confidences(seed, EVENTS_PER_WRITER))
    ]


def _process_writer(url: str, seed: int, barrier) -> None:
    history = ConfidenceHistory(url)
    history.check()
    barrier.wait(timeout=60)
    _write(history, seed)
    history.close()


def _assert_no_lost_update(history: ConfidenceHistory, writers: int) -> None:
    total = writers * EVENTS_PER_WRITER
    stored = history.events("shared")
    assert [e.seq for e in stored] == list(range(1, total + 1))
    stats = history.stream("shared")
    assert stats.n_events == total
    _assert_stats_match_events(stats, stored)
    expected = sorted(c for seed in range(writers) for c in _random_confidences(seed, EVENTS_PER_WRITER))
    assert sorted((e.c_image, e.c_text) for e in stored) == expected


@pytest.mark.postgres
@pytest.mark.slow
def test_concurrent_processes_lose_no_update_on_postgres(postgres_url):
    writers = 8
    history = ConfidenceHistory(postgres_url)
    history.migrate()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(writers)
    processes = [context.Process(target=_process_writer, args=(postgres_url, seed, barrier)) for seed in range(writers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    for process in processes:
        if process.is_alive():
            process.kill()
    assert [p.exitcode for p in processes] == [0] * writers
    _assert_no_lost_update(history, writers)
    history.close()


def test_concurrent_threads_lose_no_update_on_sqlite(sqlite_url):
    writers = 4
    history = ConfidenceHistory(sqlite_url)
    history.migrate()
    barrier = threading.Barrier(writers)
    seqs: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def run(seed: int) -> None:
        try:
            barrier.wait(timeout=30)
            seqs[seed] = _write(history, seed)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    for own in seqs.values():  # each writer saw its own events in increasing order
        assert own == sorted(own)
    assert sorted(s for own in seqs.values() for s in own) == list(range(1, writers * 50 + 1))
    _assert_no_lost_update(history, writers)
    history.close()
