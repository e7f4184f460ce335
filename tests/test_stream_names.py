"""Stream names: one rule (config.check_stream_name), the same on SQLite and PostgreSQL.

Before the rule, a 6,000-character name worked on SQLite and failed on
PostgreSQL with an index-row error; control characters were accepted.
"""

from __future__ import annotations

import pytest

from tests.cli import fails
from xmore_db.config import MAX_STREAM_NAME_CHARS, check_stream_name
from xmore_db.errors import BadInputError, StreamNameError
from xmore_db.history import ConfidenceHistory, Decision

GOOD = ["default", "flowers", "run 3 / seed=0 #a", "ünïcode 字 ✓", "x" * MAX_STREAM_NAME_CHARS,
        "\U0001F600" * MAX_STREAM_NAME_CHARS]  # 200 four-byte characters: 800 bytes
BAD = [
    ("", "is empty"),
    ("x" * (MAX_STREAM_NAME_CHARS + 1), "has 201 characters"),
    ("x" * 6000, "has 6,000 characters"),
    ("bell\x07", "unprintable character '\\x07' (U+0007) at position 5"),
    ("two\nlines", "'\\n' (U+000A)"),
    ("tab\there", "'\\t' (U+0009)"),
    ("nul\x00", "(U+0000)"),
    ("zero\u200bwidth", "(U+200B)"),
    ("esc\x1b[31m", "(U+001B)"),
    (" leading", "starts or ends with a space"),
    ("trailing ", "starts or ends with a space"),
]


@pytest.mark.parametrize("name", GOOD)
def test_allowed_names(name):
    assert check_stream_name(name) == name


@pytest.mark.parametrize(("name", "problem"), BAD)
def test_refused_names_get_one_line_naming_the_rule(name, problem):
    with pytest.raises(StreamNameError) as caught:
        check_stream_name(name)
    message = str(caught.value)
    assert problem in message
    assert "1 to 200 printable characters" in message
    assert "\n" not in message and len(message) < 400  # the name is shown escaped and cut
    assert isinstance(caught.value, BadInputError)


def test_not_a_string():
    with pytest.raises(StreamNameError, match="must be a string, got int"):
        check_stream_name(7)


def _fixed(stats):
    return Decision(w_image=0.5, w_text=0.5, prediction="cat")


@pytest.mark.parametrize(("name", "problem"), BAD[1:6])
def test_the_history_refuses_them_on_both_databases(history_url, name, problem):
    with ConfidenceHistory(history_url) as history:
        history.migrate()
        with pytest.raises(StreamNameError, match="stream name"):
            history.record(name, c_image=0.5, c_text=None, normalize="minmax", query=None, decide=_fixed)
        assert history.streams() == []


def test_the_longest_names_work_on_both_databases(history_url):
    with ConfidenceHistory(history_url) as history:
        history.migrate()
        for name in GOOD[-2:]:
            event = history.record(name, c_image=0.5, c_text=None, normalize="minmax", query=None, decide=_fixed)
            assert event.seq == 1
            assert history.stream(name).n_events == 1
        assert sorted(s.name for s in history.streams()) == sorted(GOOD[-2:])


@pytest.fixture
def cli_env(backend_env, history_url, monkeypatch):
    monkeypatch.setenv("XMORE_DATABASE_URL", history_url)
    monkeypatch.delenv("XMORE_STREAM", raising=False)
    return backend_env


@pytest.mark.parametrize("backend_env", ["qdrant-edge"], indirect=True)
def test_cli_refuses_them_before_touching_anything(cli_env, query_images, labels_file, monkeypatch):
    image, labels = str(query_images[0]), str(labels_file)
    line = fails("classify", image, "--labels", labels, "--stream", "x" * 6000)
    assert line.startswith("Error: stream name 'xxxx") and "has 6,000 characters" in line
    assert "U+0007" in fails("classify", image, "--labels", labels, "--stream", "bell\x07")
    assert "is empty" in fails("classify", image, "--labels", labels, "--stream", "")
    assert "U+000A" in fails("streams", "show", "two\nlines")
    assert "has 6,000 characters" in fails("streams", "reset", "x" * 6000, "--yes")
    monkeypatch.setenv("XMORE_STREAM", "tab\there")
    assert "U+0009" in fails("classify", image, "--labels", labels)
