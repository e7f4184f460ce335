"""`xmore serve`'s command line: help, keys files, and the refusals, without starting a server."""

from __future__ import annotations

import sys

from tests.cli import fails, ok
from xmore_db.service.auth import Keys


def test_serve_is_listed_and_has_help():
    assert "serve" in ok("--help").stdout
    text = ok("serve", "--help").stdout
    assert "--keys" in text and "--port" in text and "--host" in text


def test_missing_extra_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # `import fastapi` raises ImportError
    line = fails("serve")
    assert "pip install 'xmore-db[serve]'" in line


def test_no_keys_refuses_a_public_address():
    assert "without keys" in fails("serve", "--host", "0.0.0.0")


def test_bad_keys_files_get_one_line(tmp_path):
    cases = {
        "missing.json": None,
        "broken.json": "{not json",
        "empty.json": "{}",
        "short.json": '{"short": {"team": "a"}}',
        "team.json": '{"a-long-enough-key-000": {"team": "a/b"}}',
        "admin.toml": '["a-long-enough-key-000"]\nteam = "a"\nadmin = "yes"\n',
    }
    for name, text in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        line = fails("serve", "--keys", tmp_path / name)
        assert name in line and "a-long-enough-key-000" not in line, line


def test_toml_and_json_keys_read_alike(tmp_path):
    (tmp_path / "keys.toml").write_text('["a-long-enough-key-000"]\nteam = "vision"\nadmin = true\n')
    (tmp_path / "keys.json").write_text('{"a-long-enough-key-000": {"team": "vision", "admin": true}}')
    for name in ("keys.toml", "keys.json"):
        keys = Keys.from_file(tmp_path / name)
        caller = keys.caller("a-long-enough-key-000")
        assert caller.team == "vision" and caller.admin
        assert keys.caller("a-long-enough-key-001") is None and keys.caller(None) is None
        assert caller.stored("flowers") == "vision/flowers" and caller.shown("vision/flowers") == "flowers"
        assert caller.owns("vision/x") and not caller.owns("visionary/x")
